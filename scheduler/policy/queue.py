"""The pending queue at depth: every job read once, then put in Fair Tree order.

At 100,000 pending jobs a cycle's cost is memory, not arithmetic. A job is a few
frozen dataclasses spread over the heap: once jobs are visited in queue order
(unrelated to the order they were built in), every field read is a cache miss. And
every object the cycle keeps alive wakes the garbage collector, which walks the
young ones and everything they hold. So each job is read exactly once, in input
order, into packed columns indexed by its position in `Snapshot.pending`: its
submit time and an id for its request shape (every field a hard constraint looks
at), under which the cycle memoizes what it learns about a request. The queue is
then an array of positions. Only the few thousand jobs the cycle tries to place
are read again.

Order (Slurm Fair Tree, see `fairshare.py`): priority class, then the project's
fair-share factor plus `age_weight` per hour waited, then submit time, then id.
"""
from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import merge
from itertools import islice
from operator import eq

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
    groups: dict[Group, array[int]]

    @property
    def accounts(self) -> set[tuple[str, str]]:
        """The (institution, `--project` name) pairs the jobs name, for the account tree."""
        return {(inst, name) for _, inst, name in self.groups}


def read_pending(pending: Sequence[Job]) -> Pending:
    """One pass in input order: the columns, the distinct shapes, and positions by group.

    Numbers go in packed arrays, here and in the queue: the garbage collector walks every
    element of a young list, and a cycle at depth would otherwise make it walk millions."""
    examples: list[int] = []
    times, shape_of = array("d"), array("l")
    shape_ids: dict[tuple, int] = {}
    groups: dict[Group, array[int]] = defaultdict(lambda: array("l"))
    known, add_shape, add_time = shape_ids.get, shape_of.append, times.append   # bound once: 100k calls
    for pos, job in enumerate(pending):
        spec = job.spec
        res = spec.resources
        shape = (res.gpus, res.gpu_models, res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels)
        sid = known(shape)
        if sid is None:
            sid = shape_ids[shape] = len(shape_ids)
            examples.append(pos)
        add_shape(sid)
        add_time(job.submitted_at)
        groups[spec.priority, job.institution, spec.project].append(pos)
    return Pending(jobs=pending, times=times, shape_of=shape_of, shapes=list(shape_ids), examples=examples,
                   groups=groups)


def fair_queue(pending: Pending, factors: Mapping[str, float], now: float, age_weight: float) -> Queue:
    """The pending jobs in Fair Tree order; `factors` is each project's fair-share factor."""
    groups = _sorted_groups(pending)
    if age_weight:
        order, runs = _order_with_age(pending, factors, now, age_weight / 3600.0)
    else:
        order, runs = _order_by_group(pending, groups, factors)
    return Queue(jobs=pending.jobs, order=order, runs=runs, shape_of=pending.shape_of,
                 shapes=pending.shapes, examples=pending.examples, groups=groups,
                 times=pending.times)


def _sorted_groups(pending: Pending) -> dict[Group, array[int]]:
    """Each group's positions by (submit time, id).

    The sort key is the submit time alone, a C-level float key that sorts several times
    faster than the (time, id) pair; the pair is used only for a group where two times
    are equal.
    """
    times, jobs = pending.times, pending.jobs
    by_time = times.__getitem__
    by_pair = lambda pos: (times[pos], jobs[pos].id)  # noqa: E731
    out: dict[Group, array[int]] = {}
    for group, positions in pending.groups.items():
        ordered = sorted(positions, key=by_time)
        if _has_ties(list(map(by_time, ordered))):
            ordered.sort(key=by_pair)
        out[group] = array("l", ordered)
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


def _has_ties(ascending: list[float]) -> bool:
    """Whether two neighbours of a sorted list are equal (compared in C)."""
    return any(map(eq, ascending, islice(ascending, 1, None)))


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
