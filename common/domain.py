"""Domain types shared by the policy, the store and the api layer.

Everything here is a frozen dataclass or an enum, so the policy can take a snapshot
of them without any risk of touching ORM rows or the wire format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    LEASED = "LEASED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES

    @property
    def live(self) -> bool:
        """A live job holds GPUs on a site."""
        return self in LIVE_JOB_STATES


TERMINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
LIVE_JOB_STATES = frozenset({JobState.LEASED, JobState.RUNNING, JobState.CANCELLING})


class RunState(enum.StrEnum):
    """What a site says about one run on its Ray cluster."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"
    # Set by the broker, never reported: the run died with its site (lease expired,
    # Ray cluster down) or of an infrastructure failure; its job was requeued.
    LOST = "LOST"

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.LOST)


class SiteState(enum.StrEnum):
    """A site's effective state; only READY takes new runs.

    Two things make it: the admin's choice (CORDONED: keep runs, take no new ones;
    DRAINING: the same, while the admin waits for the runs to end) and the site's
    health (DEGRADED: its own Ray cluster is down; LOST: no report within the lease
    TTL). Health wins, since a sick site cannot run anything either way. A site that
    has joined but whose agent never reported its GPUs is CONNECTING: nothing is
    known of its capacity yet (docs/reliability.md, "A site that has not reported").
    """

    READY = "READY"
    CORDONED = "CORDONED"
    DRAINING = "DRAINING"
    DEGRADED = "DEGRADED"
    LOST = "LOST"
    CONNECTING = "CONNECTING"


DEFAULT_MAX_ATTEMPTS = 3


class Role(enum.StrEnum):
    """Who a caller is; `minga.scheduler.api.authz` says what each may do, and on what."""

    ADMIN = "admin"  # the whole federation
    RESEARCHER = "researcher"
    SITE = "site"
    INSTITUTION_ADMIN = "institution-admin"  # its own institution's users, projects and sites


@dataclass(frozen=True, slots=True)
class GpuPool:
    """GPUs of one model at one site."""

    model: str
    memory_mb: int = 0
    total: int = 0
    free: int = 0
    largest_node: int = 0


@dataclass(frozen=True, slots=True)
class Inventory:
    gpus: tuple[GpuPool, ...] = ()
    cpus: float = 0.0
    memory_mb: int = 0
    nodes: int = 0

    def pool(self, model: str) -> GpuPool | None:
        return next((p for p in self.gpus if p.model == model), None)

    @property
    def total_gpus(self) -> int:
        return sum(p.total for p in self.gpus)


@dataclass(frozen=True, slots=True)
class Resources:
    gpus: int = 0
    gpu_models: tuple[str, ...] = ()
    min_gpu_memory_mb: int = 0
    cpus: float = 1.0
    memory_mb: int = 0


@dataclass(frozen=True, slots=True)
class RuntimeEnv:
    working_dir_digest: str = ""
    pip: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


REDACTED = "***"  # what a secret value reads as wherever it is shown

# Environment variables the site agent sets on every run (docs/preemption.md): which job,
# run and attempt it is, and Ray's stop notice. They are minga's: a job may not set them.
RUN_ENV_NAMES = frozenset(
    {
        "MINGA_ATTEMPT",
        "MINGA_JOB_ID",
        "MINGA_RUN_ID",
        "RAY_JOB_STOP_WAIT_TIME_S",
        "MINGA_ARRAY_JOB_ID",
        "MINGA_ARRAY_INDEX",
    }
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    entrypoint: str
    name: str = ""
    runtime_env: RuntimeEnv = field(default_factory=RuntimeEnv)
    resources: Resources = field(default_factory=Resources)
    countries: tuple[str, ...] = ()
    walltime_seconds: int = 0
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # failed runs before the job fails (preemption is no failure)
    project: str = ""  # "" means the institution's default project
    data_country: str = ""  # soft preference: run near this country's data
    preemptible: bool = True  # False is honoured only within a guarantee
    site_labels: tuple[tuple[str, str], ...] = ()  # hard: the site must carry every label
    retry_failed: bool = False  # requeue a non-zero exit too, up to max_attempts
    # Secret environment values: kept out of reprs (repr=False), of the stored spec and of
    # every answer; loaded from the store they read REDACTED, except in a StartRun.
    secret_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    notify_url: str = ""  # webhook for job.started / job.ended (docs/notifications.md); "": none
    # Jobs to wait for (Slurm's --dependency): "ID:COND", COND ok, any or failed
    # (scheduler/dependencies.py); the broker writes each as "ID:COND" once checked.
    after: tuple[str, ...] = ()
    # Soft: prefer low-carbon sites among those that fit (docs/carbon.md "Low-carbon placement"),
    # after own sites and the data country; `low_carbon_first` ranks intensity before them.
    # None (not said): the admin's default (`ShareSettings.low_carbon_default`), applied at submit.
    low_carbon: bool | None = None
    low_carbon_first: bool = False


@dataclass(frozen=True, slots=True)
class JobPreemption:
    """The last time one of a job's runs was preempted (policy `Preemption`): kept after
    the job waits or runs again, so `minga job status` can say why it restarted."""

    at: float
    kind: str  # "fair-share", "reclaim" or "lending-window"
    beneficiary: str  # the institution it made room for
    reason: str


@dataclass(frozen=True, slots=True)
class JobCarbon:
    """Grid intensities (gCO2e/kWh) for `minga job status` (docs/carbon.md): the job's site's,
    and the range among the `sites` that could take it (hard constraints only)."""

    site_intensity: float  # 0.0 while it has no site
    min_intensity: float
    max_intensity: float
    sites: int


@dataclass(frozen=True, slots=True)
class StartEstimate:
    """When a pending job is expected to start: the broker's policy run forward from its last
    cycle (`scheduler/sim/forecast.py`) under `assumptions`. An estimate, never a promise.
    `at` > 0: the expected start; else `later_than` > 0: not within what the forecast looked
    at (it stopped there); both 0: no start foreseen under the assumptions."""

    at: float = 0.0
    later_than: float = 0.0
    assumptions: str = ""


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    """One condition of a job's `spec.after` and where it stands now."""

    job_id: str  # the job or job array waited for
    condition: str  # "ok", "any" or "failed"
    state: str = ""  # its state, e.g. "SUCCEEDED"; an array: "7/10 ended"
    status: str = ""  # "met", "waiting" or "never" (it can no longer hold)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    spec: JobSpec
    state: JobState
    owner: str
    institution: str
    submitted_at: float
    attempts: int = 0  # runs started (each one's epoch)
    failures: int = 0  # of them, the user's failures; the job fails at spec.max_attempts
    reason: str = ""
    site: str = ""
    country: str = ""
    run_id: str = ""
    gpu_model: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    last_preemption: JobPreemption | None = None
    infra_requeues: int = 0  # requeues the infrastructure caused (lost site, Ray refused or lost it)
    array_id: str = ""  # the job array it is a task of ("": a plain job)
    array_index: int = 0  # its index there
    array_limit: int = 0  # the array's %K: at most this many of its tasks run at once; 0: no cap
    not_before: float = 0.0  # requeue backoff: a PENDING job is not placed before this time
    updated_at: float = 0.0  # its last state change
    # Conditions of spec.after not met yet: a PENDING job with any is held, out of the
    # scheduling queue, until the broker's dependencies phase releases it.
    after_unmet: int = 0
    # Not stored: the broker adds its dependencies and where they stand to a job it
    # answers `job status` with; () otherwise.
    dependencies: tuple[DependencyStatus, ...] = ()
    # Not stored: the broker adds it to a PENDING job it answers (`job status`) when its last
    # cycle's forecast has one; None otherwise.
    estimate: StartEstimate | None = None
    # Not stored: the broker adds it to the job it answers `job status` with (docs/carbon.md).
    carbon: JobCarbon | None = None


@dataclass(frozen=True)
class ArraySummary:
    """A job array as a whole: what was asked and its tasks counted by state."""

    id: str
    name: str
    owner: str
    institution: str
    project: str
    tasks: int
    limit: int
    submitted_at: float
    indices: str = ""
    pending: int = 0
    running: int = 0  # LEASED, RUNNING or CANCELLING
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def done(self) -> bool:
        return self.pending + self.running == 0


@dataclass(frozen=True, slots=True)
class PackageLimits:
    """What the broker accepts of a working-dir package, and how it wants it sent."""

    max_package_bytes: int  # the largest package it accepts
    chunk_bytes: int  # the chunk size to upload in
    setting: str  # how its operator changes the limit


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    institution: str
    country: str
    state: SiteState = SiteState.READY
    connected: bool = False
    inventory: Inventory = field(default_factory=Inventory)
    last_seen: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    state_reason: str = ""  # why DEGRADED, LOST or CONNECTING
    reported: bool = True  # False until its agent first reports an inventory
    health: SiteState = SiteState.READY  # its own health (READY, DEGRADED or LOST), before the admin's state


@dataclass(frozen=True, slots=True)
class Run:
    """One attempt of a job on one site. `id` is the Ray submission_id."""

    id: str
    job_id: str
    site: str
    epoch: int
    gpu_model: str
    gpus: int
    cpus: float
    state: RunState = RunState.STARTING
    institution: str = ""  # who is charged: the job's institution and project
    project: str = ""
    started_at: float = 0.0  # when it was leased; preemption grace counts from here
    preemptible: bool = True
    walltime_seconds: int = 0  # its job's limit; 0: none (backfill counts it as never ending)
    owner: str = ""  # the job's owner: the user leaf charged, and the limits per user count it
    # The broker's bookkeeping of the run (the store's truth; the policy ignores these):
    live: bool = True  # holds GPUs on its site
    message: str = ""
    ended_at: float = 0.0
    running_since: float = 0.0  # first reported RUNNING (0: never ran)
    charged_until: float = 0.0  # usage is charged up to here (0: not running yet)
    reported_at: float = 0.0  # when its site first reported it (0: never; a lost start may be resent)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of an RPC."""

    name: str
    role: Role
    institution: str = ""
    site: str = ""


class MingaError(Exception):
    """Base of the errors the api layer maps to gRPC status codes; each is named after its code."""


class NotFound(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class AlreadyExists(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class InvalidArgument(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class PermissionDenied(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class Unauthenticated(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class FailedPrecondition(MingaError):  # noqa: N818 - named after its gRPC status code
    pass


class OverLimit(MingaError):  # noqa: N818 - RESOURCE_EXHAUSTED, without a retry hint
    """An account's limit (`minga.common.limits`, e.g. its max pending jobs) refuses the call:
    retrying soon does not help, only its jobs leaving the queue or the admin raising it."""


class ResourceExhausted(MingaError):  # noqa: N818 - named after its gRPC status code
    """A caller went over its rate limit; `retry_after` seconds from now it is served again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
