"""The quota view's values (`minga quota show`): per institution and GPU model, what it
owns, uses, holds and asks for; per institution, its fair share at this moment next to what
it holds; the account tree; the entitlement floor. `minga.scheduler.quota` computes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuotaRow:
    institution: str
    country: str
    gpu_model: str
    owned: int = 0
    in_use: int = 0
    held: int = 0
    pending: int = 0
    weight: float = 0.0
    entitlement_pct: float = 0.0
    usage_pct: float = 0.0
    fairshare: float = 0.0
    guarantee: int = 0
    borrowed: int = 0
    lent: int = 0


@dataclass(frozen=True)
class TreeNode:
    level: str
    id: str
    parent: str
    weight: float
    entitlement_pct: float
    usage_pct: float
    fairshare: float
    fair_share_gpus: float = 0.0  # GPUs it is owed now (`share_now.py`); 0 without demand
    held: int = 0  # GPUs its live runs hold
    demand: int = 0  # held + GPUs its pending jobs ask for


@dataclass(frozen=True)
class InstitutionQuota:
    """One institution now: its weight, entitlement, usage and factor, and in GPUs its
    guarantee, what it holds, what it asks for (held + pending) and its fair share now."""

    institution: str
    country: str
    weight: float = 0.0
    entitlement_pct: float = 0.0
    usage_pct: float = 0.0
    fairshare: float = 0.0
    guarantee: int = 0
    held: int = 0
    demand: int = 0
    fair_share_gpus: float = 0.0


@dataclass(frozen=True)
class Floor:
    """The entitlement floor in effect: the share policy, the base grant every institution
    weighs at least (under `contribution`) and the fraction of the mean weight it keeps them at."""

    share_policy: str
    base_grant: float
    base_grant_fraction: float


@dataclass(frozen=True)
class QuotaView:
    """`minga quota show`: the per-model rows, one entry per institution, the account tree
    (when asked for), the GPUs the fair shares split now, and the entitlement floor."""

    rows: list[QuotaRow]
    institutions: list[InstitutionQuota]
    tree: list[TreeNode]
    capacity: int
    floor: Floor
