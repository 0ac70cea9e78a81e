"""LocalRayHead stops exactly what it started, and says why when Ray does not come up."""

from __future__ import annotations

import pytest

from minga.agent import proctree
from minga.agent.backend import JobSubmissionBackend, RunRequest
from minga.agent.local_ray import LocalRayHead, RayStartError
from minga.common.domain import RunState
from tests.eventually import eventually

pytestmark = pytest.mark.ray


def test_stop_leaves_no_process_behind_even_with_a_job_running() -> None:
    head = LocalRayHead(gpus=1, gpu_model="L4", cpus=2, object_store_memory=100 * 1024 * 1024).start()
    try:
        temp_dir = head.temp_dir
        assert len(str(temp_dir)) < 40  # room for Ray's unix socket paths
        ray = JobSubmissionBackend(head.dashboard_url)
        ray.submit(RunRequest(run_id="minga-j-long-a1", job_id="j-long", epoch=1, entrypoint="sleep 300", gpus=1))
        eventually(lambda: ray.status("minga-j-long-a1") is RunState.RUNNING, timeout=30, interval=0.1)
        started = proctree.descendants(head.pid)
        assert len(started) > 5
    finally:
        head.stop()
    left = [key for key in started if proctree.alive(key)]
    assert left == []
    assert not temp_dir.exists()
    head.stop()  # idempotent


def test_a_head_that_does_not_come_up_in_time_says_why() -> None:
    head = LocalRayHead(gpus=0, start_timeout=0.01)
    with pytest.raises(RayStartError, match="not ready") as err:
        head.start()
    assert "ray-start.log" in str(err.value)
    with pytest.raises(RuntimeError):
        _ = head.pid  # stopped and cleaned up
