"""The database handle all repositories share, and row → domain conversions."""
from __future__ import annotations

from collections.abc import Iterator
import json
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from scheduler.domain import FailedPrecondition, Job, JobPreemption, JobState, Run, RunState, Site, SiteState
from scheduler.store import migrations, models  # noqa: F401  (models registers the tables)
from scheduler.store.generations import INFO_KEY, Generations
from scheduler.store.codec import inventory_from_json, spec_from_json
from scheduler.store.models import JobRow, RunRow, SiteRow


class StoreUnavailable(Exception):
    """The database could not be reached; nothing was written."""


class Database:
    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self.generations = Generations()   # what this process changed: the caches' invalidation

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
                conn.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))"),
                             {"key": MIGRATION_LOCK_KEY})
            current = migrations.current_revisions(conn)
            if not current:
                _adopt_unversioned(conn, url)
            unknown = sorted(set(current) - migrations.known_revisions())
            if unknown:
                raise FailedPrecondition(
                    f"the store at {url} is at schema revision {', '.join(unknown)}, which this minga does not "
                    f"know (its newest is {migrations.head()}): it was upgraded by a newer minga; run that "
                    "version, or restore the backup taken before the upgrade")
            migrations.upgrade(conn)
            missing = missing_columns(conn)
            if missing:  # the version row says head, the tables disagree: altered by hand
                raise FailedPrecondition(
                    f"the store at {url} is marked as schema revision {migrations.head()} but looks like it was "
                    f"made by an older minga and lacks {_listed(missing)}: restore it from a backup or start "
                    "with a new --db")

    def tx(self) -> AbstractContextManager[Session]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        return self._session(self.engine, commit=True, generations=self.generations)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only transaction: it never takes SQLite's write lock."""
        return self._session(self.read_engine, commit=False)

    @staticmethod
    @contextmanager
    def _session(engine: Engine, commit: bool, generations: Generations | None = None) -> Iterator[Session]:
        info = {INFO_KEY: generations} if generations is not None else None
        try:
            with Session(engine, expire_on_commit=False, info=info) as session:
                yield session
                if commit:
                    session.commit()
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
            "start with a new --db")
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
        last_preemption=JobPreemption(row.preempted_at, row.preempted_kind, row.preempted_for,
                                      row.preempted_reason) if row.preempted_at else None,
        array_id=row.array_id,
        array_index=row.array_index,
        array_limit=row.array_limit,
        not_before=row.not_before,
    )


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


NEVER_REPORTED = "{}"   # a site row's inventory until its agent's first Hello stores one

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
    )
