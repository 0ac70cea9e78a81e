"""The job lifecycle rules (scheduler/lifecycle.py), alone: domain values in, domain
values and commands out, no database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import Job, JobSpec, JobState, Run, RunState
from minga.common.site_messages import RunReport, StartRunCommand, StopRunCommand
from minga.common.snapshot import Placement, Preemption
from minga.common.states import IllegalTransitionError
from minga.scheduler import lifecycle as lc
from minga.scheduler.requeue_rules import INFRA_REQUEUE_LIMIT, Fault

NOW = 1_000.0


def job(state: JobState = JobState.PENDING, **spec: Any) -> Job:
    return Job(
        id="j-1",
        spec=JobSpec("python train.py", project="uchile/default", **spec),
        state=state,
        owner="ana",
        institution="uchile",
        submitted_at=0.0,
        array_id="arr",
        array_index=3,
    )


def leased(free: int = 8, **spec: object) -> lc.Step:
    step = lc.lease(job(**spec), Placement("j-1", "dcc", "A100", 2, 4.0), "CL", free, NOW, notice=30)
    assert step is not None
    return step


def running(**spec: object) -> tuple[Job, Run]:
    step = leased(**spec)
    assert step.job is not None
    after = lc.after_report(step.job, step.run, RunReport(step.run.id, RunState.RUNNING), NOW + 10)
    assert after.job is not None
    return after.job, after.run


# -- lease -------------------------------------------------------------------------------


def test_a_lease_is_a_new_run_under_the_next_epoch_and_its_start():
    step = leased(preemptible=False, walltime_seconds=600)
    assert step.job is not None
    assert (step.job.state, step.job.attempts, step.job.run_id) == (JobState.LEASED, 1, "minga-j-1-a1")
    assert (step.job.site, step.job.country, step.job.gpu_model, step.job.updated_at) == ("dcc", "CL", "A100", NOW)
    run = step.run
    assert (run.id, run.epoch, run.site, run.gpus, run.cpus, run.live) == ("minga-j-1-a1", 1, "dcc", 2, 4.0, True)
    assert (run.project, run.started_at, run.preemptible, run.walltime_seconds) == ("uchile/default", NOW, False, 600)
    [start] = step.commands
    assert start == StartRunCommand("dcc", run, step.job.spec, 30, "arr", 3)


def test_a_second_lease_takes_the_next_epoch():
    first = leased()
    assert first.job is not None
    requeued = lc.run_lost(first.job, first.run, "site gone", NOW + 5).job
    assert requeued is not None and requeued.state is JobState.PENDING
    second = lc.lease(requeued, Placement("j-1", "dcc", "A100", 2, 4.0), "CL", 8, NOW + 60)
    assert second is not None and (second.run.id, second.run.epoch) == ("minga-j-1-a2", 2)


@pytest.mark.parametrize("state", [s for s in JobState if s is not JobState.PENDING])
def test_only_a_pending_job_is_leased(state):
    assert lc.lease(job(state), Placement("j-1", "dcc", "A100", 2, 4.0), "CL", 8, NOW) is None


@given(gpus=st.integers(0, 16), free=st.integers(-4, 16))
def test_a_lease_never_promises_more_than_is_free(gpus, free):
    step = lc.lease(job(), Placement("j-1", "dcc", "A100", gpus, 1.0), "CL", free, NOW)
    assert (step is not None) == (gpus == 0 or gpus <= free)  # a CPU-only run takes no GPU
    assert step is None or step.run.gpus == gpus


# -- preemption ---------------------------------------------------------------------------


def test_preemption_stops_the_run_and_requeues_without_a_failure():
    j, run = running()
    p = Preemption(run.id, "j-1", "dcc", "fair share: b below", kind="fair-share", beneficiary="b")
    step = lc.preempt(j, run, p, NOW + 100)
    assert step is not None and step.job is not None
    assert (step.job.state, step.job.failures, step.job.infra_requeues) == (JobState.PENDING, 0, 0)
    assert step.job.reason == "preempted: fair share: b below" and step.job.not_before == 0.0
    assert step.job.last_preemption is not None
    assert (step.job.last_preemption.at, step.job.last_preemption.kind) == (NOW + 100, "fair-share")
    assert (step.run.live, step.run.state, step.run.ended_at) == (False, RunState.STOPPED, NOW + 100)
    assert step.commands == (StopRunCommand("dcc", run.id, "preempted: fair share: b below"),)


def test_preemption_of_a_run_that_ended_or_is_not_current_does_nothing():
    j, run = running()
    p = Preemption(run.id, "j-1", "dcc", "x")
    assert lc.preempt(j, replace(run, live=False), p, NOW) is None
    assert lc.preempt(replace(j, run_id="minga-j-1-a9"), run, p, NOW) is None
    assert lc.preempt(replace(j, state=JobState.CANCELLING), run, p, NOW) is None


# -- lost, failed, requeued -----------------------------------------------------------------


def test_a_lost_run_requeues_its_job_as_an_infrastructure_fault():
    j, run = running()
    step = lc.run_lost(j, run, "site dcc lost", NOW + 50)
    assert step.job is not None
    assert (step.job.state, step.job.failures, step.job.infra_requeues) == (JobState.PENDING, 0, 1)
    assert step.job.not_before == NOW + 50 + 2.0
    assert (step.run.state, step.run.live, step.run.message) == (RunState.LOST, False, "site dcc lost")
    assert step.commands == ()


def test_a_lost_run_ends_a_cancel_and_leaves_another_runs_job_alone():
    j, run = running()
    cancelled = lc.run_lost(replace(j, state=JobState.CANCELLING), run, "gone", NOW).job
    assert cancelled is not None and (cancelled.state, cancelled.reason) == (JobState.CANCELLED, "cancelled (gone)")
    other = replace(j, run_id="minga-j-1-a7")
    step = lc.run_lost(other, run, "gone", NOW)
    assert step.job == other and not step.run.live
    assert lc.run_lost(None, run, "gone", NOW).run.state is RunState.LOST


def test_a_users_failure_counts_and_the_last_one_fails_the_job():
    j, run = running(max_attempts=2, retry_failed=True)
    first = lc.run_failed(j, run, "exit 1", False, NOW)
    assert first.job is not None and (first.job.state, first.job.failures) == (JobState.PENDING, 1)
    assert first.run.state is RunState.FAILED
    again = lc.lease(first.job, Placement("j-1", "dcc", "A100", 2, 4.0), "CL", 8, NOW + 5)
    assert again is not None and again.job is not None
    last = lc.run_failed(again.job, again.run, "exit 1", False, NOW + 9)
    assert last.job is not None and (last.job.state, last.job.failures) == (JobState.FAILED, 2)
    assert last.job.finished_at == NOW + 9 and "failed 2 of 2 attempts" in last.job.reason


faults = st.lists(st.sampled_from(list(Fault)), max_size=40)


@given(max_attempts=st.integers(1, 5), sequence=faults)
def test_failures_never_pass_max_attempts_without_ending_the_job(max_attempts, sequence):
    j = replace(job(JobState.RUNNING, max_attempts=max_attempts), run_id="r")
    for fault in sequence:
        if j.state.terminal:
            with pytest.raises(IllegalTransitionError):  # a terminal state is final
                lc.requeue_or_fail(j, "again", NOW, fault)
            return
        before = j
        j = lc.requeue_or_fail(j, "bad end", NOW, fault)
        assert j.failures <= max_attempts and j.infra_requeues <= INFRA_REQUEUE_LIMIT + 1
        assert (j.state is JobState.FAILED) == (j.failures >= max_attempts or j.infra_requeues > INFRA_REQUEUE_LIMIT)
        if j.state is JobState.PENDING:
            assert j.not_before > NOW
        if fault is Fault.INFRASTRUCTURE:
            assert j.failures == before.failures  # never the user's budget
        else:
            assert j.infra_requeues == before.infra_requeues
        j = replace(j, state=JobState.RUNNING) if j.state is JobState.PENDING else j


# -- reports --------------------------------------------------------------------------------


def test_a_running_report_starts_the_job_and_its_usage():
    j, run = running()
    assert (j.state, j.started_at) == (JobState.RUNNING, NOW + 10)
    assert (run.state, run.running_since, run.charged_until, run.reported_at) == (
        RunState.RUNNING,
        NOW + 10,
        NOW + 10,
        NOW + 10,
    )
    again = lc.after_report(j, run, RunReport(run.id, RunState.RUNNING, "still"), NOW + 20)
    assert (again.run.running_since, again.run.reported_at, again.job) == (NOW + 10, NOW + 10, j)


def test_a_terminal_report_ends_the_run_and_the_job():
    j, run = running()
    step = lc.after_report(j, run, RunReport(run.id, RunState.SUCCEEDED, "done"), NOW + 30)
    assert step.job is not None and (step.job.state, step.job.finished_at, step.job.reason) == (
        JobState.SUCCEEDED,
        NOW + 30,
        "",
    )
    assert (step.run.live, step.run.ended_at, step.run.state, step.run.charged_until) == (
        False,
        NOW + 30,
        RunState.SUCCEEDED,
        NOW + 10,
    )  # the store charges the last interval
    failed = lc.after_report(j, run, RunReport(run.id, RunState.FAILED, ""), NOW + 30).job
    assert failed is not None and (failed.state, failed.reason) == (JobState.FAILED, "run failed")


def test_a_failed_run_is_requeued_when_retries_were_asked_or_ray_lost_it():
    j, run = running(retry_failed=True)
    user = lc.after_report(j, run, RunReport(run.id, RunState.FAILED, "exit 3"), NOW + 30).job
    assert user is not None and (user.state, user.failures) == (JobState.PENDING, 1)
    j, run = running()
    infra = lc.after_report(j, run, RunReport(run.id, RunState.FAILED, "raylet died", True), NOW + 30)
    assert infra.job is not None and (infra.job.state, infra.job.failures, infra.job.infra_requeues) == (
        JobState.PENDING,
        0,
        1,
    )
    assert infra.run.state is RunState.LOST


def test_a_report_about_a_stale_run_is_fenced_off():
    j, run = running()
    newer = replace(j, run_id="minga-j-1-a2")
    step = lc.after_report(newer, run, RunReport(run.id, RunState.RUNNING), NOW + 30)
    assert (step.job, step.run) == (newer, run)
    assert step.commands == (StopRunCommand("dcc", run.id, "stale run: fenced by a newer epoch"),)
    ended = lc.after_report(newer, run, RunReport(run.id, RunState.SUCCEEDED), NOW + 30)
    assert (ended.job, ended.run, ended.commands) == (newer, run, ())


def test_an_unknown_run_vanished_in_session_but_waits_for_its_resend_at_hello():
    j, run = running()
    lost = lc.after_report(j, run, RunReport(run.id, RunState.UNKNOWN), NOW + 30)
    assert lost.job is not None and lost.job.state is JobState.PENDING and lost.run.state is RunState.LOST
    assert lc.after_report(j, run, RunReport(run.id, RunState.UNKNOWN), NOW + 30, in_session=False) == lc.Step(j, run)
    cancelling = replace(j, state=JobState.CANCELLING)
    step = lc.after_report(cancelling, run, RunReport(run.id, RunState.UNKNOWN), NOW + 30)
    assert step.job is not None and step.job.state is JobState.CANCELLED and step.run.state is RunState.STOPPED


def test_a_cancelling_job_still_running_is_told_to_stop():
    j, run = running()
    step = lc.after_report(replace(j, state=JobState.CANCELLING), run, RunReport(run.id, RunState.RUNNING), NOW)
    assert step.commands == (StopRunCommand("dcc", run.id, "job cancelled"),)


def test_unknown_runs_are_stopped_unless_they_already_ended():
    assert lc.unknown_run("dcc", RunReport("minga-x-a1", RunState.RUNNING)) == (
        StopRunCommand("dcc", "minga-x-a1", "unknown run"),
    )
    assert lc.unknown_run("dcc", RunReport("minga-x-a1", RunState.FAILED)) == ()


# -- walltime -----------------------------------------------------------------------------


def test_a_run_past_its_walltime_is_stopped_and_its_job_times_out():
    j, run = running(walltime_seconds=60)
    assert lc.stop_overdue(j, run, NOW + 10 + 59) is None
    step = lc.stop_overdue(j, run, NOW + 10 + 60)
    assert step is not None and step.job is not None
    reason = "TIMEOUT: ran past its walltime of 60 s"
    assert (step.job.state, step.job.reason, step.run.state, step.run.live) == (
        JobState.FAILED,
        reason,
        RunState.STOPPED,
        False,
    )
    assert step.commands == (StopRunCommand("dcc", run.id, reason),)
    cancelled = lc.stop_overdue(replace(j, state=JobState.CANCELLING), run, NOW + 100)
    assert cancelled is not None and cancelled.job is not None and cancelled.job.state is JobState.CANCELLED


def test_no_walltime_never_started_or_already_ended_is_never_overdue():
    j, run = running()
    assert lc.stop_overdue(j, run, NOW + 10**9) is None
    timed = replace(run, walltime_seconds=60)
    assert lc.stop_overdue(j, replace(timed, running_since=0.0), NOW + 10**9) is None
    assert lc.stop_overdue(j, replace(timed, live=False), NOW + 10**9) is None


# -- a site's Hello that does not list a live run -----------------------------------------------


def test_a_start_lost_in_transit_is_resent_under_the_same_run_id():
    step = leased()
    assert step.job is not None
    resent = lc.unlisted_at_hello(step.job, step.run, 30, NOW + 5)
    assert resent is not None and resent.commands == step.commands and resent.job == step.job


def test_a_run_its_site_had_reported_is_lost_not_restarted():
    j, run = running()
    step = lc.unlisted_at_hello(j, run, 30, NOW + 50)
    assert step is not None and step.job is not None and step.job.state is JobState.PENDING
    assert step.run.state is RunState.LOST and step.commands == ()
    assert "not listed when the site reconnected" in step.job.reason


def test_an_unlisted_cancel_ends_and_an_ended_run_is_left_alone():
    j, run = running()
    step = lc.unlisted_at_hello(replace(j, state=JobState.CANCELLING), run, 30, NOW)
    assert step is not None and step.job is not None and step.job.state is JobState.CANCELLED
    assert lc.unlisted_at_hello(j, replace(run, live=False), 30, NOW) is None
    assert lc.unlisted_at_hello(None, run, 30, NOW) is None


# -- the whole lifecycle, at random ---------------------------------------------------------------

REPORTED = [s for s in RunState if s is not RunState.LOST]  # LOST is the broker's verdict: the wire refuses it
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["lease", "report", "lost", "preempt", "overdue", "hello", "cancel"]),
        st.sampled_from(REPORTED),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(events=EVENTS, max_attempts=st.integers(1, 3))
def test_a_job_has_at_most_one_live_run_and_one_outcome(events, max_attempts):
    """Invariant 2 over any order of events: at most one live run, and it is the current one;
    a job waiting or ended holds none; and no rule ever asks for an illegal transition."""
    j = job(max_attempts=max_attempts, walltime_seconds=30, retry_failed=True)
    runs: dict[str, Run] = {}
    now = NOW
    for kind, state, flag in events:
        now += 20
        current = runs.get(j.run_id)
        step: lc.Step | None = None
        if kind == "lease":
            step = lc.lease(j, Placement(j.id, "dcc", "A100", 1, 1.0), "CL", 4, now)
        elif kind == "cancel" and j.state in (JobState.LEASED, JobState.RUNNING):
            j = replace(j, state=JobState.CANCELLING)
        elif current is not None:
            step = {
                "report": lambda: lc.after_report(j, current, RunReport(current.id, state, "", flag), now, flag),
                "lost": lambda: lc.run_lost(j, current, "gone", now),
                "preempt": lambda: lc.preempt(j, current, Preemption(current.id, j.id, "dcc", "x"), now),
                "overdue": lambda: lc.stop_overdue(j, current, now),
                "hello": lambda: lc.unlisted_at_hello(j, current, 0, now),
            }.get(kind, lambda: None)()
        if step is not None:
            assert step.job is not None
            j, runs[step.run.id] = step.job, step.run
        live = [r for r in runs.values() if r.live]
        assert len(live) <= 1 and all(r.id == j.run_id for r in live)
        assert not live if j.state is JobState.PENDING or j.state.terminal else len(live) == 1
        assert j.failures <= max_attempts


# -- the store's one writer per row -------------------------------------------------------------


def test_what_a_rule_returns_survives_the_trip_through_the_rows():
    """job_to_row / run_to_row write every field a rule may change, so nothing is lost."""
    from minga.common.domain import JobPreemption
    from minga.scheduler.store.base import job_from_row, job_to_row, run_from_row, run_to_row
    from minga.scheduler.store.json_columns import spec_to_json
    from minga.scheduler.store.models import JobRow, RunRow

    run = Run(
        id="minga-j-1-a4",
        job_id="j-1",
        site="dcc",
        epoch=4,
        gpu_model="H100",
        gpus=3,
        cpus=2.5,
        state=RunState.STOPPED,
        institution="uchile",
        project="uchile/nlp",
        started_at=11.0,
        preemptible=False,
        walltime_seconds=90,
        live=False,
        message="m",
        ended_at=99.0,
        running_since=20.0,
        charged_until=98.0,
        reported_at=21.0,
    )
    assert run_from_row(run_to_row(run, RunRow())) == run
    j = replace(
        job(JobState.PENDING),
        attempts=4,
        failures=1,
        infra_requeues=2,
        reason="r",
        site="dcc",
        country="CL",
        run_id=run.id,
        gpu_model="H100",
        started_at=12.0,
        finished_at=0.0,
        not_before=130.0,
        updated_at=99.0,
        last_preemption=JobPreemption(99.0, "reclaim", "b", "why"),
    )
    row = JobRow(
        id=j.id,
        owner=j.owner,
        institution=j.institution,
        spec_json=spec_to_json(j.spec),
        state="LEASED",
        submitted_at=j.submitted_at,
        array_id="arr",
        array_index=3,
    )
    assert job_from_row(job_to_row(j, row)) == j
    assert job_from_row(job_to_row(replace(j, last_preemption=None), row)).last_preemption is None
