"""The scheduling side of the store: snapshots, leases, and what sites report.

Fencing: a report changes a job only if it is about the job's current, live run on the
reporting site; anything else is stale and is told to stop. The rules are pure, in
scheduler/lifecycle.py; here the rows are locked, loaded, and written back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import bindparam, func, text, update
from sqlmodel import Session, col, select

from minga.common.audit import AuditEntry
from minga.common.carbon import site_intensities
from minga.common.domain import LIVE_JOB_STATES, Job, JobState, Run, RunState, SiteState
from minga.common.shares import ShareSettings
from minga.common.site_messages import Command, RunReport, StartRunCommand, StopRunCommand
from minga.common.snapshot import Decisions, Placement, Preemption, Snapshot
from minga.scheduler.accounting import ChargeBatch
from minga.scheduler.lifecycle import after_report, lease, preempt, unknown_run, unlisted_at_hello
from minga.scheduler.store.audit import SCHEDULER, SCHEDULER_ROLE, add_entry
from minga.scheduler.store.base import Database, StoreUnavailable, job_from_row, run_from_row, site_from_row
from minga.scheduler.store.changes import Changes, note
from minga.scheduler.store.json_columns import inventory_from_json, spec_from_json, with_secrets
from minga.scheduler.store.ledger import ledger_lock, write_charges
from minga.scheduler.store.models import JobRow, RunRow, SiteRow, table_of
from minga.scheduler.store.requeue import (
    fresh_run,
    hold,
    job_or_none,
    lock_jobs,
    locked_job,
    lose_runs,
    prefetch_runs,
    stop_overdue,
    write_step,
)
from minga.scheduler.store.shares import load_shares, read_settings

Fence = Callable[[Session], None]


def live_array_tasks(s: Session, capped: set[str]) -> tuple[tuple[str, int], ...]:
    """(array id, tasks holding GPUs now) for each of the `capped` arrays, 0 included: what
    %K counts, and what tells the policy which arrays are capped (`Snapshot.array_live`)."""
    q = (
        select(JobRow.array_id, func.count())
        .where(
            JobRow.array_id != "", JobRow.array_limit > 0, col(JobRow.state).in_([st.value for st in LIVE_JOB_STATES])
        )
        .group_by(JobRow.array_id)
        .order_by(JobRow.array_id)
    )
    live = dict(s.exec(q).all())
    return tuple((a, live.get(a, 0)) for a in sorted(capped))


class RunsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def of_job(self, job_id: str) -> list[Run]:
        """The job's runs, its attempts in order (what `minga job status` and the dashboard show)."""
        with self.db.read() as s:
            rows = s.exec(select(RunRow).where(RunRow.job_id == job_id).order_by(col(RunRow.epoch))).all()
            return [run_from_row(r) for r in rows]

    def load_snapshot(self, now: float | None = None) -> Snapshot:
        """Sites, live runs, pending jobs and the account tree with usage decayed to `now`."""
        with self.db.read() as s:
            sites = tuple(site_from_row(r) for r in s.exec(select(SiteRow).order_by(SiteRow.name)))
            runs = tuple(run_from_row(r) for r in s.exec(select(RunRow).where(col(RunRow.live))))
            # Plain rows, not ORM objects: job_from_row only reads attributes, and the
            # identity map is pure cost for a read-only snapshot of every pending job.
            query = select(*table_of(JobRow).columns).where(
                JobRow.state == JobState.PENDING.value, JobRow.after_unmet == 0
            )  # held by its dependencies: not schedulable yet
            if now is not None:  # a job in its requeue backoff sits out until `not_before`
                query = query.where(JobRow.not_before <= now)
            pending = tuple(
                job_from_row(r)  # type: ignore[arg-type]  # a plain Row has every JobRow attribute it reads
                for r in s.connection().execute(query.order_by(col(JobRow.submitted_at), col(JobRow.id)))
            )
            tree, usage, user_usage = load_shares(s, now or 0.0)
            capped = {j.array_id for j in pending if j.array_limit}
            array_live = live_array_tasks(s, capped) if capped else ()
        return Snapshot(
            sites=sites,
            live_runs=runs,
            pending=pending,
            institutions=tree.institutions,
            projects=tree.projects,
            usage=usage,
            user_usage=user_usage,
            user_weights=tree.users,
            country_weights=tree.countries,
            settings=tree.settings,
            lending=tree.lending,
            array_live=array_live,
            account_limits=tree.limits,
            intensity=site_intensities(((x.name, x.country) for x in sites), tree.intensity_figures),
        )

    @contextmanager
    def _tx(self, fence: Fence | None) -> Iterator[Session]:
        """A write transaction of the scheduling cycle; `fence` runs first and may refuse
        it (the leader check of scheduler.leader), so a deposed leader writes nothing."""
        with self.db.tx() as s:
            if fence is not None:
                fence(s)
            yield s

    def charge_batch(self, compute: Callable[[], ChargeBatch], fence: Fence | None = None) -> None:
        """Write one charging step that `compute` makes from memory, in a few statements.
        `compute` runs once no other write can slip in: after the transaction began (the
        write lock, on SQLite), the ledger lock (on PostgreSQL) and under the commit lock
        (so the memory it reads holds every commit made so far)."""
        with self._tx(fence) as s:
            s.connection()
            ledger_lock(s, exclusive=True)
            with self.db.commit_lock:
                batch = compute()
            write_charges(s, batch)

    def apply_decisions(
        self,
        decisions: Decisions,
        now: float,
        fence: Fence | None = None,
        free: Callable[[], dict[tuple[str, str], int]] | None = None,
        changed_reasons: Callable[[], dict[str, str]] | None = None,
    ) -> list[Command]:
        """Preempt, then lease every placement, in ONE transaction that re-checks capacity.
        The leader passes `free` (GPUs no live run holds) and `changed_reasons` (the waiting
        reasons that differ from the stored ones) from memory; without them, they are read."""
        commands: list[Command] = []
        with self._tx(fence) as s:
            s.connection()
            preempted = [c for p in decisions.preemptions for c in _preempt(s, p, now)]
            if free is None:
                capacity = _free_gpus(s)  # read after the preemptions: their GPUs count as free
            else:
                with self.db.commit_lock:
                    capacity = free()  # memory: as committed, before this transaction
                for stop in preempted:  # their GPUs are free once this transaction commits
                    run = s.get(RunRow, stop.run_id) if isinstance(stop, StopRunCommand) else None
                    if run is not None and run.gpus:
                        capacity[(run.site, run.gpu_model)] = capacity.get((run.site, run.gpu_model), 0) + run.gpus
            commands.extend(preempted)
            notice = notice_seconds(read_settings(s)) if decisions.placements else 0
            lock_jobs(s, [p.job_id for p in decisions.placements])
            hold(s, s.exec(select(SiteRow).where(col(SiteRow.name).in_({p.site for p in decisions.placements}))).all())
            for placement in decisions.placements:
                cmd = _lease(s, placement, capacity, now, notice)
                if cmd:
                    commands.append(cmd)
            _record_reasons(s, decisions, changed_reasons() if changed_reasons else None)
        return commands

    def apply_report(self, site: str, report: RunReport, now: float) -> list[Command]:
        with self.db.tx() as s:
            return _apply_report(s, site, report, now)

    def apply_reports(
        self, site_reports: Sequence[tuple[str, RunReport]], now: float
    ) -> list[list[Command] | Exception]:
        """Many sites' reports in ONE transaction (a group commit): each one's commands,
        in order. If one fails, the batch is rolled back and each report is applied in a
        transaction of its own, so a bad report costs its own outcome (its exception),
        never the others'. A database that is down fails them all (StoreUnavailable)."""
        try:
            with self.db.tx() as s:
                prefetch_runs(s, sorted({report.run_id for _, report in site_reports}))
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
        except Exception as exc:  # noqa: BLE001 - this report's own fault, answered to its site alone
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

    def _site_unhealthy(self, site: str, state: SiteState, reason: str, now: float, fence: Fence | None = None) -> int:
        with self._tx(fence) as s:
            row = s.get(SiteRow, site)
            if row is None:
                return 0
            row.state, row.health_message = state.value, reason
            s.add(row)
            return lose_runs(s, site, f"site {site} {state.value.lower()}: {reason}", now)

    def stop_overdue(
        self, now: float, fence: Fence | None = None, candidates: list[str] | None = None
    ) -> list[Command]:
        """Enforce walltimes: stop every run past its limit. The leader names the
        `candidates` from memory; without them, the live runs are read."""
        if candidates is not None and not candidates:
            return []
        with self._tx(fence) as s:
            return stop_overdue(s, now, candidates)

    def reconcile_site(self, site: str, reports: list[RunReport], now: float) -> list[Command]:
        """A site (re)connected and listed what its Ray cluster has: bring both sides level."""
        commands: list[Command] = []
        with self.db.tx() as s:
            notice = notice_seconds(read_settings(s))
            for report in reports:
                commands.extend(_apply_report(s, site, report, now, in_session=False))
            # A run the site reports as UNKNOWN is one its Ray cluster does not have.
            reported = {r.run_id for r in reports if r.state is not RunState.UNKNOWN}
            live = s.exec(select(RunRow).where(RunRow.site == site, col(RunRow.live))).all()
            for run in live:
                if run.id in reported or not run.live:
                    continue
                job = locked_job(s, run.job_id)
                fresh = fresh_run(s, run.id)
                assert fresh is not None  # runs are never deleted
                step = unlisted_at_hello(_site_job(job) if job else None, run_from_row(fresh), notice, now)
                if step is not None:
                    commands.extend(write_step(s, step, job, fresh, now))
        return commands

    def site_needs_package(self, site: str, digest: str) -> bool:
        with self.db.read() as s:
            return _site_needs_package(s, site, digest)


def _record_reasons(s: Session, decisions: Decisions, changed: dict[str, str] | None) -> None:
    """Write only the waiting reasons that changed (`changed`, from memory; or found by one
    read of all pending reasons), in one batched UPDATE."""
    if changed is None:
        if not decisions.waiting:
            return
        current = dict(s.exec(select(JobRow.id, JobRow.reason).where(JobRow.state == JobState.PENDING.value)).all())
        changed = {
            w.job_id: w.reason for w in decisions.waiting if w.job_id in current and current[w.job_id] != w.reason
        }
    if not changed:
        return
    jobs, conn = table_of(JobRow), s.connection()
    if conn.dialect.name == "postgresql":  # one statement over two arrays, not a statement per row
        conn.execute(
            text(
                "UPDATE jobs SET reason = u.why FROM unnest(CAST(:ids AS varchar[]), CAST(:whys AS "
                "varchar[])) AS u(jid, why) WHERE jobs.id = u.jid AND jobs.state = :pending"
            ),
            {"ids": list(changed), "whys": list(changed.values()), "pending": JobState.PENDING.value},
        )
    else:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == bindparam("jid"), jobs.c.state == JobState.PENDING.value)
            .values(reason=bindparam("why")),
            [{"jid": k, "why": v} for k, v in changed.items()],
        )
    note(s, Changes(reasons=changed))


def _preempt(s: Session, p: Preemption, now: float) -> list[Command]:
    """Take a run's GPUs back: the run is fenced off and its job requeued (no failure).
    The job keeps the preemption (its waiting reason soon replaces `reason`), and the
    audit log gets a line for the job's institution, in this same transaction."""
    job = locked_job(s, p.job_id)
    run = fresh_run(s, p.run_id)
    if run is None or job is None:
        return []
    step = preempt(job_from_row(job), run_from_row(run), p, now)
    if step is None:
        return []  # it ended since the snapshot
    commands = write_step(s, step, job, run, now)
    add_entry(s, _preemption_line(p, run.site, now), institution=job.institution)
    return commands


def _preemption_line(p: Preemption, site: str, now: float) -> AuditEntry:
    """The audit line of one preemption: the scheduler acted, on the job's run."""
    kind = p.kind or "preemption"
    beneficiary = f" for {p.beneficiary}" if p.beneficiary else ""
    return AuditEntry(
        at=now,
        who=SCHEDULER,
        role=SCHEDULER_ROLE,
        method="Scheduler/Preempt",
        target=f"{p.job_id} {p.run_id}",
        peer="",
        outcome="OK",
        detail=f"{kind}{beneficiary} on {site}: {p.reason}",
    )


def notice_seconds(settings: ShareSettings) -> int:
    """The notice a run gets before it is killed, in the whole seconds Ray takes (at least 1)."""
    return max(1, round(settings.preemption_notice_seconds))


def _free_gpus(s: Session) -> dict[tuple[str, str], int]:
    free: dict[tuple[str, str], int] = defaultdict(int)
    for site in s.exec(select(SiteRow)).all():
        for pool in inventory_from_json(site.inventory_json).gpus:
            free[(site.name, pool.model)] += pool.total
    for run in s.exec(select(RunRow).where(col(RunRow.live))).all():
        if run.gpus:
            free[(run.site, run.gpu_model)] -= run.gpus
    return free


def _lease(
    s: Session, p: Placement, free: dict[tuple[str, str], int], now: float, notice: int = 0
) -> StartRunCommand | None:
    job = locked_job(s, p.job_id)
    site = s.get(SiteRow, p.site)
    if job is None or site is None:
        return None  # gone since the snapshot
    step = lease(_site_job(job), p, site.country, free.get((p.site, p.gpu_model), 0), now, notice)
    if step is None:
        return None  # cancelled, changed, or capacity taken since the snapshot: never promise a GPU twice
    free[(p.site, p.gpu_model)] = free.get((p.site, p.gpu_model), 0) - p.gpus
    # The new run's key columns; write_step fills in the rest.
    new = RunRow(id=step.run.id, job_id=step.run.job_id, site=step.run.site, epoch=step.run.epoch)
    [start] = write_step(s, step, job, new, now)
    assert isinstance(start, StartRunCommand)
    return start


def _site_job(job: JobRow) -> Job:
    """The job as its site runs it: the only place secret env values leave their column."""
    return replace(job_from_row(job), spec=with_secrets(spec_from_json(job.spec_json), job.secret_env_json))


def _apply_report(s: Session, site: str, report: RunReport, now: float, in_session: bool = True) -> list[Command]:
    """Fencing first: only a report about the job's current, live run on this site counts."""
    run = s.get(RunRow, report.run_id)
    if run is None or run.site != site:
        return list(unknown_run(site, report))  # never let another site's run touch a job
    job = locked_job(s, run.job_id)
    run = fresh_run(s, report.run_id)
    assert run is not None  # runs are never deleted
    return write_step(s, after_report(job_or_none(job), run_from_row(run), report, now, in_session), job, run, now)


def _site_needs_package(s: Session, site: str, digest: str) -> bool:
    runs = s.exec(select(RunRow).where(RunRow.site == site, col(RunRow.live))).all()
    for run in runs:
        job = s.get(JobRow, run.job_id)
        if job is not None and spec_from_json(job.spec_json).runtime_env.working_dir_digest == digest:
            return True
    return False
