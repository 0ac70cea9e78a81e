"""The database handle all repositories share, and row → domain conversions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from minga.common.domain import FailedPrecondition, Job, JobPreemption, JobState, Run, RunState, Site, SiteState
from minga.scheduler.store import migrations, models  # noqa: F401 - importing models registers the tables
from minga.scheduler.store.changes import Observer, collect, committed_changes, touched_tables
from minga.scheduler.store.generations import Generations
from minga.scheduler.store.json_columns import inventory_from_json, spec_from_json
from minga.scheduler.store.models import JobRow, RunRow, SiteRow

RowT = TypeVar("RowT", JobRow, RunRow)


class StoreUnavailable(Exception):  # noqa: N818 - named after its gRPC status code, UNAVAILABLE
    """The database could not be reached; nothing was written."""


class Database:
    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self.generations = Generations()  # what this process changed: the caches' invalidation
        # Write-through (store.changes): each commit and the hand-over of what it changed
        # happen under one lock, so observers see commits in the order they were made.
        self.commit_lock = threading.RLock()
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Hand `observer` what every later commit changed; take `commit_lock` around the
        call and the observer's initial load, so that no commit falls between them."""
        with self.commit_lock:
            if observer not in self._observers:
                self._observers.append(observer)

    def unobserve(self, observer: Observer) -> None:
        with self.commit_lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def create_schema(self) -> None:
        """Bring the store to this minga's newest schema revision, in one transaction.

        Empty, or already versioned: upgrade. Made by the first release (no version
        table; its tables match revision 0001): stamp 0001, then upgrade. Anything else,
        such as a revision newer than this minga knows, is refused. On PostgreSQL an
        advisory lock makes brokers that start together take turns; SQLite's write lock
        (BEGIN IMMEDIATE) does the same there.
        """
        url = self.engine.url.render_as_string()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))"),
                    {"key": MIGRATION_LOCK_KEY},
                )
            current = migrations.current_revisions(conn)
            if not current:
                _adopt_unversioned(conn, url)
            unknown = sorted(set(current) - migrations.known_revisions())
            if unknown:
                raise FailedPrecondition(
                    f"the store at {url} is at schema revision {', '.join(unknown)}, which this minga does not "
                    f"know (its newest is {migrations.head()}): it was upgraded by a newer minga; run that "
                    "version, or restore the backup taken before the upgrade"
                )
            migrations.upgrade(conn)
            missing = missing_columns(conn)
            if missing:  # the version row says head, the tables disagree: altered by hand
                raise FailedPrecondition(
                    f"the store at {url} is marked as schema revision {migrations.head()} but looks like it was "
                    f"made by an older minga and lacks {_listed(missing)}: restore it from a backup or start "
                    "with a new --db"
                )

    def tx(self) -> AbstractContextManager[Session]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        return self._session(self.engine, commit=True)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only transaction: it never takes SQLite's write lock."""
        return self._session(self.read_engine, commit=False)

    @contextmanager
    def _session(self, engine: Engine, commit: bool) -> Iterator[Session]:
        try:
            with Session(engine, expire_on_commit=False) as session:
                if commit:
                    collect(session)
                yield session
                if commit:
                    # Flush first: the transaction's first statement (SQLite's BEGIN
                    # IMMEDIATE) must never wait for the write lock under commit_lock.
                    session.flush()
                    with self.commit_lock:
                        session.commit()
                        self.generations.bump(touched_tables(session))
                        if self._observers:
                            changes = committed_changes(session)
                            if changes:
                                for observer in self._observers:
                                    observer.committed(changes)
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


MIGRATION_LOCK_KEY = 0x6D696E67  # "ming": pg_advisory_xact_lock(key, hash of the schema) guards create_schema


def _adopt_unversioned(conn: Connection, url: str) -> None:
    """Stamp a first-release store (made by create_all, no version table) with revision 0001.

    A store without any of minga's tables is left alone: the upgrade creates them.
    """
    expected = migrations.first_release_columns()
    found = inspect(conn)
    present = set(found.get_table_names()) & set(expected)
    if not present:
        return
    have = {t: {c["name"] for c in found.get_columns(t)} for t in present}
    missing = sorted(set(expected) - present) + sorted(f"{t}.{c}" for t in present for c in expected[t] - have[t])
    extra = sorted(f"{t}.{c}" for t in present for c in have[t] - expected[t])
    problems = ([f"lacks {_listed(missing)}"] if missing else []) + ([f"has unknown {_listed(extra)}"] if extra else [])
    if problems:
        raise FailedPrecondition(
            f"the store at {url} has no schema version and is not one of minga's first release: it "
            f"{' and '.join(problems)}; only stores made by the first release or later can be upgraded: "
            "start with a new --db"
        )
    migrations.stamp(conn, migrations.FIRST_RELEASE)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"


def missing_columns(conn: Connection) -> list[str]:
    """`table` or `table.column` for every table or column the models have and the database lacks."""
    found = inspect(conn)
    tables = set(found.get_table_names())
    missing = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in tables:
            missing.append(table.name)
            continue
        have = {c["name"] for c in found.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in have]
    return missing


def job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id,
        spec=spec_from_json(row.spec_json),
        state=JobState(row.state),
        owner=row.owner,
        institution=row.institution,
        submitted_at=row.submitted_at,
        attempts=row.attempts,
        failures=row.failures,
        infra_requeues=row.infra_requeues,
        reason=row.reason,
        site=row.site,
        country=row.country,
        run_id=row.run_id,
        gpu_model=row.gpu_model,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_preemption=JobPreemption(row.preempted_at, row.preempted_kind, row.preempted_for, row.preempted_reason)
        if row.preempted_at
        else None,
        array_id=row.array_id,
        array_index=row.array_index,
        array_limit=row.array_limit,
        not_before=row.not_before,
        updated_at=row.updated_at,
    )


def job_to_row(job: Job, row: JobRow) -> JobRow:
    """Write what the lifecycle changes (scheduler.lifecycle) back to the job's row; its
    identity and spec are written once, at submit."""
    p = job.last_preemption or NO_PREEMPTION
    return _assign(
        row,
        {
            "state": job.state.value,
            "attempts": job.attempts,
            "failures": job.failures,
            "infra_requeues": job.infra_requeues,
            "reason": job.reason,
            "site": job.site,
            "country": job.country,
            "run_id": job.run_id,
            "gpu_model": job.gpu_model,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "updated_at": job.updated_at,
            "not_before": job.not_before,
            "preempted_at": p.at,
            "preempted_kind": p.kind,
            "preempted_for": p.beneficiary,
            "preempted_reason": p.reason,
        },
    )


NO_PREEMPTION = JobPreemption(0.0, "", "", "")


def _assign(row: RowT, values: dict[str, object]) -> RowT:
    """Set the columns whose value changed, and only those: setting an ORM attribute costs
    its events even when the value is the same."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
    return row


def run_from_row(row: RunRow) -> Run:
    return Run(
        id=row.id,
        job_id=row.job_id,
        site=row.site,
        epoch=row.epoch,
        gpu_model=row.gpu_model,
        gpus=row.gpus,
        cpus=row.cpus,
        state=RunState(row.state),
        institution=row.institution,
        project=row.project,
        owner=row.owner,
        started_at=row.created_at,
        preemptible=row.preemptible,
        walltime_seconds=row.walltime_seconds,
        live=row.live,
        message=row.message,
        ended_at=row.ended_at,
        running_since=row.running_since,
        charged_until=row.charged_until,
        reported_at=row.reported_at,
    )


def run_to_row(run: Run, row: RunRow) -> RunRow:
    """Write every field of `run` to `row` (a new RunRow() for a new run)."""
    return _assign(
        row,
        {
            "id": run.id,
            "job_id": run.job_id,
            "site": run.site,
            "epoch": run.epoch,
            "gpu_model": run.gpu_model,
            "gpus": run.gpus,
            "cpus": run.cpus,
            "state": run.state.value,
            "institution": run.institution,
            "project": run.project,
            "owner": run.owner,
            "created_at": run.started_at,
            "preemptible": run.preemptible,
            "walltime_seconds": run.walltime_seconds,
            "live": run.live,
            "message": run.message,
            "ended_at": run.ended_at,
            "running_since": run.running_since,
            "charged_until": run.charged_until,
            "reported_at": run.reported_at,
        },
    )


NEVER_REPORTED = "{}"  # a site row's inventory until its agent's first Hello stores one

CONNECTING_REASON = "its agent has not reported its GPUs yet"


def effective_site_state(health: str, admin_state: str, reported: bool = True) -> SiteState:
    """DEGRADED wins (its Ray is down, and the agent says so), then CONNECTING for a site
    whose agent never reported (even past the lease TTL: it was never there to lose),
    then LOST, then the admin's CORDONED or DRAINING."""
    if health == SiteState.DEGRADED.value:
        return SiteState.DEGRADED
    if not reported:
        return SiteState.CONNECTING
    if health != SiteState.READY.value or not admin_state:
        return SiteState(health)
    return SiteState(admin_state)


def site_from_row(row: SiteRow) -> Site:
    reported = row.inventory_json != NEVER_REPORTED
    state = effective_site_state(row.state, row.admin_state, reported)
    if state is SiteState.CONNECTING:
        reason = CONNECTING_REASON
    else:
        reason = row.health_message if row.state != SiteState.READY.value else ""
    return Site(
        name=row.name,
        institution=row.institution,
        country=row.country,
        state=state,
        connected=row.connected,
        inventory=inventory_from_json(row.inventory_json),
        last_seen=row.last_seen,
        labels=tuple(sorted(json.loads(row.labels_json or "{}").items())),
        state_reason=reason,
        reported=reported,
        health=SiteState(row.state),
    )
