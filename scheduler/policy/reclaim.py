"""Reclaim in the cycle: preempt borrowed runs so an institution below its guarantee
gets its GPUs back in the same cycle (Kueue's reclaimWithinCohort; the plan itself is
`preemption.py`),
and preempt guests on sites whose owner's lending window has closed (`lending_verdicts.py`)."""

from __future__ import annotations

from minga.common.domain import Job
from minga.common.snapshot import Preemption
from minga.scheduler.policy.cycle_state import Cycle, FailureKey
from minga.scheduler.policy.pool_search import hard_test
from minga.scheduler.policy.preemption import plan_reclaim


def reclaim(cycle: Cycle, job: Job, shape: FailureKey) -> bool:
    """Preempt for `job` if it is within its guarantee and borrowed runs can make room, and
    place it on the freed GPUs in the same cycle (Armada: no preemption that helps nobody).

    True when it was placed so. `shape` is the job's failure-memo key: a shape that found
    nothing to reclaim is not searched again.
    """
    res = job.spec.resources
    inst, ledger, index = job.institution, cycle.ledger, cycle.index
    key = (shape, res.gpus)
    if (
        job.id not in cycle.guaranteed
        or key in cycle.reclaim_failed
        or (inst not in cycle.explicit and reclaim_bound(cycle, inst) < res.gpus)
    ):
        return False
    models = [m for m in cycle.models(job) if ledger.within_guarantee(inst, m, res.gpus)]
    if not models:
        return False
    test = hard_test(job)
    hard_ok = test if cycle.lending is None else (lambda p: test(p) and cycle.lends(job, p.site, res.gpus))
    tiers = [[p for p in index.by_owner.get(inst, ()) if p.model in models and hard_ok(p)]]
    if inst in cycle.explicit:
        tiers.append([p for m in models for p in index.by_model[m] if p.owner != inst and hard_ok(p)])
    plan = plan_reclaim(
        inst,
        res.gpus,
        res.cpus,
        tiers,
        lambda p: index.runs.get(p.key, []),
        lambda s: index.cpus.get(s, 0.0),
        ledger,
        cycle.now,
        cycle.snapshot.settings.preemption_grace_seconds,
    )
    if plan is None:
        cycle.reclaim_failed.add(key)
        return False
    pool = plan.pool
    for victim in plan.victims:
        cycle.preempt(
            victim,
            pool,
            Preemption(
                victim.id,
                victim.job_id,
                pool.site,
                f"reclaim: {inst} is below its {pool.model} guarantee and needs {res.gpus} GPUs for {job.id}",
                kind="reclaim",
                beneficiary=inst,
                for_job=job.id,
            ),
        )
    cycle.place(job, pool, freed=plan.freed, freed_cpus=sum(v.cpus for v in plan.victims))
    cycle.reclaim_bounds.pop(pool.owner, None)
    return True


def reclaim_bound(cycle: Cycle, inst: str) -> int:
    """An upper bound on the GPUs one reclaim on `inst`'s own sites could yield.

    Free GPUs plus GPUs of borrowing institutions' runs past their grace period,
    best pool; recomputed where a reclaim changed a pool. A borrower whose excess
    grows later in the same cycle is caught by the next cycle: reclaim may wait one
    cycle, never preempt wrongly. It lets owners with nothing to reclaim skip the
    search.
    """
    bound = cycle.reclaim_bounds.get(inst)
    if bound is None:
        grace, now = cycle.snapshot.settings.preemption_grace_seconds, cycle.now
        bound = 0
        for pool in cycle.index.by_owner.get(inst, ()):
            if not pool.ready:
                continue
            others = sum(
                r.gpus
                for r in cycle.index.runs.get(pool.key, ())
                if r.institution != inst
                and now - r.started_at >= grace
                and cycle.ledger.excess(r.institution, pool.model) > 0
            )
            bound = max(bound, max(pool.free, 0) + others)
        cycle.reclaim_bounds[inst] = bound
    return bound


def close_windows(cycle: Cycle) -> None:
    """Preempt guests' runs on sites whose lending window is closed now (reclaim's rules:
    past the grace period, non-preemptible runs only beyond their guarantee). Their GPUs
    stay held until the runs stop, as with reclaim: guests cannot use them while the
    window is closed, and the owner's jobs get them in a later cycle."""
    lending = cycle.lending
    if lending is None:
        return
    index = cycle.index
    for run, reason, owner in lending.closing(
        cycle.snapshot.live_runs, cycle.ledger, cycle.now, cycle.snapshot.settings.preemption_grace_seconds
    ):
        runs = index.runs.get((run.site, run.gpu_model), [])
        if run.gpus and run in runs:
            runs.remove(run)  # the ledger was released by `closing`
        cycle.preempt(
            run, None, Preemption(run.id, run.job_id, run.site, reason, kind="lending-window", beneficiary=owner)
        )
