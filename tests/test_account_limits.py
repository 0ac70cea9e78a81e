"""Limits per user and per project (Slurm's QOS and association limits): the pure hold
in the cycle (`policy/account_limits.py`), then through a real broker on port 0 over a
real SQLite file and the real `minga` CLI: max GPUs holds a job with its reason while
others run, max pending refuses the submit over it, max walltime refuses at submit and
holds a pending job when lowered, who may set them, and that they survive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Run, Site
from minga.common.limits import AccountLimit
from minga.common.snapshot import Snapshot
from minga.scheduler.policy import schedule
from minga.scheduler.policy.account_limits import split_limited
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_broker_grpc import spec
from tests.test_cli_shares import minga

P = "uchile/nlp"

# -- the pure policy ------------------------------------------------------------------


def _site(gpus: int = 8) -> Site:
    pool = GpuPool("A100", 81920, gpus, gpus, gpus)
    return Site("dcc", "uchile", "CL", connected=True, inventory=Inventory(gpus=(pool,), cpus=64, memory_mb=10**6))


def _job(i: int, owner: str, gpus: int = 1, walltime: int = 3600, project: str = P) -> Job:
    job_spec = JobSpec("x", resources=Resources(gpus=gpus), walltime_seconds=walltime, project=project)
    return Job(f"j{i}", job_spec, JobState.PENDING, owner, "uchile", float(i))


def _run(job_id: str, owner: str, gpus: int, project: str = P) -> Run:
    return Run(f"r-{job_id}", job_id, "dcc", 1, "A100", gpus, 1.0, institution="uchile", project=project, owner=owner)


def test_no_limits_costs_nothing_and_changes_nothing():
    snap = Snapshot(sites=(_site(),), live_runs=(), pending=(_job(1, "ana"),))
    assert split_limited(snap) == (snap, ())


def test_a_user_at_max_gpus_waits_with_the_reason_while_others_are_placed():
    pending = (_job(1, "ana"), _job(2, "ana"), _job(3, "ana"), _job(4, "bob"))
    limits = (AccountLimit("user", f"{P}/ana", max_gpus=2),)
    live = (_run("j0", "ana", 1),)
    d = schedule(Snapshot(sites=(_site(),), live_runs=live, pending=pending, account_limits=limits), 0.0)
    assert sorted(p.job_id for p in d.placements) == ["j1", "j4"]  # ana had 1 live: one more; bob unaffected
    waits = {w.job_id: w.reason for w in d.waiting}
    assert (
        waits["j2"]
        == "held: user ana at the max-GPUs limit (2 of 2: 1 running, 1 for jobs ahead) of project uchile/nlp"
    )
    assert "j3" in waits


def test_one_cycle_never_overshoots_a_project_limit():
    """In-cycle counting: the jobs kept take the headroom as they go, so the placements of
    one cycle never add up to more than the limit, whatever fits on the sites."""
    pending = tuple(_job(i, f"u{i % 3}", gpus=1 + i % 2) for i in range(12))
    limits = (AccountLimit("project", P, max_gpus=5),)
    d = schedule(Snapshot(sites=(_site(64),), live_runs=(), pending=pending, account_limits=limits), 0.0)
    assert sum(p.gpus for p in d.placements) <= 5
    held = [w.reason for w in d.waiting if w.reason.startswith("held:")]
    assert held and all("project uchile/nlp at its max-GPUs limit" in r for r in held)


def test_a_smaller_job_behind_a_held_one_still_fits_the_headroom_left():
    pending = (_job(1, "ana", gpus=3), _job(2, "ana", gpus=1))
    limits = (AccountLimit("user", f"{P}/ana", max_gpus=2),)
    d = schedule(Snapshot(sites=(_site(),), live_runs=(), pending=pending, account_limits=limits), 0.0)
    assert [p.job_id for p in d.placements] == ["j2"]
    assert dict((w.job_id, w.reason) for w in d.waiting)["j1"].startswith(
        "held: user ana at the max-GPUs limit (0 of 2)"
    )


def test_a_walltime_over_the_limit_is_held_and_other_projects_are_not_limited():
    pending = (_job(1, "ana", walltime=2 * 86400), _job(2, "ana", walltime=0), _job(3, "ana", project="uchile/cv"))
    limits = (AccountLimit("project", P, max_walltime_seconds=86400),)
    d = schedule(Snapshot(sites=(_site(),), live_runs=(), pending=pending, account_limits=limits), 0.0)
    assert [p.job_id for p in d.placements] == ["j3"]
    waits = {w.job_id: w.reason for w in d.waiting}
    assert waits["j1"] == "held: walltime 2d exceeds the project's max walltime 1d"
    assert waits["j2"] == "held: unlimited walltime exceeds the project's max walltime 1d"


# -- through the broker and the CLI ---------------------------------------------------


@pytest.fixture
def fed(broker: RunningBroker) -> Iterator[tuple[RunningBroker, str, Caller, Caller]]:
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")
    bob = broker.researcher("bob", "uchile")
    admin = broker.admin_token_file.read_text().strip()
    yield broker, admin, ana, bob


def _submit(caller: Caller, gpus: int = 1, walltime: int = 3600, array: str = "") -> job_pb2.SubmitJobResponse:
    request = job_pb2.SubmitJobRequest(spec=spec(gpus, walltime_seconds=walltime), allow_unknown=True, array=array)
    return caller.jobs.SubmitJob(request, metadata=caller.md)


def _jobs(caller: Caller) -> dict[str, common_pb2.Job]:
    return {j.id: j for j in caller.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=caller.md).jobs}


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_max_gpus_holds_the_third_job_while_another_user_runs_and_raising_it_releases(fed):
    broker, admin, ana, bob = fed
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 8))
    site.next("welcome")
    try:
        shown = json.loads(
            _ok(minga(broker, admin, "admin", "limits", "user", "uchile/default/ana", "--max-gpus", "2", "-o", "json"))
        )
        assert shown == {
            "kind": "user",
            "id": "uchile/default/ana",
            "max_gpus": 2,
            "max_pending": None,
            "max_walltime_seconds": None,
        }
        ids = [_submit(ana).job.id for _ in range(3)]
        theirs = _submit(bob).job.id
        started = {site.next("start").start.job_id for _ in range(3)}
        assert started == {ids[0], ids[1], theirs}
        broker.full_pass()
        held = _jobs(ana)[ids[2]]
        assert held.state == common_pb2.JOB_STATE_PENDING
        assert held.reason == "held: user ana at the max-GPUs limit (2 of 2) of project uchile/default"
        status = _ok(minga(broker, ana.token, "job", "status", ids[2]))
        assert "max-GPUs limit" in status
        _ok(minga(broker, admin, "admin", "limits", "user", "uchile/default/ana", "--max-gpus", "3"))
        assert site.next("start").start.job_id == ids[2]
    finally:
        site.close()


def test_max_pending_refuses_the_next_submit_and_stores_nothing(fed):
    broker, admin, ana, bob = fed
    _ok(minga(broker, admin, "admin", "limits", "user", "uchile/default/ana", "--max-pending", "2"))
    _submit(ana)
    _submit(ana)
    with pytest.raises(grpc.RpcError) as err:
        _submit(ana)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max-pending limit of user ana of project uchile/default: 2 of 2 pending" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        _submit(ana, array="0-1")  # an array counts its tasks
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(_jobs(ana)) == 2
    _submit(bob)  # another user of the same project: not limited
    out = minga(
        broker, ana.token, "job", "submit", "--allow-unknown", "--gpus", "1", "--walltime", "1h", "--", "python", "x.py"
    )
    assert out.exit_code != 0 and "over the max-pending limit" in out.output
    assert [j.owner for j in _jobs(ana).values()].count("ana") == 2
    # the project's own limit counts everyone's pending jobs
    _ok(minga(broker, admin, "admin", "limits", "project", "uchile/default", "--max-pending", "3"))
    with pytest.raises(grpc.RpcError) as err:
        _submit(bob)
    assert "project uchile/default: 3 of 3 pending" in err.value.details()


def test_max_walltime_refuses_at_submit_and_a_lowered_limit_holds_a_pending_job(fed):
    broker, admin, ana, bob = fed
    _ok(minga(broker, admin, "admin", "limits", "project", "uchile/default", "--max-walltime", "1d"))
    for walltime in (2 * 86400, 0):
        with pytest.raises(grpc.RpcError) as err:
            _submit(ana, walltime=walltime)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.walltime_seconds" in err.value.details() and "max walltime 1d" in err.value.details()
    assert _jobs(ana) == {}
    job_id = _submit(ana, walltime=12 * 3600).job.id
    _ok(minga(broker, admin, "admin", "limits", "project", "uchile/default", "--max-walltime", "6h"))
    broker.full_pass()
    assert _jobs(ana)[job_id].reason == "held: walltime 12h exceeds the project's max walltime 6h"
    _ok(minga(broker, admin, "admin", "limits", "project", "uchile/default", "--max-walltime", "unlimited"))
    broker.full_pass()
    assert not _jobs(ana)[job_id].reason.startswith("held:")
    assert json.loads(_ok(minga(broker, admin, "admin", "limits", "show", "-o", "json"))) == []


def test_who_may_set_limits_and_bad_input_changes_nothing(fed):
    broker, admin, ana, bob = fed
    inst_admin = broker.user("carla", "uchile", common_pb2.ROLE_INSTITUTION_ADMIN)
    broker.user("uma", "usp", common_pb2.ROLE_RESEARCHER)
    _ok(minga(broker, inst_admin, "admin", "limits", "project", "uchile/default", "--max-gpus", "4"))
    for key in ("usp/default", "usp/default/uma"):
        kind = "project" if key.count("/") == 1 else "user"
        out = minga(broker, inst_admin, "admin", "limits", kind, key, "--max-gpus", "1")
        assert out.exit_code != 0 and "institution 'uchile'" in out.output, out.output
    request = admin_pb2.SetAccountLimitsRequest(
        limits=admin_pb2.AccountLimits(kind="project", id="uchile/default", max_gpus=9)
    )
    with pytest.raises(grpc.RpcError) as err:
        ana.admin.SetAccountLimits(request, metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    a = broker.admin
    bad = [
        (
            admin_pb2.AccountLimits(kind="project", id="uchile/default", max_gpus=-2),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_gpus",
        ),
        (
            admin_pb2.AccountLimits(kind="project", id="uchile", max_gpus=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "<institution>/<project>",
        ),
        (
            admin_pb2.AccountLimits(kind="user", id="uchile/default", max_gpus=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "<institution>/<project>/<user>",
        ),
        (
            admin_pb2.AccountLimits(kind="team", id="uchile/default", max_gpus=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "kind",
        ),
        (
            admin_pb2.AccountLimits(kind="project", id="uchile/nope", max_gpus=1),
            grpc.StatusCode.NOT_FOUND,
            "uchile/nope",
        ),
        (admin_pb2.AccountLimits(kind="user", id="uchile/default/uma", max_gpus=1), grpc.StatusCode.NOT_FOUND, "uma"),
        (
            admin_pb2.AccountLimits(kind="project", id="uchile/default", max_walltime_seconds=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_walltime_seconds",
        ),
    ]
    for limits, code, words in bad:
        with pytest.raises(grpc.RpcError) as err:
            a.admin.SetAccountLimits(admin_pb2.SetAccountLimitsRequest(limits=limits), metadata=a.md)
        assert err.value.code() == code and words in err.value.details(), (limits, err.value.details())
    shown = json.loads(_ok(minga(broker, admin, "admin", "limits", "show", "-o", "json")))
    assert shown == [
        {"kind": "project", "id": "uchile/default", "max_gpus": 4, "max_pending": None, "max_walltime_seconds": None}
    ]
    # a researcher sees its institution's project limits; usp's researcher sees none of uchile's
    assert json.loads(_ok(minga(broker, ana.token, "admin", "limits", "show", "-o", "json"))) == shown
    uma = broker.user("uma2", "usp", common_pb2.ROLE_RESEARCHER)
    assert json.loads(_ok(minga(broker, uma, "admin", "limits", "show", "-o", "json"))) == []
    assert "uchile/default" in _ok(minga(broker, admin, "admin", "limits", "show"))


def test_limits_survive_a_broker_restart(tmp_path: Path):
    first = start_broker(tmp_path)
    try:
        first.institution("uchile", "CL")
        first.researcher("ana", "uchile")
        admin = first.admin_token_file.read_text().strip()
        _ok(
            minga(
                first, admin, "admin", "limits", "user", "uchile/default/ana", "--max-gpus", "2", "--max-walltime", "2d"
            )
        )
    finally:
        first.close()
        first.broker.stop()
    second = start_broker(tmp_path, db_url=first.db_url)
    try:
        shown = json.loads(_ok(minga(second, admin, "admin", "limits", "show", "-o", "json")))
        assert shown == [
            {
                "kind": "user",
                "id": "uchile/default/ana",
                "max_gpus": 2,
                "max_pending": None,
                "max_walltime_seconds": 172800,
            }
        ]
        assert second.broker.core.store.runs.load_snapshot(0.0).account_limits[0].max_gpus == 2
    finally:
        second.close()
        second.broker.stop()
