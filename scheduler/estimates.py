"""Start estimates for pending jobs: the forecast of a recent cycle's snapshot, computed on
the first request after that cycle, never while nobody asks, and at most once per cycle and
per `refresh_seconds` of the broker's clock: a forecast costs up to `Limits.max_cycles`
policy cycles (`scheduler/sim/forecast.py` says what it assumes and how far it looks;
docs/fairshare.md, "When will it start", gives its cost)."""

from __future__ import annotations

import threading

from minga.common.domain import StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.policy import schedule
from minga.scheduler.sim.forecast import Limits, forecast

REFRESH_SECONDS = 60.0


class StartEstimates:
    def __init__(self, limits: Limits, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.limits = limits
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # one forecast at a time; later askers wait for it
        self._latest: tuple[Snapshot, float] | None = None  # the last cycle's input and `now`
        self._done: tuple[Snapshot, float] | None = None  # what `_estimates` was computed from
        self._estimates: dict[str, StartEstimate] = {}
        self.forecasts = 0  # how many were computed

    def observe(self, snapshot: Snapshot, now: float) -> None:
        """A cycle decided on `snapshot` at `now` (the cycle thread; costs nothing)."""
        self._latest = (snapshot, now)

    @property
    def latest(self) -> tuple[Snapshot, float] | None:
        """The last cycle's snapshot and `now`; None before the first cycle."""
        return self._latest

    def for_job(self, job_id: str) -> StartEstimate | None:
        """The job's estimate; None before any cycle, for a job the forecast's cycle did not
        see pending (submitted since), or for one that can never run."""
        with self._lock:
            latest, done = self._latest, self._done
            if latest is None:
                return None
            if done is None or (latest is not done and latest[1] - done[1] >= self.refresh_seconds):
                self._estimates = forecast(*latest, schedule, self.limits)
                self._done = latest
                self.forecasts += 1
            return self._estimates.get(job_id)
