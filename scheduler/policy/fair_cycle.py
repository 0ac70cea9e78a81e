"""One fair-share scheduling cycle: order, constrain, place, reclaim, reserve.

For each pending job in Fair Tree order (`fairshare.py`), jobs within their
institution's guarantee first (Kueue: no-borrowing workloads before borrowing):

1. hard constraints that no site could ever meet -> never fits (`never_fits.py`);
2. the best preferred pool that fits now, within Kueue borrowing and lending
   limits (`guarantees.py`) and without delaying the EASY reservation
   (`reservation.py`): own sites, then by latency from the data country
   (`latency.py`), best fit within each tier (`pool_index.py`);
3. else, if the job is within its institution's guarantee, reclaim borrowed GPUs
   by preemption (`preemption.py`);
4. else the first such job gets the cycle's reservation, and the rest wait with
   the binding constraint named.

Free capacity only shrinks within a cycle, so a request shape that failed once
fails again for every larger request of the same shape: that memo, plus a check
of the largest free pool, makes the jobs behind exhausted capacity cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.domain import Job
from scheduler.policy.entitlement import build_tree
from scheduler.policy.fairshare import pending_queue
from scheduler.policy.guarantees import Ledger, build_ledger, guarantee_first
from scheduler.policy.latency import country_groups, rank_table
from scheduler.policy.never_fits import NeverFits
from scheduler.policy.pool_index import ANY, Pool, PoolIndex
from scheduler.policy.preemption import plan_reclaim
from scheduler.policy.queue import Queue
from scheduler.policy.reservation import NEVER, Reservation, plan_reservation, run_end
from scheduler.policy.snapshot import Decisions, Placement, Preemption, Snapshot, WaitingList


@dataclass
class _Cycle:
    snapshot: Snapshot
    now: float
    index: PoolIndex
    ledger: Ledger
    never: NeverFits
    home: dict[str, str]
    latency: dict[tuple[str, str], int]
    explicit: set[str]
    reservation: Reservation | None = None
    placements: list[Placement] = field(default_factory=list)
    waiting_ids: list[str] = field(default_factory=list)      # the columns of a WaitingList
    waiting_reasons: list[str] = field(default_factory=list)
    waiting_never: list[bool] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    failed: dict[tuple, tuple[int, str]] = field(default_factory=dict)
    reclaim_failed: set[tuple] = field(default_factory=set)
    reclaim_bound: dict[str, int] = field(default_factory=dict)
    models: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    headroom: dict[str, int] = field(default_factory=dict)
    capacity_reasons: dict[tuple[int, int], str] = field(default_factory=dict)
    guaranteed: set[str] = field(default_factory=set)
    largest_free: int = 0       # most free GPUs on any READY pool; only shrinks
    groups: dict[tuple, list[list[str]]] = field(default_factory=dict)
    placed_ends: dict[tuple[str, str], list[tuple[float, int]]] = field(default_factory=dict)

    def wait(self, job_id: str, reason: str, never_fits: bool = False) -> None:
        self.waiting_ids.append(job_id)
        self.waiting_reasons.append(reason)
        self.waiting_never.append(never_fits)


def schedule_fair(snapshot: Snapshot, now: float) -> Decisions:
    """The fair-share policy; see the module docstring for the phases."""
    cycle = _Cycle(
        snapshot=snapshot, now=now,
        index=PoolIndex(snapshot.sites, snapshot.live_runs),
        ledger=build_ledger(snapshot),
        never=NeverFits(snapshot.sites),
        home={i.slug: i.country for i in snapshot.institutions},
        latency=rank_table(snapshot.settings.latency),
        explicit={i.slug for i in snapshot.institutions if i.guarantee},
    )
    _refresh_largest_free(cycle)
    pending = pending_queue(snapshot, now, build_tree(snapshot))
    jobs = pending.jobs
    first, rest = guarantee_first(pending, cycle.ledger)
    cycle.guaranteed = {pending.ids[pos] for pos in first}
    deferred = [pos for pos in first if not _place_within_guarantee(cycle, jobs[pos])]
    queue = deferred + rest
    for i, pos in enumerate(queue):
        if i >= len(deferred) and cycle.largest_free == 0 and cycle.reservation is not None:
            _tail(cycle, pending, queue[i:])
            break
        _decide(cycle, jobs[pos])
    waiting = WaitingList(cycle.waiting_ids, cycle.waiting_reasons, cycle.waiting_never)
    return Decisions(placements=tuple(cycle.placements), waiting=waiting, preemptions=tuple(cycle.preemptions))


def _place_within_guarantee(cycle: _Cycle, job: Job) -> bool:
    """First pass: place a guaranteed job only on a model it is guaranteed.

    A job that would have to borrow another model waits for the second pass, so
    it cannot take an owner's just-reclaimed GPUs ahead of the owner.
    """
    if cycle.never.reason(job) is not None:
        return False
    pool = _find_pool(cycle, job, set(), strict=True)
    if pool is None:
        return False
    _place(cycle, job, pool)
    return True


def _decide(cycle: _Cycle, job: Job) -> None:
    res, spec = job.spec.resources, job.spec
    request = (res.gpus, res.gpu_models, res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels)
    never = cycle.never.reason(job, request)
    if never:
        cycle.wait(job.id, never, never_fits=True)
        return
    if res.gpus == 0:
        _decide_cpu_only(cycle, job)
        return
    if _exhausted_for(cycle, job):
        return
    shape = (job.institution, request[1:], spec.walltime_seconds)
    known = cycle.failed.get(shape)
    blocked: set[str] = set()
    pool = None
    if known is None or known[0] > res.gpus:
        pool = _find_pool(cycle, job, blocked)
    if pool is not None:
        _place(cycle, job, pool)
        return
    if known is not None and known[0] <= res.gpus:
        reason = known[1]
    else:
        reason = _reason(cycle, job, blocked)
        cycle.failed[shape] = (res.gpus, reason)
    if _reclaim(cycle, job, shape):
        return
    if cycle.reservation is None and not reason.startswith("quota"):
        reserved = _reserve(cycle, job)
        if reserved:
            reason = reserved
    cycle.wait(job.id, reason)


def _tail(cycle: _Cycle, pending: Queue, positions: list[int]) -> None:
    """The rest of the queue once no READY pool has a free GPU and the reservation is
    taken. None of these jobs is within its guarantee (those come first in the queue),
    so a GPU job can only wait: the reason depends on its request shape alone and is
    found once per shape. CPU-only jobs are still decided one by one. At queue depth
    this loop is most of the cycle, so it reads the queue's columns, not the jobs."""
    verdicts: dict[int, tuple[str, bool] | None] = {}   # shape id -> (reason, never fits); None: CPU only
    jobs, ids, shape_of = pending.jobs, pending.ids, pending.shape_of
    wait_ids, wait_reasons, wait_never = cycle.waiting_ids, cycle.waiting_reasons, cycle.waiting_never
    for pos in positions:
        sid = shape_of[pos]
        if sid in verdicts:
            verdict = verdicts[sid]
        else:
            verdict = verdicts[sid] = _tail_verdict(cycle, jobs[pos], pending.shapes[sid])
        if verdict is None:
            _decide(cycle, jobs[pos])
        else:
            wait_ids.append(ids[pos])
            wait_reasons.append(verdict[0])
            wait_never.append(verdict[1])


def _tail_verdict(cycle: _Cycle, job: Job, shape: tuple) -> tuple[str, bool] | None:
    """What `_decide` would say of a GPU job of this shape with no GPU free anywhere."""
    g = shape[0]
    if g == 0:
        return None
    never = cycle.never.reason(job, shape)
    if never:
        return never, True
    reason = cycle.capacity_reasons.get((g, 0))
    if reason is None:
        reason = cycle.capacity_reasons[(g, 0)] = f"capacity: waiting for {g} free GPUs on one site (most free now: 0)"
    return reason, False


def _exhausted_for(cycle: _Cycle, job: Job) -> bool:
    """The cheap path once capacity is gone: no pool has the GPUs free, the cycle's
    reservation is taken and the job cannot reclaim (it is not within its
    institution's guarantee, or there is nothing to take back). Then the job waits
    for capacity without any search."""
    g = job.spec.resources.gpus
    if cycle.reservation is None or g <= cycle.largest_free:
        return False
    if job.id in cycle.guaranteed and _headroom(cycle, job.institution) >= g:
        if job.institution in cycle.explicit:
            return False
        bound = cycle.reclaim_bound.get(job.institution)
        if bound is None:
            bound = _reclaim_bound(cycle, job.institution)
        if bound >= g:
            return False
    key = (g, cycle.largest_free)
    reason = cycle.capacity_reasons.get(key)
    if reason is None:
        reason = cycle.capacity_reasons[key] = (
            f"capacity: waiting for {g} free GPUs on one site (most free now: {cycle.largest_free})")
    cycle.wait(job.id, reason)
    return True


def _headroom(cycle: _Cycle, inst: str) -> int:
    """Most GPUs of one model `inst` could still take within its guarantee."""
    room = cycle.headroom.get(inst)
    if room is None:
        used = cycle.ledger.used[inst]
        room = max((g - used.get(m, 0) for m, g in cycle.ledger.guarantee.get(inst, {}).items()), default=0)
        cycle.headroom[inst] = room
    return room


def _models(cycle: _Cycle, job: Job) -> list[str]:
    wanted = job.spec.resources.gpu_models
    models = cycle.models.get(wanted)
    if models is None:
        models = cycle.models[wanted] = [m for m in cycle.index.models if not wanted or m in wanted]
    return models


def _hard_ok(job: Job, pool: Pool) -> bool:
    """Every hard constraint except free GPUs and CPUs."""
    res = job.spec.resources
    if not pool.ready or pool.limit < res.gpus or pool.memory < res.min_gpu_memory_mb:
        return False
    if res.gpu_models and pool.model not in res.gpu_models:
        return False
    if job.spec.countries and pool.country not in job.spec.countries:
        return False
    return not job.spec.site_labels or set(job.spec.site_labels) <= pool.labels


def _acceptor(cycle: _Cycle, job: Job, blocked: set[str], strict: bool = False):
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
        if pool.free < g or cpus[pool.site] < res.cpus or not _hard_ok(job, pool):
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


def _find_pool(cycle: _Cycle, job: Job, blocked: set[str], strict: bool = False) -> Pool | None:
    """Own sites first, then countries by latency from the data country; best fit in each."""
    res = job.spec.resources
    models = _models(cycle, job)
    if not models or max(cycle.index.largest_free(m) for m in models) < res.gpus:
        return None
    ok = _acceptor(cycle, job, blocked, strict)
    own = [p for p in cycle.index.by_owner.get(job.institution, ()) if ok(p)]
    if own:
        return min(own, key=lambda p: (p.free - res.gpus, p.site, p.model))
    origin = job.spec.data_country or cycle.home.get(job.institution, "")
    key = (origin, job.spec.countries)
    if key not in cycle.groups:
        allowed = job.spec.countries or cycle.index.countries
        groups = country_groups(origin, allowed, cycle.latency)
        if not job.spec.countries and groups:
            groups[-1] = [ANY]    # the farthest tier is everything not found nearer
        cycle.groups[key] = groups
    for scopes in cycle.groups[key]:
        pool = cycle.index.first_fit_by_bucket(scopes, models, res.gpus, ok)
        if pool is not None:
            return pool
    return None


def _place(cycle: _Cycle, job: Job, pool: Pool) -> None:
    res = job.spec.resources
    walltime = float(job.spec.walltime_seconds)
    if cycle.reservation is not None:
        cycle.reservation.consume(pool, res.gpus, walltime, cycle.now)
    cycle.index.take(pool, res.gpus, res.cpus)
    cycle.ledger.charge(job.institution, pool.owner, pool.model, res.gpus)
    cycle.headroom.pop(job.institution, None)
    end = cycle.now + walltime if walltime > 0 else NEVER
    cycle.placed_ends.setdefault((pool.site, pool.model), []).append((end, res.gpus))
    cycle.placements.append(Placement(job.id, pool.site, pool.model, res.gpus, res.cpus))
    if pool.free + res.gpus >= cycle.largest_free:
        _refresh_largest_free(cycle)


def _refresh_largest_free(cycle: _Cycle) -> None:
    cycle.largest_free = max((cycle.index.largest_free(m) for m in cycle.index.models), default=0)


def _reason(cycle: _Cycle, job: Job, blocked: set[str]) -> str:
    g = job.spec.resources.gpus
    if "borrowing" in blocked:
        limit = cycle.ledger.borrowing_limit.get(job.institution)
        return f"quota: {job.institution} has reached its borrowing limit of {limit} GPUs beyond its guarantee"
    if "lending" in blocked:
        return "quota: the sites with room have reached their owners' lending limits"
    if "reservation" in blocked and cycle.reservation is not None:
        r = cycle.reservation
        return f"reservation: the free GPUs on {r.site} are held for {r.job_id}, which is ahead in fair share"
    most = max((cycle.index.largest_free(m) for m in _models(cycle, job)), default=0)
    return f"capacity: waiting for {g} free GPUs on one site (most free now: {max(most, 0)})"


def _reclaim(cycle: _Cycle, job: Job, shape: tuple) -> bool:
    """Preempt borrowed runs so an institution below its guarantee gets its GPUs back."""
    res = job.spec.resources
    inst, ledger = job.institution, cycle.ledger
    key = (shape, res.gpus)
    if job.id not in cycle.guaranteed or key in cycle.reclaim_failed or (inst not in cycle.explicit and _reclaim_bound(cycle, inst) < res.gpus):
        return False
    models = [m for m in _models(cycle, job) if ledger.within_guarantee(inst, m, res.gpus)]
    if not models:
        return False
    own = [p for p in cycle.index.by_owner.get(inst, ()) if p.model in models and _hard_ok(job, p)]
    tiers = [own]
    if inst in cycle.explicit:
        tiers.append([p for m in models for p in cycle.index.by_model[m]
                      if p.owner != inst and _hard_ok(job, p)])
    index = cycle.index
    plan = plan_reclaim(inst, res.gpus, res.cpus, tiers, lambda p: index.runs.get((p.site, p.model), []),
                        lambda s: index.cpus.get(s, 0.0), ledger, cycle.now,
                        cycle.snapshot.settings.preemption_grace_seconds)
    if plan is None:
        cycle.reclaim_failed.add(key)
        return False
    pool = plan.pool
    runs = index.runs[(pool.site, pool.model)]
    for victim in plan.victims:
        runs.remove(victim)
        ledger.release(victim.institution, pool.owner, pool.model, victim.gpus)
        cycle.headroom.pop(victim.institution, None)
        cycle.preemptions.append(Preemption(
            victim.id, victim.job_id, pool.site,
            f"reclaim: {inst} is below its {pool.model} guarantee and needs {res.gpus} GPUs for {job.id}"))
    ledger.charge(inst, pool.owner, pool.model, res.gpus)
    cycle.headroom.pop(inst, None)
    # Hold what is free now (GPUs and the job's CPUs) for the reclaiming job.
    index.take(pool, max(pool.free, 0), min(res.cpus, max(index.cpus.get(pool.site, 0.0), 0.0)))
    _refresh_largest_free(cycle)
    cycle.reclaim_bound.pop(pool.owner, None)
    cycle.wait(job.id, (
        f"capacity: reclaiming {res.gpus} {pool.model} GPUs of its guarantee on {pool.site}: "
        f"preempting {len(plan.victims)} borrowed run(s), placed once they stop"))
    return True


def _reclaim_bound(cycle: _Cycle, inst: str) -> int:
    """An upper bound on the GPUs one reclaim on `inst`'s own sites could yield.

    Free GPUs plus GPUs of borrowing institutions' runs past their grace period,
    best pool; recomputed where a reclaim changed a pool. A borrower whose excess
    grows later in the same cycle is caught by the next cycle: reclaim may wait one
    cycle, never preempt wrongly. It lets owners with nothing to reclaim skip the
    search.
    """
    bound = cycle.reclaim_bound.get(inst)
    if bound is None:
        grace, now = cycle.snapshot.settings.preemption_grace_seconds, cycle.now
        bound = 0
        for pool in cycle.index.by_owner.get(inst, ()):
            if not pool.ready:
                continue
            others = sum(r.gpus for r in cycle.index.runs.get((pool.site, pool.model), ())
                         if r.institution != inst and now - r.started_at >= grace
                         and cycle.ledger.excess(r.institution, pool.model) > 0)
            bound = max(bound, max(pool.free, 0) + others)
        cycle.reclaim_bound[inst] = bound
    return bound


def _reserve(cycle: _Cycle, job: Job) -> str | None:
    """EASY: the first job that does not fit gets the cycle's one reservation."""
    res = job.spec.resources
    candidates = [p for m in _models(cycle, job) for p in cycle.index.by_model[m]
                  if _hard_ok(job, p) and cycle.ledger.may_lend(p.owner, job.institution, res.gpus)]
    ends: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for p in candidates:
        key = (p.site, p.model)
        ends[key] = [(run_end(r), r.gpus) for r in cycle.index.runs.get(key, [])] + cycle.placed_ends.get(key, [])
    reservation = plan_reservation(job.id, res.gpus, candidates, ends, cycle.now)
    if reservation is None:
        return None
    cycle.reservation = reservation
    if reservation.start == NEVER:
        # Nothing can be backfilled before a start that never comes: hold the pool's
        # free GPUs outright so it drains, and later jobs do not search it in vain.
        cycle.index.take(cycle.index.pools[(reservation.site, reservation.model)],
                         max(cycle.index.pools[(reservation.site, reservation.model)].free, 0), 0.0)
        _refresh_largest_free(cycle)
    when = ("once runs without a walltime there end" if reservation.start == NEVER
            else f"in about {int(reservation.start - cycle.now)} s")
    return (f"reservation: holds {res.gpus} {reservation.model} GPUs on {reservation.site}, "
            f"starting {when}; only shorter jobs are backfilled there")


def _decide_cpu_only(cycle: _Cycle, job: Job) -> None:
    """CPU-only jobs: any allowed site with the CPUs, own first, then fewest free GPUs."""
    res = job.spec.resources
    best = None
    for site in cycle.index.sites.values():
        if not (site.connected and site.state.value == "READY") or cycle.index.cpus[site.name] < res.cpus:
            continue
        if job.spec.countries and site.country not in job.spec.countries:
            continue
        if job.spec.site_labels and not set(job.spec.site_labels) <= set(site.labels):
            continue
        free_gpus = sum(max(p.free, 0) for p in cycle.index.by_owner.get(site.institution, ())
                        if p.site == site.name)
        key = (site.institution != job.institution, free_gpus, cycle.index.cpus[site.name] - res.cpus, site.name)
        if best is None or key < best[0]:
            best = (key, site)
    if best is None:
        cycle.wait(job.id, f"capacity: waiting for {res.cpus:g} free CPUs")
        return
    site = best[1]
    cycle.index.cpus[site.name] -= res.cpus
    cycle.placements.append(Placement(job.id, site.name, "", 0, res.cpus))
