"""A pending job's estimated start through a real broker (port 0, SQLite, a scripted site)
and the `minga job status` CLI, on an injected clock: the job waits for a running one's
walltime; a running job shows none; one forecast serves every question of a cycle. The
cycle is stopped here, and its estimates' worker with it: the test runs the worker's step
(`refresh_now`) itself, so what a question returns does not depend on a thread's timing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from minga.common.clock import FakeClock
from minga.scheduler.estimates import REFRESH_SECONDS
from minga.scheduler.sim.forecast import Limits
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_preemption_record import get, minga


def _submit(who: Caller, walltime: int) -> str:
    spec = common_pb2.JobSpec(
        entrypoint="python train.py",
        resources=common_pb2.Resources(gpus=4, gpu_models=["A100"]),
        walltime_seconds=walltime,
    )
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


@pytest.fixture
def setup(tmp_path) -> Iterator[tuple[RunningBroker, FakeClock, ScriptedSite, Caller]]:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400)
    broker.broker.core.cycle.stop()  # the test runs each cycle itself
    broker.institution("uchile", "CL")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        yield broker, clock, site, broker.researcher("ana", "uchile")
    finally:
        site.close()
        broker.close()


def _status(broker: RunningBroker, ana: Caller, job_id: str, *fmt: str):  # type: ignore[no-untyped-def]
    out = minga(broker, ana.token, "job", "status", job_id, *fmt)
    assert out.exit_code == 0, out.output
    return out.stdout


def test_job_status_estimates_a_pending_job_and_not_a_running_one(setup) -> None:  # type: ignore[no-untyped-def]
    broker, clock, site, ana = setup
    cycle = broker.broker.core.cycle
    first = _submit(ana, walltime=3600)
    assert cycle.run_once().placed == 1
    leased_at = clock.now()
    start = site.next("start").start
    site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: get(ana, first).state == common_pb2.JOB_STATE_RUNNING)

    clock.advance(600)
    second = _submit(ana, walltime=600)
    # Before any cycle has seen it, there is nothing to estimate from.
    assert json.loads(_status(broker, ana, second, "-o", "json"))["estimated_start"] is None
    assert cycle.run_once().placed == 0
    estimates = cycle.estimates
    forecasts = estimates.forecasts
    # A question returns what the last forecast had (nothing on this job) and wants a new one,
    # which the worker's next step computes from this cycle.
    assert json.loads(_status(broker, ana, second, "-o", "json"))["estimated_start"] is None
    assert estimates.refresh_now() and estimates.forecasts == forecasts + 1

    shown = json.loads(_status(broker, ana, second, "-o", "json"))
    assert shown["state"] == "PENDING"
    est = shown["estimated_start"]
    # The site's 4 GPUs free when the first job's walltime ends, at the next cycle of the
    # forecast's grid, whose step that far ahead is about a quarter of the lead time.
    at, ends = datetime.fromisoformat(est["at"]).timestamp(), leased_at + 3600
    assert ends <= at <= ends + 0.25 * (ends - clock.now()) + Limits().cycle_seconds
    assert est["later_than"] is None
    assert "walltime" in est["assumptions"] and "nothing new is submitted" in est["assumptions"]

    text = " ".join(_status(broker, ana, second).split())
    assert f"estimate {est['at']}" in text and "an estimate, not a promise" in text
    assert "assuming running jobs end at their walltime" in text

    running = json.loads(_status(broker, ana, first, "-o", "json"))
    assert running["state"] == "RUNNING" and running["estimated_start"] is None
    assert "estimate" not in _status(broker, ana, first)
    # Every question since the forecast was answered from it, and so are those after the
    # next cycles, until it is REFRESH_SECONDS old on the broker's clock.
    assert not estimates.refresh_now()  # no new cycle since
    clock.advance(REFRESH_SECONDS / 2)
    cycle.run_once()
    assert json.loads(_status(broker, ana, second, "-o", "json"))["estimated_start"] == est
    assert not estimates.refresh_now()  # asked, but too soon
    assert estimates.forecasts == forecasts + 1
    clock.advance(REFRESH_SECONDS / 2)
    cycle.run_once()
    assert estimates.refresh_now()  # the question above, now that the refresh rule allows
    assert json.loads(_status(broker, ana, second, "-o", "json"))["estimated_start"]["at"]
    assert estimates.forecasts == forecasts + 2
    # That last question wants the forecast after this one, which runs once the refresh rule
    # allows; then nobody asks, and however many cycles and minutes pass, none runs.
    clock.advance(REFRESH_SECONDS)
    cycle.run_once()
    assert estimates.refresh_now()
    for _ in range(3):
        clock.advance(REFRESH_SECONDS)
        cycle.run_once()
        assert not estimates.refresh_now()
    assert estimates.forecasts == forecasts + 3
