"""Where a job goes now: the preferred pool that passes every test (`placement.py`'s rules).

Own sites first, then countries by latency from the data country (`latency.py`), best
fit within each tier (`pool_index.py`). A pool must meet the hard constraints, have
the GPUs and CPUs free, stay within Kueue's borrowing and lending limits
(`guarantees.py`), be taken by the site owner's lending policy (`lending_verdicts.py`) and not
delay the cycle's EASY reservation on the pool's model (`backfill.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import attrgetter

from minga.common.domain import Job
from minga.scheduler.policy.backfill import due
from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.latency import country_groups
from minga.scheduler.policy.low_carbon import greenest, pools_in
from minga.scheduler.policy.pool_index import ANY, Pool

_FREE = attrgetter("free")


def hard_test(job: Job) -> Callable[[Pool], bool]:
    """Every hard constraint except free GPUs and CPUs, as a test of pools (the job's
    fields are read once, not once per pool)."""
    res, spec = job.spec.resources, job.spec
    gpus, memory, models, countries = res.gpus, res.min_gpu_memory_mb, res.gpu_models, spec.countries
    labels = frozenset(spec.site_labels)

    def hard_ok(pool: Pool) -> bool:
        return (
            pool.ready
            and pool.limit >= gpus
            and pool.memory >= memory
            and (not models or pool.model in models)
            and (not countries or pool.country in countries)
            and labels <= pool.labels
        )

    return hard_ok


def find_pool(cycle: Cycle, job: Job, blocked: set[str], strict: bool = False) -> Pool | None:
    """The pool for `job` now, or None; `blocked` collects the limits that turned pools down.

    With `strict`, only a model within the job's guarantee, on its own sites unless
    the guarantee is explicit.
    """
    res = job.spec.resources
    models = cycle.models(job)
    if not models:
        return None
    most = cycle.largest_free if len(models) == len(cycle.index.models) else max(map(cycle.index.largest_free, models))
    if most < res.gpus:
        return None
    ok = acceptor(cycle, job, blocked, strict)
    if job.spec.low_carbon:
        return _find_low_carbon(cycle, job, models, ok, strict)
    g = res.gpus  # best fit among the own pools with room: the first that passes, tightest first
    # (`by_owner` is in (site, model) order and the sort is stable: ties go by name)
    for pool in sorted([p for p in cycle.index.by_owner.get(job.institution, ()) if p.free >= g], key=_FREE):
        if ok(pool):
            return pool
    if strict and job.institution not in cycle.explicit:
        return None  # within a default guarantee only its own sites would pass
    for scopes in _country_tiers(cycle, job):
        found = cycle.index.first_fit_by_bucket(scopes, models, res.gpus, ok)
        if found is not None:
            return found
    return None


def _find_low_carbon(
    cycle: Cycle, job: Job, models: list[str], ok: Callable[[Pool], bool], strict: bool
) -> Pool | None:
    """`find_pool` for a low-carbon job (`low_carbon.py`): the same tiers and the same test,
    the lowest intensity first within a tier; with `low_carbon_first`, over all tiers. A
    `low_carbon_first` job is not placed in the guarantee pass (`strict`), which would
    keep it on its own sites: it waits for the general pass, in the same fair-share order."""
    g, intensity, plenty = job.spec.resources.gpus, cycle.intensity, cycle.index.model_gpus
    own = [p for p in cycle.index.by_owner.get(job.institution, ()) if p.free >= g]
    within_own = strict and job.institution not in cycle.explicit  # only its own sites would pass
    if job.spec.low_carbon_first:
        if strict:
            return None
        everywhere = own + pools_in(cycle.index, [s for t in _country_tiers(cycle, job) for s in t], models, g)
        return greenest(everywhere, ok, intensity, g, plenty)
    found = greenest(own, ok, intensity, g, plenty)
    if found is not None or within_own:
        return found
    for scopes in _country_tiers(cycle, job):
        found = greenest(pools_in(cycle.index, scopes, models, g), ok, intensity, g, plenty)
        if found is not None:
            return found
    return None


def scan_all(cycle: Cycle, job: Job, blocked: set[str]) -> tuple[bool, set[str]]:
    """Test every READY pool with the GPUs free of the job's models, as `find_pool` would
    if nothing took the job: (whether some pool takes it, the owners of the pools tested).
    A job limited to some countries is tested on their pools alone.

    For a job whose institution owns no such pool, `find_pool` fails exactly when this
    finds nothing, and then collects the same `blocked` (a failed search reaches every
    allowed country, and the pools of other countries fail the hard test before any
    limit is looked at). Free GPUs only shrink within a cycle, so no pool of an owner
    not returned can pass later either unless that owner's pools change
    (`guest_failures.py`).
    """
    g = job.spec.resources.gpus
    ok = acceptor(cycle, job, blocked, False)
    owners: set[str] = set()
    buckets, top = cycle.index.buckets, cycle.index.top
    for scope in sorted(job.spec.countries) or (ANY,):  # other countries fail the hard test
        for model in cycle.models(job):
            b = buckets.get((scope, model))
            if b is None:
                continue  # no pool of the model in the scope (and no `top` either)
            for free in range(g, top.get((scope, model), 0) + 1):
                for pool in b[free].values():
                    owners.add(pool.owner)
                    if ok(pool):
                        return True, owners
    return False, owners


def _country_tiers(cycle: Cycle, job: Job) -> list[list[str]]:
    """The allowed countries, nearest to the data country first (memoized per request)."""
    origin = job.spec.data_country or cycle.home.get(job.institution, "")
    key = (origin, job.spec.countries)
    tiers = cycle.groups.get(key)
    if tiers is None:
        allowed = job.spec.countries or cycle.index.countries
        tiers = country_groups(origin, allowed, cycle.latency)
        if not job.spec.countries and tiers:
            tiers[-1] = [ANY]  # the farthest tier is everything not found nearer
        cycle.groups[key] = tiers
    return tiers


def acceptor(
    cycle: Cycle, job: Job, blocked: set[str], strict: bool = False, room: bool = True
) -> Callable[[Pool], bool]:
    """The test a pool must pass now: free room (unless not `room`: preemption makes it),
    hard constraints, quota, reservation (and, when `strict`, a model within the job's
    guarantee, on its own sites unless the guarantee is explicit). Limits that do not
    apply are not checked at all."""
    res = job.spec.resources
    g, cpus, inst, ledger, free_cpus = res.gpus, res.cpus, job.institution, cycle.ledger, cycle.index.cpus
    walltime = float(job.spec.walltime_seconds)
    hard_ok = hard_test(job)
    # A default guarantee is the capacity of the institution's own sites: within it, only
    # there. On another owner's site the run would count as within the guarantee, so that
    # owner could never reclaim it (an explicit guarantee has no sites: it may go anywhere).
    own_sites_only = inst not in cycle.explicit
    borrow_limited = ledger.borrowing_limit.get(inst) is not None
    reservations, now, job_id = cycle.reservations, cycle.now, job.id
    job_due = due(job.submitted_at, walltime)
    lending = cycle.lending  # None without site policies: nothing to check
    refusal = partial(lending.refusal, lending.key(job)) if lending is not None else None

    def ok(pool: Pool) -> bool:
        if room and (pool.free < g or free_cpus[pool.site] < cpus) or not hard_ok(pool):
            return False
        if strict and (own_sites_only and pool.owner != inst or not ledger.within_guarantee(inst, pool.model, g)):
            return False
        if refusal is not None:
            refused = refusal(pool.site, g)
            if refused:
                blocked.add(refused)
                return False
        if pool.owner != inst and not ledger.may_lend(pool.owner, inst, g):
            blocked.add("lending")
            return False
        if borrow_limited and not ledger.may_borrow(inst, pool.model, g):
            blocked.add("borrowing")
            return False
        reservation = reservations.get(pool.key)
        if (
            reservation is not None
            and reservation.job_id != job_id
            and not reservation.admits(pool, g, walltime, now, job_due)
        ):
            blocked.add("reservation")
            return False
        return True

    return ok
