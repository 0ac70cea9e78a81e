"""The quota view: per institution and GPU model, what it owns, uses, holds and asks for;
per institution, its fair share at this moment next to what it holds (issue 10).

Pure: computed from domain values, so the fair-share extension can grow it in place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from minga.common.domain import Job, JobState, Site
from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode
from minga.scheduler.policy import Snapshot
from minga.scheduler.policy.entitlement import Tree, base_grant, build_tree, entitlements, institution_weights
from minga.scheduler.policy.fairshare import institution_factors, project_factors, project_usage, user_factors
from minga.scheduler.policy.guarantees import quota_rows as model_quota_rows
from minga.scheduler.policy.share_now import ShareNow, pending_demand, snapshot_share_now
from minga.scheduler.policy.user_tree import build_users, held_by_user, user_entitlements, user_shares_now, user_usage

ANY_MODEL = "any"


def quota_view(
    institutions: Iterable[tuple[str, str]],
    jobs: Iterable[Job],
    snapshot: Snapshot,
    tree: bool,
    sees_user: Callable[[str], bool] = lambda _: True,
) -> QuotaView:
    """The whole quota view from the registered institutions, their live jobs and a snapshot;
    the tree shows only the user leaves `sees_user` lets the caller see."""
    rows = with_shares(quota_rows(institutions, snapshot.sites, jobs), snapshot)
    _, now = snapshot_share_now(snapshot)
    return QuotaView(
        rows,
        institution_quotas(rows, now),
        tree_nodes(snapshot, now, sees_user) if tree else [],
        now.capacity,
        entitlement_floor(snapshot),
    )


def quota_rows(institutions: Iterable[tuple[str, str]], sites: Iterable[Site], jobs: Iterable[Job]) -> list[QuotaRow]:
    """One row per (institution, model) with anything to show; institutions with nothing get one row."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for site in sites:
        for pool in site.inventory.gpus:
            counts[(site.institution, pool.model)]["owned"] += pool.total
    for job in jobs:
        gpus = job.spec.resources.gpus
        if not gpus:
            continue
        if job.state is JobState.PENDING:
            models = job.spec.resources.gpu_models
            model = models[0] if len(models) == 1 else ANY_MODEL
            counts[(job.institution, model)]["pending"] += gpus
        elif job.state.live:
            counts[(job.institution, job.gpu_model)]["held"] += gpus
            if job.state is JobState.RUNNING:
                counts[(job.institution, job.gpu_model)]["in_use"] += gpus
    rows = []
    for slug, country in sorted(institutions):
        its_models = sorted(m for (inst, m) in counts if inst == slug)
        for model in its_models or [""]:
            c = counts.get((slug, model), {})
            rows.append(
                QuotaRow(
                    slug, country, model, c.get("owned", 0), c.get("in_use", 0), c.get("held", 0), c.get("pending", 0)
                )
            )
    return rows


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def _factor(usage_share: float, entitled: float) -> float:
    """Slurm's classic fair-share factor 2^(-U/S): 1 unused, 0.5 exactly on par."""
    return 2.0 ** (-usage_share / entitled) if entitled > 0 else 0.0


def _by_institution(per_project: Mapping[str, float]) -> dict[str, float]:
    """Project usage rolled up to institutions (project ids are `<institution>/<name>`)."""
    usage: dict[str, float] = defaultdict(float)
    for pid, value in per_project.items():
        usage[pid.split("/", 1)[0]] += value
    return usage


def with_shares(rows: list[QuotaRow], snapshot: Snapshot) -> list[QuotaRow]:
    """Add the policy's view: weight, entitlement, decayed usage, fair-share factor,
    and per model the guarantee and what is borrowed and lent."""
    tree = build_tree(snapshot)
    ent = entitlements(tree).institution
    factors = institution_factors(snapshot)
    usage = _by_institution(project_usage(snapshot))
    total_usage = sum(usage.values())
    weights = institution_weights(snapshot.institutions, snapshot.settings)
    by_key = {(r.institution, r.gpu_model): r for r in rows}
    country = {r.institution: r.country for r in rows}
    for q in model_quota_rows(snapshot):
        base = (
            by_key.pop((q.institution, ""), None)
            or by_key.get((q.institution, q.model))
            or QuotaRow(q.institution, country.get(q.institution, ""), q.model)
        )
        by_key[(q.institution, q.model)] = replace(
            base, gpu_model=q.model, guarantee=q.guarantee, borrowed=q.borrowed, lent=q.lent
        )
    out = []
    for key in sorted(by_key):
        r = by_key[key]
        out.append(
            replace(
                r,
                weight=weights.get(r.institution, 0.0),
                entitlement_pct=100.0 * ent.get(r.institution, 0.0),
                usage_pct=_pct(usage.get(r.institution, 0.0), total_usage),
                fairshare=factors.get(r.institution, 0.0),
            )
        )
    return out


def institution_quotas(rows: list[QuotaRow], now: ShareNow) -> list[InstitutionQuota]:
    """One entry per institution of `rows` (`with_shares`' output): its institution-wide
    values, its guarantee summed over models, and from `now` what it holds, asks for and
    is owed at this moment."""
    demand, held = _by_institution(now.demand), _by_institution(now.held)
    out: dict[str, InstitutionQuota] = {}
    for r in rows:
        first = out.get(r.institution)
        if first is None:
            out[r.institution] = InstitutionQuota(
                r.institution,
                r.country,
                r.weight,
                r.entitlement_pct,
                r.usage_pct,
                r.fairshare,
                r.guarantee,
                round(held.get(r.institution, 0)),
                round(demand.get(r.institution, 0.0)),
                now.shares.institution.get(r.institution, 0.0),
            )
        else:
            out[r.institution] = replace(first, guarantee=first.guarantee + r.guarantee)
    return [out[slug] for slug in sorted(out)]


def entitlement_floor(snapshot: Snapshot) -> Floor:
    """The floor in effect (`entitlement.base_grant`); the base grant acts only under `contribution`."""
    settings = snapshot.settings
    return Floor(settings.policy, base_grant(snapshot.institutions, settings), settings.base_grant_fraction)


def tree_nodes(
    snapshot: Snapshot, now: ShareNow | None = None, sees_user: Callable[[str], bool] = lambda _: True
) -> list[TreeNode]:
    """Every node of the account tree with its weight, entitlement, usage and factor; with
    `now`, also what it holds, asks for and is owed at this moment. User leaves: only
    those `sees_user` passes (researchers see themselves, institution-admins their own)."""
    tree = build_tree(snapshot)
    users = _user_nodes(snapshot, tree, now, sees_user)
    ent = entitlements(tree)
    per_project = project_usage(snapshot)
    total = sum(per_project.values())
    inst_usage = _by_institution(per_project)
    country_usage: dict[str, float] = defaultdict(float)
    for slug, value in inst_usage.items():
        country_usage[tree.country_of.get(slug, "")] += value
    inst_factor, proj_factor = institution_factors(snapshot), project_factors(snapshot, tree)
    nodes = []
    for cc in sorted(tree.country_weight):
        u = _pct(country_usage.get(cc, 0.0), total)
        members = [p for slug in tree.institutions[cc] for p in tree.projects.get(slug, {})]
        nodes.append(
            TreeNode(
                "country",
                cc,
                "",
                tree.country_weight[cc],
                100 * ent.country[cc],
                u,
                _factor(u / 100, ent.country[cc]),
                *_now(now, "country", cc, members),
            )
        )
        for slug in sorted(tree.institutions[cc]):
            nodes.append(
                TreeNode(
                    "institution",
                    slug,
                    cc,
                    tree.institutions[cc][slug],
                    100 * ent.institution.get(slug, 0.0),
                    _pct(inst_usage.get(slug, 0.0), total),
                    inst_factor.get(slug, 0.0),
                    *_now(now, "institution", slug, list(tree.projects.get(slug, {}))),
                )
            )
            for pid in sorted(tree.projects.get(slug, {})):
                nodes.append(
                    TreeNode(
                        "project",
                        pid,
                        slug,
                        tree.projects[slug][pid],
                        100 * ent.project.get(pid, 0.0),
                        _pct(per_project.get(pid, 0.0), total),
                        proj_factor.get(pid, 0.0),
                        *_now(now, "project", pid, [pid]),
                    )
                )
                nodes.extend(users.get(pid, []))
    return nodes


def _user_nodes(
    snapshot: Snapshot, tree: Tree, now: ShareNow | None, sees_user: Callable[[str], bool]
) -> dict[str, list[TreeNode]]:
    """The visible user leaves of each project, by id (`user_tree.py`)."""
    users = {
        pid: {u: w for u, w in members.items() if sees_user(u)} for pid, members in build_users(snapshot, tree).items()
    }
    users = {pid: members for pid, members in users.items() if members}
    if not users:
        return {}
    everyone = build_users(snapshot, tree)
    ent = user_entitlements(everyone, entitlements(tree).project)
    factor = user_factors(snapshot, tree, everyone)
    usage = user_usage(snapshot)
    total = sum(project_usage(snapshot).values())
    held: Mapping[str, int] = {}
    demand: dict[str, float] = {}
    share: Mapping[str, float] = {}
    if now is not None:
        held = held_by_user(snapshot)
        demand = defaultdict(float, {u: float(g) for u, g in held.items()})
        for leaf, asked in pending_demand(snapshot, by_user=True).items():
            demand[leaf] += asked
        share = user_shares_now(everyone, now.shares.project, demand)
    return {
        pid: [
            TreeNode(
                "user",
                leaf,
                pid,
                members[leaf],
                100 * ent.get(leaf, 0.0),
                _pct(usage.get(leaf, 0.0), total),
                factor.get(leaf, 0.0),
                share.get(leaf, 0.0),
                held.get(leaf, 0),
                round(demand.get(leaf, 0.0)),
            )
            for leaf in sorted(members)
        ]
        for pid, members in users.items()
    }


def _now(now: ShareNow | None, level: str, key: str, projects: list[str]) -> tuple[float, int, int]:
    """A tree node's (fair share now, GPUs held, demand), its projects' sums; zeros without `now`."""
    if now is None:
        return 0.0, 0, 0
    share = getattr(now.shares, level).get(key, 0.0)
    return (share, sum(now.held.get(p, 0) for p in projects), round(sum(now.demand.get(p, 0.0) for p in projects)))
