"""Energy and emissions through a real broker (issue 16): a run that ends is charged
GPUs x watts x hours x PUE x intensity, with the figures it used; an admin's site figure
wins; the usage report and the metrics show the same figures; bad input changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from minga.cli.main import app
from minga.common import carbon
from minga.common.clock import FakeClock
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker

HOUR = 3600.0


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[tuple[RunningBroker, Caller, ScriptedSite, FakeClock]]:
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    yield broker, ana, site, clock
    site.close()
    broker.close()


def minga(broker: RunningBroker, token: str, *args: str) -> Result:
    env = {"MINGA_BROKER": broker.address, "MINGA_TOKEN": token, "MINGA_CONFIG_DIR": "/nonexistent-minga"}
    return CliRunner().invoke(app, list(args), env=env)


def run_for(broker: RunningBroker, ana: Caller, site: ScriptedSite, clock: FakeClock, gpus: int, hours: float) -> str:
    """Submit a job, run it for `hours` of simulated time, end it SUCCEEDED; its run id."""
    core = broker.broker.core
    spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=gpus))
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "RUNNING")
    clock.advance(hours * HOUR)
    site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "SUCCEEDED")
    return run_id


def test_an_ended_run_is_charged_its_energy_and_emissions(fed):
    broker, ana, site, clock = fed
    run_id = run_for(broker, ana, site, clock, gpus=2, hours=3)
    row = broker.broker.core.store.carbon.run_energy(run_id)
    assert row is not None
    kwh = 2 * 400.0 * 3 * 1.5 / 1000  # 2 A100 (400 W) x 3 h x PUE 1.5
    assert row.kwh == pytest.approx(kwh, rel=1e-9)
    assert row.kgco2e == pytest.approx(kwh * 291.0 / 1000, rel=1e-9)  # Chile, 2023
    assert (row.intensity, row.watts, row.pue, row.country) == (291.0, 400.0, 1.5, "CL")
    assert row.intensity_source == carbon.INTENSITY_SOURCE
