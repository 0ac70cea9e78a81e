"""Runs the broker ends on its own, and what becomes of their jobs.

- A run lost with its site (lease expired, the site's Ray cluster down or refusing),
  or failed by the infrastructure (Ray lost the job or refused to start it, the run
  vanished from Ray) is requeued: its job goes back to PENDING with a reason, after a
  backoff. That counts against the infrastructure bound, never `max_attempts`.
- A user's code failing ends the job FAILED, unless the researcher asked for
  retries (`retry_failed`), which count against `max_attempts`.

The rules themselves are pure, in scheduler/requeue_rules.py; this module applies them.
- A run past its walltime is stopped and its job ends FAILED with reason TIMEOUT,
  as Slurm's TimeLimit does.

Preemption is not a failure and never counts against `max_attempts`.
"""
from __future__ import annotations

from sqlmodel import Session, col, select

from scheduler.commands import Command, StopRunCommand
from scheduler.domain import JobState, RunState
from scheduler.requeue_rules import Fault, after_run_ended, backoff_seconds  # noqa: F401 (re-exported)
from scheduler.states import transition
from scheduler.store.codec import spec_from_json
from scheduler.store.ledger import charge_run
from scheduler.store.models import JobRow, RunRow
from scheduler.store.shares import read_settings


def locked_job(s: Session, job_id: str) -> JobRow | None:
    """The job row, locked until the transaction ends (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers). Every change
    to a job or its runs takes this lock first, so a cancel and a lease, or two
    reports, never overwrite each other under READ COMMITTED."""
    locked = s.info.setdefault(_LOCKED_JOBS, set())
    if job_id in locked:
        return s.get(JobRow, job_id)    # locked (and read) earlier in this transaction
    locked.add(job_id)
    return s.get(JobRow, job_id, with_for_update=True, populate_existing=True)


def lock_jobs(s: Session, job_ids: list[str], chunk: int = 500) -> None:
    """Lock and read the rows of `job_ids` in a few statements, as `locked_job` would one by one."""
    locked = s.info.setdefault(_LOCKED_JOBS, set())
    todo = [j for j in job_ids if j not in locked]
    for i in range(0, len(todo), chunk):
        s.exec(select(JobRow).where(col(JobRow.id).in_(todo[i:i + chunk])).with_for_update()
               .execution_options(populate_existing=True)).all()
    locked.update(todo)


_LOCKED_JOBS = "minga.locked_jobs"


def fresh_run(s: Session, run_id: str) -> RunRow | None:
    """The run as committed now: read after its job's lock, it cannot be stale."""
    return s.get(RunRow, run_id, populate_existing=True)


def end_run(s: Session, run: RunRow, state: RunState, message: str, now: float) -> None:
    """The run holds no GPUs from now on; its usage is charged up to now, once."""
    charge_run(s, run, now, read_settings(s))
    run.live, run.ended_at = False, now
    run.state, run.message = state.value, message
    s.add(run)


def finish(job: JobRow, target: JobState, reason: str, now: float) -> None:
    """Move the job to `target` (legal moves only); a terminal state stamps the end."""
    job.state = transition(JobState(job.state), target).value
    job.updated_at = now
    job.reason = reason
    if target.terminal:
        job.finished_at = now
        job.started_at = job.started_at or now


def requeue_or_fail(job: JobRow, reason: str, now: float, fault: Fault = Fault.INFRASTRUCTURE) -> None:
    """Count one run that ended badly against the budget of `fault`: back to PENDING
    after a backoff, or FAILED once that budget is spent (scheduler.requeue_rules)."""
    max_attempts = spec_from_json(job.spec_json).max_attempts
    outcome = after_run_ended(fault, job.failures, job.infra_requeues, max_attempts, reason, now)
    job.failures, job.infra_requeues = outcome.failures, outcome.infra_requeues
    finish(job, outcome.state, outcome.reason, now)
    if outcome.state is JobState.PENDING:
        job.not_before = outcome.not_before


def lose_runs(s: Session, site: str, reason: str, now: float) -> int:
    """Every live run on `site` is lost: requeue its job, or end a cancel. Returns how many."""
    runs = s.exec(select(RunRow).where(RunRow.site == site, col(RunRow.live).is_(True))).all()
    lost = 0
    for found in runs:
        job = locked_job(s, found.job_id)
        run = fresh_run(s, found.id)
        if run is None or not run.live:
            continue  # it ended while we waited for the lock
        end_run(s, run, RunState.LOST, reason, now)
        lost += 1
        if job is None or job.run_id != run.id:
            continue
        if job.state == JobState.CANCELLING.value:
            finish(job, JobState.CANCELLED, f"cancelled ({reason})", now)
        elif job.state in (JobState.LEASED.value, JobState.RUNNING.value):
            requeue_or_fail(job, f"run {run.id} lost: {reason}", now)
        s.add(job)
    return lost


def stop_overdue(s: Session, now: float, candidates: list[str] | None = None) -> list[Command]:
    """Stop every running run past its walltime; its job ends FAILED (TIMEOUT). Looks at
    the runs named in `candidates`, or at every live run with a walltime."""
    commands: list[Command] = []
    query = select(RunRow).where(col(RunRow.live).is_(True), RunRow.walltime_seconds > 0, RunRow.running_since > 0)
    if candidates is not None:
        query = query.where(col(RunRow.id).in_(candidates))
    runs = s.exec(query).all()
    for found in runs:
        if now < found.running_since + found.walltime_seconds:
            continue
        job = locked_job(s, found.job_id)
        run = fresh_run(s, found.id)
        if run is None or not run.live:
            continue
        reason = f"TIMEOUT: ran past its walltime of {run.walltime_seconds} s"
        end_run(s, run, RunState.STOPPED, reason, now)
        if job is not None and job.run_id == run.id and not JobState(job.state).terminal:
            finish(job, JobState.CANCELLED if job.state == JobState.CANCELLING.value else JobState.FAILED,
                   reason, now)
            s.add(job)
        commands.append(StopRunCommand(run.site, run.id, reason))
    return commands
