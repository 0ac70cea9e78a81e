"""Builders shared by the fair-share, preemption and reservation tests."""

from __future__ import annotations

from dataclasses import dataclass, replace

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Run, RunState, Site
from minga.scheduler.policy import Decisions, InstitutionShare, ProjectShare, ShareSettings, Snapshot, schedule

NOW = 1_800_000_000.0
HOUR = 3600.0


def pool(model: str = "A100", total: int = 8, memory_mb: int = 81_920) -> GpuPool:
    return GpuPool(model=model, memory_mb=memory_mb, total=total, free=total)


def site(
    name: str,
    institution: str,
    *pools: GpuPool,
    country: str = "CL",
    cpus: float = 64.0,
    labels: tuple[tuple[str, str], ...] = (),
) -> Site:
    return Site(
        name=name,
        institution=institution,
        country=country,
        connected=True,
        inventory=Inventory(gpus=tuple(pools) or (pool(),), cpus=cpus),
        labels=labels,
    )


def inst(slug: str, country: str = "CL", **kw) -> InstitutionShare:
    return InstitutionShare(slug=slug, country=country, **kw)


def job(
    jid: str,
    institution: str,
    gpus: int = 1,
    project: str = "",
    submitted: float = 0.0,
    models: tuple[str, ...] = (),
    countries: tuple[str, ...] = (),
    data_country: str = "",
    labels: tuple[tuple[str, str], ...] = (),
    walltime: int = 0,
    cpus: float = 1.0,
    preemptible: bool = True,
) -> Job:
    spec = JobSpec(
        entrypoint="python train.py",
        project=project,
        data_country=data_country,
        resources=Resources(gpus=gpus, gpu_models=models, cpus=cpus),
        countries=countries,
        site_labels=labels,
        walltime_seconds=walltime,
        preemptible=preemptible,
    )
    return Job(
        id=jid, spec=spec, state=JobState.PENDING, owner="ana", institution=institution, submitted_at=NOW + submitted
    )


@dataclass(frozen=True)
class TimedRun(Run):
    """A run that knows its walltime, as the store will provide for reservations."""

    walltime_seconds: int = 0


def run(
    rid: str,
    site_name: str,
    institution: str,
    gpus: int = 1,
    model: str = "A100",
    started: float = -10 * HOUR,
    preemptible: bool = True,
    project: str = "",
    walltime: int = 0,
    cpus: float = 1.0,
) -> Run:
    cls = TimedRun if walltime else Run
    extra = {"walltime_seconds": walltime} if walltime else {}
    return cls(
        id=rid,
        job_id="job-of-" + rid,
        site=site_name,
        epoch=1,
        gpu_model=model,
        gpus=gpus,
        cpus=cpus,
        state=RunState.RUNNING,
        institution=institution,
        project=project or f"{institution}/default",
        started_at=NOW + started,
        preemptible=preemptible,
        **extra,
    )


def snap(
    sites,
    institutions,
    pending=(),
    runs=(),
    projects=(),
    usage=(),
    settings: ShareSettings | None = None,
    country_weights=(),
) -> Snapshot:
    return Snapshot(
        sites=tuple(sites),
        live_runs=tuple(runs),
        pending=tuple(pending),
        institutions=tuple(institutions),
        projects=tuple(projects),
        usage=tuple(usage),
        country_weights=tuple(country_weights),
        settings=settings or ShareSettings(),
    )


def decide(s: Snapshot, now: float = NOW) -> Decisions:
    return schedule(s, now)


def placed(d: Decisions) -> dict:
    return {p.job_id: p for p in d.placements}


def waiting(d: Decisions) -> dict:
    return {w.job_id: w for w in d.waiting}


def apply(s: Snapshot, d: Decisions, now: float) -> Snapshot:
    """The next cycle's snapshot: preempted runs gone (their jobs pending again), placements running."""
    jobs = {j.id: j for j in s.pending}
    stopped = {p.run_id for p in d.preemptions}
    runs = [r for r in s.live_runs if r.id not in stopped]
    for p in d.placements:
        j = jobs[p.job_id]
        runs.append(
            run(
                "r-" + p.job_id,
                p.site,
                j.institution,
                p.gpus,
                p.gpu_model,
                started=now - NOW,
                project=j.spec.project,
                walltime=j.spec.walltime_seconds,
                cpus=p.cpus,
            )
        )
    pending = [j for j in s.pending if j.id not in {p.job_id for p in d.placements}]
    return replace(s, live_runs=tuple(runs), pending=tuple(pending))


__all__ = [
    "HOUR",
    "NOW",
    "ProjectShare",
    "ShareSettings",
    "TimedRun",
    "apply",
    "decide",
    "inst",
    "job",
    "placed",
    "pool",
    "run",
    "site",
    "snap",
    "waiting",
]
