"""`schedule(snapshot, now) -> Decisions`, the policy's single entry point.

With an account tree in the snapshot (any institution), the fair-share cycle of
`fair_cycle.py` decides: Fair Tree order, guarantees with borrowing and reclaim,
EASY reservation with backfill, and preferred placement. Without one, the order
is first-come, first-served by priority and submit time (ties by job id), with
skipping: a job that does not fit does not block smaller jobs behind it. That
fallback keeps a broker with no accounts yet working exactly as before.
"""

from __future__ import annotations

from minga.common.domain import Job
from minga.common.snapshot import Decisions, Placement, Preemption, Snapshot, Waiting
from minga.scheduler.policy.account_limits import split_limited
from minga.scheduler.policy.array_cap import split_capped, with_capped
from minga.scheduler.policy.fair_cycle import schedule_fair
from minga.scheduler.policy.feasibility import never_fits_reason, waiting_reason
from minga.scheduler.policy.guarantees import build_ledger
from minga.scheduler.policy.lending_verdicts import Lending
from minga.scheduler.policy.low_carbon import site_intensities
from minga.scheduler.policy.placement import Capacity, Choice, best_fit, free_capacity, take


def queue_order(pending: tuple[Job, ...]) -> list[Job]:
    return sorted(pending, key=lambda j: (-j.spec.priority, j.submitted_at, j.id))


def schedule(snapshot: Snapshot, now: float) -> Decisions:
    """Place as many pending jobs as fit, in queue order; say why the rest wait.

    Pure and deterministic: the same snapshot and `now` give the same decisions. The
    tasks of a job array over its `%K` cap wait first (`array_cap.py`), and so do the jobs
    a limit per user or per project holds (`account_limits.py`).
    """
    snapshot, capped = split_capped(snapshot)
    snapshot, limited = split_limited(snapshot)
    capped += limited
    if snapshot.institutions:
        return with_capped(schedule_fair(snapshot, now), capped)
    return with_capped(schedule_fifo(snapshot, now), capped)


def schedule_fifo(snapshot: Snapshot, now: float = 0.0) -> Decisions:
    """Submit order with skipping and best-fit placement: the policy before accounts exist.
    Site owners' lending policies apply here too (`lending_verdicts.py`)."""
    capacity = free_capacity(snapshot.sites, snapshot.live_runs)
    lending = Lending.start(snapshot, now, {})
    intensity = site_intensities(snapshot)
    placements: list[Placement] = []
    waiting: list[Waiting] = []
    preemptions: tuple[Preemption, ...] = ()
    if lending is not None:
        closing = lending.closing(
            snapshot.live_runs, build_ledger(snapshot), now, snapshot.settings.preemption_grace_seconds
        )
        preemptions = tuple(
            Preemption(run.id, run.job_id, run.site, why, kind="lending-window", beneficiary=owner)
            for run, why, owner in closing
        )
    for job in queue_order(snapshot.pending):
        never = never_fits_reason(job, snapshot.sites)
        if never:
            waiting.append(Waiting(job.id, never, never_fits=True))
            continue
        res = job.spec.resources
        choice, refused = _fifo_choice(job, snapshot, capacity, lending, intensity)
        if choice is None:
            waiting.append(Waiting(job.id, refused or waiting_reason(job, snapshot.sites, capacity)))
            continue
        placements.append(Placement(job.id, choice.site, choice.gpu_model, res.gpus, res.cpus))
        capacity = take(capacity, choice.site, choice.gpu_model, res.gpus, res.cpus)
        if lending is not None:
            lending.placed(choice.site, job.institution, res.gpus)
    return Decisions(placements=tuple(placements), waiting=tuple(waiting), preemptions=preemptions)


def _fifo_choice(
    job: Job, snapshot: Snapshot, capacity: Capacity, lending: Lending | None, intensity: dict[str, float]
) -> tuple[Choice | None, str | None]:
    """Best fit among the sites whose policy takes the job; when none does but a refusing
    site had room, that site's refusal is the reason."""
    if lending is None:
        return best_fit(job, snapshot.sites, capacity, intensity), None
    key, gpus = lending.key(job), job.spec.resources.gpus
    refusals = {s.name: lending.refusal(key, s.name, gpus) for s in snapshot.sites}
    choice = best_fit(job, [s for s in snapshot.sites if not refusals[s.name]], capacity, intensity)
    if choice is not None:
        return choice, None
    anywhere = best_fit(job, snapshot.sites, capacity)
    return None, (refusals[anywhere.site] if anywhere is not None else None)
