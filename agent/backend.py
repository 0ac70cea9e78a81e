"""The agent's view of its Ray cluster: a small protocol, and the real adapter over
Ray's job submission API (`FakeBackend` in tests/fakes/fake_backend.py is the other one).

The run id is the Ray `submission_id`, so Ray itself remembers which runs exist:
submitting is idempotent, and a restarted agent recovers each run's job id and
epoch from the job metadata.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from minga.agent.rundir import private_dir_entrypoint
from minga.agent.states import run_state_from_ray
from minga.common.domain import RUN_ENV_NAMES, RunState

log = logging.getLogger(__name__)

RUN_ID_PREFIX = "minga-"
JOB_ID_KEY = "minga_job_id"
EPOCH_KEY = "minga_epoch"
# A tiny share of the per-node `accelerator_type:<model>` resource pins a job to
# nodes of that model without limiting how many jobs a node runs.
ACCELERATOR_SHARE = 0.001
MIB = 1024 * 1024
MODELS_TTL_SECONDS = 30.0  # how long the cached list of the cluster's GPU models is trusted


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start one run on Ray."""

    run_id: str
    job_id: str
    epoch: int
    entrypoint: str
    gpus: int = 0
    cpus: float = 1.0
    memory_mb: int = 0
    gpu_model: str = ""
    working_dir: str | None = None  # a local directory; Ray uploads it
    pip: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # The job's secret env: Ray gets it with `env`, but it never shows in a repr or a log line.
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    notice_seconds: int = 0  # SIGTERM, then SIGKILL this long after; 0: Ray's default
    array_job_id: str = ""  # a job array's task: its array ("": a plain job)
    array_index: int = 0  # and its index there


@dataclass(frozen=True)
class RunInfo:
    """What Ray knows about one minga run."""

    run_id: str
    job_id: str
    epoch: int
    state: RunState
    message: str = ""
    infrastructure: bool = False  # FAILED because Ray lost it, not the user's code


# Ray's `JobErrorType`s that are the user's doing; every other one means Ray lost
# the job (its supervisor actor or node died, or could not be scheduled).
USER_ERROR_TYPES = frozenset(
    {
        "JOB_ENTRYPOINT_COMMAND_ERROR",  # non-zero exit
        "JOB_ENTRYPOINT_COMMAND_START_ERROR",  # the command could not be started
        "RUNTIME_ENV_SETUP_FAILURE",  # e.g. a pip package that does not install
    }
)


def lost_by_ray(status: Any, error_type: Any) -> bool:
    """True if a FAILED job failed through no fault of its own code. Without an
    error type (older Ray) a failure counts as the user's, so it is never retried
    behind the researcher's back."""
    kind = getattr(error_type, "value", error_type)
    return str(getattr(status, "value", status)) == "FAILED" and bool(kind) and kind not in USER_ERROR_TYPES


class RayBackend(Protocol):
    """What the agent needs from a Ray cluster. Errors other than "no such run"
    raise; callers treat them as "Ray is unreachable right now"."""

    def submit(self, run: RunRequest) -> bool:
        """Start `run` unless Ray already knows its run id; True if it submitted."""
        ...

    def status(self, run_id: str) -> RunState | None:
        """The run's state, or None if Ray does not know the run."""
        ...

    def info(self, run_id: str) -> RunInfo | None:
        """The run's state, ids and Ray's message, or None if Ray does not know it."""
        ...

    def stop(self, run_id: str) -> bool:
        """Ask Ray to stop the run; False if Ray does not know it or it already ended."""
        ...

    def logs(self, run_id: str) -> str:
        """The run's whole log so far ("" if Ray does not know it)."""
        ...

    def list_runs(self) -> list[RunInfo]:
        """Every minga run Ray knows, live or finished."""
        ...

    def reachable(self) -> bool:
        """True if the cluster answers right now."""
        ...


def minga_env(run: RunRequest) -> dict[str, str]:
    """What minga tells every run (docs/preemption.md): which job, run and attempt it is,
    which array task (docs/jobs.md), and the stop notice. Ray's JobSupervisor, which gets the run's env_vars, reads
    RAY_JOB_STOP_WAIT_TIME_S on every stop: SIGTERM, then SIGKILL after that many seconds."""
    env = {"MINGA_JOB_ID": run.job_id, "MINGA_RUN_ID": run.run_id, "MINGA_ATTEMPT": str(run.epoch)}
    if run.array_job_id:  # a task of a job array (Slurm's SLURM_ARRAY_JOB_ID / _TASK_ID)
        env["MINGA_ARRAY_JOB_ID"] = run.array_job_id
        env["MINGA_ARRAY_INDEX"] = str(run.array_index)
    if run.notice_seconds > 0:
        env["RAY_JOB_STOP_WAIT_TIME_S"] = str(run.notice_seconds)
    return env


def runtime_env_for(run: RunRequest) -> dict[str, Any]:
    """The Ray runtime_env of a run (only the keys that are set). minga's own variables win
    over a job's of the same name (the broker refuses those at submit; an older one did not)."""
    env: dict[str, Any] = {}
    if run.working_dir:
        env["working_dir"] = run.working_dir
    if run.pip:
        env["pip"] = list(run.pip)
    ours = minga_env(run)
    clash = sorted((set(run.env) | set(run.secret_env)) & RUN_ENV_NAMES)
    if clash:
        log.warning("run %s: the job's %s replaced by minga's own", run.run_id, ", ".join(clash))
    user = {k: v for k, v in {**run.env, **run.secret_env}.items() if k not in RUN_ENV_NAMES}
    env["env_vars"] = {**user, **ours}
    return env


def _is_not_found(err: Exception) -> bool:
    text = str(err)
    return "404" in text or "does not exist" in text


def _is_duplicate(err: Exception) -> bool:
    return "already exists" in str(err)


def _run_info(job: Any) -> RunInfo:
    """A RunInfo from Ray's JobDetails/JobInfo; ids come from the submit metadata."""
    meta = job.metadata or {}
    try:
        epoch = int(meta.get(EPOCH_KEY, "0"))
    except ValueError:
        epoch = 0
    return RunInfo(
        run_id=job.submission_id or "",
        job_id=meta.get(JOB_ID_KEY, ""),
        epoch=epoch,
        state=run_state_from_ray(job.status),
        message=job.message or "",
        infrastructure=lost_by_ray(job.status, getattr(job, "error_type", None)),
    )


class JobSubmissionBackend:
    """`RayBackend` over `ray.job_submission.JobSubmissionClient` (the dashboard's
    job REST API): no Ray driver is connected, so the agent stays a light process."""

    def __init__(self, dashboard_url: str, http_timeout: float = 5.0) -> None:
        self.dashboard_url = dashboard_url.rstrip("/")
        self.http_timeout = http_timeout
        self._client_obj: Any = None
        self._models: tuple[float, set[str]] | None = None  # (read at, models): see _cluster_models

    def _client(self) -> Any:
        # Created lazily: the constructor connects, and Ray may still be starting.
        if self._client_obj is None:
            from ray.job_submission import JobSubmissionClient

            self._client_obj = JobSubmissionClient(self.dashboard_url)
        return self._client_obj

    def _accelerator_resources(self, gpu_model: str) -> dict[str, float]:
        """Pin the run to `gpu_model` nodes, but only where that says something:
        the cluster has the resource and mixes more than one GPU model."""
        if not gpu_model:
            return {}
        models = self._cluster_models()
        if gpu_model in models and len(models) > 1:
            return {f"accelerator_type:{gpu_model}": ACCELERATOR_SHARE}
        return {}

    def _cluster_models(self) -> set[str]:
        """The cluster's GPU models, re-read at most every MODELS_TTL_SECONDS: asking
        the state API on every submit would add its round trip to every start."""
        from minga.agent.inventory import cluster_gpu_models

        now = time.monotonic()
        if self._models is None or now - self._models[0] > MODELS_TTL_SECONDS:
            self._models = (now, cluster_gpu_models(self.dashboard_url))
        return self._models[1]

    def submit(self, run: RunRequest) -> bool:
        # No look-up first: Ray refuses a second job with the same submission_id,
        # and that refusal is the idempotency check, without an extra round trip.
        kwargs: dict[str, Any] = {
            # Never the Ray worker's cwd (the agent's or `ray start`'s dir): agent/rundir.py
            "entrypoint": private_dir_entrypoint(run.entrypoint, copy_cwd=bool(run.working_dir)),
            "submission_id": run.run_id,
            "entrypoint_num_gpus": run.gpus,
            "entrypoint_num_cpus": run.cpus if run.cpus > 0 else 1.0,
            # None rather than {}: Ray sets up an empty runtime_env measurably slower.
            "runtime_env": runtime_env_for(run) or None,
            "metadata": {JOB_ID_KEY: run.job_id, EPOCH_KEY: str(run.epoch)},
        }
        if run.memory_mb > 0:
            kwargs["entrypoint_memory"] = run.memory_mb * MIB
        resources = self._accelerator_resources(run.gpu_model)
        if resources:
            kwargs["entrypoint_resources"] = resources
        try:
            self._client().submit_job(**kwargs)
        except RuntimeError as err:
            # Ray answers HTTP 500 "... already exists" on a duplicate submission_id.
            if _is_duplicate(err):
                log.info("run %s already exists on Ray", run.run_id)
                return False
            raise
        log.info("submitted run %s (%d GPUs) to Ray", run.run_id, run.gpus)
        return True

    def status(self, run_id: str) -> RunState | None:
        found = self.info(run_id)
        return None if found is None else found.state

    def info(self, run_id: str) -> RunInfo | None:
        try:
            job = self._client().get_job_info(run_id)
        except RuntimeError as err:
            if _is_not_found(err):
                return None
            raise
        return _run_info(job)

    def stop(self, run_id: str) -> bool:
        try:
            return bool(self._client().stop_job(run_id))
        except RuntimeError as err:
            if _is_not_found(err):
                return False
            raise

    def logs(self, run_id: str) -> str:
        try:
            return str(self._client().get_job_logs(run_id))
        except RuntimeError as err:
            if _is_not_found(err):
                return ""
            raise

    def list_runs(self) -> list[RunInfo]:
        jobs = self._client().list_jobs()
        return [_run_info(job) for job in jobs if (job.submission_id or "").startswith(RUN_ID_PREFIX)]

    def reachable(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=self.http_timeout):
                return True
        except (urllib.error.URLError, OSError):
            return False
