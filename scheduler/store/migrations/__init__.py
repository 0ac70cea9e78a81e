"""The store's schema migrations (Alembic), configured in code: there is no alembic.ini.

Revision ids are sequential (0001, 0002, ...). 0001 is the schema of minga's first
release; `Database.create_schema` brings every store to `head()` at broker start.
To add a revision: `python -m minga.scheduler.store.migrations revision -m "what changed" --autogenerate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection

FIRST_RELEASE = "0001"
VERSION_TABLE = "alembic_version"

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; env.py runs the migrations on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    return _scripts().get_current_head() or ""


def known_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


@contextmanager
def _alembic_details_at_debug() -> Iterator[None]:
    """Alembic logs each step at INFO (context, DDL mode, one line per revision); an
    operator needs one line. Its details show only when this logger is at DEBUG."""
    alembic = logging.getLogger("alembic")
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    previous = alembic.level
    alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic.setLevel(previous)


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the store is marked with; () when it has no version table."""
    with _alembic_details_at_debug():
        return MigrationContext.configure(connection).get_current_heads()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the store to `revision`, saying so in one INFO line when anything changed."""
    before = current_revisions(connection)
    _upgrade(connection, revision)
    after = current_revisions(connection)
    if after != before:
        log.info(
            "store schema %s revision %s",
            f"upgraded from {', '.join(before)} to" if before else "created at",
            ", ".join(after),
        )


def _upgrade(connection: Connection, revision: str) -> None:
    with _alembic_details_at_debug():
        command.upgrade(alembic_config(connection), revision)


def stamp(connection: Connection, revision: str) -> None:
    with _alembic_details_at_debug():
        command.stamp(alembic_config(connection), revision)


@lru_cache(maxsize=1)
def first_release_columns() -> dict[str, frozenset[str]]:
    """{table: its columns} as revision 0001 creates them (on a scratch in-memory SQLite)."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            _upgrade(conn, FIRST_RELEASE)
            found = inspect(conn)
            return {
                t: frozenset(c["name"] for c in found.get_columns(t))
                for t in found.get_table_names()
                if t != VERSION_TABLE
            }
    finally:
        engine.dispose()
