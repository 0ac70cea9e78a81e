"""Jobs, their specs and job arrays: domain values to and from their messages."""

from __future__ import annotations

from dataclasses import asdict

from minga.common.domain import (
    DEFAULT_MAX_ATTEMPTS,
    REDACTED,
    ArraySummary,
    DependencyStatus,
    InvalidArgument,
    Job,
    JobCarbon,
    JobPreemption,
    JobSpec,
    JobState,
    PackageLimits,
    Resources,
    RuntimeEnv,
    StartEstimate,
)
from minga.common.wire.enums import job_state_from_pb, job_state_to_pb
from minga.v1 import common_pb2, job_pb2


def spec_from_pb(pb: common_pb2.JobSpec) -> JobSpec:
    r, rt = pb.resources, pb.runtime_env
    return JobSpec(
        entrypoint=pb.entrypoint,
        name=pb.name,
        runtime_env=RuntimeEnv(
            working_dir_digest=rt.working_dir_digest,
            pip=tuple(rt.pip),
            env=tuple(sorted(rt.env.items())),
        ),
        resources=Resources(
            gpus=r.gpus,
            gpu_models=tuple(r.gpu_models),
            min_gpu_memory_mb=r.min_gpu_memory_mb,
            cpus=r.cpus if r.cpus else 1.0,
            memory_mb=r.memory_mb,
        ),
        countries=tuple(c.upper() for c in pb.countries),
        walltime_seconds=pb.walltime_seconds,
        priority=pb.priority,
        max_attempts=pb.max_attempts or DEFAULT_MAX_ATTEMPTS,
        project=pb.project,
        data_country=pb.data_country.upper(),
        preemptible=not pb.non_preemptible,
        site_labels=tuple(sorted(pb.site_labels.items())),
        retry_failed=pb.retry_failed,
        secret_env=tuple(sorted(pb.secret_env.items())),
        notify_url=pb.notify_url.strip(),
        after=tuple(pb.after),
        low_carbon=True if pb.low_carbon_first else (pb.low_carbon if pb.HasField("low_carbon") else None),
        low_carbon_first=pb.low_carbon_first,
    )


def spec_to_pb(spec: JobSpec, reveal_secrets: bool = False) -> common_pb2.JobSpec:
    """The wire spec. Secret values read REDACTED unless `reveal_secrets`, which only the
    StartRun to the site running the job asks for."""
    r, rt = spec.resources, spec.runtime_env
    secrets = {k: (v if reveal_secrets else REDACTED) for k, v in spec.secret_env}
    green = {} if spec.low_carbon is None else {"low_carbon": spec.low_carbon}
    return common_pb2.JobSpec(
        **green,
        name=spec.name,
        entrypoint=spec.entrypoint,
        runtime_env=common_pb2.RuntimeEnv(working_dir_digest=rt.working_dir_digest, pip=list(rt.pip), env=dict(rt.env)),
        resources=common_pb2.Resources(
            gpus=r.gpus,
            gpu_models=list(r.gpu_models),
            min_gpu_memory_mb=r.min_gpu_memory_mb,
            cpus=r.cpus,
            memory_mb=r.memory_mb,
        ),
        countries=list(spec.countries),
        walltime_seconds=spec.walltime_seconds,
        priority=spec.priority,
        max_attempts=spec.max_attempts,
        project=spec.project,
        data_country=spec.data_country,
        non_preemptible=not spec.preemptible,
        site_labels=dict(spec.site_labels),
        retry_failed=spec.retry_failed,
        after=list(spec.after),
        secret_env=secrets,
        notify_url=spec.notify_url,
        low_carbon_first=spec.low_carbon_first,
    )


def job_to_pb(job: Job) -> common_pb2.Job:
    return common_pb2.Job(
        id=job.id,
        spec=spec_to_pb(job.spec),
        state=job_state_to_pb(job.state),
        owner=job.owner,
        institution=job.institution,
        site=job.site,
        country=job.country,
        attempts=job.attempts,
        failures=job.failures,
        infra_requeues=job.infra_requeues,
        reason=job.reason,
        run_id=job.run_id,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        gpu_model=job.gpu_model,
        project=job.spec.project,
        last_preemption=preemption_to_pb(job.last_preemption),
        array_id=job.array_id,
        array_index=job.array_index,
        estimate=estimate_to_pb(job.estimate),
        dependencies=[dependency_to_pb(d) for d in job.dependencies],
        carbon=None if job.carbon is None else common_pb2.JobCarbon(**asdict(job.carbon)),
    )


def dependency_to_pb(d: DependencyStatus) -> common_pb2.DependencyStatus:
    return common_pb2.DependencyStatus(job_id=d.job_id, condition=d.condition, state=d.state, status=d.status)


def dependency_from_pb(pb: common_pb2.DependencyStatus) -> DependencyStatus:
    return DependencyStatus(job_id=pb.job_id, condition=pb.condition, state=pb.state, status=pb.status)


def job_from_pb(pb: common_pb2.Job) -> Job:
    """A job as the broker answers it (secret values read REDACTED)."""
    return Job(
        id=pb.id,
        spec=spec_from_pb(pb.spec),
        state=_job_state(pb.state),
        owner=pb.owner,
        institution=pb.institution,
        submitted_at=pb.submitted_at,
        attempts=pb.attempts,
        failures=pb.failures,
        reason=pb.reason,
        site=pb.site,
        country=pb.country,
        run_id=pb.run_id,
        gpu_model=pb.gpu_model,
        started_at=pb.started_at,
        finished_at=pb.finished_at,
        last_preemption=preemption_from_pb(pb.last_preemption) if pb.HasField("last_preemption") else None,
        infra_requeues=pb.infra_requeues,
        array_id=pb.array_id,
        array_index=pb.array_index,
        estimate=estimate_from_pb(pb.estimate) if pb.HasField("estimate") else None,
        dependencies=tuple(dependency_from_pb(d) for d in pb.dependencies),
        carbon=JobCarbon(pb.carbon.site_intensity, pb.carbon.min_intensity, pb.carbon.max_intensity, pb.carbon.sites)
        if pb.HasField("carbon")
        else None,
    )


def _job_state(value: int) -> JobState:
    state = job_state_from_pb(value)
    if state is None:
        raise InvalidArgument("job state is unspecified")
    return state


def estimate_to_pb(e: StartEstimate | None) -> common_pb2.StartEstimate | None:
    if e is None:
        return None
    return common_pb2.StartEstimate(at=e.at, later_than=e.later_than, assumptions=e.assumptions)


def estimate_from_pb(pb: common_pb2.StartEstimate) -> StartEstimate:
    return StartEstimate(at=pb.at, later_than=pb.later_than, assumptions=pb.assumptions)


def preemption_to_pb(p: JobPreemption | None) -> common_pb2.JobPreemption | None:
    if p is None:
        return None
    return common_pb2.JobPreemption(at=p.at, kind=p.kind, beneficiary=p.beneficiary, reason=p.reason)


def preemption_from_pb(pb: common_pb2.JobPreemption) -> JobPreemption:
    return JobPreemption(at=pb.at, kind=pb.kind, beneficiary=pb.beneficiary, reason=pb.reason)


def array_to_pb(a: ArraySummary) -> job_pb2.JobArray:
    return job_pb2.JobArray(
        id=a.id,
        name=a.name,
        owner=a.owner,
        institution=a.institution,
        project=a.project,
        tasks=a.tasks,
        limit=a.limit,
        submitted_at=a.submitted_at,
        pending=a.pending,
        running=a.running,
        succeeded=a.succeeded,
        failed=a.failed,
        cancelled=a.cancelled,
        indices=a.indices,
    )


def array_from_pb(pb: job_pb2.JobArray) -> ArraySummary:
    return ArraySummary(
        id=pb.id,
        name=pb.name,
        owner=pb.owner,
        institution=pb.institution,
        project=pb.project,
        tasks=pb.tasks,
        limit=pb.limit,
        submitted_at=pb.submitted_at,
        indices=pb.indices,
        pending=pb.pending,
        running=pb.running,
        succeeded=pb.succeeded,
        failed=pb.failed,
        cancelled=pb.cancelled,
    )


def package_limits_to_pb(limits: PackageLimits) -> job_pb2.PackageLimits:
    return job_pb2.PackageLimits(
        max_package_bytes=limits.max_package_bytes, chunk_bytes=limits.chunk_bytes, setting=limits.setting
    )


def package_limits_from_pb(pb: job_pb2.PackageLimits) -> PackageLimits:
    return PackageLimits(max_package_bytes=pb.max_package_bytes, chunk_bytes=pb.chunk_bytes, setting=pb.setting)
