"""The pending queue as the policy would serve it: the caller's own jobs in that order, each
with its place, waiting reason and estimated start, and everyone's only as counts.

The order is the last cycle's (`policy.fairshare.order_pending` over its snapshot): what the
next cycle would try first. A job submitted since, or held back by a requeue backoff, has
no place yet and comes after the sorted ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from minga.common.domain import Job, JobState, Principal
from minga.scheduler.core import Core
from minga.scheduler.policy.fairshare import order_pending
from minga.scheduler.service.access import can_see_job

UNSORTED = 0  # a job the last cycle did not sort: submitted since, or in a backoff


@dataclass(frozen=True)
class QueuedJob:
    job: Job  # with its estimated start, when the forecast has one
    place: int  # 1 = next; UNSORTED if the last cycle did not sort it


@dataclass(frozen=True)
class PendingCount:
    institution: str
    jobs: int
    gpus: int


@dataclass(frozen=True)
class QueueView:
    jobs: list[QueuedJob]  # the caller's to see from `offset` on, in the order they would be served
    offset: int
    visible: int  # how many of the caller's are pending in all
    total: int  # everyone's pending jobs
    by_institution: list[PendingCount]  # every institution's pending jobs, counted only
    as_of: float  # when the last cycle ran (0: none yet)


def queue_view(core: Core, caller: Principal, offset: int = 0, limit: int = 100) -> QueueView:
    """The caller's pending jobs [offset, offset + limit) in the order the next cycle would
    try them; estimates only for those (each is a lookup in the cached forecast)."""
    latest = core.cycle.estimates.latest
    ordered = order_pending(*latest) if latest else []
    pending = pending_now(core)
    current = {j.id: j for j in pending if can_see_job(caller, j)}
    places = {job.id: i for i, job in enumerate(ordered, 1)}
    mine = [(places[j.id], current[j.id]) for j in ordered if j.id in current]
    later = sorted((j for j in current.values() if j.id not in places), key=lambda j: (j.submitted_at, j.id))
    mine += [(UNSORTED, j) for j in later]
    page = mine[offset : offset + limit]
    jobs = [QueuedJob(replace(j, estimate=core.cycle.estimates.for_job(j.id)), place) for place, j in page]
    count: Counter[str] = Counter()
    gpus: Counter[str] = Counter()
    for job in pending:
        count[job.institution] += 1
        gpus[job.institution] += job.spec.resources.gpus
    counts = [PendingCount(slug, count[slug], gpus[slug]) for slug in sorted(count)]
    return QueueView(jobs, offset, len(mine), len(pending), counts, latest[1] if latest else 0.0)


def pending_now(core: Core) -> list[Job]:
    """Every queued pending job now (none held by its dependencies): the leader's state in
    memory, or the store while it reloads."""
    state = core.cycle.level_state()
    if state:
        return state.pending_jobs()
    stored = core.store.jobs.list(None, False, JobState.PENDING, limit=1_000_000)
    return [j for j in stored if not j.after_unmet]  # held by their dependencies: not queued yet, as in memory
