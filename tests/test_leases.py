"""Leases over the real gRPC API: a broker on port 0 whose clock the tests move, and
scripted sites that keep talking, fall silent, come back, or report their Ray down."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from minga.cli import errors
from minga.cli.main import app
from minga.common.clock import FakeClock
from minga.scheduler.requeue_rules import BACKOFF_FIRST_SECONDS, INFRA_BACKOFF_FIRST_SECONDS
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker

TTL = 30.0  # seconds of the injected clock: the tests move it, nothing waits for it
FIRST_BACKOFF = max(BACKOFF_FIRST_SECONDS, INFRA_BACKOFF_FIRST_SECONDS)  # a requeued job's first wait


@pytest.fixture
def fed(tmp_path) -> Iterator[tuple[RunningBroker, Caller, FakeClock]]:
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=TTL)
    broker.institution("uchile", "CL")
    yield broker, broker.researcher("ana", "uchile"), clock
    broker.close()


def submit(ana: Caller, gpus: int = 4, **spec: object) -> str:
    pb = common_pb2.JobSpec(entrypoint="python train.py", resources=common_pb2.Resources(gpus=gpus), **spec)
    return ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=pb), metadata=ana.md).job.id


def job(ana: Caller, job_id: str) -> common_pb2.Job:
    return ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=ana.md)


def site_info(broker: RunningBroker, name: str) -> admin_pb2.Site:
    a = broker.admin
    return next(s for s in a.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=a.md).sites if s.name == name)


def keeps_talking(broker: RunningBroker, clock: FakeClock, site: ScriptedSite, run_id: str, ttls: float = 2) -> None:
    """`ttls` lease TTLs pass on the clock while `site` speaks every half TTL: each time a log
    line of its run (any message renews a lease), and waits until the broker has stored it."""
    stored = len(broker.broker.core.store.blobs.read_log(run_id, 0))
    for _ in range(int(2 * ttls)):
        clock.advance(TTL / 2)
        line = f"step {stored}\n".encode()
        site.log(run_id, stored * len(line), line)  # same-length lines: offsets line up
        stored += 1
        eventually(lambda n=stored: len(broker.broker.core.store.blobs.read_log(run_id, 0)) == n)


def test_a_silent_site_is_lost_its_job_runs_elsewhere_and_its_return_changes_nothing(fed):
    broker, ana, clock = fed
    token_a = broker.join("uchile", "a")
    a = ScriptedSite(broker.address, token_a, gpu_inventory(gpus=4))
    a.next("welcome")
    job_id = submit(ana)
    first = a.next("start").start
    a.report(first.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: job(ana, job_id).state == common_pb2.JOB_STATE_RUNNING)
    keeps_talking(broker, clock, a, first.run_id)
    broker.full_pass()
    assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY  # speaking keeps the lease
    # a falls silent (the stream stays open, nothing comes); half a TTL later b connects.
    clock.advance(TTL / 2)
    b = ScriptedSite(broker.address, broker.join("uchile", "b"), gpu_inventory(gpus=4))
    b.next("welcome")
    broker.full_pass()
    assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY  # not before its TTL
    clock.advance(TTL / 2 + 1)  # a's lease has run out, b's has not
    eventually(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_LOST)
    clock.advance(FIRST_BACKOFF)
    second = b.next("start").start
    assert second.job_id == job_id and second.epoch == 2 and second.run_id != first.run_id
    lost = site_info(broker, "a")
    assert lost.state == common_pb2.SITE_STATE_LOST and "no report" in lost.state_reason
    assert job(ana, job_id).attempts == 2
    # The silent agent speaks again on its old stream: the broker ends that session...
    a.heartbeat()
    assert a.ended.wait(5)
    # ...and when it reconnects, still running the old run, it is told to stop it.
    back = ScriptedSite(
        broker.address,
        token_a,
        gpu_inventory(gpus=4),
        runs=[site_pb2.RunReport(run_id=first.run_id, job_id=job_id, epoch=1, state=common_pb2.RUN_STATE_RUNNING)],
    )
    back.next("welcome")
    assert back.next("stop").stop.run_id == first.run_id
    assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY
    back.report(first.run_id, common_pb2.RUN_STATE_SUCCEEDED)  # a late outcome of the stale run
    b.report(second.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: job(ana, job_id).state == common_pb2.JOB_STATE_RUNNING)
    assert job(ana, job_id).run_id == second.run_id
    b.report(second.run_id, common_pb2.RUN_STATE_SUCCEEDED)
    done = eventually(lambda: (j := job(ana, job_id)).state == common_pb2.JOB_STATE_SUCCEEDED and j)
    assert done.site == "b"
    for s in (a, b, back):
        s.close()


def test_a_site_whose_ray_is_down_is_degraded_and_its_job_moves(fed):
    broker, ana, clock = fed
    a = ScriptedSite(broker.address, broker.join("uchile", "a"), gpu_inventory(gpus=4))
    a.next("welcome")
    job_id = submit(ana)
    first = a.next("start").start
    a.report(first.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: job(ana, job_id).state == common_pb2.JOB_STATE_RUNNING)
    a.health("dashboard at http://127.0.0.1:8265 refused the connection")
    eventually(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_DEGRADED)
    assert "refused" in site_info(broker, "a").state_reason
    requeued = job(ana, job_id)
    assert requeued.state == common_pb2.JOB_STATE_PENDING and "degraded" in requeued.reason
    # An agent that (re)connects while Ray is down says so in its Hello.
    b = ScriptedSite(broker.address, broker.join("uchile", "b"), gpu_inventory(gpus=4), ray_down="no answer")
    b.next("welcome")
    assert site_info(broker, "b").state == common_pb2.SITE_STATE_DEGRADED
    a.health(None)  # Ray is back on a: the job returns there, once its backoff is over
    eventually(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_READY)
    clock.advance(FIRST_BACKOFF)
    second = a.next("start", timeout=10).start
    assert second.job_id == job_id and second.epoch == 2
    for s in (a, b):
        s.close()


def test_a_restarted_broker_gives_sites_a_fresh_ttl(tmp_path):
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=TTL)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    token = broker.join("uchile", "a")
    a = ScriptedSite(broker.address, token, gpu_inventory(gpus=4))
    a.next("welcome")
    job_id = submit(ana)
    start = a.next("start").start
    a.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: job(ana, job_id).state == common_pb2.JOB_STATE_RUNNING)
    a.close()
    broker.close()
    clock.advance(2 * TTL)  # longer than the TTL since the site was last heard
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=TTL)
    try:
        ana = broker.caller(ana.token)
        broker.full_pass()
        assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY
        back = ScriptedSite(
            broker.address,
            token,
            gpu_inventory(gpus=4),
            runs=[site_pb2.RunReport(run_id=start.run_id, job_id=job_id, epoch=1, state=common_pb2.RUN_STATE_RUNNING)],
        )
        back.next("welcome")
        keeps_talking(broker, clock, back, start.run_id)
        broker.full_pass()
        kept = job(ana, job_id)
        assert kept.state == common_pb2.JOB_STATE_RUNNING and kept.attempts == 1 and kept.run_id == start.run_id
        back.close()
    finally:
        broker.close()


def test_drain_takes_no_new_runs_and_waits_for_the_running_ones(fed):
    broker, ana, _ = fed
    a = ScriptedSite(broker.address, broker.join("uchile", "a"), gpu_inventory(gpus=4))
    a.next("welcome")
    job_id = submit(ana, gpus=2)
    start = a.next("start").start
    a.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: job(ana, job_id).state == common_pb2.JOB_STATE_RUNNING)
    admin = ["--broker", broker.address, "--token", broker.admin.token]
    timed_out = CliRunner().invoke(app, ["admin", "site", "drain", "a", "--timeout", "1s", *admin])
    assert timed_out.exit_code == errors.EXIT_TIMEOUT, timed_out.output
    assert "site a is DRAINING: 2 GPU(s) still in use" in timed_out.stdout
    later = submit(ana, gpus=2)
    broker.full_pass()  # a pass that saw the job: it sends nothing to a draining site
    assert job(ana, later).state == common_pb2.JOB_STATE_PENDING
    a.report(start.run_id, common_pb2.RUN_STATE_SUCCEEDED)
    drained = CliRunner().invoke(app, ["admin", "site", "drain", "a", "--timeout", "20s", "-o", "json", *admin])
    assert drained.exit_code == 0, drained.output
    data = json.loads(drained.stdout)
    assert data["drained"] is True and data["state"] == "DRAINING"
    assert CliRunner().invoke(app, ["admin", "site", "uncordon", "a", *admin]).exit_code == 0
    assert a.next("start", timeout=10).start.job_id == later
    bad = CliRunner().invoke(app, ["admin", "site", "drain", "a", "--timeout", "soon", *admin])
    assert bad.exit_code == errors.EXIT_USAGE
    a.close()
