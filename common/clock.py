"""Injected time and ids, so logic never reads the wall clock itself and the
simulator can drive the same code on simulated time."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class IdGenerator(Protocol):
    def new_job_id(self) -> str: ...


class RandomIds:
    """Short, URL-safe job ids: `j-` and 10 lowercase hex characters."""

    def new_job_id(self) -> str:
        return "j-" + secrets.token_hex(5)


def run_id_for(job_id: str, attempt: int) -> str:
    """The Ray submission_id of a job's attempt; deterministic, so resubmits are safe."""
    return f"minga-{job_id}-a{attempt}"
