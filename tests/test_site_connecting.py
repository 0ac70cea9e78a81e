"""Issue 11, section 3: a site that has joined but whose agent has not reported its GPUs
yet is CONNECTING (not READY with 0 GPUs), in `site list` and its JSON; a submit then
is never refused for what that site might hold, and never on a transient state (a
site briefly gone, a broker restarted): each site's last reported inventory counts.
Through a real broker on port 0 over a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from minga.common.clock import FakeClock
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_cli_shares import minga

CONNECTING_REASON = "its agent has not reported its GPUs yet"


def sites(broker: RunningBroker) -> dict[str, admin_pb2.Site]:
    a = broker.admin
    return {s.name: s for s in a.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=a.md).sites}


def submit(ana: Caller, gpus: int, models: tuple[str, ...] = ()) -> common_pb2.Job:
    spec = common_pb2.JobSpec(
        entrypoint="python train.py", resources=common_pb2.Resources(gpus=gpus, gpu_models=models)
    )
    return ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job


def reason_of(ana: Caller, job_id: str) -> str:
    return ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=ana.md).reason


@pytest.fixture
def joined(broker: RunningBroker) -> tuple[RunningBroker, Caller, str]:
    """A federation with one site that has joined; its agent has not connected."""
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    return broker, ana, broker.join("uchile", "dcc")


def test_a_joined_site_is_connecting_until_its_first_report(joined) -> None:
    broker, ana, token = joined
    before = sites(broker)["dcc"]
    assert before.state == common_pb2.SITE_STATE_CONNECTING and before.state_reason == CONNECTING_REASON
    admin = broker.admin_token_file.read_text().strip()
    table = minga(broker, admin, "site", "list")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if line.startswith("dcc "))
    assert "CONNECT" in row and "READY" not in table.stdout  # the reason may wrap onto the next lines
    listed = json.loads(minga(broker, admin, "site", "list", "-o", "json").stdout)
    assert (listed[0]["state"], listed[0]["state_reason"]) == ("CONNECTING", CONNECTING_REASON)

    site = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        after = sites(broker)["dcc"]
        assert after.state == common_pb2.SITE_STATE_READY and after.state_reason == ""
        assert [p.total for p in after.inventory.gpus] == [4]
    finally:
        site.close()


def test_a_submit_while_the_only_site_is_connecting_waits_for_it(joined) -> None:
    broker, ana, token = joined
    job = submit(ana, 2)  # was: rejected: asks for 2 GPUs on one site, but the largest site has 0
    assert job.state == common_pb2.JOB_STATE_PENDING
    eventually(lambda: reason_of(ana, job.id) == "connecting: 1 site has joined but not reported its GPUs yet (dcc)")
    site = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
    try:
        assert site.next("start").start.job_id == job.id  # it reported, and the job runs there
    finally:
        site.close()


def test_a_connecting_site_does_not_hide_a_typo_in_the_country(joined) -> None:
    """Its country is known from its join, so a country no site is in is still refused."""
    broker, ana, token = joined
    spec = common_pb2.JobSpec(entrypoint="true", countries=["AR"], resources=common_pb2.Resources(gpus=1))
    with pytest.raises(grpc.RpcError) as err:
        ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "country 'AR'" in err.value.details()


def test_once_every_site_reported_too_big_is_refused_again(joined) -> None:
    """The control: the acceptance above comes from the unreported site alone."""
    broker, ana, token = joined
    site = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        with pytest.raises(grpc.RpcError) as err:
            submit(ana, 8)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "largest site has 4" in err.value.details()
    finally:
        site.close()


def test_a_site_briefly_gone_keeps_its_last_inventory_at_submit(joined) -> None:
    broker, ana, token = joined
    site = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
    site.next("welcome")
    site.close()
    eventually(lambda: not sites(broker)["dcc"].connected)
    gone = sites(broker)["dcc"]
    assert gone.state != common_pb2.SITE_STATE_CONNECTING and [p.total for p in gone.inventory.gpus] == [4]
    assert submit(ana, 4, ("A100",)).state == common_pb2.JOB_STATE_PENDING


def test_a_hello_with_ray_down_and_no_inventory_keeps_the_last_one(joined) -> None:
    """An agent restarted while its Ray is down knows no inventory: its empty one is no news."""
    broker, ana, token = joined
    first = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
    first.next("welcome")
    first.close()
    again = ScriptedSite(broker.address, token, common_pb2.Inventory(), ray_down="Ray at http://x did not answer")
    try:
        again.next("welcome")
        degraded = sites(broker)["dcc"]
        assert degraded.state == common_pb2.SITE_STATE_DEGRADED
        assert [p.total for p in degraded.inventory.gpus] == [4]
        assert submit(ana, 4).state == common_pb2.JOB_STATE_PENDING
    finally:
        again.close()


def test_a_restarted_broker_counts_the_sites_last_inventory(tmp_path: Path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana_token = broker.researcher("ana", "uchile").token
        site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
        site.next("welcome")
        site.close()
    finally:
        broker.close()
    restarted = start_broker(tmp_path)  # same SQLite file; no agent has reconnected yet
    try:
        assert sites(restarted)["dcc"].state == common_pb2.SITE_STATE_READY
        ana = restarted.caller(ana_token)
        assert submit(ana, 4, ("A100",)).state == common_pb2.JOB_STATE_PENDING
        with pytest.raises(grpc.RpcError) as err:
            submit(ana, 5)
        assert "largest site has 4" in err.value.details()
    finally:
        restarted.close()


def test_a_site_that_never_reported_stays_connecting_past_the_lease_ttl(tmp_path: Path) -> None:
    """It was never there to lose: LOST would send the operator looking for a crash."""
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30.0)
    try:
        broker.institution("uchile", "CL")
        broker.join("uchile", "dcc")
        clock.advance(31)
        broker.broker.core.cycle.run_once()
        late = sites(broker)["dcc"]
        assert late.state == common_pb2.SITE_STATE_CONNECTING and late.state_reason == CONNECTING_REASON
    finally:
        broker.close()
