"""Jobs that ask for no GPU: any allowed site with the CPUs free."""

from __future__ import annotations

from minga.common.domain import Job
from minga.common.snapshot import Placement
from minga.scheduler.policy.cycle_state import Cycle


def place_cpu_only(cycle: Cycle, job: Job) -> bool:
    """Place a CPU-only job: own sites first, then the site with the fewest free GPUs (GPU
    capacity stays for GPU jobs), then the tightest CPU fit. False when no site has room."""
    res = job.spec.resources
    index = cycle.index
    best = None
    for site in index.sites.values():
        if not (site.connected and site.state.value == "READY") or index.cpus[site.name] < res.cpus:
            continue
        if job.spec.countries and site.country not in job.spec.countries:
            continue
        if job.spec.site_labels and not set(job.spec.site_labels) <= set(site.labels):
            continue
        if not cycle.lends(job, site.name, 0):
            continue
        free_gpus = sum(max(p.free, 0) for p in index.by_owner.get(site.institution, ()) if p.site == site.name)
        key = (site.institution != job.institution, free_gpus, index.cpus[site.name] - res.cpus, site.name)
        if best is None or key < best[0]:
            best = (key, site)
    if best is None:
        return False
    site = best[1]
    index.cpus[site.name] -= res.cpus
    index.touch(site.institution)
    cycle.placements.append(Placement(job.id, site.name, "", 0, res.cpus))
    return True


def cpu_reason(job: Job) -> str:
    return f"capacity: waiting for {job.spec.resources.cpus:g} free CPUs"
