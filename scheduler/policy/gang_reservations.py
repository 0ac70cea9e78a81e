"""Which gangs hold reservations in a cycle: EASY backfill (Lifka, 1995), one pool per model
(the reservation itself, and what it admits: `backfill.py`).

Gangs that have waited `reservation_min_age_seconds` (Slurm's bf_min_age_reserve) reserve
first, earliest due first; otherwise the first job in water-filling order that does not fit
on a model without a reservation reserves that model's earliest pool. Only jobs of several
GPUs reserve. Why due order and a pool per model: docs/fairshare.md, "Gang jobs"."""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop
from itertools import islice

from minga.common.domain import Job
from minga.scheduler.policy.backfill import NEVER, Reservation, due, plan_reservation
from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.pool_search import find_pool, hard_test

GANG_RESERVATIONS = 1  # pools of one model that waiting gangs may reserve per cycle
HEAD = 64  # a project's oldest jobs among which its waiting gangs are sought


def reserve(cycle: Cycle, job: Job, gang: bool = False) -> str | None:
    """Give a job that does not fit a reservation: on a model without one (EASY), or for an
    old `gang`, on any pool not reserved yet within the model's cap. Its waiting reason, or
    None when no such pool could ever free up enough GPUs for it."""
    res = job.spec.resources
    index, hard_ok = cycle.index, hard_test(job)
    models = [m for m in cycle.models(job) if (_gang_room(cycle, m) if gang else m not in cycle.reserved_models)]
    candidates = [
        p
        for m in models
        for p in index.by_model[m]
        if p.key not in cycle.reservations
        and hard_ok(p)
        and cycle.ledger.may_lend(p.owner, job.institution, res.gpus)
        and cycle.lends(job, p.site, res.gpus)
    ]
    reservation = plan_reservation(job.id, res.gpus, candidates, cycle.ends_of, cycle.now)
    if reservation is None:
        return None
    cycle.hold(reservation, gang)
    if reservation.start == NEVER:
        # Nothing can be backfilled before a start that never comes: hold the pool's
        # free GPUs outright so it drains, and later jobs do not search it in vain.
        pool = index.pools[(reservation.site, reservation.model)]
        index.take(pool, max(pool.free, 0), 0.0)
        cycle.refresh_largest_free()
    when = (
        "once runs without a walltime there end"
        if reservation.start == NEVER
        else f"in about {int(reservation.start - cycle.now)} s"
    )
    return (
        f"reservation: holds {res.gpus} {reservation.model} GPUs on {reservation.site}, "
        f"starting {when}; only shorter jobs are backfilled there"
    )


def _gang_room(cycle: Cycle, model: str) -> bool:
    """Whether old gangs may reserve one more pool of `model` (`GANG_RESERVATIONS` each)."""
    return cycle.gang_reservations.get(model, 0) < GANG_RESERVATIONS


def reserve_for_waiting_gangs(cycle: Cycle, skip: set[int], decide: Callable[[Cycle, int, bool], None]) -> set[int]:
    """Reserve, before the water-filling, for the gangs (multi-GPU jobs, not in `skip`) among
    each project's `HEAD` oldest jobs that have waited `reservation_min_age_seconds`,
    earliest due first, one per model (docs/fairshare.md, "Gang jobs"). The positions decided:
    the gangs that wait with a reservation (those that fit are left to the water-filling)."""
    queue, now = cycle.queue, cycle.now
    cutoff = now - cycle.snapshot.settings.reservation_min_age_seconds
    times, jobs, shapes, shape_of = queue.times, queue.jobs, queue.shapes, queue.shape_of
    candidates: list[tuple[float, str, int]] = []
    for positions in queue.groups.values():  # each in (submit time, id) order
        for pos in islice(positions, HEAD):
            if times[pos] > cutoff:
                break
            if shapes[shape_of[pos]][0] > 1 and pos not in skip:
                job = jobs[pos]
                candidates.append((due(times[pos], job.spec.walltime_seconds), job.id, pos))
    heapify(candidates)
    decided: set[int] = set()
    models_left = set(cycle.index.models)
    while candidates and models_left:
        pos = heappop(candidates)[2]
        job = jobs[pos]
        models = cycle.models(job)
        if models_left.isdisjoint(models) or cycle.never_fits(pos):
            continue
        pool = find_pool(cycle, job, set())
        if pool is None:
            decide(cycle, pos, True)
            decided.add(pos)
        elif pool.key not in cycle.reservations:
            # It fits now: keep that pool whole until water-filling gets to the gang, so the
            # GPUs a pool has drained for it are not cut up by smaller jobs first.
            gpus = job.spec.resources.gpus
            cycle.keep(
                Reservation(
                    job.id,
                    pool.site,
                    pool.model,
                    gpus,
                    now,
                    pool.free - gpus,
                    kept=True,
                    due=due(job.submitted_at, job.spec.walltime_seconds),
                ),
                pos,
            )
        models_left -= {m for m in models if not _gang_room(cycle, m)}
    return decided
