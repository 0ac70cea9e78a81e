"""Why a job waits: the binding constraint, and whether anything could ever hold it.

A job nobody could ever run must not sit pending in silence. These checks walk
the constraints in a fixed order (country, label, model, memory, size, CPUs,
state, capacity) and name the first one that rules out every site.
"""
from __future__ import annotations

from collections.abc import Sequence

from scheduler.domain import Job, Resources, Site
from scheduler.policy.placement import (
    Capacity,
    accepts_new_runs,
    has_labels,
    in_allowed_country,
    pool_can_ever_hold,
    pool_matches,
)


def largest_site_gpus(sites: Sequence[Site]) -> int:
    return max((s.inventory.total_gpus for s in sites), default=0)


def submit_rejection(res: Resources, sites: Sequence[Site]) -> str | None:
    """A request beyond every site's total GPUs is refused outright at submit."""
    if res.gpus <= 0:
        return None
    if not sites:
        return f"no site has joined the federation yet, so no site can hold {res.gpus} GPUs"
    biggest = largest_site_gpus(sites)
    if res.gpus > biggest:
        return f"asks for {res.gpus} GPUs on one site, but the largest site has {biggest}"
    return None


def never_fits_reason(job: Job, sites: Sequence[Site]) -> str | None:
    """The constraint that no known site could satisfy even when idle, or None."""
    res = job.spec.resources
    candidates = [s for s in sites if in_allowed_country(job, s)]
    if not candidates:
        return f"country: no site in {', '.join(job.spec.countries)}"
    candidates = [s for s in candidates if has_labels(job, s)]
    if not candidates:
        wanted = ", ".join(f"{k}={v}" for k, v in job.spec.site_labels)
        return f"label: no site in the allowed countries carries {wanted}"
    if res.gpus > 0:
        pools = [p for s in candidates for p in s.inventory.gpus]
        by_model = [p for p in pools if not res.gpu_models or p.model in res.gpu_models]
        if not by_model:
            wanted = ", ".join(res.gpu_models)
            return f"model: no site in the allowed countries has a {wanted} GPU"
        by_memory = [p for p in by_model if pool_matches(res, p)]
        if not by_memory:
            return f"memory: no matching GPU has {res.min_gpu_memory_mb} MB of memory"
        if not any(pool_can_ever_hold(res, p) for p in by_memory):
            most = max(min(p.total, p.largest_node or p.total) for p in by_memory)
            return f"capacity: needs {res.gpus} GPUs on one node; the largest matching pool has {most}"
    if not any(_could_hold(res, s) for s in candidates):
        # Checked per site: the CPUs must be on a site that also has the GPUs.
        return f"capacity: needs {res.cpus:g} CPUs; no allowed site that could hold it has that many"
    return None


def waiting_reason(job: Job, sites: Sequence[Site], capacity: Capacity) -> str:
    """Why a job that could fit somewhere does not fit right now."""
    res = job.spec.resources
    eligible = [s for s in sites if in_allowed_country(job, s) and has_labels(job, s) and _could_hold(res, s)]
    ready = [s for s in eligible if accepts_new_runs(s)]
    if not ready:
        return "capacity: every site that could hold it is disconnected, cordoned or lost"
    if res.gpus == 0:
        return f"capacity: waiting for {res.cpus:g} free CPUs"
    free = max(
        (capacity.gpus.get((s.name, p.model), 0) for s in ready for p in s.inventory.gpus
         if pool_can_ever_hold(res, p)),
        default=0,
    )
    return f"capacity: waiting for {res.gpus} free GPUs on one site (most free now: {max(free, 0)})"


def _could_hold(res: Resources, site: Site) -> bool:
    if site.inventory.cpus < res.cpus:
        return False
    return res.gpus == 0 or any(pool_can_ever_hold(res, p) for p in site.inventory.gpus)
