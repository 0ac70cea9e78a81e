"""Placement: which site and GPU pool can hold a job, and which fits best.

Hard constraints: all GPUs of a job come from one pool (one model) of one site,
with an allowed model, enough memory per GPU, in an allowed country, on a site
that carries every label the job asks for and is READY and connected. Among the pools that fit, best fit wins: the one
that leaves the fewest GPUs idle, so large holes stay free for large jobs
(the classic best-fit bin-packing rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from minga.common.domain import GpuPool, Job, Resources, Run, Site, SiteState

PoolKey = tuple[str, str]  # (site name, gpu model)


@dataclass(frozen=True)
class Capacity:
    """Free GPUs per (site, model) and free CPUs per site, after live runs."""

    gpus: Mapping[PoolKey, int]
    cpus: Mapping[str, float]


def accepts_new_runs(site: Site) -> bool:
    return site.connected and site.state is SiteState.READY


def free_capacity(sites: Iterable[Site], live_runs: Iterable[Run]) -> Capacity:
    """Capacity as the inventory's totals minus what live runs hold.

    Totals, not Ray's own free counts, are the base: minga's runs are the ones
    that use the GPUs, and counting them from the store keeps a GPU from being
    promised twice while Ray has not yet seen a just-leased run.
    """
    gpus: dict[PoolKey, int] = {}
    cpus: dict[str, float] = {}
    for site in sites:
        cpus[site.name] = site.inventory.cpus
        for pool in site.inventory.gpus:
            gpus[(site.name, pool.model)] = pool.total
    for run in live_runs:
        if run.gpus:
            key = (run.site, run.gpu_model)
            gpus[key] = gpus.get(key, 0) - run.gpus
        cpus[run.site] = cpus.get(run.site, 0.0) - run.cpus
    return Capacity(gpus=gpus, cpus=cpus)


def in_allowed_country(job: Job, site: Site) -> bool:
    return not job.spec.countries or site.country in job.spec.countries


def has_labels(job: Job, site: Site) -> bool:
    """Hard label constraint: the site carries every (key, value) the job asks for."""
    return not job.spec.site_labels or set(job.spec.site_labels) <= set(site.labels)


def pool_matches(res: Resources, pool: GpuPool) -> bool:
    """Model and memory constraints, ignoring how many GPUs are free."""
    if res.gpu_models and pool.model not in res.gpu_models:
        return False
    return pool.memory_mb >= res.min_gpu_memory_mb


def pool_can_ever_hold(res: Resources, pool: GpuPool) -> bool:
    """The pool is big enough if it were empty; the entrypoint runs on one node."""
    return pool_matches(res, pool) and min(pool.total, pool.largest_node or pool.total) >= res.gpus


@dataclass(frozen=True)
class Choice:
    site: str
    gpu_model: str


def best_fit(
    job: Job, sites: Iterable[Site], capacity: Capacity, intensity: Mapping[str, float] | None = None
) -> Choice | None:
    """The fitting pool that leaves the least idle capacity; ties broken by name. For a
    low-carbon job keeping idle pools whole, then the site's grid `intensity`, rank first
    (`low_carbon.py`)."""
    res = job.spec.resources
    green = intensity if job.spec.low_carbon and intensity is not None else {}
    best: tuple[tuple[bool, float, float, float, str, str], Choice] | None = None
    for site in sites:
        if not accepts_new_runs(site) or not in_allowed_country(job, site) or not has_labels(job, site):
            continue
        free_cpus = capacity.cpus.get(site.name, 0.0)
        if free_cpus < res.cpus:
            continue
        for model, left, opens in _fitting_pools(res, site, capacity):
            key = (opens and bool(green), green.get(site.name, 0.0), left, free_cpus - res.cpus, site.name, model)
            if best is None or key < best[0]:
                best = (key, Choice(site=site.name, gpu_model=model))
    return best[1] if best else None


def _fitting_pools(res: Resources, site: Site, capacity: Capacity) -> list[tuple[str, int, bool]]:
    """(model, GPUs left after placing, whether it opens an idle pool) for every pool of
    `site` that fits now."""
    if res.gpus == 0:
        return [("", sum(capacity.gpus.get((site.name, p.model), 0) for p in site.inventory.gpus), False)]
    fits = []
    for pool in site.inventory.gpus:
        free = capacity.gpus.get((site.name, pool.model), 0)
        if pool_can_ever_hold(res, pool) and free >= res.gpus:
            node = min(pool.total, pool.largest_node or pool.total)
            fits.append((pool.model, free - res.gpus, opens_idle_pool(free, pool.total, node, res.gpus)))
    return fits


def opens_idle_pool(free: int, total: int, node: int, gpus: int) -> bool:
    """Whether a job of `gpus` GPUs would start on a wholly idle pool whose nodes hold more
    than it asks (breaking a node a gang could have had)."""
    return free == total and gpus < node


def take(capacity: Capacity, site: str, gpu_model: str, gpus: int, cpus: float) -> Capacity:
    """Capacity after a placement; a new object, the old one is unchanged."""
    new_gpus = dict(capacity.gpus)
    if gpus:
        new_gpus[(site, gpu_model)] -= gpus
    new_cpus = dict(capacity.cpus)
    new_cpus[site] -= cpus
    return Capacity(gpus=new_gpus, cpus=new_cpus)
