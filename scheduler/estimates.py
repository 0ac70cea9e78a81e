"""Start estimates for pending jobs, computed off the request path.

A forecast (`scheduler/sim/forecast.py`: the policy run forward on simulated time from a
cycle's snapshot; up to `Limits.max_cycles` policy cycles, seconds at a deep queue, see
docs/fairshare.md, "When will it start") runs in one background worker thread, started and
stopped with the scheduling cycle. A request only reads the latest finished forecast and
marks a forecast *wanted*; it never waits for one, except the first requests after a start,
which wait at most `FIRST_WAIT_SECONDS` in all (real time) for the very first forecast, so a
small federation answers its first `job status` instead of "no estimate yet".

The cost stays bounded and demand-driven: the worker computes only when asked since its last
forecast, at most once per cycle, and at most once per `refresh_seconds` of the broker's
clock (the cycles' `now`). A forecast that fails is logged, counts for that rule as if it
had run, and leaves the previous estimates in place. A job submitted after the forecast's
cycle has none until the next forecast (within `refresh_seconds` of someone asking).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from minga.common.domain import StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.policy import schedule
from minga.scheduler.sim.forecast import Limits, forecast

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0  # at most one forecast per this much of the broker's clock
FIRST_WAIT_SECONDS = 0.5  # the most a request waits, before any forecast has finished, for the first
STOP_JOIN_SECONDS = 1.0  # stop() waits this long for the worker; one mid-forecast ends on its own

Forecaster = Callable[[Snapshot, float], Mapping[str, StartEstimate]]


class StartEstimates:
    """The cycle calls `observe`; requests call `for_job`; the worker (`start`/`stop`), or a
    test, calls `refresh_now`."""

    def __init__(
        self,
        limits: Limits,
        refresh_seconds: float = REFRESH_SECONDS,
        compute: Forecaster | None = None,
        first_wait: float = FIRST_WAIT_SECONDS,
    ) -> None:
        self.limits = limits
        self.refresh_seconds = refresh_seconds  # public knob (tests set 0: every cycle someone asks in)
        self.first_wait = first_wait
        self._compute = compute or (lambda snapshot, now: forecast(snapshot, now, schedule, self.limits))
        self._cond = threading.Condition()  # guards the fields below; never held during a forecast
        self._latest: tuple[Snapshot, float] | None = None  # the last cycle's input and `now`
        self._tried: tuple[Snapshot, float] | None = None  # what the last forecast ran on, failed or not
        self._estimates: Mapping[str, StartEstimate] = {}  # from the last forecast that finished
        self._wanted = False  # someone asked since the last forecast began
        self._first_deadline: float | None = None  # monotonic end of the shared first wait
        self._one_at_a_time = threading.Lock()  # the worker's and a test's refresh_now never overlap
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self.forecasts = 0  # how many finished
        self.failures = 0  # how many raised

    # -- the cycle's side --------------------------------------------------------
    def observe(self, snapshot: Snapshot, now: float) -> None:
        """A cycle decided on `snapshot` at `now` (the cycle thread; costs nothing)."""
        with self._cond:
            self._latest = (snapshot, now)
            self._cond.notify_all()

    @property
    def latest(self) -> tuple[Snapshot, float] | None:
        """The last cycle's snapshot and `now`; None before the first cycle."""
        return self._latest

    # -- the requests' side ------------------------------------------------------
    def for_job(self, job_id: str) -> StartEstimate | None:
        """The job's estimate from the latest finished forecast; None before any cycle or
        forecast, for a job that forecast's cycle did not see pending (submitted since), or for
        one that can never run. Marks a forecast wanted; returns at once, but for the shared
        first wait."""
        with self._cond:
            if self._latest is None:
                return None
            self._wanted = True
            self._cond.notify_all()
            if self._tried is None and self._running():
                if self._first_deadline is None:
                    self._first_deadline = time.monotonic() + self.first_wait
                left = self._first_deadline - time.monotonic()
                if left > 0:
                    self._cond.wait_for(lambda: self._tried is not None, timeout=left)
            return self._estimates.get(job_id)

    # -- the worker's side -------------------------------------------------------
    def _due(self) -> bool:
        """Someone asked since the last forecast, and the refresh rule allows one now."""
        latest, tried = self._latest, self._tried
        if not self._wanted or latest is None:
            return False
        return tried is None or (latest is not tried and latest[1] - tried[1] >= self.refresh_seconds)

    def refresh_now(self) -> bool:
        """Run one forecast if one is due (`_due`); True if one ran (finished or failed). The
        worker's step; a unit test calls it directly instead of running the worker."""
        with self._one_at_a_time:
            with self._cond:
                if not self._due():
                    return False
                target = self._latest
                self._wanted = False  # asks from now on want the forecast after this one
            assert target is not None
            try:
                estimates = self._compute(*target)
            except Exception:  # logged: the worker outlives a bad forecast; old estimates stay
                log.exception("start-estimate forecast failed; keeping the previous estimates")
                with self._cond:
                    self._tried = target
                    self.failures += 1
                    self._cond.notify_all()
                return True
            with self._cond:
                self._estimates = estimates
                self._tried = target
                self.forecasts += 1
                self._cond.notify_all()
            return True

    def start(self) -> None:
        """Start the worker thread (with the cycle)."""
        if self._running():
            return
        stop = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self._run, args=(stop,), name="start-estimates", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker (with the cycle). One in the middle of a forecast is not waited
        for beyond `STOP_JOIN_SECONDS`: it finishes that forecast and ends."""
        thread, stop = self._thread, self._stop
        if stop is not None:
            with self._cond:
                stop.set()
                self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=STOP_JOIN_SECONDS)
        self._thread = self._stop = None

    def _running(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def _run(self, stop: threading.Event) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: stop.is_set() or self._due())
                if stop.is_set():
                    return
            try:
                self.refresh_now()
            except Exception:  # refresh_now logs a failed forecast; anything else must not end the worker either
                log.exception("start-estimate worker step failed")
