"""Fair-share preemption: an account below its fair share now takes GPUs back.

After water-filling, an institution below (1 - threshold) of its fair share now
(`share_now.py`) preempts borrowed runs past their grace of institutions above theirs: each
victim stays at or above its share, and the preemptor ends no higher than the victims
(Kueue's LessThanOrEqualToFinalShare, KEP-1714 S2-a); only when the preemptor is placed on
the freed GPUs in this cycle (Armada); fewest GPU-hours lost first; at most
`preemption_cap` of the GPUs per cycle. The rules and why: docs/fairshare.md."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain

from minga.common.domain import Job, Run
from minga.common.snapshot import Preemption
from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.pool_index import Pool
from minga.scheduler.policy.pool_search import acceptor
from minga.scheduler.policy.share_now import column_demand, share_now

TRIES_PER_INSTITUTION = 32  # distinct request shapes of one institution tried per cycle


@dataclass(frozen=True)
class _Plan:
    pool: Pool
    victims: tuple[Run, ...]
    freed: int
    lost: float  # GPU-seconds the victims have run: lost on a restart


@dataclass
class _Standing:
    """What each institution holds and is owed now; updated as this phase preempts."""

    held: dict[str, float]
    owed: Mapping[str, float]

    def ratio(self, slug: str) -> float:
        return _ratio(self.held.get(slug, 0.0), self.owed.get(slug, 0.0))


def preempt_for_fair_share(cycle: Cycle) -> None:
    """Preempt for the institutions furthest below their fair share, neediest first."""
    settings = cycle.snapshot.settings
    if not settings.fair_share_preemption or not cycle.snapshot.live_runs:
        return
    share = share_now(cycle.snapshot, cycle.tree, pending_demand(cycle), cycle.ledger.guarantee)
    owed = share.shares.institution
    standing = _Standing({slug: float(sum(cycle.ledger.used[slug].values())) for slug in owed}, owed)
    limit = 1.0 - settings.preemption_threshold
    needy = [(standing.ratio(s), s) for s in owed if standing.held[s] < limit * owed[s]]
    if not needy or not any(standing.held[s] > owed[s] for s in owed):
        return
    heapq.heapify(needy)
    budget = max(1, int(settings.preemption_cap * share.capacity))
    while needy and budget > 0:
        _, slug = heapq.heappop(needy)
        freed = _preempt_for(cycle, slug, standing, budget)
        if freed:
            budget -= freed
            if standing.held[slug] < limit * owed[slug]:
                heapq.heappush(needy, (standing.ratio(slug), slug))


def pending_demand(cycle: Cycle) -> dict[str, float]:
    """GPUs each project's pending jobs ask for, leaving out jobs no site could ever hold."""
    queue = cycle.queue
    return column_demand(
        queue.shapes, queue.shape_of, queue.examples, queue.groups, lambda pos: cycle.never_fits(pos) is not None
    )


def _preempt_for(cycle: Cycle, slug: str, standing: _Standing, budget: int) -> int:
    """Place one of `slug`'s waiting jobs by preemption: the GPUs freed, 0 if none could be."""
    queue = cycle.queue
    placed = {p.job_id for p in cycle.placements}
    tried: set[int] = set()
    for pos in chain.from_iterable(queue.runs.get(slug, ())):
        sid = queue.shape_of[pos]
        if sid in tried or not queue.shapes[sid][0] or cycle.never_fits(pos):
            continue
        job = queue.jobs[pos]
        if job.id in placed:
            continue
        tried.add(sid)
        plan = _best_plan(cycle, job, standing, budget)
        if plan is not None:
            _apply(cycle, pos, job, plan, standing)
            return plan.freed
        if len(tried) >= TRIES_PER_INSTITUTION:
            break
    return 0


def _best_plan(cycle: Cycle, job: Job, standing: _Standing, budget: int) -> _Plan | None:
    """The pool where preempting loses the fewest GPU-hours (then frees the fewest GPUs)."""
    ok = acceptor(cycle, job, set(), room=False)
    best: _Plan | None = None
    for model in cycle.models(job):
        for pool in cycle.index.by_model[model]:
            if not cycle.index.runs.get(pool.key) or not ok(pool):
                continue
            plan = _plan_on(cycle, pool, job, standing, budget)
            if plan is not None and (
                best is None
                or (plan.lost, plan.freed, pool.site, pool.model)
                < (best.lost, best.freed, best.pool.site, best.pool.model)
            ):
                best = plan
    return best


def _plan_on(cycle: Cycle, pool: Pool, job: Job, standing: _Standing, budget: int) -> _Plan | None:
    """The victims on `pool` that make room for `job` losing the fewest GPU-hours, or None.
    A run that would take the GPUs freed past this cycle's `budget` is passed over, not the
    end of the search: a smaller run that has run longer may still fit."""
    res, now = job.spec.resources, cycle.now
    need = res.gpus - max(pool.free, 0)
    free_cpus = cycle.index.cpus.get(pool.site, 0.0)
    if need <= 0 or need > budget:
        return None
    grace = cycle.snapshot.settings.preemption_grace_seconds
    taken: dict[str, int] = defaultdict(int)  # GPUs taken from each victim institution
    chosen: list[Run] = []
    gpus, cpus = 0, free_cpus

    def lost(victim: Run) -> float:
        return victim.gpus * (now - victim.started_at)

    for run in sorted(cycle.index.runs[pool.key], key=lambda r: (lost(r), -r.started_at, r.id)):
        if gpus >= need and cpus >= res.cpus:
            break
        v = run.institution
        if (
            v == job.institution
            or now - run.started_at < grace
            or gpus + run.gpus > budget
            or standing.held.get(v, 0.0) - taken[v] - run.gpus < standing.owed.get(v, 0.0)
            or cycle.ledger.excess(v, pool.model) - taken[v] < run.gpus
        ):
            continue
        chosen.append(run)
        taken[v] += run.gpus
        gpus += run.gpus
        cpus += run.cpus
    if gpus < need or cpus < res.cpus:
        return None
    for run in sorted(chosen, key=lambda r: (-lost(r), r.id)):  # spare what is not needed
        if gpus - run.gpus >= need and cpus - run.cpus >= res.cpus:
            chosen.remove(run)
            taken[run.institution] -= run.gpus
            gpus -= run.gpus
            cpus -= run.cpus
    if gpus > budget or not _final_shares_allow(job, res.gpus, taken, standing):
        return None
    return _Plan(pool, tuple(chosen), gpus, sum(map(lost, chosen)))


def _final_shares_allow(job: Job, gpus: int, taken: Mapping[str, int], standing: _Standing) -> bool:
    """Kueue's S2-a: the preemptor's share of its fair share with the job is no more than
    each victim's without the preempted runs."""
    after = _ratio(standing.held.get(job.institution, 0.0) + gpus, standing.owed.get(job.institution, 0.0))
    return all(after <= _ratio(standing.held.get(v, 0.0) - n, standing.owed.get(v, 0.0)) for v, n in taken.items() if n)


def _ratio(held: float, owed: float) -> float:
    """Held over owed; an account owed nothing is infinitely far above its share."""
    return held / owed if owed > 0 else float("inf")


def _apply(cycle: Cycle, pos: int, job: Job, plan: _Plan, standing: _Standing) -> None:
    pool, slug = plan.pool, job.institution
    held, owed = standing.held.get(slug, 0.0), standing.owed[slug]
    for run in plan.victims:
        v = run.institution
        reason = (
            f"fair share: {slug} holds {held:g} GPUs, below its fair share of {owed:.1f}; "
            f"{v} holds {standing.held.get(v, 0.0):g}, above its {standing.owed.get(v, 0.0):.1f}; "
            f"preempted for {job.id}"
        )
        cycle.preempt(
            run,
            pool,
            Preemption(run.id, run.job_id, pool.site, reason, kind="fair-share", beneficiary=slug, for_job=job.id),
        )
        standing.held[v] = standing.held.get(v, 0.0) - run.gpus
    cycle.place(job, pool, freed=plan.freed, freed_cpus=sum(r.cpus for r in plan.victims))
    cycle.unwaited.add(pos)
    standing.held[slug] = held + job.spec.resources.gpus
