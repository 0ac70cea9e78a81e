"""Job dependencies at the service level: checking a submit's `spec.after` (every job it
names exists and is the caller's to see, no cycle) and `cancel --with-dependents`.

Slurm's `--dependency` rules (scheduler/dependencies.py); the visibility rule is the one
every job read follows (service/access.py): a job of another institution does not exist
for a researcher, so waiting for it is refused as NOT_FOUND.
"""

from __future__ import annotations

from dataclasses import replace

from minga.common.domain import InvalidArgument, JobSpec, NotFound, Principal
from minga.scheduler.core import Core
from minga.scheduler.dependencies import After, parse_after, waiting_reason
from minga.scheduler.service.access import can_see_institution


def checked_after(core: Core, caller: Principal, spec: JobSpec) -> JobSpec:
    """The spec with `after` checked and written "ID:COND"; INVALID_ARGUMENT for a
    malformed one, NOT_FOUND for a job that does not exist or is not the caller's to see."""
    if not spec.after:
        return spec
    conditions = parse_after(spec.after)
    targets = core.store.dependencies.targets([a.job_id for a in conditions])
    for a in conditions:
        target = targets.get(a.job_id)
        if target is None or not can_see_institution(caller, target.institution):
            raise NotFound(f"spec.after: no job {a.job_id!r}")
    return replace(spec, after=tuple(str(a) for a in conditions))


def refuse_cycle(core: Core, new_ids: set[str], spec: JobSpec) -> None:
    """INVALID_ARGUMENT if the new job (or array: `new_ids` has its id and its tasks')
    would wait for itself, directly or through the jobs it waits for."""
    if not spec.after:
        return
    conditions = parse_after(spec.after)
    for a in conditions:
        if a.job_id in new_ids:
            raise InvalidArgument(f"spec.after: {a.job_id} is this job itself: a job cannot wait for itself")
    hit = core.store.dependencies.reaches([a.job_id for a in conditions], new_ids)
    if hit is not None:
        raise InvalidArgument(f"spec.after: a cycle: the jobs it waits for wait for {hit}, this job")


def held_reason(core: Core, spec: JobSpec) -> tuple[int, str]:
    """(conditions unmet, waiting reason) of a new job with `spec.after`: held until the
    cycle's dependencies phase judges it; (0, "") for a job without."""
    if not spec.after:
        return 0, ""
    conditions = parse_after(spec.after)
    first: After = conditions[0]
    array = core.store.dependencies.targets([first.job_id]).get(first.job_id)
    return len(conditions), waiting_reason(first, bool(array and array.array), len(conditions) - 1)


def dependents_to_cancel(core: Core, ids: list[str]) -> list[str]:
    """The jobs that wait for `ids`, transitively (those that ended too: cancel skips them)."""
    return core.store.dependencies.dependents(ids)
