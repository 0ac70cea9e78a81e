"""The scheduling side of the store: snapshots, leases, and what sites report.

Fencing lives here: a report changes a job only if it is about the job's current,
live run on the reporting site; anything else is stale and is told to stop.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import func
from sqlmodel import Session, col, select, update

from scheduler.clock import run_id_for
from scheduler.commands import Command, RunReport, StartRunCommand, StopRunCommand
from scheduler.domain import LIVE_JOB_STATES, JobSpec, JobState, RunState, SiteState
from scheduler.policy import Decisions, Placement, Preemption, ShareSettings, Snapshot
from scheduler.states import job_state_after_run_report, transition
from scheduler.store.audit import SCHEDULER, SCHEDULER_ROLE, AuditEntry, add_entry
from scheduler.store.base import Database, StoreUnavailable, job_from_row, run_from_row, site_from_row
from scheduler.store.codec import inventory_from_json, spec_from_json, with_secrets
from scheduler.store.ledger import charge_all
from scheduler.store.lending import load_lending
from scheduler.requeue_rules import Fault, resend_start_after_hello
from scheduler.store.requeue import (
    end_run, finish, fresh_run, locked_job, lose_runs, requeue_or_fail, stop_overdue,
)
from scheduler.store.shares import load_shares, read_settings
from scheduler.store.models import JobRow, RunRow, SiteRow


Fence = Callable[[Session], None]


def live_array_tasks(s: Session, capped: set[str]) -> tuple[tuple[str, int], ...]:
    """(array id, tasks holding GPUs now) for each of the `capped` arrays, 0 included: what
    %K counts, and what tells the policy which arrays are capped (`Snapshot.array_live`)."""
    q = (select(JobRow.array_id, func.count()).where(JobRow.array_id != "", JobRow.array_limit > 0,
                                                      col(JobRow.state).in_([st.value for st in LIVE_JOB_STATES]))
         .group_by(JobRow.array_id).order_by(JobRow.array_id))
    live = dict(s.exec(q).all())
    return tuple((a, live.get(a, 0)) for a in sorted(capped))


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
            query = select(*JobRow.__table__.columns).where(JobRow.state == JobState.PENDING.value)
            if now is not None:  # a job in its requeue backoff sits out until `not_before`
                query = query.where(JobRow.not_before <= now)
            pending = tuple(job_from_row(r) for r in s.connection().execute(  # type: ignore[arg-type]
                query.order_by(col(JobRow.submitted_at), col(JobRow.id))))
            institutions, projects, usage, countries, settings = load_shares(s, now or 0.0)
            lending = load_lending(s)
            capped = {j.array_id for j in pending if j.array_limit}
            array_live = live_array_tasks(s, capped) if capped else ()
        return Snapshot(sites=sites, live_runs=runs, pending=pending, institutions=institutions,
                        projects=projects, usage=usage, country_weights=countries, settings=settings,
                        lending=lending, array_live=array_live)

    @contextmanager
    def _tx(self, fence: Fence | None) -> Iterator[Session]:
        """A write transaction of the scheduling cycle; `fence` runs first and may refuse
        it (the leader check of scheduler.leader), so a deposed leader writes nothing."""
        with self.db.tx() as s:
            if fence is not None:
                fence(s)
            yield s

    def charge(self, now: float, fence: Fence | None = None) -> None:
        """Charge usage and contribution up to `now` (one incremental ledger step)."""
        with self._tx(fence) as s:
            charge_all(s, now, read_settings(s))

    def apply_decisions(self, decisions: Decisions, now: float, fence: Fence | None = None) -> list[Command]:
        """Preempt, then lease every placement, in ONE transaction that re-checks capacity."""
        commands: list[Command] = []
        with self._tx(fence) as s:
            for p in decisions.preemptions:
                commands.extend(_preempt(s, p, now))
            free = _free_gpus(s)
            notice = notice_seconds(read_settings(s)) if decisions.placements else 0
            for placement in decisions.placements:
                cmd = _lease(s, placement, free, now, notice)
                if cmd:
                    commands.append(cmd)
            _record_reasons(s, decisions)
        return commands

    def apply_report(self, site: str, report: RunReport, now: float) -> list[Command]:
        with self.db.tx() as s:
            return _apply_report(s, site, report, now)

    def apply_reports(self, site_reports: Sequence[tuple[str, RunReport]], now: float
                      ) -> list[list[Command] | Exception]:
        """Many sites' reports in ONE transaction (a group commit): each one's commands,
        in order. If one fails, the batch is rolled back and each report is applied in a
        transaction of its own, so a bad report costs its own outcome (its exception),
        never the others'. A database that is down fails them all (StoreUnavailable)."""
        try:
            with self.db.tx() as s:
                return [_apply_report(s, site, report, now) for site, report in site_reports]
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - one report's fault: find out whose, one by one
            if len(site_reports) == 1:
                return [exc]
        return [self._apply_alone(site, report, now) for site, report in site_reports]

    def _apply_alone(self, site: str, report: RunReport, now: float) -> list[Command] | Exception:
        try:
            return self.apply_report(site, report, now)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the outcome of this report alone
            return exc

    def site_lost(self, site: str, reason: str, now: float, fence: Fence | None = None) -> int:
        """The site's lease expired: mark it LOST and requeue its runs."""
        return self._site_unhealthy(site, SiteState.LOST, reason, now, fence)

    def site_health(self, site: str, ray_down: bool, message: str, now: float, refusing: bool = False) -> int:
        """The agent says its Ray cluster is down (DEGRADED: requeue its runs), refuses new
        runs (DEGRADED: it takes none, its running runs go on), or is well again (READY)."""
        if ray_down:
            return self._site_unhealthy(site, SiteState.DEGRADED, f"Ray cluster down: {message}", now)
        with self.db.tx() as s:
            row = s.get(SiteRow, site)
            if refusing:
                if row is not None:
                    row.state, row.health_message = SiteState.DEGRADED.value, f"Ray refuses new runs: {message}"
                    s.add(row)
                return 0
            if row is not None and row.state == SiteState.DEGRADED.value:
                row.state, row.health_message = SiteState.READY.value, ""
                s.add(row)
        return 0

    def _site_unhealthy(self, site: str, state: SiteState, reason: str, now: float,
                        fence: Fence | None = None) -> int:
        with self._tx(fence) as s:
            row = s.get(SiteRow, site)
            if row is None:
                return 0
            row.state, row.health_message = state.value, reason
            s.add(row)
            return lose_runs(s, site, f"site {site} {state.value.lower()}: {reason}", now)

    def stop_overdue(self, now: float, fence: Fence | None = None) -> list[Command]:
        """Enforce walltimes: stop every run past its limit."""
        with self._tx(fence) as s:
            return stop_overdue(s, now)

    def reconcile_site(self, site: str, reports: list[RunReport], now: float) -> list[Command]:
        """A site (re)connected and listed what its Ray cluster has: bring both sides level."""
        commands: list[Command] = []
        with self.db.tx() as s:
            notice = notice_seconds(read_settings(s))
            for report in reports:
                commands.extend(_apply_report(s, site, report, now, in_session=False))
            # A run the site reports as UNKNOWN is one its Ray cluster does not have.
            reported = {r.run_id for r in reports if r.state is not RunState.UNKNOWN}
            live = s.exec(select(RunRow).where(RunRow.site == site, RunRow.live == True)).all()  # noqa: E712
            for run in live:
                if run.id in reported or not run.live:
                    continue
                job = locked_job(s, run.job_id)
                if job is not None and job.state == JobState.CANCELLING.value:
                    # It never reached Ray, so there is nothing to stop.
                    _apply_report(s, site, RunReport(run.id, RunState.STOPPED, "cancelled"), now, in_session=False)
                elif job is not None and resend_start_after_hello(run.reported_at > 0):
                    # The lease stands; the start was lost in transit. Same run id: safe to resend.
                    commands.append(StartRunCommand(site, run_from_row(run), _site_spec(job), notice,
                                                     job.array_id, job.array_index))
                elif job is not None and job.run_id == run.id:
                    # The site had it, and its Ray no longer does (a restarted head): never
                    # start it again under this run id; a new attempt gets a new epoch.
                    _fail_run(s, run, job, "the run vanished from the site's Ray cluster "
                              "(not listed when the site reconnected)", True, now)
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
    """Take a run's GPUs back: the run is fenced off and its job requeued (no failure).
    The job keeps the preemption (its waiting reason soon replaces `reason`), and the
    audit log gets a line for the job's institution, in this same transaction."""
    job = locked_job(s, p.job_id)
    run = fresh_run(s, p.run_id)
    if run is None or job is None or not run.live or job.run_id != run.id:
        return []  # it ended since the snapshot
    if JobState(job.state) not in (JobState.LEASED, JobState.RUNNING):
        return []
    reason = f"preempted: {p.reason}"
    end_run(s, run, RunState.STOPPED, reason, now)
    finish(job, JobState.PENDING, reason, now)
    job.preempted_at, job.preempted_kind, job.preempted_for, job.preempted_reason = (
        now, p.kind, p.beneficiary, p.reason)
    s.add(job)
    add_entry(s, _preemption_line(p, run.site, now), institution=job.institution)
    return [StopRunCommand(run.site, run.id, reason)]


def _preemption_line(p: Preemption, site: str, now: float) -> AuditEntry:
    """The audit line of one preemption: the scheduler acted, on the job's run."""
    kind = p.kind or "preemption"
    beneficiary = f" for {p.beneficiary}" if p.beneficiary else ""
    return AuditEntry(at=now, who=SCHEDULER, role=SCHEDULER_ROLE, method="Scheduler/Preempt",
                      target=f"{p.job_id} {p.run_id}", peer="", outcome="OK",
                      detail=f"{kind}{beneficiary} on {site}: {p.reason}")


def notice_seconds(settings: ShareSettings) -> int:
    """The notice a run gets before it is killed, in the whole seconds Ray takes (at least 1)."""
    return max(1, round(settings.preemption_notice_seconds))


def _free_gpus(s: Session) -> dict[tuple[str, str], int]:
    free: dict[tuple[str, str], int] = defaultdict(int)
    for site in s.exec(select(SiteRow)).all():
        for pool in inventory_from_json(site.inventory_json).gpus:
            free[(site.name, pool.model)] += pool.total
    for run in s.exec(select(RunRow).where(RunRow.live == True)).all():  # noqa: E712
        if run.gpus:
            free[(run.site, run.gpu_model)] -= run.gpus
    return free


def _lease(s: Session, p: Placement, free: dict[tuple[str, str], int], now: float,
           notice: int = 0) -> StartRunCommand | None:
    job = locked_job(s, p.job_id)
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
    return StartRunCommand(p.site, run_from_row(run), _site_spec(job), notice, job.array_id, job.array_index)


def _site_spec(job: JobRow) -> JobSpec:
    """The spec the site runs: the only place secret env values leave their column."""
    return with_secrets(spec_from_json(job.spec_json), job.secret_env_json)


def _apply_report(s: Session, site: str, report: RunReport, now: float, in_session: bool = True) -> list[Command]:
    """Fencing first: only a report about the job's current, live run on this site counts."""
    run = s.get(RunRow, report.run_id)
    if run is None or run.site != site:
        # Unknown here, or another site's run: never let it touch a job.
        return [] if report.state.terminal else [StopRunCommand(site, report.run_id, "unknown run")]
    job = locked_job(s, run.job_id)
    run = fresh_run(s, report.run_id)
    assert run is not None  # runs are never deleted
    current = job is not None and job.run_id == run.id and run.live
    state = report.state
    if state is RunState.UNKNOWN:
        if not current or job is None:
            return []
        if job.state == JobState.CANCELLING.value:
            state = RunState.STOPPED  # cancelled before it ever reached Ray
        elif in_session:
            _fail_run(s, run, job, "the run vanished from the site's Ray cluster", True, now)
            return []
        else:
            return []  # a Hello: the start was lost in transit, and reconcile_site resends it
    if not current or job is None:
        return [] if state.terminal else [StopRunCommand(site, run.id, "stale run: fenced by a newer epoch")]
    if not run.reported_at:
        run.reported_at = now  # the site has it: never resent under this id (reconcile_site)
    if state is RunState.FAILED and job.state != JobState.CANCELLING.value and (
            report.infrastructure or spec_from_json(job.spec_json).retry_failed):
        _fail_run(s, run, job, report.message or "run failed", report.infrastructure, now)
        return []
    if state is RunState.RUNNING and not run.charged_until:
        run.charged_until = run.running_since = now  # usage is charged from here on
    if state.terminal:
        end_run(s, run, state, report.message, now)  # the last interval, charged exactly once
    else:
        run.state, run.message = state.value, report.message
        s.add(run)
    _advance_job(job, state, report.message, now)
    s.add(job)
    if job.state == JobState.CANCELLING.value and not state.terminal:
        return [StopRunCommand(site, run.id, "job cancelled")]
    return []


def _fail_run(s: Session, run: RunRow, job: JobRow, message: str, infrastructure: bool, now: float) -> None:
    """A failed run that may be retried: the infrastructure's fault, or the user asked for retries."""
    end_run(s, run, RunState.LOST if infrastructure else RunState.FAILED, message, now)
    whose = "infrastructure failure" if infrastructure else "failed"
    requeue_or_fail(job, f"run {run.id} {whose}: {message}", now,
                    Fault.INFRASTRUCTURE if infrastructure else Fault.USER)
    s.add(job)


def _advance_job(job: JobRow, state: RunState, message: str, now: float) -> None:
    target = job_state_after_run_report(JobState(job.state), state)
    if target is None:
        return
    if target is JobState.RUNNING:
        finish(job, target, job.reason, now)
        job.started_at = now
    elif target is JobState.FAILED:
        finish(job, target, message or "run failed", now)
    elif target is JobState.SUCCEEDED:
        finish(job, target, "", now)
    else:
        finish(job, target, job.reason, now)


def _site_needs_package(s: Session, site: str, digest: str) -> bool:
    runs = s.exec(select(RunRow).where(RunRow.site == site, RunRow.live == True)).all()  # noqa: E712
    for run in runs:
        job = s.get(JobRow, run.job_id)
        if job is not None and spec_from_json(job.spec_json).runtime_env.working_dir_digest == digest:
            return True
    return False
