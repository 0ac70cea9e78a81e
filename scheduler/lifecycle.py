"""The job lifecycle rules (lease, fencing of reports, lost, preempted, failed and overdue
runs): pure functions over domain values.

Each rule takes the job and run as the store read them under the job's lock and returns a
`Step`: the job and run to write back, and the commands to send to the site. Nothing here
touches a session, reads a clock or charges usage; the store charges a run the rule ended,
once. The rules are told in docs/reliability.md, "Leases and fencing" and "Failures are
told apart".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from minga.common.clock import run_id_for
from minga.common.domain import Job, JobPreemption, JobState, Run, RunState
from minga.common.site_messages import Command, RunReport, StartRunCommand, StopRunCommand
from minga.common.snapshot import Placement, Preemption
from minga.common.states import job_state_after_run_report, transition
from minga.scheduler.requeue_rules import Fault, after_run_ended, resend_start_after_hello

VANISHED = "the run vanished from the site's Ray cluster"


@dataclass(frozen=True, slots=True)
class Step:
    """What one rule decided: the job (None: the run has no job) and run to write back,
    and the commands to send."""

    job: Job | None
    run: Run
    commands: tuple[Command, ...] = ()


def end_run(run: Run, state: RunState, message: str, now: float) -> Run:
    """The run holds no GPUs from `now` on; the store charges its last interval."""
    return replace(run, live=False, ended_at=now, state=state, message=message)


def finish(job: Job, target: JobState, reason: str, now: float) -> Job:
    """Move the job to `target` (legal moves only, minga.common.states); a terminal state
    stamps the end."""
    job = replace(job, state=transition(job.state, target), updated_at=now, reason=reason)
    if target.terminal:
        job = replace(job, finished_at=now, started_at=job.started_at or now)
    return job


def requeue_or_fail(job: Job, reason: str, now: float, fault: Fault = Fault.INFRASTRUCTURE) -> Job:
    """Count one run that ended badly against the budget of `fault`: back to PENDING
    after a backoff, or FAILED once that budget is spent (scheduler.requeue_rules)."""
    outcome = after_run_ended(fault, job.failures, job.infra_requeues, job.spec.max_attempts, reason, now)
    job = finish(
        replace(job, failures=outcome.failures, infra_requeues=outcome.infra_requeues),
        outcome.state,
        outcome.reason,
        now,
    )
    return replace(job, not_before=outcome.not_before) if outcome.state is JobState.PENDING else job


def start_command(job: Job, run: Run, notice: int) -> StartRunCommand:
    """The StartRun of `run`; `job.spec` must carry its secret values (the store's part)."""
    return StartRunCommand(run.site, run, job.spec, notice, job.array_id, job.array_index)


def lease(job: Job, p: Placement, site_country: str, free: int, now: float, notice: int = 0) -> Step | None:
    """Grant `p`: a new run under the next epoch, and its StartRun. None when the job is no
    longer PENDING, or the site has fewer than `p.gpus` GPUs of the model `free`."""
    if job.state is not JobState.PENDING or (p.gpus and free < p.gpus):
        return None
    attempts = job.attempts + 1
    run = Run(
        id=run_id_for(job.id, attempts),
        job_id=job.id,
        site=p.site,
        epoch=attempts,
        gpu_model=p.gpu_model,
        gpus=p.gpus,
        cpus=p.cpus,
        state=RunState.STARTING,
        institution=job.institution,
        project=job.spec.project,
        owner=job.owner,
        started_at=now,
        preemptible=job.spec.preemptible,
        walltime_seconds=job.spec.walltime_seconds,
    )
    job = replace(
        job,
        attempts=attempts,
        state=transition(job.state, JobState.LEASED),
        site=p.site,
        country=site_country,
        gpu_model=p.gpu_model,
        run_id=run.id,
        reason="",
        updated_at=now,
    )
    return Step(job, run, (start_command(job, run, notice),))


def preempt(job: Job, run: Run, p: Preemption, now: float) -> Step | None:
    """Take the run's GPUs back: it is stopped with a notice and its job requeued, with no
    failure counted; the job keeps the preemption. None if the run ended since the snapshot."""
    if not run.live or job.run_id != run.id or job.state not in (JobState.LEASED, JobState.RUNNING):
        return None
    reason = f"preempted: {p.reason}"
    job = replace(
        finish(job, JobState.PENDING, reason, now), last_preemption=JobPreemption(now, p.kind, p.beneficiary, p.reason)
    )
    return Step(job, end_run(run, RunState.STOPPED, reason, now), (StopRunCommand(run.site, run.id, reason),))


def run_lost(job: Job | None, run: Run, reason: str, now: float) -> Step:
    """The live run died with its site: a cancel ends, a leased or running job is requeued
    (an infrastructure fault, never counted against max_attempts)."""
    run = end_run(run, RunState.LOST, reason, now)
    if job is None or job.run_id != run.id:
        return Step(job, run)
    if job.state is JobState.CANCELLING:
        job = finish(job, JobState.CANCELLED, f"cancelled ({reason})", now)
    elif job.state in (JobState.LEASED, JobState.RUNNING):
        job = requeue_or_fail(job, f"run {run.id} lost: {reason}", now)
    return Step(job, run)


def run_failed(job: Job, run: Run, message: str, infrastructure: bool, now: float) -> Step:
    """A failed run that may be retried: the infrastructure's fault (the run is LOST), or
    the user's, who asked for retries (`retry_failed`)."""
    run = end_run(run, RunState.LOST if infrastructure else RunState.FAILED, message, now)
    whose = "infrastructure failure" if infrastructure else "failed"
    job = requeue_or_fail(
        job, f"run {run.id} {whose}: {message}", now, Fault.INFRASTRUCTURE if infrastructure else Fault.USER
    )
    return Step(job, run)


def past_walltime(run: Run, now: float) -> bool:
    """A live run that has run for its whole walltime (0: no limit)."""
    return (
        run.live
        and run.walltime_seconds > 0
        and run.running_since > 0
        and now >= run.running_since + run.walltime_seconds
    )


def stop_overdue(job: Job | None, run: Run, now: float) -> Step | None:
    """Slurm's TimeLimit: a run past its walltime is stopped, and its job ends FAILED with
    reason TIMEOUT (CANCELLED if a cancel was waiting). None if it is not overdue."""
    if not past_walltime(run, now):
        return None
    reason = f"TIMEOUT: ran past its walltime of {run.walltime_seconds} s"
    run = end_run(run, RunState.STOPPED, reason, now)
    if job is not None and job.run_id == run.id and not job.state.terminal:
        target = JobState.CANCELLED if job.state is JobState.CANCELLING else JobState.FAILED
        job = finish(job, target, reason, now)
    return Step(job, run, (StopRunCommand(run.site, run.id, reason),))


def unknown_run(site: str, report: RunReport) -> tuple[Command, ...]:
    """A report about a run this broker does not know, or another site's: it never touches
    a job; a live one is told to stop."""
    return () if report.state.terminal else (StopRunCommand(site, report.run_id, "unknown run"),)


def after_report(job: Job | None, run: Run, report: RunReport, now: float, in_session: bool = True) -> Step:
    """What the site's report about `run` (one of its own) changes. Fencing first: only a
    report about the job's current, live run counts; a live stale run is told to stop.
    `in_session`: the report came on a running stream, not in a (re)connecting Hello."""
    current = job is not None and job.run_id == run.id and run.live
    state = report.state
    if state is RunState.UNKNOWN:
        if not current or job is None:
            return Step(job, run)
        if job.state is JobState.CANCELLING:
            state = RunState.STOPPED  # cancelled before it ever reached Ray
        elif in_session:
            return run_failed(job, run, VANISHED, True, now)
        else:
            return Step(job, run)  # a Hello: the start was lost in transit, and is resent
    if not current or job is None:
        stop = () if state.terminal else (StopRunCommand(run.site, run.id, "stale run: fenced by a newer epoch"),)
        return Step(job, run, stop)
    reported_at = run.reported_at or now  # the site has it: never resent under this id
    if (
        state is RunState.FAILED
        and job.state is not JobState.CANCELLING
        and (report.infrastructure or job.spec.retry_failed)
    ):
        return run_failed(
            job, replace(run, reported_at=reported_at), report.message or "run failed", report.infrastructure, now
        )
    if state is RunState.RUNNING and not run.charged_until:
        run = replace(run, charged_until=now, running_since=now)  # usage is charged from here on
    run = replace(run, state=state, message=report.message, reported_at=reported_at)
    if state.terminal:
        run = end_run(run, state, report.message, now)
    job = advance(job, state, report.message, now)
    if job.state is JobState.CANCELLING and not state.terminal:
        return Step(job, run, (StopRunCommand(run.site, run.id, "job cancelled"),))
    return Step(job, run)


def advance(job: Job, state: RunState, message: str, now: float) -> Job:
    """The job after a report about its current run (minga.common.states)."""
    target = job_state_after_run_report(job.state, state)
    if target is None:
        return job
    if target is JobState.RUNNING:
        return replace(finish(job, target, job.reason, now), started_at=now)
    if target is JobState.FAILED:
        return finish(job, target, message or "run failed", now)
    if target is JobState.SUCCEEDED:
        return finish(job, target, "", now)
    return finish(job, target, job.reason, now)


def unlisted_at_hello(job: Job | None, run: Run, notice: int, now: float) -> Step | None:
    """A live run its site's Hello does not list (its Ray cluster does not have it): a
    cancel ends, a start lost in transit is resent under the same run id, and a run the
    site had reported is lost (a restarted head) and never started again under that id."""
    if job is None or not run.live:
        return None
    if job.state is JobState.CANCELLING:  # it never reached Ray, so there is nothing to stop
        return after_report(job, run, RunReport(run.id, RunState.STOPPED, "cancelled"), now, in_session=False)
    if resend_start_after_hello(run.reported_at > 0):
        return Step(job, run, (start_command(job, run, notice),))
    if job.run_id == run.id:
        return run_failed(job, run, f"{VANISHED} (not listed when the site reconnected)", True, now)
    return None
