"""`Decisions.waiting` as a cycle at queue depth builds it: one entry per pending job,
kept as columns, each `Waiting` made only when read.

100,000 frozen dataclasses kept alive would cost more to build than the rest of the
cycle, and would wake the garbage collector's full passes over the snapshot. A
`WaitingList` reads, and compares equal, like the tuple of `Waiting` it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import overload

from minga.common.domain import Job
from minga.common.snapshot import Waiting

Verdict = tuple[str, bool]  # (reason, never fits)


class WaitingList(Sequence[Waiting]):
    """The waiting jobs in queue order, by position in `Snapshot.pending` (`jobs`).

    First the jobs decided one by one: `positions[k]` waits for `reasons[k]`. Then the
    queue's tail (`queue_tail.py`): each job there waits for the verdict on its
    request shape, `verdicts[shape_of[pos]]`, so the cycle stores the positions alone
    (only the tail's shapes' verdicts are read).
    """

    __slots__ = (
        "_jobs",
        "_positions",
        "_reasons",
        "_never",
        "_tail",
        "_shape_of",
        "_verdicts",
        "_by_position",
        "_in_tail",
    )

    def __init__(
        self,
        jobs: Sequence[Job],
        positions: list[int],
        reasons: list[str],
        never_fits: list[bool],
        tail: Sequence[int] = (),
        shape_of: Sequence[int] = (),
        verdicts: Sequence[Verdict] = (),
    ) -> None:
        self._jobs, self._positions, self._reasons, self._never = jobs, positions, reasons, never_fits
        self._tail, self._shape_of, self._verdicts = tail, shape_of, verdicts
        self._by_position: dict[int, str] | None = None  # made when `reasons_at` is first asked
        self._in_tail: set[int] = set()

    def __len__(self) -> int:
        return len(self._positions) + len(self._tail)

    @overload
    def __getitem__(self, i: int) -> Waiting: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Waiting, ...]: ...

    def __getitem__(self, i: int | slice) -> Waiting | tuple[Waiting, ...]:
        if isinstance(i, slice):
            return tuple(self)[i]
        k = range(len(self))[i]  # IndexError and negative indices as a tuple has them
        if k < len(self._positions):
            return Waiting(self._jobs[self._positions[k]].id, self._reasons[k], self._never[k])
        return self._tail_entry(self._tail[k - len(self._positions)])

    def __iter__(self) -> Iterator[Waiting]:
        ids = (job.id for job in map(self._jobs.__getitem__, self._positions))
        return chain(map(Waiting, ids, self._reasons, self._never), map(self._tail_entry, self._tail))

    def _tail_entry(self, pos: int) -> Waiting:
        reason, never_fits = self._verdicts[self._shape_of[pos]]
        return Waiting(self._jobs[pos].id, reason, never_fits)

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(job id, reason) of every waiting job, in order, without making a `Waiting` each."""
        jobs, verdicts, shape_of = self._jobs, self._verdicts, self._shape_of
        decided = zip((jobs[pos].id for pos in self._positions), self._reasons, strict=True)
        return chain(decided, ((jobs[pos].id, verdicts[shape_of[pos]][0]) for pos in self._tail))

    @property
    def jobs(self) -> Sequence[Job]:
        """The jobs the positions point into (`Snapshot.pending`)."""
        return self._jobs

    def reasons_at(self, positions: Iterable[int]) -> dict[str, str]:
        """job id -> reason of each job at `positions` that waits, without a pass over them all."""
        if self._by_position is None:
            self._by_position = dict(zip(self._positions, self._reasons, strict=True))
            self._in_tail = set(self._tail)
        decided, tail, jobs = self._by_position, self._in_tail, self._jobs
        found = {}
        for pos in positions:
            reason = decided.get(pos)
            if reason is None and pos in tail:
                reason = self._verdicts[self._shape_of[pos]][0]
            if reason is not None:
                found[jobs[pos].id] = reason
        return found

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"WaitingList({list(self)!r})"
