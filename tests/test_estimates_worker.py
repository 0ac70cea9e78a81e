"""The start estimates' worker (`scheduler/estimates.py`) with a fake forecast: a question
never waits for a forecast (but the bounded first wait), forecasts run only when asked, at
most once per cycle and per refresh window of the cycles' clock, and a failing forecast
neither ends the worker nor loses the previous estimates. No sleeps: the worker's steps are
awaited on its counters, or run by the test itself (`refresh_now`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping

import pytest

from minga.common.domain import StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.estimates import StartEstimates
from minga.scheduler.sim.forecast import Limits
from tests.eventually import eventually

LIMITS = Limits()


def _snapshot() -> Snapshot:
    return Snapshot(sites=(), live_runs=(), pending=())


class FakeForecast:
    """Answers job "a" with a start at the cycle's `now` + 100; records the cycles it ran on.
    `block()` holds the next call until `release()`; `fail()` makes the next call raise."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.entered = threading.Event()
        self._gate: threading.Event | None = None
        self._fail = False

    def __call__(self, snapshot: Snapshot, now: float) -> Mapping[str, StartEstimate]:
        self.calls.append(now)
        self.entered.set()
        if self._gate is not None:
            assert self._gate.wait(timeout=15), "the test never released the forecast"
        if self._fail:
            self._fail = False
            raise RuntimeError("forecast broke")
        return {"a": StartEstimate(at=now + 100)}

    def block(self) -> None:
        self._gate = threading.Event()
        self.entered.clear()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()
        self._gate = None

    def fail(self) -> None:
        self._fail = True


def _at(estimates: StartEstimates) -> float | None:
    est = estimates.for_job("a")
    return est.at if est else None


def _returns(fn: Callable[[], float | None]) -> float | None:
    """`fn()` run in another thread, awaited until it returns: a question that waited on the
    blocked forecast would fail here (after eventually's timeout) instead of hanging the test."""
    out: list[float | None] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    eventually(lambda: out, what=f"{fn} returned")
    return out[0]


@pytest.fixture
def fake() -> FakeForecast:
    return FakeForecast()


@pytest.fixture
def worker(fake: FakeForecast) -> Iterator[StartEstimates]:
    """Estimates with their worker running, refreshing at every cycle someone asks in."""
    estimates = StartEstimates(LIMITS, refresh_seconds=0, compute=fake, first_wait=0)
    estimates.start()
    try:
        yield estimates
    finally:
        if fake._gate is not None:
            fake.release()
        estimates.stop()


def test_a_question_during_a_slow_forecast_returns_the_previous_estimates(
    worker: StartEstimates, fake: FakeForecast
) -> None:
    worker.observe(_snapshot(), 1000.0)
    assert _at(worker) is None  # nothing yet, and it wants the first forecast
    eventually(lambda: worker.forecasts == 1)
    assert _at(worker) == 1100.0

    fake.block()
    worker.observe(_snapshot(), 1002.0)
    assert _at(worker) == 1100.0  # asks: the worker starts the next forecast, which blocks
    assert fake.entered.wait(timeout=15)
    # While it runs, questions return at once, from the last finished forecast.
    assert _returns(lambda: _at(worker)) == 1100.0
    assert _returns(lambda: _at(worker)) == 1100.0
    fake.release()
    eventually(lambda: worker.forecasts == 2)
    assert _at(worker) == 1102.0
    assert fake.calls == [1000.0, 1002.0]


def test_no_forecast_runs_while_nobody_asks(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, refresh_seconds=60, compute=fake)
    for now in range(0, 600, 30):  # cycles over ten minutes, nobody asking
        estimates.observe(_snapshot(), float(now))
        assert not estimates.refresh_now()
    assert estimates.forecasts == 0 and fake.calls == []
    assert estimates.latest is not None and estimates.latest[1] == 570.0


def test_the_worker_forecasts_only_the_latest_cycle_once_asked(worker: StartEstimates, fake: FakeForecast) -> None:
    for now in (10.0, 12.0, 14.0):
        worker.observe(_snapshot(), now)
    assert _at(worker) is None
    eventually(lambda: worker.forecasts == 1)
    worker.observe(_snapshot(), 16.0)  # nobody asks about this one
    worker.observe(_snapshot(), 18.0)
    assert _at(worker) == 114.0
    eventually(lambda: worker.forecasts == 2)
    assert fake.calls == [14.0, 18.0]  # the cycles at 10, 12 and 16 were never forecast


def test_at_most_one_forecast_per_cycle_and_per_refresh_window(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, refresh_seconds=60, compute=fake)
    assert _at(estimates) is None  # before any cycle: nothing, and nothing wanted
    assert not estimates.refresh_now()
    estimates.observe(_snapshot(), 0.0)
    assert _at(estimates) is None
    assert estimates.refresh_now()  # the first one runs as soon as asked
    assert _at(estimates) == 100.0
    assert not estimates.refresh_now()  # asked again, but the same cycle
    for now in (20.0, 40.0, 59.0):  # asked at every cycle, inside the window
        estimates.observe(_snapshot(), now)
        assert _at(estimates) == 100.0
        assert not estimates.refresh_now()
    estimates.observe(_snapshot(), 60.0)
    assert estimates.refresh_now()
    assert _at(estimates) == 160.0
    assert fake.calls == [0.0, 60.0] and estimates.forecasts == 2


def test_refresh_seconds_zero_still_means_one_forecast_per_cycle(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, refresh_seconds=0, compute=fake)
    estimates.observe(_snapshot(), 5.0)
    _at(estimates)
    assert estimates.refresh_now()
    _at(estimates)
    assert not estimates.refresh_now()
    estimates.observe(_snapshot(), 5.0)  # a new cycle, even at the same time
    _at(estimates)
    assert estimates.refresh_now()
    assert estimates.forecasts == 2


def test_a_failing_forecast_keeps_the_worker_and_the_previous_estimates(
    worker: StartEstimates, fake: FakeForecast, caplog: pytest.LogCaptureFixture
) -> None:
    worker.observe(_snapshot(), 0.0)
    _at(worker)
    eventually(lambda: worker.forecasts == 1)
    fake.fail()
    with caplog.at_level(logging.ERROR, logger="minga.scheduler.estimates"):
        worker.observe(_snapshot(), 2.0)
        assert _at(worker) == 100.0
        eventually(lambda: worker.failures == 1)
    assert "forecast failed; keeping the previous estimates" in caplog.text
    assert "forecast broke" in caplog.text  # the traceback, logged
    assert _at(worker) == 100.0  # still the last good forecast (and a question: wanted again)
    worker.observe(_snapshot(), 4.0)
    eventually(lambda: worker.forecasts == 2)  # the same worker, forecasting again
    assert _at(worker) == 104.0
    assert fake.calls == [0.0, 2.0, 4.0]


def test_a_failed_forecast_counts_for_the_refresh_rule(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, refresh_seconds=60, compute=fake)
    estimates.observe(_snapshot(), 0.0)
    fake.fail()
    _at(estimates)
    assert estimates.refresh_now() and estimates.failures == 1 and estimates.forecasts == 0
    estimates.observe(_snapshot(), 30.0)
    assert _at(estimates) is None
    assert not estimates.refresh_now()  # no retry inside the window: the cost stays bounded
    estimates.observe(_snapshot(), 60.0)
    assert estimates.refresh_now() and _at(estimates) == 160.0


def test_the_first_question_waits_for_the_first_forecast_within_the_bound(fake: FakeForecast) -> None:
    # A bound far above what the fake takes: the question returns when the forecast is done.
    estimates = StartEstimates(LIMITS, compute=fake, first_wait=60)
    estimates.start()
    try:
        estimates.observe(_snapshot(), 7.0)
        assert _at(estimates) == 107.0
        assert estimates.forecasts == 1
    finally:
        estimates.stop()


def test_a_first_forecast_slower_than_the_bound_gives_none_meanwhile(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, compute=fake)  # the default bound
    fake.block()
    estimates.start()
    try:
        estimates.observe(_snapshot(), 7.0)
        assert _returns(lambda: _at(estimates)) is None  # waited at most the bound, then none yet
        assert fake.entered.wait(timeout=15)
        assert _returns(lambda: _at(estimates)) is None
        fake.release()
        eventually(lambda: estimates.forecasts == 1)
        assert _at(estimates) == 107.0
    finally:
        if fake._gate is not None:
            fake.release()
        estimates.stop()


def test_stop_ends_the_worker_and_start_runs_a_new_one(fake: FakeForecast) -> None:
    estimates = StartEstimates(LIMITS, refresh_seconds=0, compute=fake, first_wait=0)
    estimates.start()
    thread = estimates._thread
    assert thread is not None
    estimates.stop()
    eventually(lambda: not thread.is_alive())
    estimates.observe(_snapshot(), 1.0)
    assert _at(estimates) is None
    assert estimates.forecasts == 0  # no worker, no forecast (a test would call refresh_now)
    estimates.start()
    try:
        eventually(lambda: estimates.forecasts == 1)  # the ask above, picked up by the new worker
        assert _at(estimates) == 101.0
    finally:
        estimates.stop()
