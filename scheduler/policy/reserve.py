"""The cycle's reservations, one per GPU model: EASY backfill (Lifka, 1995; the plan is
`reservation.py`). One reservation for the whole federation let a gang that needs a scarce
model wait behind gangs on other models for a day; per model, the first job in fair-share
order that does not fit on a model holds that model's reservation."""
from __future__ import annotations

from scheduler.domain import Job
from scheduler.policy.cycle_state import Cycle
from scheduler.policy.pool_search import hard_test
from scheduler.policy.reservation import NEVER, plan_reservation, run_end


def reserve(cycle: Cycle, job: Job) -> str | None:
    """Give a job that does not fit a reservation on one of its models that has none yet; its
    waiting reason, or None when no such pool could ever free up enough GPUs for it."""
    res = job.spec.resources
    index, hard_ok = cycle.index, hard_test(job)
    candidates = [p for m in cycle.models(job) if m not in cycle.reservations for p in index.by_model[m]
                  if hard_ok(p) and cycle.ledger.may_lend(p.owner, job.institution, res.gpus)
                  and cycle.lends(job, p.site, res.gpus)]
    ends: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for p in candidates:
        key = (p.site, p.model)
        ends[key] = [(run_end(r), r.gpus) for r in index.runs.get(key, [])] + cycle.placed_ends.get(key, [])
    reservation = plan_reservation(job.id, res.gpus, candidates, ends, cycle.now)
    if reservation is None:
        return None
    cycle.reservations[reservation.model] = reservation
    if reservation.start == NEVER:
        # Nothing can be backfilled before a start that never comes: hold the pool's
        # free GPUs outright so it drains, and later jobs do not search it in vain.
        pool = index.pools[(reservation.site, reservation.model)]
        index.take(pool, max(pool.free, 0), 0.0)
        cycle.refresh_largest_free()
    when = ("once runs without a walltime there end" if reservation.start == NEVER
            else f"in about {int(reservation.start - cycle.now)} s")
    return (f"reservation: holds {res.gpus} {reservation.model} GPUs on {reservation.site}, "
            f"starting {when}; only shorter jobs are backfilled there")
