"""The fair-share data plane through real gRPC: projects, weights, policy, guarantees,
limits, incremental usage and contribution ledgers, and preemption in the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from minga.common.domain import Principal, Role
from minga.scheduler.policy import Decisions, Preemption
from minga.scheduler.quota import quota_view
from minga.scheduler.service import admin
from minga.scheduler.store.ledger import decayed
from minga.scheduler.store.models import ContributionRow, UsageRow
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import (
    Caller,
    ClockedFederation,
    one_site_on_a_fake_clock,
)

ADMIN_CALLER = Principal("root", Role.ADMIN)

HOUR = 3600.0
WEEK = 7 * 86400.0


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[ClockedFederation]:
    with one_site_on_a_fake_clock(tmp_path) as federation:
        yield federation


def submit(ana: Caller, gpus: int = 1, project: str = "") -> common_pb2.Job:
    spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=gpus), project=project)
    return ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job


def test_jobs_are_charged_to_the_default_project_or_a_named_one(fed):
    broker, ana, site, clock = fed
    assert submit(ana).project == "uchile/default"
    a = broker.admin
    added = a.admin.AddProject(admin_pb2.AddProjectRequest(institution="uchile", name="nlp", weight=2), metadata=a.md)
    assert (added.id, added.weight) == ("uchile/nlp", 2)
    assert submit(ana, project="nlp").project == "uchile/nlp"
    with pytest.raises(grpc.RpcError) as err:
        submit(ana, project="vision")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ids = [p.id for p in a.admin.ListProjects(admin_pb2.ListProjectsRequest(), metadata=a.md).projects]
    assert ids == ["uchile/default", "uchile/nlp"]


def test_policy_is_changed_field_by_field_and_checked(fed):
    broker, ana, site, clock = fed
    a = broker.admin
    before = a.admin.GetPolicy(admin_pb2.GetPolicyRequest(), metadata=a.md)
    assert before.share_policy == "contribution" and before.half_life_seconds == WEEK
    after = a.admin.SetPolicy(
        admin_pb2.SetPolicyRequest(
            policy=admin_pb2.Policy(
                share_policy="static", model_weights=[admin_pb2.ModelWeight(model="A100", weight=0.7)]
            )
        ),
        metadata=a.md,
    )
    assert after.share_policy == "static" and after.half_life_seconds == WEEK
    assert dict((w.model, w.weight) for w in after.model_weights)["A100"] == 0.7
    with pytest.raises(grpc.RpcError) as err:
        a.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(share_policy="lottery")), metadata=a.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        ana.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(base_grant=9)), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_weights_guarantees_and_limits_reach_the_snapshot(fed):
    broker, ana, site, clock = fed
    a = broker.admin
    broker.institution("unam", "MX")
    a.admin.SetWeight(admin_pb2.SetWeightRequest(kind="institution", id="unam", weight=3), metadata=a.md)
    a.admin.SetWeight(admin_pb2.SetWeightRequest(kind="country", id="mx", weight=5), metadata=a.md)
    a.admin.SetGuarantee(
        admin_pb2.SetGuaranteeRequest(institution="uchile", gpu_model="A100", gpus=2), metadata=a.md
    )  # uchile keeps 2 of its 4, which leaves 2 to guarantee elsewhere
    a.admin.SetGuarantee(admin_pb2.SetGuaranteeRequest(institution="unam", gpu_model="A100", gpus=2), metadata=a.md)
    a.admin.SetLimits(
        admin_pb2.SetLimitsRequest(institution="uchile", borrowing_limit=-1, lending_limit=1), metadata=a.md
    )
    with pytest.raises(grpc.RpcError) as err:  # the federation has only 4 A100s
        a.admin.SetGuarantee(admin_pb2.SetGuaranteeRequest(institution="unam", gpu_model="A100", gpus=5), metadata=a.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "has 4 A100" in err.value.details()
    snap = broker.broker.core.store.runs.load_snapshot(clock.now())
    shares = {i.slug: i for i in snap.institutions}
    assert shares["unam"].weight == 3 and shares["unam"].guarantee == (("A100", 2),)
    assert shares["uchile"].lending_limit == 1 and shares["uchile"].borrowing_limit is None
    assert dict(snap.country_weights) == {"MX": 5}


def test_usage_and_contribution_are_charged_incrementally(fed):
    broker, ana, site, clock = fed
    core = broker.broker.core
    core.cycle.run_once()  # the site's contribution clock starts now
    job = submit(ana, gpus=2)
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "RUNNING")
    core.cycle.stop()  # from here on, only the cycles this test runs charge (at known times)
    clock.advance(HOUR)
    core.cycle.run_once()
    clock.advance(HOUR / 2)
    site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "SUCCEEDED")
    clock.advance(HOUR)
    core.cycle.run_once()  # a finished run is charged nothing more
    with core.store.db.read() as s:
        usage = s.get(UsageRow, "uchile/default")
        contribution = s.get(ContributionRow, "uchile")
    rate = 2 * 0.6  # 2 GPUs of A100, weight 0.6
    expected = decayed(decayed(rate * HOUR, 0, HOUR / 2, WEEK) + rate * HOUR / 2, 0, HOUR, WEEK)
    assert decayed(usage.value, usage.as_of, clock.now(), WEEK) == pytest.approx(expected, rel=1e-6)
    capacity = 4 * 0.6
    expected_c = decayed(capacity * HOUR, HOUR, 2.5 * HOUR, WEEK) + capacity * 1.5 * HOUR  # the cycles' steps
    assert contribution.value == pytest.approx(expected_c, rel=1e-6)


def test_preemption_requeues_the_job_and_stops_the_run(fed):
    broker, ana, site, clock = fed
    core = broker.broker.core
    job = submit(ana, gpus=4)
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "RUNNING")
    core.cycle.stop()  # no cycle may re-lease it while we look
    commands = core.store.runs.apply_decisions(
        Decisions(preemptions=(Preemption(run_id, job.id, "dcc", "owner reclaims A100"),)), clock.now()
    )
    assert [(c.run_id, c.site) for c in commands] == [(run_id, "dcc")]
    requeued = core.store.jobs.get(job.id)
    assert requeued.state.value == "PENDING" and "preempted" in requeued.reason
    assert core.store.runs.load_snapshot(clock.now()).live_runs == ()
    site.report(run_id, common_pb2.RUN_STATE_STOPPED)  # the late stop of a fenced run changes nothing
    site.log(run_id, 0, b"after the stop\n")  # applied after the report: once it is stored, so is the stop
    eventually(lambda: core.store.blobs.read_log(run_id, 0))
    assert core.store.jobs.get(job.id).state.value == "PENDING"
    assert (
        core.store.runs.apply_decisions(  # preempting twice is a no-op
            Decisions(preemptions=(Preemption(run_id, job.id, "dcc", "again"),)), clock.now()
        )
        == []
    )


def test_usage_report_counts_consumed_against_contributed(fed):
    broker, ana, site, clock = fed
    core = broker.broker.core
    core.cycle.run_once()  # the site starts serving now: 4 A100
    job = submit(ana, gpus=2)
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "RUNNING")
    clock.advance(2 * HOUR)
    core.cycle.run_once()
    site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "SUCCEEDED")
    clock.advance(HOUR)
    core.cycle.run_once()
    a = broker.admin
    report = a.admin.UsageReport(
        admin_pb2.UsageReportRequest(since_seconds=30 * 86400, by="institution"), metadata=a.md
    )
    (line,) = report.lines
    assert line.key == "uchile" and line.country == "CL"
    assert line.consumed_gpu_hours == pytest.approx(4.0)  # 2 GPUs x 2 h
    assert line.consumed_normalized == pytest.approx(4.0 * 0.6)
    assert line.contributed_gpu_hours == pytest.approx(12.0)  # 4 GPUs x 3 h
    window = a.admin.UsageReport(admin_pb2.UsageReportRequest(since_seconds=HOUR, by="project"), metadata=a.md)
    assert list(window.lines) == []  # the run ended when the last hour began
    by_country = a.admin.UsageReport(admin_pb2.UsageReportRequest(since_seconds=86400, by="country"), metadata=a.md)
    assert [line.key for line in by_country.lines] == ["CL"]
    with pytest.raises(grpc.RpcError) as err:
        a.admin.UsageReport(admin_pb2.UsageReportRequest(since_seconds=86400, by="planet"), metadata=a.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_cycle_reads_the_clock_once_so_its_snapshot_and_decisions_share_one_now(fed):
    broker, ana, site, clock = fed
    core = broker.broker.core
    submit(ana, gpus=2)
    site.next("start")  # one run live, to be charged
    submit(ana, gpus=4)  # and one job that waits, to be decided on
    core.cycle.stop()  # from here on, only the cycle this test runs
    reads: list[float] = []

    class CountingClock:
        def now(self) -> float:
            reads.append(clock.now())
            return reads[-1]

    core.cycle.clock = CountingClock()
    clock.advance(HOUR)
    core.cycle.run_once()
    assert len(reads) == 1


def test_each_task_of_an_array_is_charged_like_a_job(fed):
    broker, ana, site, clock = fed
    core = broker.broker.core
    spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=1))
    ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec, array="0-2"), metadata=ana.md)
    runs = [site.next("start").start.run_id for _ in range(3)]
    for run_id in runs:
        site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: all(j.state.value == "RUNNING" for j in core.store.jobs.list(None, False, None)))
    core.cycle.stop()  # from here on, only the cycle this test runs charges
    with core.store.db.read() as s:
        before = s.get(UsageRow, "uchile/default")
        start = decayed(before.value, before.as_of, clock.now(), WEEK) if before else 0.0
    clock.advance(HOUR)
    core.cycle.run_once()
    with core.store.db.read() as s:
        usage = s.get(UsageRow, "uchile/default")
    rate = 3 * 1 * 0.6  # three tasks of 1 A100 each, weight 0.6
    expected = decayed(start, 0, HOUR, WEEK) + rate * HOUR
    assert decayed(usage.value, usage.as_of, clock.now(), WEEK) == pytest.approx(expected, rel=1e-6)


def test_the_quota_view_from_the_leaders_memory_is_the_one_the_store_gives(fed):
    broker, ana, site, clock = fed
    running = submit(ana, gpus=2)
    site.report(site.next("start").start.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=running.id), metadata=ana.md).state
               == common_pb2.JOB_STATE_RUNNING, what="the job running")  # fmt: skip
    leased = submit(ana, gpus=1)
    site.next("start")  # left LEASED: never reported
    for gpus in (2, 4, 3):  # none fits the one GPU left
        submit(ana, gpus=gpus)
    broker.full_pass()
    core = broker.broker.core
    assert core is not None and core.cycle.state.loaded and not core.cycle.state.stale
    leased_now = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=leased.id), metadata=ana.md)
    assert leased_now.state == common_pb2.JOB_STATE_LEASED
    institutions = [(i.slug, i.country) for i in core.store.accounts.list_institutions()]
    from_store = quota_view(
        institutions,
        core.store.jobs.list(None, include_terminal=False, state=None, limit=1_000_000),
        core.store.runs.load_snapshot(clock.now()),
        tree=True,
    )
    shown = admin.show_quotas(core, True, ADMIN_CALLER)  # the leader's pending queue and snapshot, in memory
    assert shown == from_store
    assert [(r.held, r.in_use, r.pending) for r in shown.rows] == [(3, 2, 0), (0, 0, 9)]
