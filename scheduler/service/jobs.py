"""Submitting, reading, cancelling jobs and reading their logs."""
from __future__ import annotations

from dataclasses import replace
import threading
from collections.abc import Callable, Iterator

from scheduler.commands import StopRunCommand
from scheduler.core import Core
from scheduler.domain import FailedPrecondition, InvalidArgument, Job, JobSpec, JobState, Principal
from scheduler.policy.feasibility import submit_rejection
from scheduler.service.access import institution_scope, visible_job
from scheduler.service import packages
from scheduler.validation import check_digest, check_job_spec

MAX_IDEMPOTENCY_KEY = 128
LOG_POLL_SECONDS = 0.2


def submit_job(core: Core, caller: Principal, spec: JobSpec, key: str,
               allow_unknown: bool = False) -> tuple[Job, bool]:
    """Accept a job durably (committed before the reply) or say why not. A country or
    GPU model that no site has, or more GPUs than any site has, is refused unless
    `allow_unknown` (a site expected to join); a malformed spec is refused always."""
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is {len(key)} characters; the limit is {MAX_IDEMPOTENCY_KEY}")
    if key:
        earlier = core.store.jobs.find_by_key(caller.name, key)
        if earlier:
            return earlier, False
    if not caller.institution:
        raise FailedPrecondition(f"user {caller.name!r} belongs to no institution, so no one can be charged")
    check_job_spec(spec)
    digest = spec.runtime_env.working_dir_digest
    if digest and not core.store.blobs.has_package(digest):
        raise FailedPrecondition(f"working-dir package {digest} was never uploaded")
    rejection = None if allow_unknown else submit_rejection(spec, core.store.sites.list())
    if rejection:
        raise FailedPrecondition(f"rejected: {rejection}")
    project = core.store.shares.resolve_project(caller.institution, spec.project, core.clock.now())
    spec = replace(spec, project=project)
    job = Job(id=core.ids.new_job_id(), spec=spec, state=JobState.PENDING, owner=caller.name,
              institution=caller.institution, submitted_at=core.clock.now(),
              reason="waiting for the next scheduling cycle")
    job, created = core.store.jobs.submit(job, key or None)
    if created:
        core.cycle.trigger()
    return job, created


def get_job(core: Core, caller: Principal, job_id: str) -> Job:
    return visible_job(caller, core.store.jobs.get(job_id))


def list_jobs(core: Core, caller: Principal, include_terminal: bool, state: JobState | None) -> list[Job]:
    return core.store.jobs.list(institution_scope(caller), include_terminal, state)


def cancel_job(core: Core, caller: Principal, job_id: str) -> Job:
    get_job(core, caller, job_id)
    outcome = core.store.jobs.request_cancel(job_id, core.clock.now(), f"cancelled by {caller.name}")
    if outcome.stop_run_id:
        core.sessions.send(StopRunCommand(outcome.stop_site, outcome.stop_run_id, "job cancelled"))
    return outcome.job


def job_logs(core: Core, caller: Principal, job_id: str, follow: bool, offset: int,
             is_active: Callable[[], bool]) -> Iterator[tuple[str, int, bytes]]:
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
