"""Reclaim by preemption: the plan that gets an owner below its guarantee its GPUs back.

Kueue's reclaimWithinCohort, with Armada's minimum-runtime grace: the victims are runs of
institutions above their own guarantee for the model (a non-preemptible run only beyond it),
past the grace, newest first, freeing the fewest GPUs that make the job fit, the owner's own
sites first. The cycle (`reclaim.py`) places the job on the freed GPUs in the same cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from minga.common.domain import Run
from minga.scheduler.policy.guarantees import Ledger
from minga.scheduler.policy.pool_index import Pool


@dataclass(frozen=True)
class ReclaimPlan:
    pool: Pool
    victims: tuple[Run, ...]
    freed: int


def _eligible(run: Run, owner: str, ledger: Ledger, now: float, grace: float, excess: dict[str, int]) -> bool:
    if run.institution == owner or now - run.started_at < grace:
        return False
    left = excess.get(run.institution, 0)
    return left >= run.gpus if not run.preemptible else left > 0


def victims_on(
    pool: Pool,
    runs: list[Run],
    owner: str,
    need_gpus: int,
    need_cpus: float,
    free_cpus: float,
    ledger: Ledger,
    now: float,
    grace: float,
) -> tuple[Run, ...] | None:
    """The fewest newest borrowed runs on `pool` whose GPUs (and CPUs) make room, or None."""
    excess = {r.institution: ledger.excess(r.institution, pool.model) for r in runs}
    chosen: list[Run] = []
    gpus, cpus = 0, free_cpus
    for run in sorted(runs, key=lambda r: (-r.started_at, r.id)):
        if gpus >= need_gpus and cpus >= need_cpus:
            break
        if _eligible(run, owner, ledger, now, grace, excess):
            chosen.append(run)
            excess[run.institution] -= run.gpus
            gpus += run.gpus
            cpus += run.cpus
    if gpus < need_gpus or cpus < need_cpus:
        return None
    for run in sorted(chosen, key=lambda r: (r.started_at, r.id)):  # drop the oldest not needed
        if gpus - run.gpus >= need_gpus and cpus - run.cpus >= need_cpus:
            chosen.remove(run)
            gpus -= run.gpus
            cpus -= run.cpus
    return tuple(chosen)


def plan_reclaim(
    owner: str,
    gpus: int,
    cpus: float,
    tiers: list[list[Pool]],
    runs_of: Callable[[Pool], list[Run]],
    free_cpus: Callable[[str], float],
    ledger: Ledger,
    now: float,
    grace: float,
) -> ReclaimPlan | None:
    """The pool, tier by tier, where reclaiming frees the fewest GPUs (ties by name)."""
    for tier in tiers:
        best: tuple[tuple[int, int, str, str], ReclaimPlan] | None = None
        for pool in tier:
            need = gpus - max(pool.free, 0)
            if need <= 0 and free_cpus(pool.site) >= cpus:
                continue
            victims = victims_on(
                pool, runs_of(pool), owner, max(need, 0), cpus, free_cpus(pool.site), ledger, now, grace
            )
            if not victims:
                continue
            freed = sum(v.gpus for v in victims)
            key = (freed, len(victims), pool.site, pool.model)
            if best is None or key < best[0]:
                best = (key, ReclaimPlan(pool, victims, freed))
        if best:
            return best[1]
    return None
