"""Where a job goes now: the preferred pool that passes every test (`placement.py`'s rules).

Own sites first, then countries by latency from the data country (`latency.py`), best
fit within each tier (`pool_index.py`). A pool must meet the hard constraints, have
the GPUs and CPUs free, stay within Kueue's borrowing and lending limits
(`guarantees.py`) and not delay the cycle's EASY reservation (`reservation.py`).
"""
from __future__ import annotations

from collections.abc import Callable

from scheduler.domain import Job
from scheduler.policy.cycle_state import Cycle
from scheduler.policy.latency import country_groups
from scheduler.policy.pool_index import ANY, Pool


def hard_ok(job: Job, pool: Pool) -> bool:
    """Every hard constraint except free GPUs and CPUs."""
    res = job.spec.resources
    if not pool.ready or pool.limit < res.gpus or pool.memory < res.min_gpu_memory_mb:
        return False
    if res.gpu_models and pool.model not in res.gpu_models:
        return False
    if job.spec.countries and pool.country not in job.spec.countries:
        return False
    return not job.spec.site_labels or set(job.spec.site_labels) <= pool.labels


def find_pool(cycle: Cycle, job: Job, blocked: set[str], strict: bool = False) -> Pool | None:
    """The pool for `job` now, or None; `blocked` collects the limits that turned pools down.

    With `strict`, only a model within the job's guarantee, on its own sites unless
    the guarantee is explicit.
    """
    res = job.spec.resources
    models = cycle.models(job)
    if not models or max(cycle.index.largest_free(m) for m in models) < res.gpus:
        return None
    ok = _acceptor(cycle, job, blocked, strict)
    own = [p for p in cycle.index.by_owner.get(job.institution, ()) if ok(p)]
    if own:
        return min(own, key=lambda p: (p.free - res.gpus, p.site, p.model))
    for scopes in _country_tiers(cycle, job):
        pool = cycle.index.first_fit_by_bucket(scopes, models, res.gpus, ok)
        if pool is not None:
            return pool
    return None


def _country_tiers(cycle: Cycle, job: Job) -> list[list[str]]:
    """The allowed countries, nearest to the data country first (memoized per request)."""
    origin = job.spec.data_country or cycle.home.get(job.institution, "")
    key = (origin, job.spec.countries)
    tiers = cycle.groups.get(key)
    if tiers is None:
        allowed = job.spec.countries or cycle.index.countries
        tiers = country_groups(origin, allowed, cycle.latency)
        if not job.spec.countries and tiers:
            tiers[-1] = [ANY]    # the farthest tier is everything not found nearer
        cycle.groups[key] = tiers
    return tiers


def _acceptor(cycle: Cycle, job: Job, blocked: set[str], strict: bool) -> Callable[[Pool], bool]:
    """The test a pool must pass now: hard constraints, free room, quota, reservation
    (and, when `strict`, a model within the job's guarantee, on its own sites unless
    the guarantee is explicit)."""
    res = job.spec.resources
    g, inst, ledger, cpus = res.gpus, job.institution, cycle.ledger, cycle.index.cpus
    walltime = float(job.spec.walltime_seconds)
    # A default guarantee is the capacity of the institution's own sites: within it, only
    # there. On another owner's site the run would count as within the guarantee, so that
    # owner could never reclaim it (an explicit guarantee has no sites: it may go anywhere).
    own_sites_only = inst not in cycle.explicit

    def ok(pool: Pool) -> bool:
        if pool.free < g or cpus[pool.site] < res.cpus or not hard_ok(job, pool):
            return False
        if strict and (not ledger.within_guarantee(inst, pool.model, g) or own_sites_only and pool.owner != inst):
            return False
        if not ledger.may_lend(pool.owner, inst, g):
            blocked.add("lending")
            return False
        if not ledger.may_borrow(inst, pool.model, g):
            blocked.add("borrowing")
            return False
        if cycle.reservation is not None and not cycle.reservation.admits(pool, g, walltime, cycle.now):
            blocked.add("reservation")
            return False
        return True
    return ok
