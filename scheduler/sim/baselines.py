"""Baseline policies the simulator runs next to minga's, with the same signature as
`minga.scheduler.policy.schedule(snapshot, now) -> Decisions` and the same placement code
(`minga.scheduler.policy.placement.best_fit`), so only the ORDER and the CAPS differ.

- `fifo`: submit order (ties by id), skipping what does not fit; no guarantees, no preemption.
- `slurm_classic`: Slurm's classic fair-share factor F = 2^(-U/S) per institution
  (Slurm priority/multifactor before Fair Tree: U = the institution's share of all decayed
  usage, S = its share of all weights, read as the share policy says: the weight as set, or
  base grant + contribution); highest F first, then submit order. No guarantees,
  no borrowing limits, no preemption.
- `static`: static quotas without borrowing: each institution may hold at most its
  guarantee per GPU model (its own sites' capacity, or its explicit guarantee); submit order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from minga.common.domain import Job
from minga.scheduler.policy import Decisions, Placement, Snapshot, Waiting, schedule
from minga.scheduler.policy.entitlement import institution_weights
from minga.scheduler.policy.feasibility import never_fits_reason
from minga.scheduler.policy.pending_columns import Shape
from minga.scheduler.policy.placement import Capacity, best_fit, free_capacity, take

Policy = Callable[[Snapshot, float], Decisions]
Cap = Callable[[Job], Job | None]  # the job restricted to the models it may still use, or None


def place_in_order(
    snapshot: Snapshot,
    order: Iterable[Job],
    cap: Cap | None = None,
    on_place: Callable[[Job, str, int], None] | None = None,
) -> Decisions:
    """Place jobs in the given order where they fit (best fit), skipping the rest.

    For speed over deep queues: never-fits checks are shared by jobs of the same shape
    (GPUs, models, memory, CPUs, countries, labels); a job is tried only if some pool of an
    allowed model has enough free GPUs (necessary for best_fit); and a shape that failed
    to fit is not tried again in the same cycle (capacity only shrinks within a cycle).
    Under a cap the shape includes the institution, whose room the cap depends on."""
    capacity: Capacity = free_capacity(snapshot.sites, snapshot.live_runs)
    most_free = _most_free(capacity)
    never_cache: dict[Shape, str | None] = {}
    failed: set[Shape | tuple[Shape, str]] = set()  # the shape, with the institution under a cap
    placements: list[Placement] = []
    waiting: list[Waiting] = []
    for job in order:
        res, spec = job.spec.resources, job.spec
        shape = (res.gpus, res.gpu_models, res.min_gpu_memory_mb, res.cpus, spec.countries, spec.site_labels)
        if shape not in never_cache:
            never_cache[shape] = never_fits_reason(job, snapshot.sites)
        never = never_cache[shape]
        if never:
            waiting.append(Waiting(job.id, never, never_fits=True))
            continue
        tried = (shape, job.institution) if cap else shape
        if tried in failed:
            waiting.append(Waiting(job.id, _capacity(res.gpus)))
            continue
        capped = cap(job) if cap else job
        if capped is None:
            waiting.append(Waiting(job.id, "quota: the institution's static quota is full"))
            continue
        models = capped.spec.resources.gpu_models or tuple(most_free)
        choice = None
        if not res.gpus or max((most_free.get(m, 0) for m in models), default=0) >= res.gpus:
            choice = best_fit(capped, snapshot.sites, capacity)
        if choice is None:
            failed.add(tried)
            waiting.append(Waiting(job.id, _capacity(res.gpus)))
            continue
        placements.append(Placement(job.id, choice.site, choice.gpu_model, res.gpus, res.cpus))
        capacity = take(capacity, choice.site, choice.gpu_model, res.gpus, res.cpus)
        most_free[choice.gpu_model] = max(n for (_, m), n in capacity.gpus.items() if m == choice.gpu_model)
        if on_place:
            on_place(job, choice.gpu_model, res.gpus)
    return Decisions(placements=tuple(placements), waiting=tuple(waiting))


_CAPACITY: dict[int, str] = {}


def _capacity(gpus: int) -> str:
    if gpus not in _CAPACITY:
        _CAPACITY[gpus] = f"capacity: waiting for {gpus} free GPUs on one site"
    return _CAPACITY[gpus]


def _most_free(capacity: Capacity) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, model), n in capacity.gpus.items():
        out[model] = max(out.get(model, n), n)
    return out


def submit_order(jobs: Iterable[Job]) -> list[Job]:
    return sorted(jobs, key=lambda j: (j.submitted_at, j.id))


def fifo(snapshot: Snapshot, now: float) -> Decisions:
    del now
    return place_in_order(snapshot, submit_order(snapshot.pending))


def classic_factors(snapshot: Snapshot) -> dict[str, float]:
    """Institution -> 2^(-U/S), from the snapshot's decayed usage and static weights."""
    inst_of = {p.id: p.institution for p in snapshot.projects}
    usage: dict[str, float] = {}
    for project, value in snapshot.usage:
        inst = inst_of.get(project, project.split("/", 1)[0])
        usage[inst] = usage.get(inst, 0.0) + value
    total_u = sum(usage.values())
    weight = institution_weights(snapshot.institutions, snapshot.settings)
    total_w = sum(weight.values()) or 1.0
    out = {}
    for i in snapshot.institutions:
        u = usage.get(i.slug, 0.0) / total_u if total_u > 0 else 0.0
        s = max(weight[i.slug], 1e-9) / total_w
        out[i.slug] = 2.0 ** (-u / s)
    return out


def slurm_classic(snapshot: Snapshot, now: float) -> Decisions:
    del now
    f = classic_factors(snapshot)
    order = sorted(snapshot.pending, key=lambda j: (-f.get(j.institution, 0.0), j.submitted_at, j.id))
    return place_in_order(snapshot, order)


def guarantees(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """Institution -> model -> GPUs: the explicit guarantee, else its own sites' capacity."""
    own: dict[str, dict[str, int]] = {}
    for s in snapshot.sites:
        for p in s.inventory.gpus:
            d = own.setdefault(s.institution, {})
            d[p.model] = d.get(p.model, 0) + p.total
    return {i.slug: dict(i.guarantee) if i.guarantee else own.get(i.slug, {}) for i in snapshot.institutions}


def static(snapshot: Snapshot, now: float) -> Decisions:
    del now
    quota = guarantees(snapshot)
    held: dict[tuple[str, str], int] = {}
    for r in snapshot.live_runs:
        held[(r.institution, r.gpu_model)] = held.get((r.institution, r.gpu_model), 0) + r.gpus

    def cap(job: Job) -> Job | None:
        res = job.spec.resources
        room = [
            m
            for m, n in sorted(quota.get(job.institution, {}).items())
            if (not res.gpu_models or m in res.gpu_models) and held.get((job.institution, m), 0) + res.gpus <= n
        ]
        if not room:
            return None
        return replace(job, spec=replace(job.spec, resources=replace(res, gpu_models=tuple(room))))

    def on_place(job: Job, model: str, gpus: int) -> None:
        held[(job.institution, model)] = held.get((job.institution, model), 0) + gpus

    return place_in_order(snapshot, submit_order(snapshot.pending), cap, on_place)


POLICIES: dict[str, Policy] = {"minga": schedule, "fifo": fifo, "slurm-classic": slurm_classic, "static": static}
