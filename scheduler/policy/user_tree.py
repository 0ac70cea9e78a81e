"""The account tree's user leaves: Federation -> Country -> Institution -> Project -> User.

A user leaf is a job's owner under the project its job is charged to, named
'<institution>/<project>/<user>'. The users of a project are the owners with pending jobs,
live runs or decayed usage in it; each weighs 1 unless an admin set its weight. Slurm's
Fair Tree ranks users as it ranks accounts (users are associations under their account),
so the ranking at this level is the one of `fairshare.py`; the shares now split a
project's max-min share among its users the same way (`max_min.water_fill`). Why and
examples: docs/fairshare.md, "Users"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from minga.common.snapshot import Snapshot
from minga.scheduler.policy.entitlement import (
    Tree,
    fractions,
    ledger_sums,
    normalized_gpus,
    project_id,
    run_project,
)
from minga.scheduler.policy.max_min import water_fill

DEFAULT_USER_WEIGHT = 1.0

Users = dict[str, dict[str, float]]
"""Project id -> {user leaf id: weight}: the user level of the tree."""


def user_id(project: str, owner: str) -> str:
    """The user leaf id of `owner` under project id `project`: '<institution>/<project>/<user>'."""
    return f"{project}/{owner}"


def leaf_project(leaf: str) -> str:
    """The project id of a user leaf id."""
    return leaf.rpartition("/")[0]


def pending_owners(snapshot: Snapshot) -> set[tuple[str, str, str]]:
    """The (institution, `--project` name, owner) triples of the pending jobs."""
    return {(j.institution, j.spec.project, j.owner) for j in snapshot.pending}


def user_holdings(snapshot: Snapshot) -> tuple[dict[str, int], dict[str, float]]:
    """GPUs and normalized GPUs each user leaf's live runs hold, in one pass over the runs
    (every owner of a live run is a key, CPU-only runs' too, at 0)."""
    held: dict[str, int] = defaultdict(int)
    live: dict[str, float] = defaultdict(float)
    leaves: dict[tuple[str, str, str], str] = {}
    weights: dict[str, float] = {}
    for run in snapshot.live_runs:
        key = (run.institution, run.project, run.owner)
        leaf = leaves.get(key)
        if leaf is None:
            leaf = leaves[key] = user_id(run_project(run.institution, run.project), run.owner)
        held[leaf] += run.gpus
        if run.gpus:
            weight = weights.get(run.gpu_model)
            if weight is None:
                weight = weights[run.gpu_model] = normalized_gpus(snapshot.settings, run.gpu_model, 1)
            live[leaf] += run.gpus * weight
    return dict(held), dict(live)


def build_users(
    snapshot: Snapshot,
    tree: Tree,
    owners: Iterable[tuple[str, str, str]] | None = None,
    run_leaves: Iterable[str] | None = None,
) -> Users:
    """The users of every project of `tree`: owners of pending jobs (`owners`, the pending
    jobs' (institution, name, owner) triples when the caller has them), of live runs
    (`run_leaves`, their leaves, when the caller has them), and with decayed usage; weights
    as the admin set them, else 1."""
    if owners is None:
        owners = pending_owners(snapshot)
    if run_leaves is None:
        run_leaves = user_holdings(snapshot)[0]
    known = {pid for projects in tree.projects.values() for pid in projects}
    weights = dict(snapshot.user_weights)
    users: Users = defaultdict(dict)

    def add(leaf: str) -> None:
        pid = leaf_project(leaf)
        if pid in known:
            users[pid].setdefault(leaf, max(weights.get(leaf, DEFAULT_USER_WEIGHT), 0.0))

    for inst, name, owner in owners:
        add(user_id(project_id(inst, name), owner))
    for leaf in run_leaves:
        add(leaf)
    for leaf, value in snapshot.user_usage:
        if value > 0:
            add(leaf)
    return dict(users)


def user_usage(snapshot: Snapshot) -> dict[str, float]:
    """Decayed normalized GPU-seconds per user leaf, as the store computed them."""
    return ledger_sums(snapshot.user_usage)


def user_live(snapshot: Snapshot) -> dict[str, float]:
    """Normalized GPUs each user leaf holds now: Fair Tree's tie signal between equal usage."""
    return user_holdings(snapshot)[1]


def held_by_user(snapshot: Snapshot) -> dict[str, int]:
    """GPUs each user leaf's live runs hold (raw, as `share_now.held_by_project`)."""
    return {leaf: gpus for leaf, gpus in user_holdings(snapshot)[0].items() if gpus}


def user_entitlements(users: Users, project: Mapping[str, float]) -> dict[str, float]:
    """Each user's fraction of the federation: its weight's fraction among its project's
    users times the project's entitlement."""
    out: dict[str, float] = {}
    for pid, members in users.items():
        for leaf, f in fractions(members).items():
            out[leaf] = project.get(pid, 0.0) * f
    return out


def user_shares_now(users: Users, project_share: Mapping[str, float], demand: Mapping[str, float]) -> dict[str, float]:
    """A project's fair share now split among its users by weighted max-min over their
    demand (GPUs held plus asked for), the tree's last level; users without demand: absent."""
    out: dict[str, float] = {}
    for pid, owed in project_share.items():
        members = users.get(pid, {})
        wanted = {leaf: demand.get(leaf, 0.0) for leaf in members if demand.get(leaf, 0.0) > 0}
        if wanted:
            out |= water_fill(wanted, {leaf: members[leaf] for leaf in wanted}, owed)
    return out
