"""Start estimates for pending jobs: the forecast of the last cycle's snapshot, computed on
the first request after that cycle and kept until the next one, so the broker runs at most
one forecast per cycle, and none while nobody asks (`scheduler/sim/forecast.py` says what
it assumes and how far it looks)."""

from __future__ import annotations

import threading

from minga.common.domain import StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.policy import schedule
from minga.scheduler.sim.forecast import Limits, forecast


class StartEstimates:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()  # one forecast at a time; later askers wait for it
        self._latest: tuple[Snapshot, float] | None = None  # the last cycle's input
        self._done: tuple[Snapshot, float] | None = None  # what `_estimates` was computed from
        self._estimates: dict[str, StartEstimate] = {}
        self.forecasts = 0  # how many were computed: at most one per cycle

    def observe(self, snapshot: Snapshot, now: float) -> None:
        """A cycle decided on `snapshot` at `now` (the cycle thread; costs nothing)."""
        self._latest = (snapshot, now)

    def for_job(self, job_id: str) -> StartEstimate | None:
        """The job's estimate from the last cycle; None before any cycle, or for a job that
        cycle did not see pending (submitted since) or that can never run."""
        with self._lock:
            latest = self._latest
            if latest is None:
                return None
            if latest is not self._done:
                snapshot, now = latest
                self._estimates = forecast(snapshot, now, schedule, self.limits)
                self._done = latest
                self.forecasts += 1
            return self._estimates.get(job_id)
