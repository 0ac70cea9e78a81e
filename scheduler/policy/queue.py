"""The pending queue at depth: every job read in input order, then put in Fair Tree order.

At 100,000 pending jobs a cycle's cost is memory, not arithmetic. A job is a few
frozen dataclasses spread over the heap: once jobs are visited in queue order
(unrelated to the order they were built in), every field read is a cache miss. And
every object the cycle keeps alive wakes the garbage collector, which walks the
young ones and everything they hold. So the jobs are read in input order (a pass per
column), into packed columns indexed by position in `Snapshot.pending`: the submit
time, an id for the request shape (every field a hard constraint looks at, under which
the cycle memoizes what it learns about a request) and an id for the group. The queue
is then an array of positions. Only the few thousand jobs the cycle tries to place are
read again.

Order (Slurm Fair Tree, see `fairshare.py`): priority class, then the project's
fair-share factor plus `age_weight` per hour waited, then submit time, then id.
"""
from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import merge

import numpy as np

from scheduler.domain import Job
from scheduler.policy.entitlement import project_id

Group = tuple[int, str, str]
"""(priority class, institution, `--project` name): jobs of one group share a rank."""


@dataclass(frozen=True)
class Queue:
    """Pending jobs in queue order, as positions into `jobs`, and their columns."""

    jobs: Sequence[Job]          # Snapshot.pending, as given
    order: array[int]            # positions in jobs, in queue order
    runs: dict[str, list[array[int]]]  # each institution's positions in queue order, in runs
    shape_of: array[int]         # request shape id by position
    shapes: list[tuple]          # request shape by shape id
    examples: list[int]          # by shape id: the position of a job of that shape
    groups: dict[Group, array[int]]   # each group's positions in (submit time, id) order
    times: array[float]               # submit time by position


@dataclass(frozen=True)
class Pending:
    """The columns of `Queue`, read in input order, and the positions by group."""

    jobs: Sequence[Job]
    times: array[float]          # submit time by position
    shape_of: array[int]
    shapes: list[tuple]
    examples: list[int]
    groups: dict[Group, array[int]]   # each group's positions in (submit time, id) order

    @property
    def accounts(self) -> set[tuple[str, str]]:
        """The (institution, `--project` name) pairs the jobs name, for the account tree."""
        return {(inst, name) for _, inst, name in self.groups}


def read_pending(pending: Sequence[Job]) -> Pending:
    """The columns, the distinct shapes, and each group's positions in (submit time, id) order.

    Three comprehensions over the jobs, in input order, each interning what it reads
    (`dict.setdefault` hands out the next id): at 100,000 jobs that is a third faster than
    one loop that appends to several columns. Numbers go in packed arrays, here and in the
    queue: the garbage collector walks every element of a young list, and a cycle at depth
    would otherwise make it walk millions."""
    shape_ids: dict[tuple, int] = {}
    group_ids: dict[Group, int] = {}
    shape_id, group_id = shape_ids.setdefault, group_ids.setdefault
    shape_of = array("l", [shape_id(((res := (spec := job.spec).resources).gpus, res.gpu_models,
                                      res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels),
                                     len(shape_ids)) for job in pending])
    times = array("d", [job.submitted_at for job in pending])
    group_of = array("l", [group_id(((spec := job.spec).priority, job.institution, spec.project), len(group_ids))
                           for job in pending])
    return Pending(jobs=pending, times=times, shape_of=shape_of, shapes=list(shape_ids),
                   examples=_first_of_each(shape_of),
                   groups=_sorted_groups(pending, times, group_of, list(group_ids)))


def _first_of_each(ids: array[int]) -> list[int]:
    """The position where each id first occurs. Ids were handed out in order of first
    occurrence, so those are exactly the positions where the running maximum grows."""
    if not ids:
        return []
    seen = np.maximum.accumulate(np.frombuffer(ids, dtype=np.int64))
    return np.flatnonzero(np.diff(seen, prepend=-1) > 0).tolist()


def fair_queue(pending: Pending, factors: Mapping[str, float], now: float, age_weight: float) -> Queue:
    """The pending jobs in Fair Tree order; `factors` is each project's fair-share factor."""
    if age_weight:
        order, runs = _order_with_age(pending, factors, now, age_weight / 3600.0)
    else:
        order, runs = _order_by_group(pending, pending.groups, factors)
    return Queue(jobs=pending.jobs, order=order, runs=runs, shape_of=pending.shape_of,
                 shapes=pending.shapes, examples=pending.examples, groups=pending.groups,
                 times=pending.times)


def _sorted_groups(jobs: Sequence[Job], times: array[float], group_of: array[int],
                   groups: list[Group]) -> dict[Group, array[int]]:
    """Each group's positions by (submit time, id): one stable numpy sort by (group, submit
    time); only a group where two submit times are equal (an array, a bulk submit) is
    sorted again in Python by the (time, id) pair."""
    group = np.frombuffer(group_of, dtype=np.int64)
    submitted = np.frombuffer(times, dtype=np.float64)
    order = np.lexsort((submitted, group))
    ends = np.cumsum(np.bincount(group, minlength=len(groups)))
    in_order, group_in_order = submitted[order], group[order]
    tie = (in_order[1:] == in_order[:-1]) & (group_in_order[1:] == group_in_order[:-1])
    tied = set(group_in_order[1:][tie].tolist())
    packed = order.astype(np.int64, copy=False).tobytes()
    by_pair = lambda pos: (times[pos], jobs[pos].id)  # noqa: E731
    out: dict[Group, array[int]] = {}
    start = 0
    for gid, (key, end) in enumerate(zip(groups, ends.tolist())):
        positions = array("l")
        positions.frombytes(packed[start * 8:end * 8])
        if gid in tied:
            positions = array("l", sorted(positions, key=by_pair))
        out[key] = positions
        start = end
    return out


def _order_by_group(pending: Pending, groups: dict[Group, array[int]],
                    factors: Mapping[str, float]) -> tuple[array[int], dict[str, list[array[int]]]]:
    """Without age, a job's rank is its group's: concatenate the sorted groups by (priority
    class, factor), merging groups of equal rank by (submit time, id) (rare: it needs equal
    factors). An institution's runs are its groups in that order."""
    times, jobs = pending.times, pending.jobs
    by_pair = lambda pos: (times[pos], jobs[pos].id)  # noqa: E731
    ranked: dict[tuple[int, float], list[tuple[str, array[int]]]] = defaultdict(list)
    for (priority, inst, name), positions in groups.items():
        ranked[-priority, -factors.get(project_id(inst, name), 0.0)].append((inst, positions))
    order = array("l")
    runs: dict[str, list[array[int]]] = defaultdict(list)
    for rank in sorted(ranked):
        parts = ranked[rank]
        if len(parts) == 1:
            inst, positions = parts[0]
            order += positions
            runs[inst].append(positions)
            continue
        order.extend(merge(*(positions for _, positions in parts), key=by_pair))
        for inst in sorted({inst for inst, _ in parts}):
            runs[inst].append(array("l", merge(*(positions for i, positions in parts if i == inst), key=by_pair)))
    return order, runs


def _order_with_age(pending: Pending, factors: Mapping[str, float], now: float,
                    age_per_second: float) -> tuple[array[int], dict[str, list[array[int]]]]:
    """Age gives every job its own priority, so each gets its full sort key."""
    times, jobs = pending.times, pending.jobs
    keyed: dict[str, list[tuple[tuple, int]]] = defaultdict(list)   # by institution
    for (priority, inst, name), positions in pending.groups.items():
        factor = factors.get(project_id(inst, name), 0.0)
        keyed[inst] += [((-priority, -(factor + max(now - times[p], 0.0) * age_per_second), times[p], jobs[p].id), p)
                        for p in positions]
    for entries in keyed.values():
        entries.sort()
    order = array("l", (p for _, p in merge(*keyed.values())))
    return order, {inst: [array("l", (p for _, p in entries))] for inst, entries in keyed.items()}
