"""Leader/follower group commit, as databases do for their write-ahead log.

Callers that arrive while a commit is in flight queue up. When it ends, the oldest
of them becomes the leader: it takes every queued request, commits them all with one
`commit_batch` call (one transaction, one fsync), and hands each caller its own
outcome. No thread of its own: a quiet store commits each request at once, in the
caller's thread, and a busy one commits as many per transaction as arrived meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

# Commits a batch; one outcome per request, in order: a result, or the exception that
# caller gets. Raising instead fails every request of the batch with that exception.
CommitBatch = Callable[[Sequence[T]], Sequence["R | BaseException"]]


@dataclass(eq=False)
class _Waiter(Generic[T, R]):
    request: T
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead the next batch, not with an outcome
    outcome: R | BaseException | None = None


class GroupCommit(Generic[T, R]):
    def __init__(self, commit_batch: CommitBatch[T, R], max_batch: int = 1000) -> None:
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._leading = False
        self.batches = 0  # transactions committed (or tried), for tests and benchmarks
        self.requests = 0  # requests in them

    @property
    def queued(self) -> int:
        """Requests waiting for the next batch (the one in flight not counted)."""
        with self._lock:
            return len(self._queue)

    def submit(self, request: T) -> R:
        """Commit `request` with whatever else is queued; its outcome, or raise its error."""
        me: _Waiter[T, R] = _Waiter(request)
        with self._lock:
            self._queue.append(me)
            follow = self._leading
            self._leading = True
        if follow:
            me.done.wait()
        if not me.done.is_set() or me.lead:
            self._lead()
        if isinstance(me.outcome, BaseException):
            raise me.outcome
        return cast(R, me.outcome)  # the batch set it: not None, unless R allows None

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            outcomes: Sequence[R | BaseException] = self._commit_batch([w.request for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(outcomes)} outcomes")
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch learns of it
            outcomes = [exc] * len(batch)
        self.batches += 1
        self.requests += len(batch)
        with self._lock:
            successor = self._queue[0] if self._queue else None
            self._leading = successor is not None
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome, waiter.lead = outcome, False
            waiter.done.set()
        if successor is not None:
            successor.lead = True
            successor.done.set()
