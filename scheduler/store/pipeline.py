"""Pipelined group commit: requests queued without waiting, committed in batches by one
applier thread, in the order they were queued.

For callers that need not wait for their answer (a site stream's reports), unlike
`GroupCommit` (store/group_commit.py). A caller that must not overtake its own earlier
requests waits for its last ticket (`wait`); the queue is bounded. Why: docs/architecture.md,
"Site reports".
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from minga.scheduler.store.group_commit import CommitBatch

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Done = Callable[["R | BaseException"], None]


@dataclass(eq=False)
class _Queued(Generic[T, R]):
    request: T
    done: Done[R]
    ticket: int
    skip: Callable[[], bool] | None  # true: the caller gave up on it, commit nothing


class PipelinedCommit(Generic[T, R]):
    def __init__(
        self,
        commit_batch: CommitBatch[T, R],
        max_batch: int = 1000,
        max_queued: int = 10_000,
        idle_seconds: float = 1.0,
        name: str = "pipelined-commit",
    ) -> None:
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._idle_seconds = idle_seconds
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[_Queued[T, R]] = deque()
        self._applier: threading.Thread | None = None
        self._issued = 0  # the last ticket handed out
        self._done = 0  # every ticket up to this one has its outcome
        self.batches = 0  # transactions committed (or tried), for tests and benchmarks
        self.requests = 0  # requests in them

    @property
    def queued(self) -> int:
        """Requests waiting for the next batch (the one in flight not counted)."""
        with self._cond:
            return len(self._queue)

    def submit_async(self, request: T, done: Done[R], skip: Callable[[], bool] | None = None) -> int:
        """Queue `request`; `done(outcome)` is called in the applier thread once it is
        committed (or failed). `skip()`, asked when its batch is formed, drops it unapplied.
        Returns its ticket, for `wait`."""
        with self._cond:
            while len(self._queue) >= self._max_queued:
                self._cond.wait()
            self._issued += 1
            self._queue.append(_Queued(request, done, self._issued, skip))
            if self._applier is None:
                self._applier = threading.Thread(target=self._apply_all, name=self._name, daemon=True)
                self._applier.start()
            else:
                self._cond.notify_all()
            return self._issued

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Block until the request of `ticket`, and every one queued before it, has its outcome."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= ticket, timeout)

    def submit(self, request: T) -> R:
        """Queue `request` and wait for it: its outcome, or raise its error."""
        box: list[R | BaseException] = []
        self.wait(self.submit_async(request, box.append))
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _apply_all(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._queue, self._idle_seconds):
                    self._applier = None  # idle: a later submit starts another
                    return
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._cond.notify_all()  # room in the queue
            self._apply(batch)

    def _apply(self, batch: list[_Queued[T, R]]) -> None:
        todo = [q for q in batch if q.skip is None or not q.skip()]
        if todo:
            try:
                outcomes: Sequence[R | BaseException] = self._commit_batch([q.request for q in todo])
                if len(outcomes) != len(todo):
                    raise RuntimeError(f"a batch of {len(todo)} got {len(outcomes)} outcomes")
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch learns of it
                outcomes = [exc] * len(todo)
            for queued, outcome in zip(todo, outcomes, strict=True):
                try:
                    queued.done(outcome)
                except Exception:  # logged: one caller's callback must not stop the others'
                    log.exception("a committed request's callback failed")
        with self._cond:
            self.batches += bool(todo)
            self.requests += len(todo)
            self._done = batch[-1].ticket
            self._cond.notify_all()
