"""Opt-in low-carbon placement (issue 16, docs/carbon.md "Low-carbon placement").

A soft preference, like the data country's: it only orders the pools that already pass
every hard constraint and limit, so it can never break one, never over-commits, and
never changes which job the fair-share order tries next (it is read only once a job's
turn has come). Within a preference tier (the institution's own sites, then countries by
nearness to the data country) the pool on the grid with the lowest intensity wins, best
fit breaking ties; with `low_carbon_first` intensity ranks before the tiers themselves.
This is the "carbon-aware spatial shifting" of the Green Software Foundation's Carbon
Aware SDK: same job, same time, a cleaner grid.

Two rules keep the preference from starving other jobs (measured in the simulator:
docs/carbon.md "In the simulator"); without them the cleanest pools fill with jobs that
could have run anywhere, and the gangs that need a whole node of a scarce model wait for
days:
- before intensity, a job smaller than a pool's nodes does not open a wholly idle pool
  while a partly used one takes it (`placement.opens_idle_pool`: the "any fit" rule of bin
  packing, never open a new bin while an open one fits; best fit keeps it by itself);
- after intensity, a job that may use several models takes the most plentiful one, and
  leaves the scarce models to the jobs that can use nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from minga.common.carbon import default_intensity
from minga.common.domain import Job, JobCarbon, Site
from minga.common.snapshot import Snapshot
from minga.scheduler.policy.placement import has_labels, in_allowed_country, opens_idle_pool, pool_can_ever_hold
from minga.scheduler.policy.pool_index import Pool, PoolIndex


def site_intensities(snapshot: Snapshot) -> dict[str, float]:
    """Each site's grid intensity (gCO2e/kWh): the snapshot's figure (already resolved: site
    override > admin's country figure > shipped default > fallback), else the shipped
    default of the site's country (a snapshot built without carbon figures)."""
    given = dict(snapshot.intensity)
    return {s.name: given.get(s.name, intensity_of(s)) for s in snapshot.sites}


def intensity_of(site: Site) -> float:
    return default_intensity(site.country).value


def greenest(
    pools: Iterable[Pool],
    ok: Callable[[Pool], bool],
    intensity: Mapping[str, float],
    gpus: int,
    plenty: Mapping[str, int],
) -> Pool | None:
    """The acceptable pool for a job of `gpus` GPUs: one that keeps idle pools whole first,
    then the lowest intensity, then the model with the most GPUs in the federation
    (`plenty`), then best fit (fewest free GPUs), then (site, model): deterministic."""
    best: tuple[bool, float, int, int, tuple[str, str]] | None = None
    chosen = None
    for pool in pools:
        opens = opens_idle_pool(pool.free, pool.total, pool.limit, gpus)
        key = (opens, intensity.get(pool.site, 0.0), -plenty.get(pool.model, 0), pool.free, pool.key)
        if (best is None or key < best) and ok(pool):
            best, chosen = key, pool
    return chosen


def pools_in(index: PoolIndex, scopes: Iterable[str], models: Iterable[str], gpus: int) -> list[Pool]:
    """Every READY pool in `scopes` of `models` with at least `gpus` free (from the buckets)."""
    found: list[Pool] = []
    for scope in scopes:
        for model in models:
            b = index.buckets.get((scope, model))
            if b is None:
                continue
            for free in range(gpus, index.top.get((scope, model), 0) + 1):
                found.extend(b[free].values())
    return found


def could_take(job: Job, site: Site) -> bool:
    """The site meets the job's hard constraints, were it empty and READY (`placement.py`)."""
    res = job.spec.resources
    if not in_allowed_country(job, site) or not has_labels(job, site) or site.inventory.cpus < res.cpus:
        return False
    return res.gpus == 0 or any(pool_can_ever_hold(res, p) for p in site.inventory.gpus)


def job_carbon(job: Job, sites: Iterable[Site], intensity: Mapping[str, float]) -> JobCarbon:
    """The job's site's intensity and the range among the sites that could take it
    (`minga job status`); a site missing from `intensity` gets its country's default."""
    sites = list(sites)
    figure = {s.name: intensity.get(s.name, intensity_of(s)) for s in sites}
    fit = [figure[s.name] for s in sites if could_take(job, s)]
    return JobCarbon(figure.get(job.site, 0.0), min(fit, default=0.0), max(fit, default=0.0), len(fit))
