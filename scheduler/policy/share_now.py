"""Each account's fair share of the federation at this moment, in GPUs.

The fair share is weighted max-min over current demand with guarantees as floors, at
every level of the tree (`max_min.tree_fill`): demand is what an account's live runs
hold plus what its pending jobs ask for (jobs no site could ever hold are left out), its
floor is its guarantee (`guarantees.py`), and the weights are the entitlement weights
(`entitlement.py`). Fair-share preemption aims at it (`fair_preemption.py`), the quota
view shows it next to what each institution holds, and the simulator measures against it.

Counted in GPUs, not model-normalized: at this moment a GPU held is a GPU someone else
is not holding; the model weights act over days, through decayed usage and contribution.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from minga.common.snapshot import Snapshot
from minga.scheduler.policy.entitlement import Tree, build_tree, project_id, run_project
from minga.scheduler.policy.guarantees import guarantees
from minga.scheduler.policy.max_min import TreeShares, tree_fill
from minga.scheduler.policy.never_fits import NeverFits
from minga.scheduler.policy.pending_columns import Group, Shape, pending_columns
from minga.scheduler.policy.placement import accepts_new_runs
from minga.scheduler.policy.user_tree import user_id


@dataclass(frozen=True)
class ShareNow:
    """The federation's capacity, and per account what it holds, wants and is owed now."""

    capacity: int
    held: dict[str, int]  # project -> GPUs its live runs hold
    demand: dict[str, float]  # project -> held + GPUs its pending jobs ask for
    shares: TreeShares

    def held_by_institution(self) -> dict[str, float]:
        held: dict[str, float] = defaultdict(float)
        for pid, gpus in self.held.items():
            held[pid.split("/", 1)[0]] += gpus
        return held

    def fairness_error(self) -> float:
        """The sum of the shortfalls of institutions below their fair share, as a fraction of
        capacity (Armada's fairness error): 0 when everyone holds at least its share."""
        held, share = self.held_by_institution(), self.shares.institution
        shortfall = sum(max(0.0, owed - held.get(slug, 0.0)) for slug, owed in share.items())
        return shortfall / self.capacity if self.capacity else 0.0


def capacity_now(snapshot: Snapshot) -> int:
    """GPUs that can hold runs now: every READY, connected site's pools, plus what live runs
    still hold on sites that take no new runs (cordoned, draining)."""
    ready = {s.name for s in snapshot.sites if accepts_new_runs(s)}
    total = sum(p.total for s in snapshot.sites if s.name in ready for p in s.inventory.gpus)
    return total + sum(r.gpus for r in snapshot.live_runs if r.site not in ready)


def held_by_project(snapshot: Snapshot) -> dict[str, int]:
    held: dict[str, int] = defaultdict(int)
    for run in snapshot.live_runs:
        if run.gpus:
            held[run_project(run.institution, run.project)] += run.gpus
    return held


def guarantee_floors(guarantee: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Each institution's floor: its guarantee, summed over models."""
    return {slug: float(sum(per_model.values())) for slug, per_model in guarantee.items()}


def share_now(
    snapshot: Snapshot, tree: Tree, pending: Mapping[str, float], guarantee: Mapping[str, Mapping[str, int]]
) -> ShareNow:
    """The fair shares, given the GPUs pending jobs ask for per project (placeable ones only)."""
    held = held_by_project(snapshot)
    demand: dict[str, float] = defaultdict(float)
    for pid, gpus in held.items():
        demand[pid] += gpus
    for pid, asked in pending.items():
        demand[pid] += asked
    capacity = capacity_now(snapshot)
    shares = tree_fill(tree, capacity, demand, guarantee_floors(guarantee))
    return ShareNow(capacity=capacity, held=dict(held), demand=dict(demand), shares=shares)


def column_demand(
    shapes: Sequence[Shape],
    shape_of: array[int],
    examples: Sequence[int],
    groups: Mapping[Group, array[int]],
    never_fits: Callable[[int], bool],
    by_user: bool = False,
) -> dict[str, float]:
    """GPUs asked for per project by the pending jobs some site could hold, from the queue's
    packed columns (`queue.py`): no Python step per job, which matters at 100,000 pending.
    `never_fits(pos)` says whether the job at `pos` could never run (asked once per shape);
    `by_user`: per user leaf instead (`user_tree.py`)."""
    gpus_of = np.array(
        [0 if never_fits(examples[sid]) else shape[0] for sid, shape in enumerate(shapes)], dtype=np.int64
    )
    gpus_at = gpus_of[np.frombuffer(shape_of, dtype=np.int64)] if len(shape_of) else gpus_of
    demand: dict[str, float] = defaultdict(float)
    for (_, inst, name, owner), positions in groups.items():
        pid = project_id(inst, name)
        demand[user_id(pid, owner) if by_user else pid] += float(
            gpus_at[np.frombuffer(positions, dtype=np.int64)].sum()
        )
    return demand


def pending_demand(snapshot: Snapshot, by_user: bool = False) -> dict[str, float]:
    """GPUs asked for by pending jobs that some site could hold, per project (or user leaf)."""
    never = NeverFits(snapshot.sites)
    columns = pending_columns(snapshot)
    return column_demand(
        columns.shapes,
        columns.shape_of,
        columns.examples,
        columns.groups,
        lambda pos: never.reason(snapshot.pending[pos], columns.shapes[columns.shape_of[pos]]) is not None,
        by_user,
    )


def snapshot_share_now(snapshot: Snapshot) -> tuple[Tree, ShareNow]:
    """The tree and the fair shares now, from a snapshot alone (the quota view)."""
    tree = build_tree(snapshot)
    guarantee, _ = guarantees(snapshot)
    return tree, share_now(snapshot, tree, pending_demand(snapshot), guarantee)
