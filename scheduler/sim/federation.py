"""Read a federation file (TOML) into the domain objects the policy sees.

`Federation.policy_snapshot()` is the account tree exactly as the engine hands it to the
policy (the steady contribution, the settings, explicit country weights), so the metrics'
weights (`entitlements`, `tree`) come from the policy's own `build_tree`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from minga.common.domain import GpuPool, Inventory, Site, SiteState
from minga.scheduler.policy import InstitutionShare, ProjectShare, ShareSettings, Snapshot
from minga.scheduler.policy.entitlement import Tree, base_grant, build_tree, entitlements
from minga.scheduler.sim import carbon as sim_carbon
from minga.scheduler.sim.carbon import SimCarbon


@dataclass(frozen=True)
class Federation:
    sites: tuple[Site, ...]
    institutions: tuple[InstitutionShare, ...]
    settings: ShareSettings
    cycle_seconds: float = 30.0
    countries: dict[str, str] = field(default_factory=dict)
    country_weights: tuple[tuple[str, float], ...] = ()  # explicit; default: sum of its institutions
    carbon: SimCarbon = field(default_factory=SimCarbon)  # the `[carbon]` table

    @property
    def projects(self) -> tuple[ProjectShare, ...]:
        return tuple(ProjectShare(default_project(i.slug), i.slug, 1.0) for i in self.institutions)

    @property
    def capacity(self) -> int:
        return sum(s.inventory.total_gpus for s in self.sites)

    def own_gpus(self) -> dict[str, dict[str, int]]:
        """institution -> model -> GPUs of its own sites."""
        out: dict[str, dict[str, int]] = {i.slug: {} for i in self.institutions}
        for s in self.sites:
            for p in s.inventory.gpus:
                d = out.setdefault(s.institution, {})
                d[p.model] = d.get(p.model, 0) + p.total
        return out

    def guarantees(self) -> dict[str, dict[str, int]]:
        """institution -> model -> guaranteed GPUs: explicit, else its own sites' capacity."""
        own = self.own_gpus()
        return {i.slug: dict(i.guarantee) if i.guarantee else own.get(i.slug, {}) for i in self.institutions}

    def weights(self) -> dict[str, float]:
        return {i.slug: i.weight for i in self.institutions}

    def steady_contribution(self) -> dict[str, float]:
        """institution -> decayed normalized GPU-seconds its sites have made available, at the
        steady state of a federation up for many half-lives: rate * half_life / ln 2."""
        hl = self.settings.half_life_seconds
        mw = dict(self.settings.model_weights)
        return {
            slug: (sum(n * mw.get(m, 1.0) for m, n in d.items()) * hl / math.log(2) if hl > 0 else 0.0)
            for slug, d in self.own_gpus().items()
        }

    def site_intensity(self) -> tuple[tuple[str, float], ...]:
        """(site, gCO2e/kWh of its country), as the broker's snapshot carries them."""
        return tuple((s.name, self.carbon.country_intensity(s.country)) for s in self.sites)

    def policy_institutions(self) -> tuple[InstitutionShare, ...]:
        """The institutions as the engine's snapshots show them: contribution at its steady
        state, in normalized GPU-hours."""
        c = self.steady_contribution()
        return tuple(replace(i, contribution=c.get(i.slug, 0.0) / 3600.0) for i in self.institutions)

    def policy_snapshot(self) -> Snapshot:
        """The account tree as the policy sees it (no runs, no jobs): what `build_tree` reads."""
        return Snapshot(
            sites=self.sites,
            live_runs=(),
            pending=(),
            institutions=self.policy_institutions(),
            projects=self.projects,
            country_weights=self.country_weights,
            settings=self.settings,
        )

    def tree(self) -> Tree:
        """The policy's account tree (`minga.scheduler.policy.entitlement.build_tree`)."""
        return build_tree(self.policy_snapshot(), accounts=())

    def entitlements(self) -> dict[str, float]:
        """The institution weights the policy uses, as the share policy defines them: `static`,
        the weights as set; `contribution`, base grant + steady contribution in GPU-hours.
        Read off the policy's own tree, so they are exactly what the policy sees."""
        tree = self.tree()
        return {slug: w for members in tree.institutions.values() for slug, w in members.items()}

    def base_grant(self) -> float:
        """The base grant in effect under `contribution` (the policy's `base_grant`)."""
        return base_grant(self.policy_institutions(), self.settings)

    def entitlement_fractions(self) -> dict[str, float]:
        """Each institution's entitlement as a fraction of the federation (down the tree)."""
        return entitlements(self.tree()).institution


def default_project(institution: str) -> str:
    return f"{institution}/default"


SETTINGS_KEYS = {
    "policy": str,
    "half_life_seconds": float,
    "base_grant": float,
    "base_grant_fraction": float,
    "preemption_grace_seconds": float,
    "age_weight": float,
    "cycle_seconds": float,
    "fair_share_preemption": bool,
    "preemption_threshold": float,
    "preemption_cap": float,
    "preemption_notice_seconds": float,
    "reservation_min_age_seconds": float,
    "model_weights": dict,
}
INSTITUTION_KEYS = {"slug", "name", "country", "weight", "guarantee", "borrowing_limit", "lending_limit"}
SITE_KEYS = {"name", "institution", "country", "model", "gpus", "memory_mb", "largest_node", "cpus", "nodes"}


def settings_from(st: Mapping[str, Any]) -> ShareSettings:
    """The `[settings]` table as `ShareSettings` (absent keys: the policy's defaults)."""
    weights = tuple(sorted((str(k), float(v)) for k, v in st.get("model_weights", {}).items()))
    known: dict[str, Any] = {
        k: (bool(v) if SETTINGS_KEYS[k] is bool else float(v) if SETTINGS_KEYS[k] is float else v)
        for k, v in st.items()
        if k in SETTINGS_KEYS and k not in ("model_weights", "cycle_seconds")
    }
    if weights:
        known["model_weights"] = weights
    return ShareSettings(**known)


def from_doc(doc: Mapping[str, Any]) -> Federation:
    """A federation from a parsed TOML document (a federation file, or a scenario's)."""
    st = doc.get("settings", {})
    institutions = tuple(
        InstitutionShare(
            slug=i["slug"],
            country=i["country"],
            weight=float(i.get("weight", 1.0)),
            guarantee=tuple(sorted((m, int(n)) for m, n in i.get("guarantee", {}).items())),
            borrowing_limit=i.get("borrowing_limit"),
            lending_limit=i.get("lending_limit"),
        )
        for i in doc.get("institutions", [])
    )
    sites = tuple(
        Site(
            name=s["name"],
            institution=s["institution"],
            country=s["country"],
            state=SiteState.READY,
            connected=True,
            inventory=Inventory(
                gpus=(
                    GpuPool(
                        model=s["model"],
                        memory_mb=int(s.get("memory_mb", 0)),
                        total=int(s["gpus"]),
                        free=int(s["gpus"]),
                        largest_node=int(s.get("largest_node", s["gpus"])),
                    ),
                ),
                cpus=float(s.get("cpus", 0.0)),
                nodes=int(s.get("nodes", 1)),
            ),
        )
        for s in doc.get("sites", [])
    )
    return Federation(
        sites=sites,
        institutions=institutions,
        settings=settings_from(st),
        cycle_seconds=float(st.get("cycle_seconds", 30.0)),
        countries=dict(doc.get("countries", {})),
        country_weights=tuple(sorted((str(c), float(w)) for c, w in doc.get("country_weights", {}).items())),
        carbon=sim_carbon.from_doc(doc),
    )


def load(path: str | Path) -> Federation:
    with open(path, "rb") as f:
        return from_doc(tomllib.load(f))
