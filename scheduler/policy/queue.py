"""The pending queue at depth: every job read once, then put in Fair Tree order.

At 100,000 pending jobs a cycle's cost is memory, not arithmetic. A job is a few
frozen dataclasses spread over the heap: once jobs are visited in queue order
(unrelated to the order they were built in), every field read is a cache miss. And
every object the cycle keeps alive wakes the garbage collector, whose full passes
walk the whole snapshot. So each job is read exactly once, in input order, into
columns indexed by its position in `Snapshot.pending` (lists of ints, strings and
floats, which the collector does not track): id, institution, submit time and an
id for its request shape (`never_fits.request_shape`: every hard constraint), under
which the cycle memoizes what it learns about a request. The queue is then a list
of positions. Only the few thousand jobs the cycle tries to place are read again.

Order (Slurm Fair Tree, see `fairshare.py`): priority class, then the project's
fair-share factor plus `age_weight` per hour waited, then submit time, then id.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import merge

from scheduler.domain import Job
from scheduler.policy.entitlement import project_id

Group = tuple[int, str, str]
"""(priority class, institution, `--project` name): jobs of one group share a rank."""


@dataclass(frozen=True)
class Queue:
    """Pending jobs in queue order, as positions into `jobs`, and their columns."""

    jobs: Sequence[Job]          # Snapshot.pending, as given
    order: list[int]             # positions in jobs, in queue order
    ids: list[str]               # by position
    institutions: list[str]      # by position
    shape_of: list[int]          # request shape id by position
    shapes: list[tuple]          # request shape by shape id


def fair_queue(pending: Sequence[Job], factors: Mapping[str, float], now: float, age_weight: float) -> Queue:
    """The pending jobs in Fair Tree order; `factors` is each project's fair-share factor."""
    ids, institutions, times, shape_of, shapes, groups = _read(pending)
    if age_weight:
        order = _order_with_age(groups, factors, times, ids, now, age_weight / 3600.0)
    else:
        order = _order_by_group(groups, factors, times, ids)
    return Queue(jobs=pending, order=order, ids=ids, institutions=institutions, shape_of=shape_of, shapes=shapes)


def _read(pending: Sequence[Job]) -> tuple[list[str], list[str], list[float], list[int], list[tuple],
                                           dict[Group, list[int]]]:
    """One pass in input order: the columns, the distinct shapes, and positions by group."""
    ids, institutions, times, shape_of = [], [], [], []
    shape_ids: dict[tuple, int] = {}
    groups: dict[Group, list[int]] = defaultdict(list)
    for pos, job in enumerate(pending):
        spec = job.spec
        res = spec.resources
        shape = (res.gpus, res.gpu_models, res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels)
        sid = shape_ids.get(shape)
        if sid is None:
            sid = shape_ids[shape] = len(shape_ids)
        shape_of.append(sid)
        ids.append(job.id)
        institutions.append(job.institution)
        times.append(job.submitted_at)
        groups[spec.priority, job.institution, spec.project].append(pos)
    return ids, institutions, times, shape_of, list(shape_ids), groups


def _order_by_group(groups: dict[Group, list[int]], factors: Mapping[str, float],
                    times: list[float], ids: list[str]) -> list[int]:
    """Without age, a job's rank is its group's: sort each group by (submit time, id) and
    concatenate the groups by (priority class, factor), merging groups of equal rank."""
    key = _submit_order(times, ids)
    ranked: dict[tuple[int, float], list[list[int]]] = defaultdict(list)
    for (priority, inst, name), positions in groups.items():
        positions.sort(key=key)
        ranked[-priority, -factors.get(project_id(inst, name), 0.0)].append(positions)
    order: list[int] = []
    for rank in sorted(ranked):
        parts = ranked[rank]
        order += parts[0] if len(parts) == 1 else merge(*parts, key=key)
    return order


def _submit_order(times: list[float], ids: list[str]):
    """Sort key of a position: (submit time, id). When no two submit times are equal the
    time alone, a C-level float key that sorts several times faster than a pair."""
    if len(set(times)) == len(times):
        return times.__getitem__
    return lambda pos: (times[pos], ids[pos])


def _order_with_age(groups: dict[Group, list[int]], factors: Mapping[str, float], times: list[float],
                    ids: list[str], now: float, age_per_second: float) -> list[int]:
    """Age gives every job its own priority, so each gets its full sort key."""
    keyed: list[tuple[tuple, int]] = []
    for (priority, inst, name), positions in groups.items():
        factor = factors.get(project_id(inst, name), 0.0)
        keyed += [((-priority, -(factor + max(now - times[p], 0.0) * age_per_second), times[p], ids[p]), p)
                  for p in positions]
    keyed.sort()
    return [p for _, p in keyed]
