"""Runs the broker ends on its own (lost with their site, past their walltime), and writing
the lifecycle's steps back to the rows.

The rules are pure, in scheduler/lifecycle.py and scheduler/requeue_rules.py: every
function here locks and loads the rows, converts them to domain values, calls the rule,
and writes what it returns back through the ORM (`write_step`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from minga.common.domain import Job
from minga.common.site_messages import Command
from minga.scheduler import lifecycle
from minga.scheduler.lifecycle import Step, run_lost
from minga.scheduler.store.base import job_from_row, job_to_row, run_from_row, run_to_row
from minga.scheduler.store.carbon import charge_energy
from minga.scheduler.store.ledger import charge_run
from minga.scheduler.store.models import JobRow, RunRow
from minga.scheduler.store.shares import read_settings


def locked_job(s: Session, job_id: str) -> JobRow | None:
    """The job row, locked until the transaction ends (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers). Every change
    to a job or its runs takes this lock first, so a cancel and a lease, or two
    reports, never overwrite each other under READ COMMITTED."""
    locked = s.info.setdefault(_LOCKED_JOBS, set())
    if job_id in locked:
        return s.get(JobRow, job_id)  # locked (and read) earlier in this transaction
    locked.add(job_id)
    return s.get(JobRow, job_id, with_for_update=True, populate_existing=True)


def lock_jobs(s: Session, job_ids: list[str], chunk: int = 500) -> None:
    """Lock and read the rows of `job_ids` in a few statements, as `locked_job` would one by one."""
    locked = s.info.setdefault(_LOCKED_JOBS, set())
    todo = [j for j in job_ids if j not in locked]
    for i in range(0, len(todo), chunk):
        hold(
            s,
            s.exec(
                select(JobRow)
                .where(col(JobRow.id).in_(todo[i : i + chunk]))
                .with_for_update()
                .execution_options(populate_existing=True)
            ).all(),
        )
    locked.update(todo)


def hold(s: Session, rows: Sequence[object]) -> None:
    """Keep `rows` in the session until it ends, so that `Session.get` finds them without a
    query (its identity map holds rows only as long as something else does)."""
    s.info.setdefault(_HELD_ROWS, []).extend(rows)


_LOCKED_JOBS = "minga.locked_jobs"
_HELD_ROWS = "minga.held_rows"
_FRESH_RUNS = "minga.fresh_runs"


def fresh_run(s: Session, run_id: str) -> RunRow | None:
    """The run as committed now: read after its job's lock, it cannot be stale. A run
    `prefetch_reported` already read after its job's lock is not read again."""
    if run_id in s.info.get(_FRESH_RUNS, ()):
        return s.get(RunRow, run_id)
    return s.get(RunRow, run_id, populate_existing=True)


def prefetch_runs(s: Session, run_ids: list[str], chunk: int = 500) -> None:
    """Read a batch's runs, lock their jobs, then read the runs again (now that no other
    writer can change them), each in a few statements: what `_apply_report` would do one
    row at a time, for a whole batch of reports."""
    runs: list[RunRow] = []
    for i in range(0, len(run_ids), chunk):
        runs += s.exec(select(RunRow).where(col(RunRow.id).in_(run_ids[i : i + chunk]))).all()
    hold(s, runs)
    lock_jobs(s, sorted({r.job_id for r in runs}))
    for i in range(0, len(run_ids), chunk):
        hold(
            s,
            s.exec(
                select(RunRow)
                .where(col(RunRow.id).in_(run_ids[i : i + chunk]))
                .execution_options(populate_existing=True)
            ).all(),
        )
    s.info.setdefault(_FRESH_RUNS, set()).update(r.id for r in runs)


def job_or_none(row: JobRow | None) -> Job | None:
    """The locked job as a domain value (None: the run's job is gone)."""
    return job_from_row(row) if row is not None else None


def write_step(s: Session, step: Step, job: JobRow | None, run: RunRow, now: float) -> list[Command]:
    """Write a lifecycle step back to the locked rows, through the ORM. A run the step
    ended is charged its last interval here, exactly once (store/ledger.py)."""
    ended = run.live and not step.run.live
    s.add(run_to_row(step.run, run))
    if ended:
        charge_run(s, run, now, read_settings(s))
        charge_energy(s, run, now)
    if job is not None and step.job is not None:
        s.add(job_to_row(step.job, job))
    return list(step.commands)


def lose_runs(s: Session, site: str, reason: str, now: float) -> int:
    """Every live run on `site` is lost: requeue its job, or end a cancel. Returns how many."""
    runs = s.exec(select(RunRow).where(RunRow.site == site, col(RunRow.live))).all()
    lost = 0
    for found in runs:
        job = locked_job(s, found.job_id)
        run = fresh_run(s, found.id)
        if run is None or not run.live:
            continue  # it ended while we waited for the lock
        write_step(s, run_lost(job_or_none(job), run_from_row(run), reason, now), job, run, now)
        lost += 1
    return lost


def stop_overdue(s: Session, now: float, candidates: list[str] | None = None) -> list[Command]:
    """Stop every running run past its walltime; its job ends FAILED (TIMEOUT). Looks at
    the runs named in `candidates`, or at every live run with a walltime."""
    commands: list[Command] = []
    query = select(RunRow).where(col(RunRow.live), RunRow.walltime_seconds > 0, RunRow.running_since > 0)
    if candidates is not None:
        query = query.where(col(RunRow.id).in_(candidates))
    runs = s.exec(query).all()
    for found in runs:
        if now < found.running_since + found.walltime_seconds:
            continue
        job = locked_job(s, found.job_id)
        run = fresh_run(s, found.id)
        if run is None:
            continue
        step = lifecycle.stop_overdue(job_or_none(job), run_from_row(run), now)
        if step is not None:  # None: it ended while we waited for the lock
            commands.extend(write_step(s, step, job, run, now))
    return commands
