"""Entitlement: how much of the federation each node of the account tree is owed.

Federation -> Country -> Institution -> Project: a node's weight over its siblings' sum,
times its parent's share, is its fraction of the whole (Slurm's normalized shares).
Institution weights are `static` (the admin's) or `contribution` (the default: a base grant
that scales with the federation, plus the decayed, model-normalized GPU-hours its sites
made available). The formulas and why: docs/fairshare.md, "The account tree and entitlement"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

from minga.common.domain import Job
from minga.common.shares import InstitutionShare, ShareSettings, model_weight
from minga.common.snapshot import Snapshot

UNKNOWN_COUNTRY = "?"
JOB_ACCOUNT = attrgetter("institution", "spec.project")  # C-level: called once per pending job


def normalized_gpus(settings: ShareSettings, model: str, gpus: float) -> float:
    return gpus * model_weight(settings, model)


def default_project(institution: str) -> str:
    """Every institution has a default project, where jobs without --project go."""
    return f"{institution}/default"


def project_id(institution: str, name: str) -> str:
    """The project id for a job's `--project` name: '<institution>/<name>'."""
    if not name:
        return default_project(institution)
    return name if "/" in name else f"{institution}/{name}"


def run_project(institution: str, project: str) -> str:
    """The project a live run is charged to (runs from before projects: the default one)."""
    return project or (default_project(institution) if institution else "")


def job_project(job: Job) -> str:
    """The project a job is charged to: '<institution>/<name>'."""
    return project_id(job.institution, job.spec.project)


def base_grant(institutions: Iterable[InstitutionShare], settings: ShareSettings) -> float:
    """The base grant in effect under ``contribution``: ``base_grant`` or, if larger, what keeps
    every institution at ``base_grant_fraction`` (f) of the mean entitlement or more. With
    weights b + c_i, GPU-less ones hold b / (b + mean c) of the mean: b = f / (1 - f) * mean c."""
    contributions = [max(i.contribution, 0.0) for i in institutions]
    fraction = min(max(settings.base_grant_fraction, 0.0), 0.99)
    scaled = fraction / (1.0 - fraction) * sum(contributions) / len(contributions) if contributions else 0.0
    return max(settings.base_grant, scaled, 0.0)


def institution_weight(inst: InstitutionShare, settings: ShareSettings, grant: float) -> float:
    """The institution's weight under the admin's share policy; `grant` is `base_grant`'s."""
    if settings.policy == "static":
        return max(inst.weight, 0.0)
    return grant + max(inst.contribution, 0.0)


def institution_weights(institutions: Iterable[InstitutionShare], settings: ShareSettings) -> dict[str, float]:
    """Every institution's weight under the admin's share policy."""
    institutions = list(institutions)
    grant = base_grant(institutions, settings)
    return {i.slug: institution_weight(i, settings, grant) for i in institutions}


@dataclass(frozen=True)
class Tree:
    """The account tree with raw weights: country -> institution -> project."""

    country_weight: dict[str, float]
    institutions: dict[str, dict[str, float]]  # country -> {institution: weight}
    projects: dict[str, dict[str, float]]  # institution -> {project id: weight}
    country_of: dict[str, str]  # institution -> country


def build_tree(snapshot: Snapshot, accounts: Iterable[tuple[str, str]] | None = None) -> Tree:
    """The tree from the snapshot, plus any institution or project only a job names.

    An unknown institution gets the base grant (or 1.0 under ``static``) in an
    unknown country, and an unknown project weight 1.0, so a job is never dropped
    because the admin has not registered its account yet. `accounts` are the pending
    jobs' (institution, `--project` name) pairs when the caller has them already.
    """
    settings = snapshot.settings
    institutions: dict[str, dict[str, float]] = defaultdict(dict)
    country_of: dict[str, str] = {}
    grant = base_grant(snapshot.institutions, settings)
    for inst in sorted(snapshot.institutions, key=lambda i: i.slug):
        institutions[inst.country][inst.slug] = institution_weight(inst, settings, grant)
        country_of[inst.slug] = inst.country
    projects: dict[str, dict[str, float]] = defaultdict(dict)
    for proj in sorted(snapshot.projects, key=lambda p: p.id):
        projects[proj.institution][proj.id] = max(proj.weight, 0.0)
    floor = 1.0 if settings.policy == "static" else grant
    if accounts is None:
        accounts = set(map(JOB_ACCOUNT, snapshot.pending))
    for slug, name in sorted(accounts):
        if slug not in country_of:
            institutions[UNKNOWN_COUNTRY][slug] = floor
            country_of[slug] = UNKNOWN_COUNTRY
        projects[slug].setdefault(project_id(slug, name), 1.0)
    for slug in country_of:
        if not projects[slug]:
            projects[slug][default_project(slug)] = 1.0
    explicit = dict(snapshot.country_weights)
    country_weight = {c: explicit.get(c, sum(members.values())) for c, members in institutions.items()}
    return Tree(
        country_weight=country_weight, institutions=dict(institutions), projects=dict(projects), country_of=country_of
    )


def fractions(weights: dict[str, float]) -> dict[str, float]:
    """Each sibling's weight over the siblings' sum; equal shares when all are zero."""
    total = sum(weights.values())
    if total <= 0:
        return {k: 1.0 / len(weights) for k in weights} if weights else {}
    return {k: w / total for k, w in weights.items()}


@dataclass(frozen=True)
class Entitlements:
    """Entitlement as a fraction of the whole federation, at every level."""

    country: dict[str, float]
    institution: dict[str, float]
    project: dict[str, float]


def entitlements(tree: Tree) -> Entitlements:
    """Normalized shares: a child's fraction of its siblings times its parent's share."""
    country = fractions(tree.country_weight)
    institution: dict[str, float] = {}
    for c, members in tree.institutions.items():
        for slug, f in fractions(members).items():
            institution[slug] = country[c] * f
    project: dict[str, float] = {}
    for slug, members in tree.projects.items():
        for pid, f in fractions(members).items():
            project[pid] = institution.get(slug, 0.0) * f
    return Entitlements(country=country, institution=institution, project=project)


def ledger_sums(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Decayed usage per account from the snapshot's (id, value) pairs, as the store computed
    them; a negative value (rounding) counts as none."""
    usage: dict[str, float] = defaultdict(float)
    for key, value in pairs:
        usage[key] += max(value, 0.0)
    return usage
