"""Leadership: of the brokers that share one store, exactly one leads.

The leader runs the scheduling cycle and serves every RPC; the standbys answer only
`BrokerStatus` until it dies. `StoreLock` is the lock (a PostgreSQL session advisory lock
on a dedicated connection, or a `flock` beside a SQLite file); `Election` is the thread
that polls it, takes over, and pauses or steps down a leader that cannot prove its lock.
The rules and their bounds are in docs/production.md, "Two brokers: a leader and a standby".
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlmodel import Session

from minga.scheduler.store.base import Database
from minga.scheduler.store.models import MetaRow

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x6D6C6472  # "mldr"; the migration lock uses another key (MIGRATION_LOCK_KEY)
LEADER_META_KEY = "leader"
CONNECT_TIMEOUT_SECONDS = 5
QUERY_TIMEOUT_SECONDS = 5.0  # a lock query not answered by then counts as a lost connection


class Attempt(enum.Enum):
    ACQUIRED = "acquired"  # this broker holds the lock now
    HELD = "held"  # another broker holds it
    UNREACHABLE = "unreachable"  # the database did not answer: nobody can tell


class StoreLock(Protocol):
    """The lock that makes a broker the leader of its store."""

    def try_acquire(self) -> Attempt: ...
    def check(self) -> bool: ...  # True while the lock is provably held
    def release(self) -> None: ...


# -- locks ---------------------------------------------------------------------------


class PostgresLock:
    """A session-level advisory lock on one dedicated connection."""

    def __init__(self, url: str) -> None:
        self.conninfo = "postgresql://" + url.split("://", 1)[1]  # libpq takes no "+psycopg"
        self._conn: psycopg.Connection | None = None
        self._key: int | None = None  # hash of database and schema
        self._backend: tuple[int, object] | None = None  # (pid, backend_start) of the lock's connection
        self._held_by: tuple[int, object] | None = None  # the backend that held our lock last

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            # A cut link must fail the next check within seconds, not at the kernel's TCP timeout.
            keepalives=1,
            keepalives_idle=2,
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=5000,
        )
        row = _query(
            conn,
            "SELECT hashtext(current_database() || '/' || coalesce(current_schema(), '')), "
            "pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        assert row is not None
        self._key, self._backend = row[0], (row[1], row[2])
        return conn

    def try_acquire(self) -> Attempt:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            if self._lock(self._conn):
                return Attempt.ACQUIRED
            if self._held_by is not None and self._holder(self._conn) == self._held_by:
                # Our own earlier connection, cut off from us, still holds it: end it.
                log.warning(
                    "the leader lock is held by this broker's lost connection (backend %d); ending it", self._held_by[0]
                )
                _query(self._conn, "SELECT pg_terminate_backend(%s)", (self._held_by[0],))
                for _ in range(20):
                    time.sleep(0.05)
                    if self._lock(self._conn):
                        return Attempt.ACQUIRED
            return Attempt.HELD
        except psycopg.Error as exc:
            log.debug("leader lock: database unreachable: %s", exc)
            self._drop()
            return Attempt.UNREACHABLE

    def _lock(self, conn: psycopg.Connection) -> bool:
        row = _query(conn, "SELECT pg_try_advisory_lock(%s, %s)", (LEADER_LOCK_KEY, self._key))
        if row is not None and row[0]:
            self._held_by = self._backend
            return True
        return False

    def _holder(self, conn: psycopg.Connection) -> tuple[int, object] | None:
        """(pid, backend_start) of the backend holding the leader lock; the start time
        tells our own old backend from a new one that reuses its pid."""
        assert self._key is not None
        row = _query(
            conn,
            "SELECT l.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (LEADER_LOCK_KEY, self._key % 2**32),
        )
        return (row[0], row[1]) if row else None

    def check(self) -> bool:
        if self._conn is None or self._conn.closed:
            return False
        try:
            _query(self._conn, "SELECT 1")
            return True
        except psycopg.Error as exc:
            log.warning("leader lock connection lost: %s", exc)
            self._drop()
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def release(self) -> None:
        self._drop()  # ending the session releases its advisory locks


def _query(conn: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
    """One row, or OperationalError once QUERY_TIMEOUT_SECONDS pass. A link that swallows
    packets (or a server that hangs) would otherwise block the election for minutes:
    the timer shuts the socket down, which ends the wait at once."""
    timer = threading.Timer(QUERY_TIMEOUT_SECONDS, _shut_down, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        timer.cancel()


def _shut_down(conn: psycopg.Connection) -> None:
    log.warning("the leader lock's database connection did not answer in %.0f s; dropping it", QUERY_TIMEOUT_SECONDS)
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))  # a duplicate: psycopg keeps its own fd
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    except (OSError, psycopg.Error):
        pass


class FileLock:
    """An exclusive flock on a file next to the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._held = False

    def try_acquire(self) -> Attempt:
        if self._held:
            return Attempt.ACQUIRED
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Attempt.HELD
        except OSError as exc:
            log.warning("leader lock %s: %s", self.path, exc)
            return Attempt.UNREACHABLE
        self._held = True
        return Attempt.ACQUIRED

    def check(self) -> bool:
        return self._held  # a flock is only lost with the process

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the flock
        self._fd, self._held = None, False


class SoleLock:
    """An in-memory SQLite store has one broker by construction."""

    def try_acquire(self) -> Attempt:
        return Attempt.ACQUIRED

    def check(self) -> bool:
        return True

    def release(self) -> None:
        pass


def lock_for(url: str) -> StoreLock:
    """The leader lock that fits the store at `url`."""
    if url.startswith(("postgresql", "postgres:")):
        return PostgresLock(url)
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        return SoleLock()
    return FileLock(Path(f"{path}.lock"))


# -- who leads, recorded in the store ------------------------------------------------


@dataclass(frozen=True)
class LeaderRecord:
    address: str  # where clients reach the leader
    since: float  # unix seconds when it took over
    broker_id: str  # one per broker process


def record_leader(db: Database, record: LeaderRecord) -> None:
    with db.tx() as s:
        row = s.get(MetaRow, LEADER_META_KEY) or MetaRow(key=LEADER_META_KEY)
        row.value = json.dumps({"address": record.address, "since": record.since, "broker_id": record.broker_id})
        s.add(row)


class NotLeadingError(Exception):
    """The store names another broker as leader: this one must not schedule."""


def leader_fence(broker_id: str) -> Callable[[Session], None]:
    """A check, run first inside each scheduling transaction, that the store still
    names `broker_id` as leader. It locks the leader record (FOR UPDATE on
    PostgreSQL), so a takeover, which rewrites that record, waits for a pass in
    flight to commit, and a deposed leader's next pass writes nothing. This closes
    the window in which a leader that lost its lock has not noticed yet."""

    def fence(s: Session) -> None:
        row = s.get(MetaRow, LEADER_META_KEY, with_for_update=True, populate_existing=True)
        leader = json.loads(row.value).get("broker_id") if row is not None else None
        if leader != broker_id:
            raise NotLeadingError(f"the store names broker {leader} as leader, not this one ({broker_id})")

    return fence


def read_leader(db: Database) -> LeaderRecord | None:
    with db.read() as s:
        row = s.get(MetaRow, LEADER_META_KEY)
        if row is None:
            return None
        data = json.loads(row.value)
    return LeaderRecord(address=data["address"], since=float(data["since"]), broker_id=data["broker_id"])


# -- the election ---------------------------------------------------------------------


class Role(enum.StrEnum):
    LEADER = "leader"
    UNSURE = "unsure"  # led, lost the proof, trying to take the lock again
    STANDBY = "standby"


class LeaderHooks(Protocol):
    def take_over(self) -> None: ...  # become leader as a fresh broker start would; may raise
    def pause(self) -> None: ...  # the lock is in doubt: stop writing on our own
    def resume(self) -> None: ...  # the lock is proven again
    def step_down(self) -> None: ...  # another broker leads, or may: stop serving


class Election:
    """One thread that keeps `role` true; see the module docstring."""

    def __init__(
        self,
        lock: StoreLock,
        hooks: LeaderHooks,
        poll_seconds: float = 1.0,
        step_down_seconds: float = 15.0,
        on_poll: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,  # measures how long the lock has been in doubt
    ) -> None:
        self.lock = lock
        self.hooks = hooks
        self.poll_seconds = poll_seconds
        self.step_down_seconds = step_down_seconds
        self.on_poll = on_poll or (lambda: None)
        self.clock = clock
        self.role = Role.STANDBY
        self._unsure_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self.role is not Role.STANDBY

    def start(self) -> None:
        """Lead at once if the lock is free (no wait: nobody led a moment ago), then poll.
        A first takeover that fails (say, the admin token file cannot be written) raises."""
        if self.lock.try_acquire() is Attempt.ACQUIRED:
            try:
                self.hooks.take_over()
            except BaseException:
                self.lock.release()
                raise
            self.role = Role.LEADER
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; the role stays as it is until `release`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def release(self) -> None:
        """Let go of the lock (the caller has stopped leading), so a standby takes over at once."""
        self.role = Role.STANDBY
        self.lock.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # logged: the election must outlive one bad poll
                log.exception("leader election poll failed")

    def poll(self) -> None:
        if self.role is Role.LEADER:
            if self.lock.check():
                return
            log.warning("cannot prove this broker still leads; pausing the scheduling cycle")
            self.role, self._unsure_since = Role.UNSURE, self.clock()
            self.hooks.pause()
        if self.role is Role.UNSURE:
            self._retake()
        else:
            if self.lock.try_acquire() is Attempt.ACQUIRED:
                self._take_over()
            else:
                self.on_poll()

    def _retake(self) -> None:
        attempt = self.lock.try_acquire()
        if attempt is Attempt.ACQUIRED:
            log.info("leader lock taken again; resuming")
            self.role = Role.LEADER
            self.hooks.resume()
            return
        unsure_for = self.clock() - self._unsure_since
        if attempt is Attempt.HELD or unsure_for >= self.step_down_seconds:
            why = (
                "another broker leads"
                if attempt is Attempt.HELD
                else f"the database has been out of reach for {unsure_for:.0f} s"
            )
            log.warning("stepping down to standby: %s", why)
            self.role = Role.STANDBY
            self.lock.release()
            self.hooks.step_down()

    def _take_over(self) -> None:
        if self._stop.wait(self.poll_seconds):  # a leader that lost the lock stops within a poll
            self.lock.release()
            return
        try:
            self.hooks.take_over()
        except Exception as exc:  # noqa: BLE001 - e.g. the database went away meanwhile: try later
            log.warning("could not take over as leader (%s); staying standby", exc)
            self.lock.release()
            return
        self.role = Role.LEADER
