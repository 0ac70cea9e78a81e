"""The account tree's values and the admin's fair-share settings, as the policy reads
them and the store loads and saves them: neutral, so the store never imports the policy.
Also what the admin's changes to them answer (a weight, a guarantee, limits, some settings)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("H200", 1.2),
    ("H100", 1.0),
    ("A100", 0.6),
    ("L40S", 0.5),
    ("A10", 0.25),
    ("L4", 0.2),
    ("V100", 0.3),
    ("T4", 0.1),
)


@dataclass(frozen=True)
class ShareSettings:
    """The admin's fair-share policy (`minga admin policy show|set`)."""

    policy: str = "contribution"  # "contribution" or "static"
    half_life_seconds: float = 7 * 86400  # usage and contribution decay (Slurm's default)
    base_grant: float = 1.0  # every institution's floor, in weight units
    # `contribution` only: the base grant grows so that no institution's entitlement is below
    # this fraction of the mean entitlement (issue 10's floor; 0 keeps `base_grant` alone).
    base_grant_fraction: float = 0.25
    model_weights: tuple[tuple[str, float], ...] = DEFAULT_MODEL_WEIGHTS  # unknown model: 1.0
    preemption_grace_seconds: float = 600.0  # runs younger than this are never preempted
    fair_share_preemption: bool = True  # preempt for an account below its fair share now
    preemption_threshold: float = 0.1  # ... only when it holds under (1 - this) x its share
    preemption_cap: float = 0.25  # most of the federation's GPUs freed so per cycle
    preemption_notice_seconds: float = 60.0  # SIGTERM, then this long before SIGKILL
    reservation_min_age_seconds: float = 600.0  # gangs waiting this long hold reservations first
    age_weight: float = 0.0  # fair-share points per hour of waiting
    latency: tuple[tuple[str, str, int], ...] = ()  # (country, country, rank): lower is nearer
    low_carbon_default: bool = False  # a job that does not say gets low-carbon placement (docs/carbon.md)


@dataclass(frozen=True)
class PartialSettings:
    """Fair-share settings of which only those `given` (ShareSettings' field names) count:
    `minga admin policy set` changes those alone. A broker answers with all of them, except
    that one predating issue 10 leaves out its six (`OPTIONAL_SETTINGS`)."""

    settings: ShareSettings
    given: frozenset[str]


# The settings issue 10 added: a Policy message may leave each one out (`optional` in admin.proto).
OPTIONAL_SETTINGS = (
    "fair_share_preemption",
    "preemption_threshold",
    "preemption_cap",
    "preemption_notice_seconds",
    "base_grant_fraction",
    "reservation_min_age_seconds",
    "low_carbon_default",  # issue 16
)


@dataclass(frozen=True)
class InstitutionShare:
    """One institution as the policy sees it."""

    slug: str
    country: str
    weight: float = 1.0  # static weight as the admin set it
    contribution: float = 0.0  # decayed normalized GPU-hours its sites made available
    guarantee: tuple[tuple[str, int], ...] = ()  # explicit (model, GPUs); () = its own sites' capacity
    borrowing_limit: int | None = None  # GPUs it may use beyond its guarantee
    lending_limit: int | None = None  # GPUs of its own capacity it may lend out


@dataclass(frozen=True)
class ProjectShare:
    id: str  # "<institution>/<name>"
    institution: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.id.partition("/")[2]


@dataclass(frozen=True)
class NodeWeight:
    """The weight of one node of the account tree (`minga admin weight set`)."""

    kind: str  # "country", "institution" or "project"
    id: str  # "CL", "uchile" or "uchile/default"
    weight: float


@dataclass(frozen=True)
class Guarantee:
    """GPUs of one model guaranteed to an institution (`minga admin guarantee set`); 0: none."""

    institution: str
    gpu_model: str
    gpus: int


@dataclass(frozen=True)
class InstitutionLimits:
    """An institution's borrowing and lending limits in GPUs; None: unlimited (Kueue's
    borrowingLimit / lendingLimit left unset)."""

    institution: str
    borrowing_limit: int | None
    lending_limit: int | None


def model_weight(settings: ShareSettings, model: str) -> float:
    """The admin's weight for `model`; 1.0 when the table does not name it."""
    for name, weight in settings.model_weights:
        if name == model:
            return weight
    return 1.0
