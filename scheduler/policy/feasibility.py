"""Why a job waits: the binding constraint, and whether anything could ever hold it.

A job nobody could ever run must not sit pending in silence. These checks walk
the constraints in a fixed order (country, label, model, memory, size, CPUs,
state, capacity) and name the first one that rules out every site. At submit,
`submit_rejection` refuses what is most likely a typo: a country or GPU model no
site has, with the closest known values.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from minga.common.domain import Job, JobSpec, Resources, Site
from minga.scheduler.policy.placement import (
    Capacity,
    accepts_new_runs,
    has_labels,
    in_allowed_country,
    pool_can_ever_hold,
    pool_matches,
)

SHOWN_KNOWN = 12  # known values listed in a refusal; the rest are counted
ALLOW_UNKNOWN_HINT = " (submit with --allow-unknown to queue it anyway, for a site expected to join)"


def largest_site_gpus(sites: Sequence[Site]) -> int:
    return max((s.inventory.total_gpus for s in sites), default=0)


def submit_rejection(spec: JobSpec, sites: Sequence[Site]) -> str | None:
    """Why a job is refused at submit, or None: a country or GPU model that no site of
    the federation has (most likely a typo), or more GPUs than any site has.

    Only what a retry seconds later would see alike counts: each joined site's country,
    and each site's last reported inventory whatever its state now (a site briefly
    disconnected, lost, or a broker just restarted keep theirs). A site that has joined
    but never reported could hold any GPUs, so while one exists no GPU check refuses:
    the job is accepted and waits, and `never_fits_reason` says for what.
    """
    res = spec.resources
    if not sites:
        if res.gpus <= 0 and not spec.countries:
            return None
        return f"no site has joined the federation yet, so no site can hold it{ALLOW_UNKNOWN_HINT}"
    countries = sorted({s.country for s in sites})
    for country in spec.countries:
        if country not in countries:
            return _unknown("country", country, "is in it", countries, cutoff=0.5)
    if res.gpus <= 0 or any(not s.reported for s in sites):
        return None
    models = sorted({p.model for s in sites for p in s.inventory.gpus})
    for model in res.gpu_models:
        if model not in models:
            return _unknown("GPU model", model, "has it", models, cutoff=0.6)
    biggest = largest_site_gpus(sites)
    if res.gpus > biggest:
        return f"asks for {res.gpus} GPUs on one site, but the largest site has {biggest}{ALLOW_UNKNOWN_HINT}"
    return None


def _unknown(what: str, value: str, verb: str, known: Sequence[str], cutoff: float) -> str:
    """`what` `value` is in no site: the closest known values first, then all of them."""
    by_upper = {k.upper(): k for k in known}
    close = [by_upper[c] for c in difflib.get_close_matches(value.upper(), list(by_upper), n=3, cutoff=cutoff)]
    guess = f"; did you mean {' or '.join(close)}?" if close else ""
    shown = ", ".join(known[:SHOWN_KNOWN]) + (
        f" and {len(known) - SHOWN_KNOWN} more" if len(known) > SHOWN_KNOWN else ""
    )
    return f"{what} {value!r}: no site of the federation {verb}{guess} (known: {shown or 'none'}){ALLOW_UNKNOWN_HINT}"


def unreported_phrase(names: Sequence[str]) -> str:
    """'1 site has joined but not reported its GPUs yet (dcc)', for the sites `names`."""
    listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    if len(names) == 1:
        return f"1 site has joined but not reported its GPUs yet ({listed})"
    return f"{len(names)} sites have joined but not reported their GPUs yet ({listed})"


def never_fits_reason(job: Job, sites: Sequence[Site]) -> str | None:
    """The constraint that no known site could satisfy even when idle, or None.

    Sites that have joined but not reported their inventory could hold anything: when
    one of them is the only hope, the reason names them instead (the job waits for them)."""
    candidates = [s for s in sites if in_allowed_country(job, s)]
    if not candidates:
        return f"country: no site in {', '.join(job.spec.countries)}"
    where = " in the allowed countries" if job.spec.countries else ""
    candidates = [s for s in candidates if has_labels(job, s)]
    if not candidates:
        wanted = ", ".join(f"{k}={v}" for k, v in job.spec.site_labels)
        return f"label: no site{where} carries {wanted}"
    reason = _resource_reason(job.spec.resources, [s for s in candidates if s.reported], where)
    unreported = [s.name for s in candidates if not s.reported]
    if reason is not None and unreported:
        return f"connecting: {unreported_phrase(unreported)}"
    return reason


def _resource_reason(res: Resources, candidates: Sequence[Site], where: str) -> str | None:
    """The first of model, memory, size and CPUs that none of `candidates` meets."""
    if res.gpus > 0:
        pools = [p for s in candidates for p in s.inventory.gpus]
        by_model = [p for p in pools if not res.gpu_models or p.model in res.gpu_models]
        if not by_model:
            wanted = ", ".join(res.gpu_models)
            return f"model: no site{where} has a {wanted} GPU" if wanted else f"model: no site{where} has GPUs"
        by_memory = [p for p in by_model if pool_matches(res, p)]
        if not by_memory:
            return f"memory: no matching GPU has {res.min_gpu_memory_mb} MB of memory"
        if not any(pool_can_ever_hold(res, p) for p in by_memory):
            most = max(min(p.total, p.largest_node or p.total) for p in by_memory)
            return f"capacity: needs {res.gpus} GPUs on one node; the largest matching pool has {most}"
    if not any(_could_hold(res, s) for s in candidates):
        # Checked per site: the CPUs must be on a site that also has the GPUs.
        allowed = "allowed site" if where else "site"
        return f"capacity: needs {res.cpus:g} CPUs; no {allowed} that could hold it has that many"
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
        (
            capacity.gpus.get((s.name, p.model), 0)
            for s in ready
            for p in s.inventory.gpus
            if pool_can_ever_hold(res, p)
        ),
        default=0,
    )
    return f"capacity: waiting for {res.gpus} free GPUs on one site (most free now: {max(free, 0)})"


def _could_hold(res: Resources, site: Site) -> bool:
    if site.inventory.cpus < res.cpus:
        return False
    return res.gpus == 0 or any(pool_can_ever_hold(res, p) for p in site.inventory.gpus)
