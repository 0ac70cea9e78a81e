"""Ray fixtures: real local Ray heads, each started once per test session on free
ports and stopped (by PID) at the end. Tests that use them are marked `ray`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from minga.agent.local_ray import LocalRayHead

# Small object stores: the tests move no data, and several heads may share /dev/shm.
OBJECT_STORE_BYTES = 200 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_head() -> Iterator[LocalRayHead]:
    """A site with 4 logical A100 GPUs."""
    with LocalRayHead(gpus=4, gpu_model="A100", object_store_memory=OBJECT_STORE_BYTES) as head:
        yield head


@pytest.fixture(scope="session")
def ray_head_b() -> Iterator[LocalRayHead]:
    """A second site with 2 logical T4 GPUs, for two-site tests (started only when asked for)."""
    with LocalRayHead(gpus=2, gpu_model="T4", object_store_memory=OBJECT_STORE_BYTES) as head:
        yield head


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
