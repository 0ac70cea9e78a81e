"""Admin calls on the fair-share tree: projects, weights, guarantees, limits, policy."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from minga.common.domain import InvalidArgument
from minga.common.usage import ShareHistory, UsageReport
from minga.scheduler.core import Core
from minga.scheduler.policy import ProjectShare, ShareSettings, Snapshot
from minga.scheduler.policy.guarantees import guarantees
from minga.scheduler.store.reports import GROUPINGS
from minga.scheduler.validation import check_account_id, check_country, check_slug, check_weight

SHARE_POLICIES = ("contribution", "static")
MAX_NOTICE_SECONDS = 3600
MAX_BASE_GRANT_FRACTION = 0.9
MAX_RESERVATION_MIN_AGE_SECONDS = 7 * 86400
MAX_HISTORY_SECONDS = 31 * 86400  # the share history's longest window
MAX_HISTORY_BUCKETS = 500  # ... and most points: a chart's width in pixels, about


def add_project(core: Core, institution: str, name: str, weight: float) -> ProjectShare:
    check_slug("project", name)
    return core.store.shares.add_project(institution, name, check_weight(weight or 1.0), core.clock.now())


def list_projects(core: Core) -> list[ProjectShare]:
    return core.store.shares.list_projects()


def set_weight(core: Core, kind: str, key: str, weight: float) -> tuple[str, str, float]:
    if kind == "country":
        key = check_country("id", key)
    elif kind == "user":
        key = check_account_id("user", key)
    elif kind not in ("institution", "project"):
        raise InvalidArgument("kind must be country, institution, project or user")
    core.store.shares.set_weight(kind, key, check_weight(weight))
    core.cycle.trigger()
    return kind, key, weight


def get_policy(core: Core) -> ShareSettings:
    return core.store.shares.settings()


def set_policy(core: Core, update: ShareSettings, given: set[str]) -> ShareSettings:
    """Change only the fields in `given`, each checked."""
    changes: dict[str, object] = {}
    if "policy" in given:
        if update.policy not in SHARE_POLICIES:
            raise InvalidArgument(f"share policy must be one of {', '.join(SHARE_POLICIES)}")
        changes["policy"] = update.policy
    for name in ("half_life_seconds", "base_grant", "preemption_grace_seconds", "age_weight"):
        if name in given:
            value = getattr(update, name)
            if not math.isfinite(value) or value < 0 or (name == "half_life_seconds" and value == 0):
                raise InvalidArgument(f"{name} must be {'positive' if name == 'half_life_seconds' else '0 or more'}")
            changes[name] = value
    changes.update(_preemption_changes(update, given))
    if "model_weights" in given:
        current = dict(core.store.shares.settings().model_weights)
        for model, weight in update.model_weights:
            if not model or weight <= 0:
                raise InvalidArgument(f"model weight for {model!r} must be positive")
            current[model] = weight
        changes["model_weights"] = tuple(sorted(current.items()))
    settings = core.store.shares.update_settings(**changes)
    core.cycle.trigger()
    return settings


def _preemption_changes(update: ShareSettings, given: set[str]) -> dict[str, object]:
    """Issue 10's settings, each checked: fair-share preemption on/off, its threshold, its
    rate cap, the notice a preempted run gets, the entitlement floor's fraction, and how long
    a gang waits before it holds a reservation first (Slurm's bf_min_age_reserve)."""
    changes: dict[str, object] = {}
    if "fair_share_preemption" in given:
        changes["fair_share_preemption"] = bool(update.fair_share_preemption)
    if "low_carbon_default" in given:
        changes["low_carbon_default"] = bool(update.low_carbon_default)
    bounds: dict[str, tuple[Callable[[float], bool], str]] = {  # name: (accepts the value, what it must be)
        "preemption_threshold": (lambda v: 0 <= v < 1, "at least 0 and below 1 (e.g. 0.1)"),
        "preemption_cap": (lambda v: 0 < v <= 1, "above 0 and at most 1 (e.g. 0.25)"),
        "preemption_notice_seconds": (
            lambda v: 1 <= v <= MAX_NOTICE_SECONDS and v == int(v),
            f"whole seconds from 1 to {MAX_NOTICE_SECONDS} (e.g. 60)",
        ),
        "base_grant_fraction": (
            lambda v: 0 <= v <= MAX_BASE_GRANT_FRACTION,
            f"from 0 to {MAX_BASE_GRANT_FRACTION:g} (e.g. 0.25)",
        ),
        "reservation_min_age_seconds": (
            lambda v: 0 <= v <= MAX_RESERVATION_MIN_AGE_SECONDS and v == int(v),
            f"whole seconds from 0 to {MAX_RESERVATION_MIN_AGE_SECONDS} (7 days; e.g. 600)",
        ),
    }
    for name, (ok, must) in bounds.items():
        if name in given:
            value = float(getattr(update, name))
            if not (math.isfinite(value) and ok(value)):
                raise InvalidArgument(f"{name} must be {must}; got {value:g}")
            changes[name] = value
    return changes


def set_guarantee(core: Core, institution: str, model: str, gpus: int) -> None:
    """Explicit guarantees must fit in what the federation has of that model once owners
    keep their own capacity; the policy's own rule (`guarantees`) decides, so what is
    accepted here is what the scheduler will honour."""
    if gpus < 0:
        raise InvalidArgument("gpus must be 0 or more")
    if not model:
        raise InvalidArgument("gpu_model is empty")
    snapshot = core.store.runs.load_snapshot(core.clock.now())
    have = sum(p.total for s in snapshot.sites for p in s.inventory.gpus if p.model == model)
    if gpus > have:
        raise InvalidArgument(f"the federation has {have} {model} GPUs; cannot guarantee {gpus}")
    trial = _with_guarantee(snapshot, institution, model, gpus)
    _, notes = guarantees(trial)
    capped = [n for n in notes if f"explicit {model} " in n]
    if capped:
        raise InvalidArgument(f"cannot guarantee {gpus} {model} to {institution}: {capped[0]}")
    core.store.shares.set_guarantee(institution, model, gpus)
    core.cycle.trigger()


def _with_guarantee(snapshot: Snapshot, institution: str, model: str, gpus: int) -> Snapshot:
    institutions = []
    for inst in snapshot.institutions:
        if inst.slug == institution:
            kept = tuple((m, n) for m, n in inst.guarantee if m != model)
            inst = replace(inst, guarantee=kept + (((model, gpus),) if gpus else ()))
        institutions.append(inst)
    return replace(snapshot, institutions=tuple(institutions))


def set_limits(core: Core, institution: str, borrowing: int, lending: int) -> tuple[int | None, int | None]:
    """-1 means unlimited (Kueue's borrowingLimit/lendingLimit left unset)."""
    if borrowing < -1 or lending < -1:
        raise InvalidArgument("limits are GPUs (0 or more), or -1 for unlimited")
    limits = (None if borrowing == -1 else borrowing, None if lending == -1 else lending)
    core.store.shares.set_limits(institution, *limits)
    core.cycle.trigger()
    return limits


def usage_report(core: Core, since_seconds: float, by: str) -> UsageReport:
    """The reciprocity report over the last `since_seconds`, one line per country,
    institution or project (`by`)."""
    if by not in GROUPINGS:
        raise InvalidArgument(f"by must be one of {', '.join(GROUPINGS)}")
    if not 0 < since_seconds <= 10 * 365 * 86400:
        raise InvalidArgument("since must be a positive duration of at most 10 years")
    until = core.clock.now()
    lines = core.store.reports.usage(until - since_seconds, until, by)
    return UsageReport(until - since_seconds, until, by, tuple(lines))


def share_history(core: Core, since_seconds: float = 86400, buckets: int = 48) -> ShareHistory:
    """Each country's mean GPUs held, and the federation's GPUs up, in `buckets` equal
    buckets over the last `since_seconds` (the dashboard's fair-share chart)."""
    if isinstance(since_seconds, bool) or not (
        isinstance(since_seconds, int | float) and math.isfinite(since_seconds) and since_seconds > 0
    ):
        raise InvalidArgument(f"since must be a positive duration in seconds; got {since_seconds!r}")
    if since_seconds > MAX_HISTORY_SECONDS:
        raise InvalidArgument(f"since must be at most 31 days ({MAX_HISTORY_SECONDS} seconds); got {since_seconds:g}")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_HISTORY_BUCKETS:
        raise InvalidArgument(f"buckets must be a whole number from 1 to {MAX_HISTORY_BUCKETS}; got {buckets!r}")
    until = core.clock.now()
    return core.store.reports.share_history(until - since_seconds, until, buckets)
