"""Engine creation for SQLite and PostgreSQL.

SQLite runs in WAL mode with `synchronous=FULL`, writes under BEGIN IMMEDIATE after taking
this process's write turn (`_WriteTurns`), and reads on a second engine; PostgreSQL
connections time out and are pinged after sitting idle. Why each setting: docs/reliability.md,
"SQLite settings" and "Broker crash safety".
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel import create_engine

from minga.common.domain import InvalidArgument

SQLITE_BUSY_TIMEOUT_MS = 15_000
# A database that went away must fail calls within seconds (UNAVAILABLE), not hang
# them for the minutes TCP takes to give up: a connect timeout, and TCP keepalives
# that find a dead connection in about 5 + 2 × 2 s.
PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}


def normalize_url(url: str) -> str:
    """Accept the URLs users type and pick the driver minga ships with."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")):
        return url
    raise InvalidArgument(f"unsupported --db URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(engine for writes, engine for reads); one and the same on PostgreSQL."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_timeout=10, connect_args=PG_CONNECT_ARGS)
    _ping_when_idle(engine)
    return engine, engine


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled PostgreSQL connection before use if it sat idle a while: one that
    died meanwhile (a server restart, a dropped TCP connection) is replaced, not handed
    to a call that would fail on it. SQLAlchemy's `pool_pre_ping` does this at every
    checkout, a round trip that cost a burst of submits 5-10%; a connection in use within
    the last second was alive then, and a failure on it still answers UNAVAILABLE."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
        except Exception as exc:  # any failure: the pool connects afresh
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


_IDLE_SINCE = "minga.idle_since"


class _WriteTurns:
    """One writing transaction at a time in this process, on one SQLite file: taken at
    BEGIN IMMEDIATE, given back at the transaction's end (commit, rollback, or the
    connection returned to the pool). A turn not had within the busy timeout (a
    transaction left open far too long) falls back to SQLite's own lock, as before."""

    KEY = "minga.write_turn"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def take(self, info: dict[Any, Any]) -> None:
        if not info.get(self.KEY) and self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            info[self.KEY] = True

    def give_back(self, info: dict[Any, Any]) -> None:
        if info.pop(self.KEY, False):
            self._lock.release()

    def given_back_by(self, dbapi_conn: PoolProxiedConnection) -> None:
        """The turn of the pooled connection `dbapi_conn`, if it holds it (the engine's
        first connect rolls back on an ad-hoc proxy without a pool record: no turn there)."""
        try:
            info = dbapi_conn.info
        except (AttributeError, NotImplementedError):
            return
        self.give_back(info)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin hook issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    turns: _WriteTurns | None = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if turns is None:
            conn.exec_driver_sql("BEGIN")
            return
        turns.take(conn.info)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.give_back(conn.info)
            raise

    if immediate:
        turns = _WriteTurns()
        engine.write_turns = turns  # type: ignore[attr-defined]  # read by tests/test_sqlite_write_turns.py
        dialect = engine.dialect  # this engine's own: the turn is given back once the
        commit, rollback = dialect.do_commit, dialect.do_rollback  # COMMIT has returned

        def do_commit(dbapi_conn: PoolProxiedConnection) -> None:
            try:
                commit(dbapi_conn)
            finally:
                turns.given_back_by(dbapi_conn)

        def do_rollback(dbapi_conn: PoolProxiedConnection) -> None:
            try:
                rollback(dbapi_conn)
            finally:
                turns.given_back_by(dbapi_conn)

        # Patched on this engine's own dialect instance: no SQLAlchemy event fires after COMMIT returns.
        dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]  # an instance attribute
        dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]  # an instance attribute

        @event.listens_for(engine, "checkin")
        def _on_checkin(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            turns.give_back(record.info)  # a transaction that ended without either

    return engine
