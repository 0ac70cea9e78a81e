"""The pending queue in Fair Tree order, as positions into the pending jobs' columns.

The jobs are read into packed columns first (`pending_columns.py`, which says why); the
queue is then an array of positions, and only the few thousand jobs the cycle tries to
place are read again.

Order (Slurm Fair Tree, see `fairshare.py`): priority class, then the user leaf's
fair-share factor plus `age_weight` per hour waited, then submit time, then id.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import merge

from minga.common.domain import Job
from minga.scheduler.policy.entitlement import project_id
from minga.scheduler.policy.pending_columns import Group, Pending, Shape
from minga.scheduler.policy.user_tree import user_id


@dataclass(frozen=True)
class Queue:
    """Pending jobs in queue order, as positions into `jobs`, and their columns."""

    jobs: Sequence[Job]  # Snapshot.pending, as given
    order: array[int]  # positions in jobs, in queue order
    runs: dict[str, list[array[int]]]  # each institution's positions in queue order, in runs
    shape_of: array[int]  # request shape id by position
    shapes: list[Shape]  # request shape by shape id
    examples: list[int]  # by shape id: the position of a job of that shape
    groups: dict[Group, array[int]]  # each group's positions in (submit time, id) order
    times: array[float]  # submit time by position


def fair_queue(pending: Pending, factors: Mapping[str, float], now: float, age_weight: float) -> Queue:
    """The pending jobs in Fair Tree order; `factors` is each user leaf's fair-share factor."""
    if age_weight:
        order, runs = _order_with_age(pending, factors, now, age_weight / 3600.0)
    else:
        order, runs = _order_by_group(pending, pending.groups, factors)
    return Queue(
        jobs=pending.jobs,
        order=order,
        runs=runs,
        shape_of=pending.shape_of,
        shapes=pending.shapes,
        examples=pending.examples,
        groups=pending.groups,
        times=pending.times,
    )


def _order_by_group(
    pending: Pending, groups: dict[Group, array[int]], factors: Mapping[str, float]
) -> tuple[array[int], dict[str, list[array[int]]]]:
    """Without age, a job's rank is its group's: concatenate the sorted groups by (priority
    class, factor), merging groups of equal rank by (submit time, id) (rare: it needs equal
    factors). An institution's runs are its groups in that order."""
    times, jobs = pending.times, pending.jobs

    def by_pair(pos: int) -> tuple[float, str]:
        return times[pos], jobs[pos].id

    ranked: dict[tuple[int, float], list[tuple[str, array[int]]]] = defaultdict(list)
    for (priority, inst, name, owner), positions in groups.items():
        ranked[-priority, -factors.get(user_id(project_id(inst, name), owner), 0.0)].append((inst, positions))
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


def _order_with_age(
    pending: Pending, factors: Mapping[str, float], now: float, age_per_second: float
) -> tuple[array[int], dict[str, list[array[int]]]]:
    """Age gives every job its own priority, so each gets its full sort key."""
    times, jobs = pending.times, pending.jobs
    keyed: dict[str, list[tuple[tuple[int, float, float, str], int]]] = defaultdict(list)  # by institution
    for (priority, inst, name, owner), positions in pending.groups.items():
        factor = factors.get(user_id(project_id(inst, name), owner), 0.0)
        keyed[inst] += [
            ((-priority, -(factor + max(now - times[p], 0.0) * age_per_second), times[p], jobs[p].id), p)
            for p in positions
        ]
    for entries in keyed.values():
        entries.sort()
    order = array("l", (p for _, p in merge(*keyed.values())))
    return order, {inst: [array("l", (p for _, p in entries))] for inst, entries in keyed.items()}
