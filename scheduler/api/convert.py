"""proto ↔ domain converters: the only place the two shapes meet."""

from __future__ import annotations

from typing import Any

from minga.common.domain import (
    DEFAULT_MAX_ATTEMPTS,
    REDACTED,
    GpuPool,
    InvalidArgument,
    Inventory,
    Job,
    JobPreemption,
    JobSpec,
    JobState,
    Resources,
    Role,
    RunState,
    RuntimeEnv,
    Site,
    SiteState,
)
from minga.scheduler.arrays import ArraySummary
from minga.common.commands import Command, RunReport, StartRunCommand, StopRunCommand
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2

# -- enums -------------------------------------------------------------------


def job_state_to_pb(state: JobState) -> int:
    return common_pb2.JobState.Value(f"JOB_STATE_{state.value}")


def _enum_name(enum: Any, value: int, field: str) -> str:
    """The name of a wire enum value; proto3 enums are open, so an unknown one is bad input."""
    try:
        return enum.Name(value)
    except ValueError:
        raise InvalidArgument(f"{field} {value} is not a known value") from None


def job_state_from_pb(value: int) -> JobState | None:
    if value == common_pb2.JOB_STATE_UNSPECIFIED:
        return None
    return JobState(_enum_name(common_pb2.JobState, value, "state").removeprefix("JOB_STATE_"))


def run_state_from_pb(value: int) -> RunState:
    """A run state a site may report: LOST is the broker's own verdict, never a report."""
    if value in (common_pb2.RUN_STATE_UNSPECIFIED, common_pb2.RUN_STATE_LOST):
        raise InvalidArgument(f"run state {value} may not be reported")
    return RunState(_enum_name(common_pb2.RunState, value, "run state").removeprefix("RUN_STATE_"))


def site_state_to_pb(state: SiteState) -> int:
    return common_pb2.SiteState.Value(f"SITE_STATE_{state.value}")


def role_to_pb(role: Role) -> int:
    return common_pb2.Role.Value(f"ROLE_{role.name}")


def role_from_pb(value: int) -> Role | None:
    if value == common_pb2.ROLE_UNSPECIFIED:
        return None
    return Role[_enum_name(common_pb2.Role, value, "role").removeprefix("ROLE_")]


# -- jobs ----------------------------------------------------------------------


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
    )


def spec_to_pb(spec: JobSpec, reveal_secrets: bool = False) -> common_pb2.JobSpec:
    """The wire spec. Secret values read REDACTED unless `reveal_secrets`, which only the
    StartRun to the site running the job asks for."""
    r, rt = spec.resources, spec.runtime_env
    secrets = {k: (v if reveal_secrets else REDACTED) for k, v in spec.secret_env}
    return common_pb2.JobSpec(
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
        secret_env=secrets,
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
        last_preemption=_preemption_to_pb(job.last_preemption),
        array_id=job.array_id,
        array_index=job.array_index,
    )


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


def _preemption_to_pb(p: JobPreemption | None) -> common_pb2.JobPreemption | None:
    if p is None:
        return None
    return common_pb2.JobPreemption(at=p.at, kind=p.kind, beneficiary=p.beneficiary, reason=p.reason)


# -- sites ---------------------------------------------------------------------


def inventory_from_pb(pb: common_pb2.Inventory) -> Inventory:
    return Inventory(
        gpus=tuple(
            GpuPool(model=p.model, memory_mb=p.memory_mb, total=p.total, free=p.free, largest_node=p.largest_node)
            for p in pb.gpus
        ),
        cpus=pb.cpus,
        memory_mb=pb.memory_mb,
        nodes=pb.nodes,
    )


def inventory_to_pb(inv: Inventory) -> common_pb2.Inventory:
    return common_pb2.Inventory(
        gpus=[
            common_pb2.GpuPool(
                model=p.model, memory_mb=p.memory_mb, total=p.total, free=p.free, largest_node=p.largest_node
            )
            for p in inv.gpus
        ],
        cpus=inv.cpus,
        memory_mb=inv.memory_mb,
        nodes=inv.nodes,
    )


def site_to_pb(site: Site, gpus_in_use: dict[str, int]) -> admin_pb2.Site:
    return admin_pb2.Site(
        name=site.name,
        institution=site.institution,
        country=site.country,
        state=site_state_to_pb(site.state),
        connected=site.connected,
        inventory=inventory_to_pb(site.inventory),
        last_seen=site.last_seen,
        gpus_in_use=gpus_in_use,
        labels=dict(site.labels),
        state_reason=site.state_reason,
    )


def run_report_from_pb(pb: site_pb2.RunReport) -> RunReport:
    return RunReport(
        run_id=pb.run_id,
        state=run_state_from_pb(pb.state),
        message=pb.message,
        infrastructure=pb.failure == site_pb2.FAILURE_KIND_INFRASTRUCTURE,
    )


def command_to_pb(cmd: Command) -> site_pb2.BrokerMessage:
    if isinstance(cmd, StartRunCommand):
        return site_pb2.BrokerMessage(
            start=site_pb2.StartRun(
                run_id=cmd.run.id,
                job_id=cmd.run.job_id,
                epoch=cmd.run.epoch,
                spec=spec_to_pb(cmd.spec, reveal_secrets=True),
                gpu_model=cmd.run.gpu_model,
                notice_seconds=cmd.notice_seconds,
                array_job_id=cmd.array_id,
                array_index=cmd.array_index,
            )
        )
    assert isinstance(cmd, StopRunCommand)
    return site_pb2.BrokerMessage(stop=site_pb2.StopRun(run_id=cmd.run_id, reason=cmd.reason))
