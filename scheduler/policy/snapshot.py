"""The frozen input and output of one scheduling decision."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.domain import Job, Run, Site
from scheduler.lending import LendingPolicy


DEFAULT_MODEL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("H200", 1.2), ("H100", 1.0), ("A100", 0.6), ("L40S", 0.5), ("A10", 0.25),
    ("L4", 0.2), ("V100", 0.3), ("T4", 0.1),
)


@dataclass(frozen=True)
class ShareSettings:
    """The admin's fair-share policy (`minga admin policy show|set`)."""

    policy: str = "contribution"            # "contribution" or "static"
    half_life_seconds: float = 7 * 86400     # usage and contribution decay (Slurm's default)
    base_grant: float = 1.0                  # every institution's floor, in weight units
    # `contribution` only: the base grant grows so that no institution's entitlement is below
    # this fraction of the mean entitlement (issue 10's floor; 0 keeps `base_grant` alone).
    base_grant_fraction: float = 0.25
    model_weights: tuple[tuple[str, float], ...] = DEFAULT_MODEL_WEIGHTS  # unknown model: 1.0
    preemption_grace_seconds: float = 600.0  # runs younger than this are never preempted
    fair_share_preemption: bool = True       # preempt for an account below its fair share now
    preemption_threshold: float = 0.1        # ... only when it holds under (1 - this) x its share
    preemption_cap: float = 0.25             # most of the federation's GPUs freed so per cycle
    preemption_notice_seconds: float = 60.0  # SIGTERM, then this long before SIGKILL
    reservation_min_age_seconds: float = 600.0  # gangs waiting this long hold reservations first
    age_weight: float = 0.0                  # fair-share points per hour of waiting
    latency: tuple[tuple[str, str, int], ...] = ()  # (country, country, rank): lower is nearer


@dataclass(frozen=True)
class InstitutionShare:
    """One institution as the policy sees it."""

    slug: str
    country: str
    weight: float = 1.0                      # static weight as the admin set it
    contribution: float = 0.0                # decayed normalized GPU-hours its sites made available
    guarantee: tuple[tuple[str, int], ...] = ()  # explicit (model, GPUs); () = its own sites' capacity
    borrowing_limit: int | None = None       # GPUs it may use beyond its guarantee
    lending_limit: int | None = None         # GPUs of its own capacity it may lend out


@dataclass(frozen=True)
class ProjectShare:
    id: str                                   # "<institution>/<name>"
    institution: str
    weight: float = 1.0


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy may look at: every known site, every live run, every pending job,
    and the account tree with its decayed usage. With no institutions the policy falls back
    to plain submit order, so the broker works before any tree exists."""

    sites: tuple[Site, ...]
    live_runs: tuple[Run, ...]
    pending: tuple[Job, ...]
    institutions: tuple[InstitutionShare, ...] = ()
    projects: tuple[ProjectShare, ...] = ()
    usage: tuple[tuple[str, float], ...] = ()  # project id -> decayed normalized GPU-seconds at `now`
    country_weights: tuple[tuple[str, float], ...] = ()  # explicit; default: sum of its institutions
    settings: ShareSettings = ShareSettings()
    lending: tuple[tuple[str, LendingPolicy], ...] = ()   # site name -> its owner's lending policy
    array_live: tuple[tuple[str, int], ...] = ()   # each capped array with pending tasks -> its tasks holding GPUs (%K)


@dataclass(frozen=True)
class Placement:
    """Start `job_id` on `site`, taking `gpus` GPUs of `gpu_model` and `cpus` CPUs."""

    job_id: str
    site: str
    gpu_model: str
    gpus: int
    cpus: float


@dataclass(frozen=True)
class Waiting:
    """A job left pending, and the constraint that binds it."""

    job_id: str
    reason: str
    never_fits: bool = False


@dataclass(frozen=True)
class Preemption:
    """Stop `run_id` (its job goes back to PENDING) to give its GPUs to another account.

    `kind` says which rule preempted it: "fair-share" (`fair_preemption.py`), "reclaim"
    (an owner below its guarantee, `reclaim.py`) or "lending-window" (the site's lending
    window closed); `beneficiary` is the institution it makes room for, and `for_job` the
    job placed on its GPUs ("" for a closing window).
    """

    run_id: str
    job_id: str
    site: str
    reason: str
    kind: str = ""
    beneficiary: str = ""
    for_job: str = ""


@dataclass(frozen=True)
class Decisions:
    placements: tuple[Placement, ...] = ()
    waiting: Sequence[Waiting] = ()       # a tuple, or a WaitingList (`waiting_list.py`)
    preemptions: tuple[Preemption, ...] = ()
