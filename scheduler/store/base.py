"""The database handle all repositories share, and row → domain conversions."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from scheduler.domain import Job, JobState, Run, RunState, Site, SiteState
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

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
                session.commit()
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: it never takes SQLite's write lock."""
        try:
            with Session(self.read_engine, expire_on_commit=False) as session:
                yield session
                session.rollback()
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


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
    )
