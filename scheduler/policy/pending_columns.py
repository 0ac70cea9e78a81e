"""The pending jobs as packed columns: read once per cycle, or kept up to date.

At 100,000 pending jobs a cycle's cost is memory, so the jobs are read once, in input order,
into packed columns by position in `Snapshot.pending` (submit time, request-shape id, group
id), and only those the cycle tries to place are read again (`queue.py`). A leader keeps the
columns up to date as jobs come and go (`QueueColumns`, carried in `Snapshot.columns`), as
Kueue and Armada keep their queues indexed. Why: docs/fairshare.md, "Performance"."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from minga.common.domain import Job
from minga.common.snapshot import Snapshot

Group = tuple[int, str, str, str]
"""(priority class, institution, `--project` name, owner): jobs of one group share a rank
(the owner is the user leaf of the account tree, `user_tree.py`)."""

Shape = tuple[int, tuple[str, ...], int, float, tuple[str, ...], tuple[tuple[str, str], ...]]
"""A request shape: (GPUs, models, min GPU memory MB, CPUs, countries, site labels), every
field a hard constraint looks at; the cycle memoizes what it learns per shape."""

_Key = TypeVar("_Key")


@dataclass(frozen=True)
class Pending:
    """The pending jobs' columns, by position in `jobs`, and the positions by group."""

    jobs: Sequence[Job]
    times: array[float]  # submit time by position
    shape_of: array[int]  # request shape id by position
    shapes: list[Shape]  # request shape by shape id, ids in order of first occurrence
    examples: list[int]  # by shape id: the first position with that shape
    groups: dict[Group, array[int]]  # each group's positions in (submit time, id) order

    @property
    def accounts(self) -> set[tuple[str, str]]:
        """The (institution, `--project` name) pairs the jobs name, for the account tree."""
        return {(inst, name) for _, inst, name, _ in self.groups}

    @property
    def owners(self) -> set[tuple[str, str, str]]:
        """The (institution, `--project` name, owner) triples the jobs name: the user leaves."""
        return {(inst, name, owner) for _, inst, name, owner in self.groups}


def pending_columns(snapshot: Snapshot) -> Pending:
    """The snapshot's columns: the ones it carries (a leader's, kept up to date) if they
    are for exactly its `pending`, else read from the jobs."""
    columns = snapshot.columns
    if isinstance(columns, Pending) and columns.jobs is snapshot.pending:
        return columns
    return read_pending(snapshot.pending)


def read_pending(pending: Sequence[Job]) -> Pending:
    """The columns, the distinct shapes, and each group's positions in (submit time, id) order."""
    return QueueColumns(pending).read(pending)


class QueueColumns:
    """The columns of a queue whose jobs come and go one at a time (`insert`, `delete`).

    Shapes and groups get ids when first seen; the ids of those no job has any more are
    dropped when the columns are read, so `read` gives what `read_pending` would."""

    def __init__(self, jobs: Sequence[Job] = (), ordered: bool = False) -> None:
        self.ordered = ordered  # the jobs always stand in (submit time, id) order
        self.reset(jobs)

    def reset(self, jobs: Sequence[Job]) -> None:
        """The columns of `jobs`, in their order, read afresh.

        Three comprehensions over the jobs, in input order, each interning what it reads
        (`dict.setdefault` hands out the next id): at 100,000 jobs that is a third faster
        than one loop that appends to several columns. Numbers go in packed arrays: the
        garbage collector walks every element of a young list, and a cycle at depth would
        otherwise make it walk millions."""
        self._shape_ids: dict[Shape, int] = {}
        self._group_ids: dict[Group, int] = {}
        shape_id, group_id = self._shape_ids.setdefault, self._group_ids.setdefault
        self._shape_of = array(
            "l",
            [
                shape_id(
                    (
                        (res := (spec := job.spec).resources).gpus,
                        res.gpu_models,
                        res.min_gpu_memory_mb,
                        res.cpus,
                        spec.countries,
                        spec.site_labels,
                    ),
                    len(self._shape_ids),
                )
                for job in jobs
            ],
        )
        self._times = array("d", [job.submitted_at for job in jobs])
        self._group_of = array(
            "l",
            [
                group_id(((spec := job.spec).priority, job.institution, spec.project, job.owner), len(self._group_ids))
                for job in jobs
            ],
        )
        self._dense = True  # ids in order of first occurrence, and all in use

    def insert(self, i: int, job: Job) -> None:
        """`job` now stands at position `i`; those from `i` on move up by one. (Its shape and
        group keys are the ones `reset` reads, which inlines them for speed.)"""
        res, spec = job.spec.resources, job.spec
        shape = (res.gpus, res.gpu_models, res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels)
        self._shape_of.insert(i, self._shape_ids.setdefault(shape, len(self._shape_ids)))
        self._times.insert(i, job.submitted_at)
        group = (spec.priority, job.institution, spec.project, job.owner)
        self._group_of.insert(i, self._group_ids.setdefault(group, len(self._group_ids)))
        self._dense = False

    def delete(self, i: int) -> None:
        """The job at position `i` left; those after it move down by one."""
        del self._shape_of[i], self._times[i], self._group_of[i]
        self._dense = False

    def __len__(self) -> int:
        return len(self._times)

    def read(self, jobs: Sequence[Job], keep: NDArray[np.bool_] | None = None) -> Pending:
        """The columns as `read_pending(jobs)` gives them, where `jobs` are this queue's jobs
        in its order, or those where the boolean mask `keep` is true."""
        times = np.frombuffer(self._times, dtype=np.float64)
        shape_of = np.frombuffer(self._shape_of, dtype=np.int64)
        group_of = np.frombuffer(self._group_of, dtype=np.int64)
        if keep is not None:
            times, shape_of, group_of = times[keep], shape_of[keep], group_of[keep]
        if len(times) != len(jobs):
            raise ValueError(f"{len(jobs)} jobs for columns of {len(times)}")
        if self._dense and keep is None:
            shape_column, shapes = array("l", self._shape_of), list(self._shape_ids)
            examples = _first_of_each(shape_column)
            group_column, groups = self._group_of, list(self._group_ids)
        else:
            shape_column, examples, shapes = _renumbered(shape_of, list(self._shape_ids))
            group_column, _, groups = _renumbered(group_of, list(self._group_ids))
        packed_times = array("d", times.tobytes())
        return Pending(
            jobs=jobs,
            times=packed_times,
            shape_of=shape_column,
            shapes=shapes,
            examples=examples,
            groups=_sorted_groups(jobs, packed_times, group_column, groups, self.ordered),
        )


def _renumbered(ids: NDArray[np.int64], keys: list[_Key]) -> tuple[array[int], list[int], list[_Key]]:
    """`ids` renumbered 0.. in order of first occurrence, leaving out ids not in use: the
    new column, the first position of each new id, and the key of each new id."""
    used, first = np.unique(ids, return_index=True)
    by_first = np.argsort(first, kind="stable")
    renumber = np.zeros(len(keys), dtype=np.int64)
    renumber[used[by_first]] = np.arange(len(used), dtype=np.int64)
    column = array("l")
    column.frombytes(renumber[ids].tobytes())
    return column, first[by_first].tolist(), [keys[k] for k in used[by_first].tolist()]


def _first_of_each(ids: array[int]) -> list[int]:
    """The position where each id first occurs. Ids were handed out in order of first
    occurrence, so those are exactly the positions where the running maximum grows."""
    if not ids:
        return []
    seen = np.maximum.accumulate(np.frombuffer(ids, dtype=np.int64))
    return np.flatnonzero(np.diff(seen, prepend=-1) > 0).tolist()


def _sorted_groups(
    jobs: Sequence[Job], times: array[float], group_of: array[int], groups: list[Group], ordered: bool
) -> dict[Group, array[int]]:
    """Each group's positions by (submit time, id). Jobs already in that order (`ordered`)
    need one stable numpy sort by group. Else one by (group, submit time), and only a
    group where two submit times are equal (an array, a bulk submit) is sorted again in
    Python by the (time, id) pair."""
    group = np.frombuffer(group_of, dtype=np.int64)
    tied: set[int] = set()
    if ordered:
        order = np.argsort(group, kind="stable")
    else:
        submitted = np.frombuffer(times, dtype=np.float64)
        order = np.lexsort((submitted, group))
        in_order, group_in_order = submitted[order], group[order]
        tie = (in_order[1:] == in_order[:-1]) & (group_in_order[1:] == group_in_order[:-1])
        tied = set(group_in_order[1:][tie].tolist())
    ends = np.cumsum(np.bincount(group, minlength=len(groups)))
    packed = order.astype(np.int64, copy=False).tobytes()

    def by_pair(pos: int) -> tuple[float, str]:
        return times[pos], jobs[pos].id

    out: dict[Group, array[int]] = {}
    start = 0
    for gid, (key, end) in enumerate(zip(groups, ends.tolist(), strict=True)):
        positions = array("l")
        positions.frombytes(packed[start * 8 : end * 8])
        if gid in tied:
            positions = array("l", sorted(positions, key=by_pair))
        out[key] = positions
        start = end
    return out
