"""The database handle all repositories share, and row → domain conversions."""
from __future__ import annotations

from collections.abc import Iterator
import json
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from scheduler.domain import FailedPrecondition, Job, JobState, Run, RunState, Site, SiteState
from scheduler.store import models  # noqa: F401  (registers the tables)
from scheduler.store.codec import inventory_from_json, spec_from_json
from scheduler.store.models import JobRow, RunRow, SiteRow


class StoreUnavailable(Exception):
    """The database could not be reached; nothing was written."""


class Database:
    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine

    def create_schema(self) -> None:
        SQLModel.metadata.create_all(self.engine)
        missing = missing_columns(self.engine)
        if missing:
            raise FailedPrecondition(
                f"the store at {self.engine.url.render_as_string()} was made by an older minga and lacks "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; schema migrations are not "
                "shipped yet: start with a new --db (or delete the old SQLite file)")

    def tx(self) -> AbstractContextManager[Session]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        return self._session(self.engine, commit=True)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only transaction: it never takes SQLite's write lock."""
        return self._session(self.read_engine, commit=False)

    @staticmethod
    @contextmanager
    def _session(engine: Engine, commit: bool) -> Iterator[Session]:
        try:
            with Session(engine, expire_on_commit=False) as session:
                yield session
                if commit:
                    session.commit()
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def missing_columns(engine: Engine) -> list[str]:
    """`table.column` for every column the models have and the database lacks."""
    found = inspect(engine)
    missing = []
    for table in SQLModel.metadata.sorted_tables:
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
        reason=row.reason,
        site=row.site,
        country=row.country,
        run_id=row.run_id,
        gpu_model=row.gpu_model,
        started_at=row.started_at,
        finished_at=row.finished_at,
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
    )


def site_from_row(row: SiteRow) -> Site:
    return Site(
        name=row.name,
        institution=row.institution,
        country=row.country,
        state=SiteState(row.state),
        connected=row.connected,
        inventory=inventory_from_json(row.inventory_json),
        last_seen=row.last_seen,
        labels=tuple(sorted(json.loads(row.labels_json or "{}").items())),
    )
