"""Read a federation file (TOML) into the domain objects the policy sees."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from scheduler.domain import GpuPool, Inventory, Site, SiteState
from scheduler.policy import InstitutionShare, ProjectShare, ShareSettings
from scheduler.policy.entitlement import institution_weights


@dataclass(frozen=True)
class Federation:
    sites: tuple[Site, ...]
    institutions: tuple[InstitutionShare, ...]
    settings: ShareSettings
    cycle_seconds: float = 30.0
    countries: dict[str, str] = field(default_factory=dict)

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
        return {slug: (sum(n * mw.get(m, 1.0) for m, n in d.items()) * hl / math.log(2) if hl > 0 else 0.0)
                for slug, d in self.own_gpus().items()}

    def entitlements(self) -> dict[str, float]:
        """The weights the fairness metrics use, as the share policy defines them: `static`,
        the weights as set; `contribution`, base grant + steady contribution in GPU-hours."""
        if self.settings.policy == "static":
            return self.weights()
        c = self.steady_contribution()
        return institution_weights((replace(i, contribution=c.get(i.slug, 0.0) / 3600.0) for i in self.institutions),
                                   self.settings)


def default_project(institution: str) -> str:
    return f"{institution}/default"


def load(path: str | Path) -> Federation:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    st = doc.get("settings", {})
    weights = tuple(sorted((str(k), float(v)) for k, v in st.get("model_weights", {}).items()))
    settings = ShareSettings(
        policy=st.get("policy", "contribution"),
        half_life_seconds=float(st.get("half_life_seconds", 7 * 86400)),
        base_grant=float(st.get("base_grant", 1.0)),
        preemption_grace_seconds=float(st.get("preemption_grace_seconds", 600.0)),
        age_weight=float(st.get("age_weight", 0.0)),
        **({"model_weights": weights} if weights else {}),
    )
    institutions = tuple(
        InstitutionShare(slug=i["slug"], country=i["country"], weight=float(i.get("weight", 1.0)),
                         guarantee=tuple(sorted((m, int(n)) for m, n in i.get("guarantee", {}).items())),
                         borrowing_limit=i.get("borrowing_limit"), lending_limit=i.get("lending_limit"))
        for i in doc.get("institutions", []))
    sites = tuple(
        Site(name=s["name"], institution=s["institution"], country=s["country"], state=SiteState.READY,
             connected=True,
             inventory=Inventory(gpus=(GpuPool(model=s["model"], memory_mb=int(s.get("memory_mb", 0)),
                                               total=int(s["gpus"]), free=int(s["gpus"]),
                                               largest_node=int(s.get("largest_node", s["gpus"]))),),
                                 cpus=float(s.get("cpus", 0.0)), nodes=int(s.get("nodes", 1))))
        for s in doc.get("sites", []))
    return Federation(sites=sites, institutions=institutions, settings=settings,
                      cycle_seconds=float(st.get("cycle_seconds", 30.0)),
                      countries=dict(doc.get("countries", {})))
