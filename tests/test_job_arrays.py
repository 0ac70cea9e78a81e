"""Job arrays (Slurm's --array) through a real broker on port 0 over a real SQLite file:
one RPC makes every task, each task sees its index, %K caps the tasks running at once,
status, list and cancel work on the array and on a task, keys cover arrays, and bad
specs are refused with nothing stored."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence

import grpc
import pytest

from minga.agent.backend import minga_env
from minga.agent.reconcile import run_request
from minga.common.domain import RUN_ENV_NAMES, InvalidArgument
from minga.scheduler.arrays import MAX_ARRAY_TASKS, parse_array
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory
from tests.test_broker_grpc import spec


@pytest.fixture
def federation(broker: RunningBroker) -> Iterator[tuple[RunningBroker, Caller, ScriptedSite]]:
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 8))
    site.next("welcome")
    yield broker, ana, site
    site.close()


def submit(caller: Caller, array: str, key: str = "", gpus: int = 1) -> job_pb2.SubmitJobResponse:
    return caller.jobs.SubmitJob(
        job_pb2.SubmitJobRequest(spec=spec(gpus, name="sweep"), array=array, idempotency_key=key), metadata=caller.md
    )


def all_jobs(caller: Caller) -> Sequence[common_pb2.Job]:
    return caller.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=caller.md).jobs


# -- the index spec -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, indices, limit",
    [
        ("0-4", (0, 1, 2, 3, 4), 0),
        ("1,3,5-7", (1, 3, 5, 6, 7), 0),
        ("0-9:3", (0, 3, 6, 9), 0),
        ("0-999%4", tuple(range(1000)), 4),
        ("7", (7,), 0),
        ("3,1,3", (1, 3), 0),
    ],
)
def test_index_specs_as_slurm_reads_them(text, indices, limit):
    got = parse_array(text)
    assert got.indices == indices and got.limit == limit


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("9-3", "backwards"),
        ("0-9%0", "at least 1"),
        ("0-9%x", "after %"),
        ("a-b", "not an index"),
        ("1,,2", "not an index"),
        ("0-9:0", "step"),
        (f"0-{MAX_ARRAY_TASKS}", "more than"),
        ("0-5-7", "not an index"),
    ],
)
def test_bad_index_specs_say_what_is_wrong(text, words):
    with pytest.raises(InvalidArgument, match=words):
        parse_array(text)


# -- through the broker -----------------------------------------------------------


def test_one_call_makes_every_task_and_each_sees_its_index(federation):
    broker, ana, site = federation
    reply = submit(ana, "0-49")
    assert reply.created and reply.array.tasks == 50 and reply.array.id
    jobs = all_jobs(ana)
    assert sorted(j.array_index for j in jobs) == list(range(50))
    assert {j.id for j in jobs} == {f"{reply.array.id}_{i}" for i in range(50)}
    assert all(j.array_id == reply.array.id for j in jobs)
    start = site.next("start").start
    assert start.array_job_id == reply.array.id and start.job_id == f"{reply.array.id}_{start.array_index}"
    env = minga_env(run_request(start))
    assert env["MINGA_ARRAY_JOB_ID"] == reply.array.id
    assert env["MINGA_ARRAY_INDEX"] == str(start.array_index)


def test_a_job_may_not_set_the_array_names_itself(federation):
    broker, ana, site = federation
    assert {"MINGA_ARRAY_INDEX", "MINGA_ARRAY_JOB_ID"} <= RUN_ENV_NAMES
    bad = spec(1)
    bad.runtime_env.env["MINGA_ARRAY_INDEX"] = "3"
    with pytest.raises(grpc.RpcError) as err:
        ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=bad, array="0-3"), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert all_jobs(ana) == []


def test_the_cap_holds_however_many_gpus_are_free(federation):
    broker, ana, site = federation
    reply = submit(ana, "0-9%3")
    starts = [site.next("start").start for _ in range(3)]
    assert sorted(s.array_index for s in starts) == [0, 1, 2]
    with pytest.raises(queue.Empty):
        site.next("start", timeout=1.5)  # 8 GPUs, 7 free, but the cap is 3
    waiting = [j for j in all_jobs(ana) if j.state == common_pb2.JOB_STATE_PENDING]
    assert len(waiting) == 7
    assert all("array: 3 of its tasks run already (%3)" in j.reason for j in waiting)
    site.report(starts[0].run_id, common_pb2.RUN_STATE_RUNNING)
    site.report(starts[0].run_id, common_pb2.RUN_STATE_SUCCEEDED)
    nxt = site.next("start").start  # one ended: exactly one more starts
    assert nxt.array_index == 3
    with pytest.raises(queue.Empty):
        site.next("start", timeout=1.5)
    got = ana.jobs.GetJobArray(job_pb2.GetJobRequest(job_id=reply.array.id), metadata=ana.md)
    assert (got.succeeded, got.running, got.pending, got.limit) == (1, 3, 6, 3)


def test_status_list_and_cancel_on_the_array_and_on_a_task(federation):
    broker, ana, site = federation
    plain = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(1)), metadata=ana.md).job
    aid = submit(ana, "0-19%2").array.id
    eventually(lambda: ana.jobs.GetJobArray(job_pb2.GetJobRequest(job_id=aid), metadata=ana.md).running == 2)
    grouped = ana.jobs.ListJobs(job_pb2.ListJobsRequest(group_arrays=True), metadata=ana.md)
    assert [j.id for j in grouped.jobs] == [plain.id]
    assert [(a.id, a.tasks, a.pending, a.running) for a in grouped.arrays] == [(aid, 20, 18, 2)]
    task = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=f"{aid}_7"), metadata=ana.md)
    assert task.state == common_pb2.JOB_STATE_PENDING and task.array_index == 7
    one = ana.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=f"{aid}_7"), metadata=ana.md)
    assert one.state == common_pb2.JOB_STATE_CANCELLED
    whole = ana.jobs.CancelJobArray(job_pb2.CancelJobRequest(job_id=aid), metadata=ana.md)
    assert whole.pending == 0 and whole.cancelled == 18 and whole.running == 2  # 2 stop on the site
    stops = {site.next("stop").stop.run_id for _ in range(2)}
    for run_id in stops:
        site.report(run_id, common_pb2.RUN_STATE_STOPPED)
    eventually(lambda: ana.jobs.GetJobArray(job_pb2.GetJobRequest(job_id=aid), metadata=ana.md).cancelled == 20)
    assert ana.jobs.ListJobs(job_pb2.ListJobsRequest(group_arrays=True), metadata=ana.md).arrays == []


def test_another_institution_sees_no_array(federation):
    broker, ana, site = federation
    aid = submit(ana, "0-3").array.id
    bob = broker.researcher("bob", "usp")
    for call in (bob.jobs.GetJobArray, bob.jobs.CancelJobArray):
        with pytest.raises(grpc.RpcError) as err:
            call(
                job_pb2.GetJobRequest(job_id=aid)
                if call == bob.jobs.GetJobArray
                else job_pb2.CancelJobRequest(job_id=aid),
                metadata=bob.md,
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert bob.jobs.ListJobs(job_pb2.ListJobsRequest(all=True, group_arrays=True), metadata=bob.md).arrays == []
    got = ana.jobs.GetJobArray(job_pb2.GetJobRequest(job_id=aid), metadata=ana.md)
    assert got.cancelled == 0


def test_the_same_key_returns_the_same_array(federation):
    broker, ana, site = federation
    first = submit(ana, "0-99", key="sweep-1")
    again = submit(ana, "0-99", key="sweep-1")
    assert first.created and not again.created and again.array.id == first.array.id
    assert len(all_jobs(ana)) == 100


@pytest.mark.parametrize("array", ["", "9-3", "0-9%0", "1,,2", "0-200000", "x"])
def test_bad_arrays_are_refused_and_store_nothing(federation, array):
    broker, ana, site = federation
    if array == "":  # no array: a plain job; the empty-range case is "5-4"
        array = "5-4"
    with pytest.raises(grpc.RpcError) as err:
        submit(ana, array)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "array" in (err.value.details() or "")
    assert all_jobs(ana) == []


# -- the CLI against the same real broker -------------------------------------------


def test_cli_submits_lists_shows_and_cancels_an_array_in_80_columns(federation):
    import json

    from typer.testing import CliRunner

    from minga.cli.main import app

    broker, ana, site = federation
    conn = ["--broker", broker.address, "--token", ana.token]
    run = CliRunner().invoke
    sub = run(
        app, ["job", "submit", *conn, "--gpus", "1", "--name", "sweep", "--array", "0-99%2", "--", "python", "sweep.py"]
    )
    assert sub.exit_code == 0, sub.output
    aid = sub.stdout.strip().splitlines()[0]
    eventually(lambda: ana.jobs.GetJobArray(job_pb2.GetJobRequest(job_id=aid), metadata=ana.md).running == 2)
    listed = run(app, ["job", "list", *conn])
    assert listed.exit_code == 0 and f"{aid}_*" in listed.stdout and f"{aid}_5" not in listed.stdout
    assert "100 tasks: 2 run, 98 wait (%2)" in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    expanded = run(app, ["job", "list", *conn, "--expand", "--output", "json"])
    assert len(json.loads(expanded.stdout)) == 100
    status = run(app, ["job", "status", *conn, aid])
    assert status.exit_code == 0 and "at most 2" in status.stdout
    assert max(len(line) for line in status.stdout.splitlines()) <= 80
    task = run(app, ["job", "status", *conn, f"{aid}_50", "--output", "json"])
    assert json.loads(task.stdout)["state"] == "PENDING"
    cancelled = run(app, ["job", "cancel", *conn, aid, "--output", "json"])
    assert json.loads(cancelled.stdout)["counts"]["cancelled"] == 98
    bad = run(app, ["job", "submit", *conn, "--array", "9-3", "--", "python", "x.py"])
    assert bad.exit_code != 0 and "backwards" in bad.output


def test_the_policy_holds_tasks_over_the_cap_of_the_arrays_the_snapshot_names():
    """Pure: `Snapshot.array_live` names each capped array with pending tasks (0 live
    included); the tasks past K minus the live ones wait with the cap as their reason."""
    from dataclasses import replace as _replace

    from minga.common.domain import Job, JobSpec, JobState, Resources
    from minga.common.snapshot import Snapshot
    from minga.scheduler.policy.array_cap import split_capped

    tasks = tuple(
        _replace(
            Job(
                id=f"j-a_{i}",
                spec=JobSpec(entrypoint="x", resources=Resources(gpus=1)),
                state=JobState.PENDING,
                owner="ana",
                institution="uchile",
                submitted_at=1.0,
            ),
            array_id="j-a",
            array_index=i,
            array_limit=3,
        )
        for i in range(6)
    )
    kept, held = split_capped(Snapshot(sites=(), live_runs=(), pending=tasks, array_live=(("j-a", 1),)))
    assert [j.id for j in kept.pending] == ["j-a_0", "j-a_1"]
    assert [w.job_id for w in held] == ["j-a_2", "j-a_3", "j-a_4", "j-a_5"]
    assert {w.reason for w in held} == {"array: 1 of its tasks run already (%3)"}
    none_live = Snapshot(sites=(), live_runs=(), pending=tasks, array_live=(("j-a", 0),))
    assert split_capped(none_live)[0].pending == tasks[:3]
