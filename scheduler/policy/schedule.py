"""`schedule(snapshot, now) -> Decisions`, the policy's single entry point.

With an account tree in the snapshot (any institution), the fair-share cycle of
`fair_cycle.py` decides: Fair Tree order, guarantees with borrowing and reclaim,
EASY reservation with backfill, and preferred placement. Without one, the order
is first-come, first-served by priority and submit time (ties by job id), with
skipping: a job that does not fit does not block smaller jobs behind it. That
fallback keeps a broker with no accounts yet working exactly as before.
"""
from __future__ import annotations

from scheduler.domain import Job
from scheduler.policy.fair_cycle import schedule_fair
from scheduler.policy.feasibility import never_fits_reason, waiting_reason
from scheduler.policy.placement import best_fit, free_capacity, take
from scheduler.policy.snapshot import Decisions, Placement, Snapshot, Waiting


def queue_order(pending: tuple[Job, ...]) -> list[Job]:
    return sorted(pending, key=lambda j: (-j.spec.priority, j.submitted_at, j.id))


def schedule(snapshot: Snapshot, now: float) -> Decisions:
    """Place as many pending jobs as fit, in queue order; say why the rest wait.

    Pure and deterministic: the same snapshot and `now` give the same decisions.
    """
    if snapshot.institutions:
        return schedule_fair(snapshot, now)
    return schedule_fifo(snapshot)


def schedule_fifo(snapshot: Snapshot) -> Decisions:
    """Submit order with skipping and best-fit placement: the policy before accounts exist."""
    capacity = free_capacity(snapshot.sites, snapshot.live_runs)
    placements: list[Placement] = []
    waiting: list[Waiting] = []
    for job in queue_order(snapshot.pending):
        never = never_fits_reason(job, snapshot.sites)
        if never:
            waiting.append(Waiting(job.id, never, never_fits=True))
            continue
        choice = best_fit(job, snapshot.sites, capacity)
        if choice is None:
            waiting.append(Waiting(job.id, waiting_reason(job, snapshot.sites, capacity)))
            continue
        res = job.spec.resources
        placements.append(Placement(job.id, choice.site, choice.gpu_model, res.gpus, res.cpus))
        capacity = take(capacity, choice.site, choice.gpu_model, res.gpus, res.cpus)
    return Decisions(placements=tuple(placements), waiting=tuple(waiting))
