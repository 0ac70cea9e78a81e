"""The scheduling side of the store: snapshots, leases, and what sites report.

Fencing lives here: a report changes a job only if it is about the job's current,
live run on the reporting site; anything else is stale and is told to stop.
"""
from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, col, select, update

from scheduler.clock import run_id_for
from scheduler.commands import Command, RunReport, StartRunCommand, StopRunCommand
from scheduler.domain import JobState, RunState
from scheduler.policy import Decisions, Placement, Preemption, Snapshot
from scheduler.states import job_state_after_run_report, transition
from scheduler.store.base import Database, job_from_row, run_from_row, site_from_row
from scheduler.store.codec import inventory_from_json, spec_from_json
from scheduler.store.ledger import charge_all, charge_run
from scheduler.store.shares import load_shares, read_settings
from scheduler.store.models import JobRow, RunRow, SiteRow


class RunsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load_snapshot(self, now: float | None = None) -> Snapshot:
        """Sites, live runs, pending jobs and the account tree with usage decayed to `now`."""
        with self.db.read() as s:
            sites = tuple(site_from_row(r) for r in s.exec(select(SiteRow).order_by(SiteRow.name)))
            runs = tuple(run_from_row(r) for r in s.exec(select(RunRow).where(RunRow.live == True)))  # noqa: E712
            # Plain rows, not ORM objects: job_from_row only reads attributes, and the
            # identity map is pure cost for a read-only snapshot of every pending job.
            pending = tuple(job_from_row(r) for r in s.connection().execute(  # type: ignore[arg-type]
                select(*JobRow.__table__.columns).where(JobRow.state == JobState.PENDING.value)
                .order_by(col(JobRow.submitted_at), col(JobRow.id))))
            institutions, projects, usage, countries, settings = load_shares(s, now or 0.0)
        return Snapshot(sites=sites, live_runs=runs, pending=pending, institutions=institutions,
                        projects=projects, usage=usage, country_weights=countries, settings=settings)

    def charge(self, now: float) -> None:
        """Charge usage and contribution up to `now` (one incremental ledger step)."""
        with self.db.tx() as s:
            charge_all(s, now, read_settings(s))

    def apply_decisions(self, decisions: Decisions, now: float) -> list[Command]:
        """Preempt, then lease every placement, in ONE transaction that re-checks capacity."""
        commands: list[Command] = []
        with self.db.tx() as s:
            for p in decisions.preemptions:
                commands.extend(_preempt(s, p, now))
            free = _free_gpus(s)
            for placement in decisions.placements:
                cmd = _lease(s, placement, free, now)
                if cmd:
                    commands.append(cmd)
            _record_reasons(s, decisions)
        return commands

    def apply_report(self, site: str, report: RunReport, now: float) -> list[Command]:
        with self.db.tx() as s:
            return _apply_report(s, site, report, now)

    def reconcile_site(self, site: str, reports: list[RunReport], now: float) -> list[Command]:
        """A site (re)connected and listed what its Ray cluster has: bring both sides level."""
        commands: list[Command] = []
        with self.db.tx() as s:
            for report in reports:
                commands.extend(_apply_report(s, site, report, now))
            # A run the site reports as UNKNOWN is one its Ray cluster does not have.
            reported = {r.run_id for r in reports if r.state is not RunState.UNKNOWN}
            live = s.exec(select(RunRow).where(RunRow.site == site, RunRow.live == True)).all()  # noqa: E712
            for run in live:
                if run.id in reported or not run.live:
                    continue
                job = s.get(JobRow, run.job_id)
                if job is not None and job.state == JobState.CANCELLING.value:
                    # It never reached Ray, so there is nothing to stop.
                    _apply_report(s, site, RunReport(run.id, RunState.STOPPED, "cancelled"), now)
                elif job is not None:
                    # The lease stands; the start was lost in transit. Same run id: safe to resend.
                    commands.append(StartRunCommand(site, run_from_row(run), spec_from_json(job.spec_json)))
        return commands

    def site_needs_package(self, site: str, digest: str) -> bool:
        with self.db.read() as s:
            return _site_needs_package(s, site, digest)


def _record_reasons(s: Session, decisions: Decisions) -> None:
    """Write only the waiting reasons that changed: one read of all pending reasons, then
    one UPDATE per changed job, instead of a row fetch per waiting job every cycle."""
    if not decisions.waiting:
        return
    current = dict(s.exec(select(JobRow.id, JobRow.reason).where(JobRow.state == JobState.PENDING.value)).all())
    for w in decisions.waiting:
        if w.job_id in current and current[w.job_id] != w.reason:
            s.exec(update(JobRow).where(JobRow.id == w.job_id, JobRow.state == JobState.PENDING.value)
                   .values(reason=w.reason))


def _preempt(s: Session, p: Preemption, now: float) -> list[Command]:
    """Take a run's GPUs back: the run is fenced off and its job requeued."""
    run = s.get(RunRow, p.run_id)
    job = s.get(JobRow, p.job_id)
    if run is None or job is None or not run.live or job.run_id != run.id:
        return []  # it ended since the snapshot
    if JobState(job.state) not in (JobState.LEASED, JobState.RUNNING):
        return []
    charge_run(s, run, now, read_settings(s))
    run.live, run.ended_at = False, now
    run.state, run.message = RunState.STOPPED.value, f"preempted: {p.reason}"
    job.state = transition(JobState(job.state), JobState.PENDING).value
    job.reason, job.updated_at = f"preempted: {p.reason}", now
    s.add(run)
    s.add(job)
    return [StopRunCommand(run.site, run.id, f"preempted: {p.reason}")]


def _free_gpus(s: Session) -> dict[tuple[str, str], int]:
    free: dict[tuple[str, str], int] = defaultdict(int)
    for site in s.exec(select(SiteRow)).all():
        for pool in inventory_from_json(site.inventory_json).gpus:
            free[(site.name, pool.model)] += pool.total
    for run in s.exec(select(RunRow).where(RunRow.live == True)).all():  # noqa: E712
        if run.gpus:
            free[(run.site, run.gpu_model)] -= run.gpus
    return free


def _lease(s: Session, p: Placement, free: dict[tuple[str, str], int], now: float) -> StartRunCommand | None:
    job = s.get(JobRow, p.job_id)
    site = s.get(SiteRow, p.site)
    if job is None or site is None or job.state != JobState.PENDING.value:
        return None  # cancelled or changed since the snapshot
    if p.gpus and free[(p.site, p.gpu_model)] < p.gpus:
        return None  # capacity changed since the snapshot: never promise a GPU twice
    free[(p.site, p.gpu_model)] -= p.gpus
    job.attempts += 1
    spec = spec_from_json(job.spec_json)
    run = RunRow(id=run_id_for(job.id, job.attempts), job_id=job.id, site=p.site,
                 epoch=job.attempts, gpu_model=p.gpu_model, gpus=p.gpus, cpus=p.cpus,
                 state=RunState.STARTING.value, live=True, created_at=now,
                 institution=job.institution, project=job.project, preemptible=spec.preemptible,
                 walltime_seconds=spec.walltime_seconds)
    job.state = transition(JobState(job.state), JobState.LEASED).value
    job.site, job.country, job.gpu_model = p.site, site.country, p.gpu_model
    job.run_id, job.reason, job.updated_at = run.id, "", now
    s.add(run)
    s.add(job)
    return StartRunCommand(p.site, run_from_row(run), spec)


def _apply_report(s: Session, site: str, report: RunReport, now: float) -> list[Command]:
    run = s.get(RunRow, report.run_id)
    if run is None or run.site != site:
        # Unknown here, or another site's run: never let it touch a job.
        return [] if report.state.terminal else [StopRunCommand(site, report.run_id, "unknown run")]
    job = s.get(JobRow, run.job_id)
    current = job is not None and job.run_id == run.id and run.live
    state = report.state
    if state is RunState.UNKNOWN:
        if not (current and job is not None and job.state == JobState.CANCELLING.value):
            return []
        state = RunState.STOPPED  # cancelled before it ever reached Ray
    if not current or job is None:
        return [] if state.terminal else [StopRunCommand(site, run.id, "stale run: fenced by a newer epoch")]
    run.state, run.message = state.value, report.message
    if state is RunState.RUNNING and not run.charged_until:
        run.charged_until = run.running_since = now  # usage is charged from here on
    if state.terminal:
        charge_run(s, run, now, read_settings(s))  # the last interval, exactly once
        run.live, run.ended_at = False, now
    s.add(run)
    _advance_job(job, state, report.message, now)
    s.add(job)
    if job.state == JobState.CANCELLING.value and not state.terminal:
        return [StopRunCommand(site, run.id, "job cancelled")]
    return []


def _advance_job(job: JobRow, state: RunState, message: str, now: float) -> None:
    target = job_state_after_run_report(JobState(job.state), state)
    if target is None:
        return
    job.state = transition(JobState(job.state), target).value
    job.updated_at = now
    if target is JobState.RUNNING:
        job.started_at = now
    if target.terminal:
        job.finished_at = now
        if not job.started_at:
            job.started_at = now
        if target is JobState.FAILED:
            job.reason = message or "run failed"
        elif target is JobState.SUCCEEDED:
            job.reason = ""


def _site_needs_package(s: Session, site: str, digest: str) -> bool:
    runs = s.exec(select(RunRow).where(RunRow.site == site, RunRow.live == True)).all()  # noqa: E712
    for run in runs:
        job = s.get(JobRow, run.job_id)
        if job is not None and spec_from_json(job.spec_json).runtime_env.working_dir_digest == digest:
            return True
    return False
