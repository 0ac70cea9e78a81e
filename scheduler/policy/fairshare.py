"""Queue order by hierarchical fair share: Slurm's Fair Tree (`PriorityFlags=FAIR_TREE`).

At every level of the tree, siblings are ranked by usage fraction over entitlement fraction,
lowest first (the inverse of Slurm's level fairshare S / U, defined at zero usage); the
depth-first walk ranks the projects, then each project's users (its leaves, `user_tree.py`),
and a user leaf's factor is (N - rank) / N over all user leaves. A job's
priority adds `age_weight` per hour waited (Slurm's age factor). Tie-breaks and the classic
factor of the quota view: docs/fairshare.md, "Usage and order"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from minga.common.domain import Job
from minga.common.snapshot import Snapshot
from minga.scheduler.policy.entitlement import (
    Tree,
    build_tree,
    entitlements,
    fractions,
    ledger_sums,
    normalized_gpus,
    run_project,
)
from minga.scheduler.policy.pending_columns import pending_columns
from minga.scheduler.policy.queue import Queue, fair_queue
from minga.scheduler.policy.user_tree import Users, build_users, user_live, user_usage


def project_usage(snapshot: Snapshot) -> dict[str, float]:
    """Decayed normalized GPU-seconds per project, as the store computed them."""
    return ledger_sums(snapshot.usage)


def live_usage(snapshot: Snapshot) -> dict[str, float]:
    """Normalized GPUs each project holds now: Fair Tree's tie signal between equal usage."""
    live: dict[str, float] = defaultdict(float)
    for run in snapshot.live_runs:
        if run.gpus:
            live[run_project(run.institution, run.project)] += normalized_gpus(
                snapshot.settings, run.gpu_model, run.gpus
            )
    return live


def _rolled(tree: Tree, per_project: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Roll project values up to institutions and countries."""
    inst = {slug: sum(per_project.get(p, 0.0) for p in projs) for slug, projs in tree.projects.items()}
    country = {c: sum(inst.get(s, 0.0) for s in members) for c, members in tree.institutions.items()}
    return inst, country


def _level_order(weights: Mapping[str, float], usage: Mapping[str, float], live: Mapping[str, float]) -> list[str]:
    """Siblings sorted by usage share over entitlement share, lowest first (Fair Tree)."""
    share = fractions(dict(weights))
    total_use = sum(usage.get(k, 0.0) for k in weights)
    total_live = sum(live.get(k, 0.0) for k in weights)

    def ratio(value: float, total: float, s: float) -> float:
        used = value / total if total > 0 else 0.0
        if s <= 0:
            return float("inf") if used > 0 else 1e18
        return used / s

    return sorted(
        weights,
        key=lambda k: (
            ratio(usage.get(k, 0.0), total_use, share[k]),
            ratio(live.get(k, 0.0), total_live, share[k]),
            -share[k],
            k,
        ),
    )


def fair_tree_order(snapshot: Snapshot, tree: Tree | None = None) -> list[str]:
    """Every project in Fair Tree order (depth first, siblings by level fairshare)."""
    tree = tree or build_tree(snapshot)
    usage, live = project_usage(snapshot), live_usage(snapshot)
    inst_use, country_use = _rolled(tree, usage)
    inst_live, country_live = _rolled(tree, live)
    order: list[str] = []
    for country in _level_order(tree.country_weight, country_use, country_live):
        for slug in _level_order(tree.institutions[country], inst_use, inst_live):
            order.extend(_level_order(tree.projects.get(slug, {}), usage, live))
    return order


def fair_user_order(
    snapshot: Snapshot, users: Users, projects: list[str], live: Mapping[str, float] | None = None
) -> list[str]:
    """Every user leaf in Fair Tree order: the projects in `projects`' order (`fair_tree_order`),
    each project's users ranked among themselves by the same level fairshare (usage over
    entitlement, then GPUs held now over entitlement, then weight, then id); `live`: the
    normalized GPUs each user holds (`user_tree.user_holdings`), when the caller has them."""
    usage = user_usage(snapshot)
    live = user_live(snapshot) if live is None else live
    order: list[str] = []
    for pid in projects:
        members = users.get(pid)
        if members:
            order.extend(_level_order(members, usage, live) if len(members) > 1 else members)
    return order


def rank_factors(order: list[str]) -> dict[str, float]:
    """Fair Tree's fair-share factor of each node of a depth-first `order`: (N - rank) / N, in (0, 1]."""
    n = len(order)
    return {key: (n - rank) / n for rank, key in enumerate(order)}


def project_factors(snapshot: Snapshot, tree: Tree | None = None) -> dict[str, float]:
    """Fair Tree's fair-share factor per project: (N - rank) / N, in (0, 1]."""
    return rank_factors(fair_tree_order(snapshot, tree))


def user_factors(snapshot: Snapshot, tree: Tree | None = None, users: Users | None = None) -> dict[str, float]:
    """Fair Tree's fair-share factor per user leaf, over all user leaves in depth-first order."""
    tree = tree or build_tree(snapshot)
    users = build_users(snapshot, tree) if users is None else users
    return rank_factors(fair_user_order(snapshot, users, fair_tree_order(snapshot, tree)))


def institution_factors(snapshot: Snapshot) -> dict[str, float]:
    """Per-institution fair-share factor for the quota view, Slurm's classic
    ``F = 2 ** (-U / S)``: 1.0 unused, 0.5 at exactly its entitlement, toward 0 above."""
    tree = build_tree(snapshot)
    ent = entitlements(tree).institution
    inst_use, _ = _rolled(tree, project_usage(snapshot))
    total = sum(inst_use.values())
    factors = {}
    for slug, share in ent.items():
        used = inst_use.get(slug, 0.0) / total if total > 0 else 0.0
        factors[slug] = 2.0 ** (-used / share) if share > 0 else 0.0
    return factors


def order_pending(snapshot: Snapshot, now: float, tree: Tree | None = None) -> list[Job]:
    """Pending jobs by (priority class, fair share + age, submit time, id)."""
    queue = pending_queue(snapshot, now, tree)
    return [queue.jobs[pos] for pos in queue.order]


def pending_queue(snapshot: Snapshot, now: float, tree: Tree | None = None) -> Queue:
    """The pending queue in that order, as the cycle reads it (`queue.py`)."""
    pending = pending_columns(snapshot)
    tree = tree or build_tree(snapshot, pending.accounts)
    users = build_users(snapshot, tree, pending.owners)
    return fair_queue(pending, user_factors(snapshot, tree, users), now, snapshot.settings.age_weight)
