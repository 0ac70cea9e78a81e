"""The frozen input and output of one scheduling decision."""
from __future__ import annotations

from dataclasses import dataclass

from scheduler.domain import Job, Run, Site


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy may look at: every known site, every live run, every pending job."""

    sites: tuple[Site, ...]
    live_runs: tuple[Run, ...]
    pending: tuple[Job, ...]


@dataclass(frozen=True)
class Placement:
    """Start `job_id` on `site`, taking `gpus` GPUs of `gpu_model` and `cpus` CPUs."""

    job_id: str
    site: str
    gpu_model: str
    gpus: int
    cpus: float


@dataclass(frozen=True)
class Waiting:
    """A job left pending, and the constraint that binds it."""

    job_id: str
    reason: str
    never_fits: bool = False


@dataclass(frozen=True)
class Decisions:
    placements: tuple[Placement, ...] = ()
    waiting: tuple[Waiting, ...] = ()
