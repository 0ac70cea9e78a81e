"""Job dependencies (`minga job submit --after ID[:ok|:any|:failed]`, Slurm's --dependency;
issue 15, part 1), through a real broker on port 0 over a real SQLite file, the real CLI,
and a scripted site that drives the runs to SUCCEEDED or FAILED.

`ID` alone is `:ok` (afterok), `:any` is afterany, `:failed` is afternotok (FAILED or
CANCELLED). A job whose condition can never hold ends CANCELLED, and so, in turn, do the
jobs waiting for it. A held job is out of the scheduling queue until it is released.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from minga.cli.client import BrokerClient
from minga.cli.main import app
from minga.common.domain import Job, JobState
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, ScriptedSite, gpu_inventory, start_broker

PENDING_FOREVER = ("--gpus", "8", "--allow-unknown")  # more GPUs than the site has: it stays queued


class Federation:
    """A broker over a SQLite file, researcher ana of uchile, and one scripted site."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.broker = start_broker(tmp_path)
        self.broker.institution("uchile", "CL")
        self.broker.institution("usp", "BR")
        self.ana = self.broker.researcher("ana", "uchile")
        self.site_token = self.broker.join("uchile", "dcc")
        self.site = ScriptedSite(self.broker.address, self.site_token, gpu_inventory("A100", 4))
        self.site.next("welcome")
        self.broker.full_pass()  # the leader's state is loaded: later submits reach it by write-through

    def minga(self, *args: str, token: str | None = None) -> Result:
        return CliRunner().invoke(app, ["--broker", self.broker.address, "--token", token or self.ana.token, *args])

    def submit(self, *flags: str) -> str:
        result = self.minga("job", "submit", "--max-attempts", "1", *flags, "--", "python", "step.py")
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    def job(self, job_id: str) -> Job:
        with BrokerClient(self.broker.address, self.ana.token) as c:
            return c.get_job(job_id)

    def status(self, job_id: str) -> dict:
        result = self.minga("job", "status", job_id, "-o", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def ended(self, job_id: str) -> Job:
        return eventually(lambda: (j := self.job(job_id)).state.terminal and j, what=f"{job_id} ended")

    def start(self) -> str:
        """The next run the broker starts on the site; it is reported RUNNING. Its run id."""
        run_id = self.site.next("start").start.run_id
        self.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
        return run_id

    def run(self, job_id: str, end: int) -> None:
        """Start the job's run and end it in `end` (a RUN_STATE_...)."""
        run_id = self.start()
        assert run_id.startswith(f"minga-{job_id}-"), run_id
        self.site.report(run_id, end, "exit code 1" if end == common_pb2.RUN_STATE_FAILED else "")
        self.ended(job_id)

    def held(self, job_id: str) -> bool:
        """Held: PENDING in the store, and not in the leader's scheduling queue."""
        core = self.broker.broker.core
        assert core is not None
        return self.job(job_id).state is JobState.PENDING and core.cycle.state.pending_job(job_id) is None

    def close(self) -> None:
        self.site.close()
        self.broker.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path)
    yield federation
    federation.close()


def _code(call, request, caller: Caller) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, metadata=caller.md)
    return refused.value.code(), refused.value.details()


def _submit_request(*after: str, array: str = "") -> job_pb2.SubmitJobRequest:
    spec = common_pb2.JobSpec(entrypoint="python step.py", after=list(after))
    return job_pb2.SubmitJobRequest(spec=spec, array=array)


# -- release ------------------------------------------------------------------------


def test_a_job_waits_for_its_dependency_to_succeed_and_says_so(fed: Federation) -> None:
    first = fed.submit()
    second = fed.submit("--after", first)
    assert fed.job(second).reason == f"waiting for job {first} to succeed"
    shown = fed.status(second)
    assert shown["spec"]["after"] == [f"{first}:ok"]
    assert [(d["job_id"], d["condition"], d["status"]) for d in shown["dependencies"]] == [(first, "ok", "waiting")]
    listed = fed.minga("job", "list")
    assert f"waiting for job {first} to succeed" in listed.stdout
    fed.broker.full_pass()
    assert fed.held(second)  # the policy never sees it

    fed.run(first, common_pb2.RUN_STATE_SUCCEEDED)
    fed.run(second, common_pb2.RUN_STATE_SUCCEEDED)  # released, placed and run
    assert fed.job(second).state is JobState.SUCCEEDED
    text = fed.minga("job", "status", second).stdout
    assert f"{first}:ok: SUCCEEDED (met)" in text


def test_any_and_failed_are_released_by_a_failure_and_ok_is_cancelled_transitively(fed: Federation) -> None:
    first = fed.submit()
    after_any = fed.submit("--after", f"{first}:any")
    after_failed = fed.submit("--after", f"{first}:failed")
    after_ok = fed.submit("--after", f"{first}:ok")
    after_after_ok = fed.submit("--after", after_ok)  # two steps away
    after_both = fed.submit("--after", after_any, "--after", f"{after_ok}:failed")
    assert fed.job(after_failed).reason == f"waiting for job {first} to fail"
    assert fed.job(after_both).reason == f"waiting for job {after_any} to succeed (and 1 more dependency)"

    fed.run(first, common_pb2.RUN_STATE_FAILED)
    cancelled = fed.ended(after_ok)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == f"dependency {first} failed"
    cascaded = fed.ended(after_after_ok)
    assert cascaded.state is JobState.CANCELLED and cascaded.reason == f"dependency {after_ok} was cancelled"
    started = {fed.start().rsplit("-a", 1)[0].removeprefix("minga-") for _ in range(2)}
    assert started == {after_any, after_failed}  # both released, in either order


def test_failed_is_never_met_by_a_success(fed: Federation) -> None:
    first = fed.submit()
    cleanup = fed.submit("--after", f"{first}:failed")
    fed.run(first, common_pb2.RUN_STATE_SUCCEEDED)
    job = fed.ended(cleanup)
    assert job.state is JobState.CANCELLED
    assert job.reason == f"dependency {first} succeeded (this job waited for it to fail)"


def test_a_dependency_cancelled_before_the_submit_cancels_the_job_at_once(fed: Federation) -> None:
    gone = fed.submit(*PENDING_FOREVER)
    assert fed.minga("job", "cancel", gone).exit_code == 0
    late = fed.submit("--after", gone)
    job = fed.ended(late)
    assert job.state is JobState.CANCELLED and job.reason == f"dependency {gone} was cancelled"
    released = fed.submit("--after", f"{gone}:any")
    fed.run(released, common_pb2.RUN_STATE_SUCCEEDED)


# -- refusals -----------------------------------------------------------------------


def test_unknown_and_other_institutions_jobs_are_not_found_and_nothing_is_stored(fed: Federation) -> None:
    bruno = fed.broker.researcher("bruno", "usp")
    theirs = bruno.jobs.SubmitJob(_submit_request(), metadata=bruno.md).job.id
    before = fed.minga("job", "list", "--all", "-o", "json").stdout
    for missing in ("j-0000000000", theirs, f"{theirs}:any"):
        code, details = _code(fed.ana.jobs.SubmitJob, _submit_request(missing), fed.ana)
        assert code is grpc.StatusCode.NOT_FOUND and "spec.after" in details, details
    code, _ = _code(fed.ana.jobs.SubmitJob, _submit_request(theirs, array="0-2"), fed.ana)
    assert code is grpc.StatusCode.NOT_FOUND
    assert fed.minga("job", "list", "--all", "-o", "json").stdout == before
    result = fed.minga("job", "submit", "--after", theirs, "--", "python", "x.py")
    assert result.exit_code == 5 and "spec.after" in result.output  # the CLI's NOT_FOUND
    # Bruno sees his own, so he may wait for it.
    mine = bruno.jobs.SubmitJob(_submit_request(theirs), metadata=bruno.md).job
    assert mine.state == common_pb2.JOB_STATE_PENDING and list(mine.spec.after) == [f"{theirs}:ok"]


@pytest.mark.parametrize(
    ("after", "says"),
    [
        (["{id}:maybe"], "spec.after[0]"),
        (["{id}:"], "spec.after[0]"),
        (["not an id"], "spec.after[0]"),
        (["{id}", "{id}:any"], "given twice"),
        (["{id}"] * 65, "the limit is 64"),
    ],
)
def test_a_malformed_condition_is_invalid_and_names_the_field(fed: Federation, after: list[str], says: str) -> None:
    first = fed.submit()
    request = _submit_request(*(a.format(id=first) for a in after))
    code, details = _code(fed.ana.jobs.SubmitJob, request, fed.ana)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and says in details and "spec.after" in details, details
    assert [j["id"] for j in json.loads(fed.minga("job", "list", "--all", "-o", "json").stdout)] == [first]


class FixedIds:
    """Ids the test chooses: a new job given an id that already exists, the only way a
    submit could close a cycle (broker-made ids are new, so nothing waits for them yet)."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)

    def new_job_id(self) -> str:
        return self.ids.pop(0)


def test_a_job_never_waits_for_itself_or_in_a_cycle(fed: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    core = fed.broker.broker.core
    assert core is not None
    first = fed.submit(*PENDING_FOREVER)
    second = fed.submit("--after", first, *PENDING_FOREVER)
    monkeypatch.setattr(core, "ids", FixedIds(first, first))
    code, details = _code(fed.ana.jobs.SubmitJob, _submit_request(first), fed.ana)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "itself" in details, details
    code, details = _code(fed.ana.jobs.SubmitJob, _submit_request(second), fed.ana)  # second waits for first
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "cycle" in details and first in details, details
    assert fed.job(first).spec.after == ()  # nothing was written over it


# -- arrays -------------------------------------------------------------------------


def test_waiting_for_an_array_means_all_its_tasks(fed: Federation) -> None:
    sweep = fed.submit("--array", "0-1")
    evaluate = fed.submit("--after", sweep)
    if_any_fails = fed.submit("--after", f"{sweep}:failed")
    assert fed.job(evaluate).reason == f"waiting for job array {sweep} to succeed"
    for _ in range(2):
        run_id = fed.start()
        assert sweep in run_id
        fed.broker.full_pass()
        assert fed.held(evaluate)  # one task done is not all of them
        fed.site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    never = fed.ended(if_any_fails)
    assert never.reason == f"dependency {sweep} succeeded (every task; this job waited for one to fail)"
    fed.run(evaluate, common_pb2.RUN_STATE_SUCCEEDED)
    deps = fed.status(evaluate)["dependencies"]
    assert deps == [{"job_id": sweep, "condition": "ok", "state": "2/2 ended", "status": "met"}]


def test_an_array_task_failing_cancels_what_waits_for_the_array(fed: Federation) -> None:
    sweep = fed.submit("--array", "0-2")
    evaluate = fed.submit("--after", sweep)
    run_id = fed.start()
    fed.site.report(run_id, common_pb2.RUN_STATE_FAILED, "exit code 1")
    job = fed.ended(evaluate)  # the other tasks need not end first
    assert job.state is JobState.CANCELLED
    assert job.reason == f"dependency {sweep} failed (1 of its 3 tasks did not succeed)"


def test_an_array_may_wait_for_a_job(fed: Federation) -> None:
    prepare = fed.submit()
    sweep = fed.submit("--array", "0-1", "--after", f"{prepare}:any")
    tasks = [f"{sweep}_0", f"{sweep}_1"]
    for task in tasks:
        assert fed.job(task).reason == f"waiting for job {prepare} to end"
    fed.broker.full_pass()
    assert all(fed.held(t) for t in tasks)
    fed.run(prepare, common_pb2.RUN_STATE_FAILED)
    started = {fed.start().rsplit("-a", 1)[0].removeprefix("minga-") for _ in range(2)}
    assert started == set(tasks)


# -- cancel --with-dependents -------------------------------------------------------------


def test_cancel_with_dependents_cancels_the_jobs_waiting_transitively(fed: Federation) -> None:
    first = fed.submit(*PENDING_FOREVER)
    second = fed.submit("--after", first)
    third = fed.submit("--after", f"{second}:any")
    sweep = fed.submit("--array", "0-1", "--after", third)
    other = fed.submit(*PENDING_FOREVER)
    result = fed.minga("job", "cancel", first, "--with-dependents")
    assert result.exit_code == 0, result.output
    assert f"job {first} is CANCELLED" in result.stdout
    assert all(j in result.stdout for j in (second, third, f"{sweep}_0", f"{sweep}_1"))
    for job_id in (first, second, third, f"{sweep}_0", f"{sweep}_1"):
        job = fed.job(job_id)
        assert job.state is JobState.CANCELLED, job_id
    assert fed.job(second).reason == f"cancelled by ana with {first}, which it waited for"
    assert fed.job(other).state is JobState.PENDING
    # Without the flag, only the job is cancelled; its dependents then follow the rules.
    again = fed.submit(*PENDING_FOREVER)
    waiting = fed.submit("--after", again)
    answer = json.loads(fed.minga("job", "cancel", again, "-o", "json").stdout)
    assert "cancelled_dependents" not in answer
    assert fed.ended(waiting).reason == f"dependency {again} was cancelled"


def test_cancel_an_array_with_dependents(fed: Federation) -> None:
    sweep = fed.submit("--array", "0-1", *PENDING_FOREVER)
    evaluate = fed.submit("--after", f"{sweep}:any")
    answer = json.loads(fed.minga("job", "cancel", sweep, "--with-dependents", "-o", "json").stdout)
    assert answer["cancelled_dependents"] == [evaluate]
    assert fed.job(evaluate).state is JobState.CANCELLED


# -- restart and spec files ---------------------------------------------------------------


def test_held_jobs_survive_a_broker_restart(tmp_path: Path) -> None:
    fed = Federation(tmp_path)
    try:
        first = fed.submit(*PENDING_FOREVER)
        second = fed.submit("--after", f"{first}:any")
        fed.broker.full_pass()
        fed.site.close()
        fed.broker.close()
        fed.broker = start_broker(tmp_path)  # the same SQLite file: state rebuilt from the store
        fed.site = ScriptedSite(fed.broker.address, fed.site_token, gpu_inventory("A100", 4))
        fed.site.next("welcome")
        fed.broker.full_pass()
        assert fed.held(second)
        assert fed.job(second).reason == f"waiting for job {first} to end"
        assert fed.minga("job", "cancel", first).exit_code == 0
        fed.run(second, common_pb2.RUN_STATE_SUCCEEDED)
    finally:
        fed.close()


def test_a_spec_file_takes_after(fed: Federation) -> None:
    first = fed.submit(*PENDING_FOREVER)
    second = fed.submit(*PENDING_FOREVER)
    spec = fed.tmp_path / "evaluate.toml"
    spec.write_text(f'name = "evaluate"\nrun = "python eval.py"\nafter = ["{first}", "{second}:any"]\n')
    third = fed.submit("-f", str(spec))
    assert fed.job(third).spec.after == (f"{first}:ok", f"{second}:any")
    assert fed.job(third).reason == f"waiting for job {first} to succeed (and 1 more dependency)"
    assert fed.minga("job", "cancel", first).exit_code == 0
    assert fed.ended(third).reason == f"dependency {first} was cancelled"
