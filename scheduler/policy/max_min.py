"""Weighted max-min fairness: the fair share of a capacity for the current demands.

- `water_fill`: progressive filling (Bertsekas & Gallager, "Data Networks", 6.5.2):
  every account gets min(demand, level * weight), with the one level that hands out
  min(capacity, total demand).
- `water_fill_with_floors`: the same, but every account first gets its floor (its
  guarantee) up to its demand: a_i = clamp(level * w_i, min(d_i, floor_i), d_i). Floors
  that alone exceed the capacity are scaled down pro rata.
- `tree_fill`: `water_fill_with_floors` applied at every level of the account tree,
  country, then institution, then project (hierarchical max-min, as in Slurm's Fair
  Tree and Kueue's cohorts): what a country is owed is split among its institutions, what
  an institution is owed among its projects.

Pure arithmetic over plain mappings: the cycle, the quota view and the simulator's
yardstick share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minga.scheduler.policy.entitlement import Tree

_TINY = 1e-9  # a zero weight is treated as tiny: such an account gets only what nobody else wants


def water_fill(demands: Mapping[str, float], weights: Mapping[str, float], capacity: float) -> dict[str, float]:
    """Weighted max-min fair shares of `capacity` for `demands`."""
    return water_fill_with_floors(demands, weights, {}, capacity)


def water_fill_with_floors(
    demands: Mapping[str, float], weights: Mapping[str, float], floors: Mapping[str, float], capacity: float
) -> dict[str, float]:
    """Weighted max-min fair shares where each account first gets min(demand, floor)."""
    lo = {k: min(max(float(d), 0.0), max(float(floors.get(k, 0.0)), 0.0)) for k, d in demands.items()}
    target = min(max(float(capacity), 0.0), float(sum(max(d, 0.0) for d in demands.values())))
    base = sum(lo.values())
    if base >= target:
        scale = target / base if base > 0 else 0.0
        return {k: v * scale for k, v in lo.items()}
    # total(level) = sum clamp(level * w, lo, d) is piecewise linear: walk its breakpoints.
    events: list[tuple[float, float]] = []  # (level, change of slope)
    for k, d in demands.items():
        w = max(weights.get(k, 0.0), _TINY)
        if d > lo[k]:
            events.append((lo[k] / w, w))
            events.append((d / w, -w))
    events.sort()
    total, slope, level = base, 0.0, 0.0
    for at, dslope in events:
        if slope > 0 and total + slope * (at - level) >= target:
            break
        total += slope * (at - level)
        level, slope = at, slope + dslope
    level += (target - total) / slope if slope > 0 else 0.0
    return {k: min(max(float(d), 0.0), max(lo[k], level * max(weights.get(k, 0.0), _TINY))) for k, d in demands.items()}


@dataclass(frozen=True)
class TreeShares:
    """Fair shares in GPUs at every level of the tree (accounts without demand: absent)."""

    country: dict[str, float]
    institution: dict[str, float]
    project: dict[str, float]


def tree_fill(tree: Tree, capacity: float, demand: Mapping[str, float], floors: Mapping[str, float]) -> TreeShares:
    """Hierarchical weighted max-min with floors.

    `demand` is per project (GPUs held plus GPUs asked for); `floors` per institution (its
    guarantee). A country's floor is the sum of its institutions' min(demand, floor), so
    every institution's floor survives the split at the level above.
    """
    inst_demand = {slug: sum(demand.get(p, 0.0) for p in projects) for slug, projects in tree.projects.items()}
    inst_floor = {slug: min(d, floors.get(slug, 0.0)) for slug, d in inst_demand.items()}
    c_demand = {c: sum(inst_demand.get(s, 0.0) for s in members) for c, members in tree.institutions.items()}
    c_floor = {c: sum(inst_floor.get(s, 0.0) for s in members) for c, members in tree.institutions.items()}
    country = _wanted(water_fill_with_floors(c_demand, tree.country_weight, c_floor, capacity), c_demand)
    institution: dict[str, float] = {}
    for c, owed in country.items():
        members = tree.institutions[c]
        institution |= _wanted(
            water_fill_with_floors({s: inst_demand.get(s, 0.0) for s in members}, members, inst_floor, owed),
            inst_demand,
        )
    project: dict[str, float] = {}
    for slug, owed in institution.items():
        projects = tree.projects.get(slug, {})
        if len(projects) == 1:  # the usual case: its one project is owed all of it
            project |= _wanted(dict.fromkeys(projects, owed), demand)
        else:
            project |= _wanted(water_fill({p: demand.get(p, 0.0) for p in projects}, projects, owed), demand)
    return TreeShares(country=country, institution=institution, project=project)


def _wanted(shares: dict[str, float], demand: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in shares.items() if demand.get(k, 0.0) > 0}
