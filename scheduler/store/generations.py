"""Per-table change counters, and the short-lived caches they invalidate.

Every committed transaction that wrote a table through the ORM (a flushed row, or an
ORM `update`/`delete` statement) bumps that table's generation after the commit. A
`Cached` value read at generation g is served only while its tables are still at g
and for at most `ttl` seconds: the generation makes a change by this broker visible
at once (a revoked token is refused on the very next call), the TTL bounds how long
a change made by another broker on the same store can go unseen.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

V = TypeVar("V")
INFO_KEY = "minga.generations"   # Session.info: the Generations of the database it writes
_TOUCHED = "minga.touched"       # Session.info: tables written since the last commit or rollback


class Generations:
    """How many times each table was changed by commits of this process."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def of(self, tables: tuple[str, ...]) -> tuple[int, ...]:
        counts = self._counts
        return tuple(counts.get(t, 0) for t in tables)

    def bump(self, tables: set[str]) -> None:
        with self._lock:
            for table in tables:
                self._counts[table] = self._counts.get(table, 0) + 1


MAX_ENTRIES = 10_000   # a cache this full is emptied: it holds what is in use, not history


class Cached(Generic[V]):
    """Values loaded from `tables`, by key, until one of them changes or `ttl` passes.
    A load that returns None (nothing found) is answered but not kept."""

    def __init__(self, generations: Generations, tables: tuple[str, ...], ttl: float) -> None:
        self._generations = generations
        self._tables = tables
        self._ttl = ttl
        self._values: dict[Hashable, tuple[tuple[int, ...], float, V]] = {}

    def get(self, key: Hashable, now: float, load: Callable[[], V | None]) -> V | None:
        """The cached value, or `load()`'s; the generation is read before loading, so a
        change committed while loading makes the value stale at once."""
        current = self._generations.of(self._tables)
        hit = self._values.get(key)
        if hit is not None and hit[0] == current and 0 <= now - hit[1] < self._ttl:
            return hit[2]
        value = load()
        if value is not None:
            if len(self._values) >= MAX_ENTRIES:
                self._values.clear()
            self._values[key] = (current, now, value)
        return value

    def forget(self, key: Hashable) -> None:
        self._values.pop(key, None)


def _tables_of(objects: Any) -> set[str]:
    return {o.__table__.name for o in objects if hasattr(o, "__table__")}


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if INFO_KEY in session.info:
        touched = session.info.setdefault(_TOUCHED, set())
        touched |= _tables_of(session.new) | _tables_of(session.dirty) | _tables_of(session.deleted)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if INFO_KEY in state.session.info and (state.is_update or state.is_delete):
        table = getattr(state.statement, "table", None)
        if table is not None:
            state.session.info.setdefault(_TOUCHED, set()).add(table.name)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    touched = session.info.pop(_TOUCHED, None)
    if touched:
        session.info[INFO_KEY].bump(touched)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
