"""One charging step of the usage and contribution ledgers, computed from memory.

Pure: given the runs charged usage, the connected sites and the ledgers as last
charged, it says what every ledger, run and site holds after charging up to `now`;
the store then writes all of it in a few batched statements (`store.ledger.write_charges`).

The arithmetic is Slurm's (PriorityDecayHalfLife): a ledger holds a decayed value and
the time it is valid at; a charge first decays the old value to `now`, then adds the
normalized GPU-seconds since the run (or site) was last charged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from minga.common.domain import Run, SiteState
from minga.common.shares import InstitutionShare, ShareSettings, model_weight


@dataclass(frozen=True)
class Ledger:
    """A decayed ledger value (usage of a project, contribution of an institution) as of a time."""

    value: float
    as_of: float


@dataclass(frozen=True)
class Uptime:
    """A site's newest uptime segment (store.ledger): charging extends it or opens one."""

    id: int
    end: float
    gpus: int
    normalized_gpus: float


def user_leaf(project: str, owner: str) -> str:
    """The user-usage ledger's key of `owner` under project id `project` (the policy's user leaf id)."""
    return f"{project}/{owner}"


def decayed(value: float, as_of: float, now: float, half_life: float) -> float:
    """`value` measured at `as_of`, decayed to `now`."""
    if half_life <= 0 or now <= as_of:
        return value
    return value * math.pow(0.5, (now - as_of) / half_life)


def decayed_ledgers(ledgers: Mapping[str, Ledger], now: float, half_life: float) -> tuple[tuple[str, float], ...]:
    """Every ledger's value decayed to `now`, by key (the per-user usage of the snapshot)."""
    return tuple((k, decayed(v.value, v.as_of, now, half_life)) for k, v in sorted(ledgers.items()))


def shares_at(
    institutions: Iterable[InstitutionShare],
    contributions: Mapping[str, Ledger],
    usage: Mapping[str, Ledger],
    now: float,
    half_life: float,
) -> tuple[tuple[InstitutionShare, ...], tuple[tuple[str, float], ...]]:
    """What the policy reads of the ledgers at `now`: each institution with its contribution
    (GPU-hours) and each project's usage (GPU-seconds, by project id), decayed to `now`."""
    made = {i: decayed(v.value, v.as_of, now, half_life) / 3600.0 for i, v in contributions.items()}
    return (
        tuple(replace(i, contribution=made.get(i.slug, 0.0)) for i in institutions),
        tuple((p, decayed(v.value, v.as_of, now, half_life)) for p, v in sorted(usage.items())),
    )


@dataclass(frozen=True)
class SiteCharge:
    """What charging one connected site's contribution starts from."""

    name: str
    institution: str
    country: str
    serving: bool  # its own health is READY (a cordoned site still serves its runs)
    gpus: int  # raw GPUs it reports
    normalized_gpus: float  # those GPUs times their model weights
    since: float  # contribution charged up to here (0: never)
    uptime: Uptime | None  # its newest uptime segment


@dataclass(frozen=True)
class NewUptime:
    site: str
    institution: str
    country: str
    start: float
    end: float
    gpus: int
    normalized_gpus: float


@dataclass
class ChargeBatch:
    """Everything one charging step writes."""

    now: float
    runs: list[Run] = field(default_factory=list)  # with charged_until = now
    usage: dict[str, Ledger] = field(default_factory=dict)  # by project id
    user_usage: dict[str, Ledger] = field(default_factory=dict)  # by user leaf '<institution>/<project>/<user>'
    contributions: dict[str, Ledger] = field(default_factory=dict)
    sites: list[str] = field(default_factory=list)  # their contribution is charged up to now
    extended: dict[str, Uptime] = field(default_factory=dict)  # site -> its newest segment, now ending at now
    opened: list[NewUptime] = field(default_factory=list)


def site_charge(
    name: str,
    institution: str,
    country: str,
    health: SiteState,
    pools: Iterable[tuple[str, int]],
    since: float,
    uptime: Uptime | None,
    settings: ShareSettings,
) -> SiteCharge:
    """A connected site as `charge` needs it; `pools` are its (model, GPUs)."""
    pools = tuple(pools)
    return SiteCharge(
        name,
        institution,
        country,
        health is SiteState.READY,
        sum(n for _, n in pools),
        sum(n * model_weight(settings, m) for m, n in pools),
        since,
        uptime,
    )


def charge(
    now: float,
    settings: ShareSettings,
    running: Iterable[Run],
    sites: Iterable[SiteCharge],
    usage: dict[str, Ledger],
    contributions: dict[str, Ledger],
    user_usage: dict[str, Ledger] | None = None,
) -> ChargeBatch:
    """Charge every running run's usage (to its project and to its owner's user leaf there)
    and every serving site's contribution up to `now`. Decay is linear, so a project's
    usage stays the sum of its users' (runs from before owners charge the leaf '<project>/')."""
    hl = settings.half_life_seconds
    batch = ChargeBatch(now)
    used: dict[str, float] = {}
    by_user: dict[str, float] = {}
    for run in running:
        if not run.charged_until or now <= run.charged_until or not run.gpus:
            continue
        amount = run.gpus * model_weight(settings, run.gpu_model) * (now - run.charged_until)
        used[run.project] = used.get(run.project, 0.0) + amount
        leaf = user_leaf(run.project, run.owner)
        by_user[leaf] = by_user.get(leaf, 0.0) + amount
        batch.runs.append(replace(run, charged_until=now))
    batch.usage = _added(usage, used, now, hl)
    batch.user_usage = _added(user_usage or {}, by_user, now, hl)
    made: dict[str, float] = {}
    for site in sites:
        since = site.since or now
        batch.sites.append(site.name)
        if not site.serving or now <= since:
            continue
        made[site.institution] = made.get(site.institution, 0.0) + site.normalized_gpus * (now - since)
        last = site.uptime
        if (
            last is not None
            and last.end == since
            and last.gpus == site.gpus
            and last.normalized_gpus == site.normalized_gpus
        ):
            batch.extended[site.name] = replace(last, end=now)
        else:
            batch.opened.append(
                NewUptime(site.name, site.institution, site.country, since, now, site.gpus, site.normalized_gpus)
            )
    batch.contributions = _added(contributions, made, now, hl)
    return batch


def _added(ledgers: dict[str, Ledger], amounts: dict[str, float], now: float, half_life: float) -> dict[str, Ledger]:
    """The ledgers that got an amount, decayed to `now` and the amount added."""
    out = {}
    for key, amount in amounts.items():
        old = ledgers.get(key)
        value = decayed(old.value, old.as_of, now, half_life) if old is not None else 0.0
        out[key] = Ledger(value + amount, now)
    return out
