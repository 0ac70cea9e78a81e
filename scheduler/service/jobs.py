"""Submitting, reading, cancelling jobs and reading their logs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from minga.common import carbon
from minga.common.domain import (
    ArraySummary,
    FailedPrecondition,
    InvalidArgument,
    Job,
    JobCarbon,
    JobSpec,
    JobState,
    MingaError,
    NotFound,
    Principal,
    Run,
)
from minga.common.site_messages import StopRunCommand
from minga.scheduler.arrays import ArraySpec, parse_array, task_id
from minga.scheduler.core import Core
from minga.scheduler.dependencies import WAITING_FOR_CYCLE
from minga.scheduler.policy.feasibility import submit_rejection
from minga.scheduler.policy.low_carbon import job_carbon
from minga.scheduler.service import dependencies, packages, webhooks
from minga.scheduler.service.access import can_see_job, institution_scope, visible_job
from minga.scheduler.service.limits import submit_guard
from minga.scheduler.store.jobs import AuditLine
from minga.scheduler.validation import check_digest, check_job_spec

MAX_IDEMPOTENCY_KEY = 128
LOG_POLL_SECONDS = 0.2


def submit_job(
    core: Core, caller: Principal, spec: JobSpec, key: str, allow_unknown: bool = False, audit: AuditLine | None = None
) -> tuple[Job, bool]:
    """Accept a job durably (committed before the reply) or say why not. A country or
    GPU model that no site has, or more GPUs than any site has, is refused unless
    `allow_unknown` (a site expected to join); a malformed spec is refused always.
    `audit` makes the call's audit line, committed with the job.

    The happy path reads nothing per call: the key's uniqueness is left to the store's
    constraint, the sites, the project and the account limits come from short-lived caches, and the commit
    is shared with concurrent submits. It returns before any scheduling cycle runs."""
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is {len(key)} characters; the limit is {MAX_IDEMPOTENCY_KEY}")
    try:
        spec = _checked_spec(core, caller, spec, allow_unknown)
        # The account's limits (max walltime, max pending), if it has any, around the insert.
        with submit_guard(core, spec.project, caller.name, spec.walltime_seconds):
            job, created = core.store.jobs.submit(_new_job(core, caller, spec), key or None, audit)
    except MingaError:  # a retry of a submit accepted before gets its job, whatever changed since
        earlier = core.store.jobs.find_by_key(caller.name, key) if key else None
        if earlier is None:
            raise
        if audit is not None:
            core.store.audit.append(audit(earlier))
        return earlier, False
    if created:
        core.cycle.trigger()
    return job, created


def _new_job(core: Core, caller: Principal, spec: JobSpec) -> Job:
    """The job to store: held (PENDING, out of the queue) while its dependencies are unmet."""
    job_id = core.ids.new_job_id()
    dependencies.refuse_cycle(core, {job_id}, spec)
    unmet, held = dependencies.held_reason(core, spec)
    return Job(
        id=job_id,
        spec=spec,
        state=JobState.PENDING,
        owner=caller.name,
        institution=caller.institution,
        submitted_at=core.clock.now(),
        reason=held or WAITING_FOR_CYCLE,
        after_unmet=unmet,
    )


def submit_array(
    core: Core, caller: Principal, spec: JobSpec, array: str, key: str, allow_unknown: bool = False
) -> tuple[Job, ArraySummary, bool]:
    """Accept a job array (Slurm's `--array`) in one transaction: every task a job of its
    own, `<array id>_<index>`, all with the same spec. The same idempotency key returns
    the earlier array (or job), never a second one. Returns (first task, array, created)."""
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is {len(key)} characters; the limit is {MAX_IDEMPOTENCY_KEY}")
    if key:
        earlier = core.store.jobs.find_by_key(caller.name, key)
        if earlier:
            return _earlier_array(core, earlier)
    parsed = parse_array(array)
    spec = _checked_spec(core, caller, spec, allow_unknown)
    with submit_guard(core, spec.project, caller.name, spec.walltime_seconds, len(parsed.indices)):
        return _store_array(core, caller, spec, parsed, key)


def _store_array(
    core: Core, caller: Principal, spec: JobSpec, parsed: ArraySpec, key: str
) -> tuple[Job, ArraySummary, bool]:
    array_id = core.ids.new_job_id()
    dependencies.refuse_cycle(core, {array_id, *(task_id(array_id, i) for i in parsed.indices)}, spec)
    unmet, held = dependencies.held_reason(core, spec)
    first = Job(
        id=task_id(array_id, parsed.indices[0]),
        spec=spec,
        state=JobState.PENDING,
        owner=caller.name,
        institution=caller.institution,
        submitted_at=core.clock.now(),
        reason=held or WAITING_FOR_CYCLE,
        array_id=array_id,
        array_index=parsed.indices[0],
        array_limit=parsed.limit,
        after_unmet=unmet,
    )
    array_id, created = core.store.arrays.submit(first, parsed.indices, parsed.limit, key or None)
    if not created:
        return _earlier_array(core, core.store.jobs.find_by_key(caller.name, key))
    core.cycle.trigger()
    summary = core.store.arrays.get(array_id)
    assert summary is not None
    return core.store.jobs.get(first.id), summary, True


def _earlier_array(core: Core, earlier: Job | None) -> tuple[Job, ArraySummary, bool]:
    """What an array submit whose key was used before returns: that submit's job and array."""
    if earlier is None:
        raise FailedPrecondition("the idempotency key matched a submit that no longer exists")
    summary = core.store.arrays.get(earlier.array_id) if earlier.array_id else None
    if summary is None:  # the key was first used for a plain job: that job is the answer
        summary = ArraySummary(
            id="",
            name=earlier.spec.name,
            owner=earlier.owner,
            institution=earlier.institution,
            project=earlier.spec.project,
            tasks=0,
            limit=0,
            submitted_at=earlier.submitted_at,
        )
    return earlier, summary, False


def _checked_spec(core: Core, caller: Principal, spec: JobSpec, allow_unknown: bool) -> JobSpec:
    """The spec, checked and charged to a project, or the reason it is refused."""
    if not caller.institution:
        raise FailedPrecondition(f"user {caller.name!r} belongs to no institution, so no one can be charged")
    check_job_spec(spec)
    if spec.notify_url:
        webhooks.check_notify(core, caller, spec.notify_url)
    spec = dependencies.checked_after(core, caller, spec)
    digest = spec.runtime_env.working_dir_digest
    if digest and not core.store.blobs.has_package(digest):
        raise FailedPrecondition(f"working-dir package {digest} was never uploaded")
    rejection = None if allow_unknown else submit_rejection(spec, core.store.sites.recent(core.clock.now()))
    if rejection:
        raise FailedPrecondition(f"rejected: {rejection}")
    project = core.store.shares.resolve_project(caller.institution, spec.project, core.clock.now())
    if spec.low_carbon is None:  # the researcher did not say: the federation's default (docs/carbon.md)
        spec = replace(spec, low_carbon=core.store.shares.settings().low_carbon_default)
    return replace(spec, project=project)


def get_job(core: Core, caller: Principal, job_id: str) -> Job:
    return visible_job(caller, core.store.jobs.get(job_id))


def job_status(core: Core, caller: Principal, job_id: str) -> Job:
    """The job, with its estimated start when it is pending (`scheduler/estimates.py`) and
    its dependencies (spec.after) and where they stand."""
    job = get_job(core, caller, job_id)
    job = replace(job, carbon=_carbon(core, job))
    if job.spec.after:
        job = replace(job, dependencies=core.store.dependencies.of_job(job))
    if job.state is not JobState.PENDING or job.after_unmet:
        return job
    return replace(job, estimate=core.cycle.estimates.for_job(job.id))


def _carbon(core: Core, job: Job) -> JobCarbon:
    """Grid intensities for `job status` (docs/carbon.md): two small reads, per job asked."""
    sites = core.store.sites.list()
    figures = carbon.site_intensities(((s.name, s.country) for s in sites), core.store.carbon.intensity_figures())
    return job_carbon(job, sites, dict(figures))


def job_runs(core: Core, caller: Principal, job_id: str) -> list[Run]:
    """The runs of a job the caller may see, its attempts in order."""
    get_job(core, caller, job_id)
    return core.store.runs.of_job(job_id)


def list_jobs(
    core: Core, caller: Principal, include_terminal: bool, state: JobState | None, group_arrays: bool = False
) -> tuple[list[Job], list[ArraySummary]]:
    """The jobs the caller may see; with `group_arrays`, arrays as summaries, not tasks."""
    scope = institution_scope(caller)
    found = core.store.jobs.list(scope, include_terminal, state, plain_only=group_arrays)
    arrays = core.store.arrays.list(scope, include_terminal, state) if group_arrays else []
    return found, arrays


def get_array(core: Core, caller: Principal, array_id: str) -> ArraySummary:
    """An array the caller may see (as for its jobs), summed up."""
    summary = core.store.arrays.get(array_id)
    if summary is None or not _can_see_array(caller, summary):
        raise NotFound(f"no job array {array_id!r}")
    return summary


def cancel_array(
    core: Core, caller: Principal, array_id: str, with_dependents: bool = False
) -> tuple[ArraySummary, list[str]]:
    """Cancel every task that has not ended: the pending ones in one statement, the live
    ones one by one (each has a run to stop on its site). Idempotent. With
    `with_dependents`, the jobs waiting for the array, transitively, too (their ids)."""
    get_array(core, caller, array_id)
    dependents = _live_dependents(core, caller, array_id) if with_dependents else []
    reason = f"cancelled by {caller.name}"
    for job_id in core.store.arrays.cancel_pending(array_id, core.clock.now(), reason):
        _cancel_one(core, job_id, reason)
    _cancel_dependents(core, caller, array_id, dependents)
    return get_array(core, caller, array_id), dependents


def _can_see_array(caller: Principal, summary: ArraySummary) -> bool:
    scope = institution_scope(caller)
    return scope is None or (bool(scope) and scope == summary.institution)


def cancel_job(core: Core, caller: Principal, job_id: str, with_dependents: bool = False) -> tuple[Job, list[str]]:
    """Cancel a job (idempotent); with `with_dependents`, the jobs waiting for it,
    transitively, too. Returns the job and the ids of the dependents cancelled now."""
    get_job(core, caller, job_id)
    dependents = _live_dependents(core, caller, job_id) if with_dependents else []
    job = _cancel_one(core, job_id, f"cancelled by {caller.name}")
    _cancel_dependents(core, caller, job_id, dependents)
    return job, dependents


def _cancel_one(core: Core, job_id: str, reason: str) -> Job:
    outcome = core.store.jobs.request_cancel(job_id, core.clock.now(), reason)
    if outcome.stop_run_id:
        core.sessions.send(StopRunCommand(outcome.stop_site, outcome.stop_run_id, "job cancelled"))
    return outcome.job


def _live_dependents(core: Core, caller: Principal, job_id: str) -> list[str]:
    """The jobs that wait for `job_id`, transitively, not ended yet and that the caller may
    cancel. Read before `job_id` is cancelled: the cycle's dependency phase may cancel some
    of them itself as soon as it is, and they are still reported as cancelled with it."""
    live = []
    for dependent in dependencies.dependents_to_cancel(core, [job_id]):
        job = core.store.jobs.get(dependent)
        if not job.state.terminal and can_see_job(caller, job):
            live.append(dependent)
    return live


def _cancel_dependents(core: Core, caller: Principal, job_id: str, dependents: list[str]) -> None:
    """Cancel `dependents` (Slurm has no such flag; this is `scancel` of each in turn; a
    cancel is idempotent, so one the cycle cancelled meanwhile stays as it is)."""
    reason = f"cancelled by {caller.name} with {job_id}, which it waited for"
    for dependent in dependents:
        _cancel_one(core, dependent, reason)


def job_logs(
    core: Core, caller: Principal, job_id: str, follow: bool, offset: int, is_active: Callable[[], bool]
) -> Iterator[tuple[str, int, bytes]]:
    """(run id, offset, bytes) of the job's current run; with `follow`, until the job ends."""
    job = get_job(core, caller, job_id)
    run_id = job.run_id
    idle = threading.Event()
    while True:
        if job.run_id != run_id:  # a new attempt: its log starts afresh
            run_id, offset = job.run_id, 0
        if run_id:
            for start, data in core.store.blobs.read_log(run_id, offset):
                yield run_id, start, data
                offset = start + len(data)
        if not follow or job.state.terminal or not is_active():
            return
        idle.wait(LOG_POLL_SECONDS)
        job = core.store.jobs.get(job_id)
        if job.state.terminal:  # one last read: the site sends logs before the end
            follow = False


def has_package(core: Core, digest: str) -> bool:
    return core.store.blobs.has_package(check_digest("digest", digest))


def upload_package(core: Core, digest: str, data: bytes) -> str:
    """The one-message upload (older clients): the same checks as a chunked one."""
    return packages.receive_package(core, [(digest, len(data), data)])
