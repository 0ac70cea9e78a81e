"""Per-table change counters, and the short-lived caches they invalidate.

Every committed transaction bumps the generation of each table it wrote (what
store.changes collected: its flushed rows, and what its bulk statements noted) after
the commit. A `Cached` value read at generation g is served only while its tables are
still at g and for at most `ttl` seconds: the generation makes a change by this broker
visible at once (a revoked token is refused on the very next call), the TTL bounds how
long a change made by another broker on the same store can go unseen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, overload

V = TypeVar("V")


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


MAX_ENTRIES = 10_000  # a cache this full is emptied: it holds what is in use, not history


class Cached(Generic[V]):
    """Values loaded from `tables`, by key, until one of them changes or `ttl` passes.
    A load that returns None (nothing found) is answered but not kept."""

    def __init__(self, generations: Generations, tables: tuple[str, ...], ttl: float) -> None:
        self._generations = generations
        self._tables = tables
        self._ttl = ttl
        self._values: dict[Hashable, tuple[tuple[int, ...], float, V]] = {}

    @overload
    def get(self, key: Hashable, now: float, load: Callable[[], V]) -> V: ...
    @overload
    def get(self, key: Hashable, now: float, load: Callable[[], V | None]) -> V | None: ...
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
