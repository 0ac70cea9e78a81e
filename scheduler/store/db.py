"""Engine creation for SQLite and PostgreSQL.

SQLite durability settings (why each):
- journal_mode=WAL: readers never block the single writer, and a commit is one
  append to the WAL, which survives kill -9 of the broker.
- synchronous=FULL: the WAL is fsynced at every commit, so an acknowledged submit
  survives a power loss too, not only a process crash.
- busy_timeout: concurrent writers wait for the lock instead of failing.
- Every writing transaction starts with BEGIN IMMEDIATE, taking the write lock up
  front, so a read-then-write transaction can never fail halfway with SQLITE_BUSY.
  Read-only transactions use a second engine with a plain (deferred) BEGIN, so
  polling readers never queue for the write lock.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from scheduler.domain import InvalidArgument

SQLITE_BUSY_TIMEOUT_MS = 15_000
# A database that went away must fail calls within seconds (UNAVAILABLE), not hang
# them for the minutes TCP takes to give up: a connect timeout, and TCP keepalives
# that find a dead connection in about 5 + 2 × 2 s.
PG_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                   "keepalives_interval": 2, "keepalives_count": 2}


def normalize_url(url: str) -> str:
    """Accept the URLs users type and pick the driver minga ships with."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")):
        return url
    raise InvalidArgument(
        f"unsupported --db URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(engine for writes, engine for reads); one and the same on PostgreSQL."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=10,
                           connect_args=PG_CONNECT_ARGS)
    return engine, engine


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin hook issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
