"""One fair-share scheduling cycle: order, constrain, place, reclaim, reserve, preempt.

Close lending windows; place the jobs within their guarantee first (Kueue: workloads that
need no borrowing before borrowing ones); reserve for gangs that have waited (EASY backfill
per model); hand out the rest by water-filling (weighted max-min by progressive filling);
then fair-share preemption (Kueue's KEP-1714 S2-a). The phases, each job's steps and the
memos that keep deep queues cheap: docs/fairshare.md, "One cycle"."""

from __future__ import annotations

from minga.common.domain import Job
from minga.common.snapshot import Decisions, Snapshot
from minga.scheduler.policy.cpu_only import cpu_reason, place_cpu_only
from minga.scheduler.policy.cycle_state import Cycle, FailureKey
from minga.scheduler.policy.fair_preemption import preempt_for_fair_share
from minga.scheduler.policy.gang_reservations import reserve, reserve_for_waiting_gangs
from minga.scheduler.policy.guarantees import guarantee_first
from minga.scheduler.policy.lending_verdicts import is_refusal, most_telling, runtime_key
from minga.scheduler.policy.pool_search import acceptor, find_pool, scan_all
from minga.scheduler.policy.queue_tail import decide_tail
from minga.scheduler.policy.reclaim import close_windows, reclaim, reclaim_bound
from minga.scheduler.policy.water_fill import WaterFill


def schedule_fair(snapshot: Snapshot, now: float) -> Decisions:
    """The fair-share policy, phase by phase (docs/fairshare.md, "One cycle")."""
    cycle = Cycle.start(snapshot, now)
    pos: int | None  # a position in the queue; None when water-filling has handed out all
    close_windows(cycle)
    first = guarantee_first(cycle.queue, cycle.ledger)
    cycle.guaranteed = {cycle.queue.jobs[pos].id for pos in first}
    deferred = [pos for pos in first if not _place_within_guarantee(cycle, pos)]
    decided = set(first)
    decided |= reserve_for_waiting_gangs(cycle, decided, _decide_and_wait)
    for pos in deferred:
        _decide_and_wait(cycle, pos)
    order = WaterFill(cycle, decided)
    while True:
        if cycle.largest_open == 0:
            if cycle.kept:  # no GPU is free but those kept for gangs: place the gangs there
                for pos in list(cycle.kept.values()):  # in due order
                    decided.add(pos)
                    if not _place_kept(cycle, pos):
                        _decide_and_wait(cycle, pos)
                continue  # the kept pools' spare GPUs may still take others
            decide_tail(cycle, order.remaining(), _decide_and_wait)
            break
        pos = order.next()
        if pos is None:
            break
        before = len(cycle.placements)
        if not _place_kept(cycle, pos):
            _decide_and_wait(cycle, pos)
        order.taken(cycle.placements[-1].gpus if len(cycle.placements) > before else 0)
    preempt_for_fair_share(cycle)
    return cycle.decisions()


def _place_kept(cycle: Cycle, pos: int) -> bool:
    """Place a gang on the pool kept whole for it (`gang_reservations.py`), if it still passes there."""
    pool = cycle.kept_for(pos)
    if pool is None:
        return False
    job = cycle.queue.jobs[pos]
    if not acceptor(cycle, job, set())(pool):
        cycle.unkeep(pool)
        return False
    cycle.place(job, pool)
    return True


def _decide_and_wait(cycle: Cycle, pos: int, gang: bool = False) -> None:
    reason, never_fits = decide(cycle, pos, gang)
    if reason is not None:
        cycle.wait(pos, reason, never_fits)


def _place_within_guarantee(cycle: Cycle, pos: int) -> bool:
    """First pass: place a guaranteed job only on a model it is guaranteed.

    A job that would have to borrow another model waits for the second pass, so
    it cannot take an owner's just-reclaimed GPUs ahead of the owner.
    """
    if cycle.never_fits(pos) is not None:
        return False
    job = cycle.queue.jobs[pos]
    pool = find_pool(cycle, job, set(), strict=True)
    if pool is None:
        return False
    cycle.place(job, pool)
    return True


def decide(cycle: Cycle, pos: int, gang: bool = False) -> tuple[str | None, bool]:
    """Place, reclaim for or reserve for the pending job at `pos`: (why it waits, never
    fits); no reason when it was placed."""
    never = cycle.never_fits(pos)
    if never:
        return never, True
    job = cycle.queue.jobs[pos]
    spec = job.spec
    g = spec.resources.gpus
    if g == 0:
        return (None if place_cpu_only(cycle, job) else cpu_reason(job)), False
    if not gang and cycle.reservations and g > cycle.largest_free:  # else it cannot be exhausted
        exhausted = _exhausted_for(cycle, job)
        if exhausted:
            return exhausted, False
    sid = cycle.queue.shape_of[pos]
    shape = _failure_key(cycle, job, sid)
    known = cycle.failed.get(shape)
    reason: str | None
    if known is not None and known[0] <= g:
        reason = known[1]
    else:
        reason = _search(cycle, job, sid)
        if reason is None:
            return None, False
        cycle.failed[shape] = (g, reason)
    if job.id in cycle.guaranteed and reclaim(cycle, job, shape):  # only those reclaim
        return None, False
    if g > 1 and not reason.startswith("quota") and (gang or cycle.unreserved(job)):
        reason = reserve(cycle, job, gang) or reason
    return reason, False


def _search(cycle: Cycle, job: Job, sid: int) -> str | None:
    """Place `job` where `find_pool` says and return None, or say why it waits. A pure guest
    (`guest_failures.py`) is first tested against every pool at once, and its failure
    shared with the other guests of the same request."""
    guests = cycle.guest_failures
    guest = guests.key(cycle, job, sid)
    blocked: set[str] = set()
    if guest is not None:
        reason = guests.get(cycle, guest)
        if reason is not None:
            return reason
        found, owners = scan_all(cycle, job, blocked)
        if not found:
            reason = _reason(cycle, job, blocked)
            guests.put(cycle, guest, reason, owners)
            return reason
        blocked = set()
    pool = find_pool(cycle, job, blocked)
    if pool is not None:
        cycle.place(job, pool)
        return None
    return _reason(cycle, job, blocked)


def _failure_key(cycle: Cycle, job: Job, sid: int) -> FailureKey:
    """The failure memo's key: who asks, the request but its GPU count (as a small int,
    `Cycle.request_id`, which hashes faster than the request), and the walltime; with
    site policies, also what the sites' runtime rules read."""
    spec = job.spec
    shape: FailureKey = (job.institution, cycle.request_id(sid), spec.walltime_seconds)
    if cycle.lending is not None:  # sites may refuse its environment or pip packages
        shape += runtime_key(spec)
    return shape


def _exhausted_for(cycle: Cycle, job: Job) -> str | None:
    """The cheap path once capacity is gone: no pool has the GPUs free, every model the
    job allows is reserved and the job cannot reclaim (it is not within its
    institution's guarantee, or there is nothing to take back). Then the job waits
    for capacity without any search: the reason, or None when it needs the search."""
    g = job.spec.resources.gpus
    if g <= cycle.largest_free or cycle.unreserved(job):
        return None
    inst = job.institution
    if (
        job.id in cycle.guaranteed
        and cycle.headroom(inst) >= g
        and (inst in cycle.explicit or reclaim_bound(cycle, inst) >= g)
    ):
        return None
    return cycle.capacity_reason(g, cycle.largest_free)


def _reason(cycle: Cycle, job: Job, blocked: set[str]) -> str:
    """The binding constraint of a job no pool took: a limit that turned pools down, the
    reservation, or capacity."""
    if "borrowing" in blocked:
        limit = cycle.ledger.borrowing_limit.get(job.institution)
        return f"quota: {job.institution} has reached its borrowing limit of {limit} GPUs beyond its guarantee"
    if "lending" in blocked:
        return "quota: the sites with room have reached their owners' lending limits"
    refused = most_telling(filter(is_refusal, blocked))
    if refused:
        return refused
    r = cycle.reservation_for(job) if "reservation" in blocked else None
    if r is not None:
        return f"reservation: the free GPUs on {r.site} are held for {r.job_id}, which is ahead in fair share"
    most = max((cycle.index.largest_free(m) for m in cycle.models(job)), default=0)
    return cycle.capacity_reason(job.spec.resources.gpus, max(most, 0))
