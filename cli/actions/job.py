"""What `minga job ...` does: submit, list, status, logs and cancel.

Their flags are declared in cli/commands/job.py. Nothing here imports typer, so the
researcher's everyday commands start fast (cli.fast runs them directly).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from minga.cli import errors, render, render_arrays, specfile
from minga.cli.call import Call
from minga.cli.parsing import (
    flag_value,
    format_bytes,
    parse_country,
    parse_duration,
    parse_env,
    parse_gpu_memory_mb,
    parse_size,
)
from minga.common.domain import ArraySummary, Job, JobSpec, JobState, Resources, RuntimeEnv

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient


def parse_job_state(text: str) -> JobState:
    """A DESIGN.md state name, any case ("running")."""
    name = text.strip().upper()
    if name not in JobState.__members__:
        raise ValueError(f"bad state {text!r}: use one of {', '.join(JobState.__members__)}")
    return JobState[name]


def parse_secret_env(pairs: list[str]) -> dict[str, str]:
    """--secret-env values: KEY=VALUE, or a bare KEY read from this shell's environment, which
    keeps the value out of the shell history and the process list. Errors name keys only."""
    secrets: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{key[:64]!r} is not a valid environment variable name (use KEY=VALUE or KEY)")
        if not sep:
            if key not in os.environ:
                raise ValueError(f"{key} is not set in your environment: export it, or use {key}=VALUE")
            value = os.environ[key]
        secrets[key] = value
    return secrets


def entrypoint_of(words: list[str]) -> str:
    """One word is a shell command line as typed; several are quoted and joined."""
    if not words:
        raise errors.usage_error(
            "no entrypoint: put the command after `--`, e.g. minga job submit -- python train.py "
            "(or give `run` in a spec file, -f FILE)"
        )
    return words[0] if len(words) == 1 else shlex.join(words)


def note(text: str) -> None:
    """A line for the person at the terminal, on stderr: stdout stays what scripts read."""
    print(text, file=sys.stderr, flush=True)


def _upload_working_dir(c: BrokerClient, directory: Path) -> str:
    """Pack within the broker's stated limit (checked before any byte is sent), then upload."""
    from minga.cli import workdir  # lazy: pathspec and zipfile only for --working-dir

    limits = c.package_limits()
    try:
        limit = workdir.effective_limit(limits.max_package_bytes if limits else None, limits.setting if limits else "")
        package = workdir.pack(directory, limit.max_bytes, limit.advice)
    except workdir.PackageError as exc:
        raise errors.usage_error(str(exc)) from exc
    sent = c.ensure_package(package.digest, package.data)
    what = f"{package.files} files, {format_bytes(len(package.data))}"
    state = "uploaded" if sent else "unchanged since the last upload, not re-sent"
    note(f"working dir {directory} ({what}) {state}: {package.digest}")
    return package.digest


@specfile.accepts_file(run="entrypoint", tables=("env", "secret_env", "label"))
def submit(
    call: Call,
    entrypoint: list[str] | None = None,
    name: str = "",
    gpus: int = 0,
    gpu_model: list[str] | None = None,
    min_gpu_memory: str | None = None,
    country: list[str] | None = None,
    cpus: float | None = None,
    memory: str | None = None,
    walltime: str | None = None,
    env: list[str] | None = None,
    secret_env: list[str] | None = None,
    pip: list[str] | None = None,
    working_dir: Path | None = None,
    max_attempts: int = 3,
    retry_failed: bool = False,
    project: str = "",
    data_country: str | None = None,
    label: list[str] | None = None,
    low_carbon: bool = False,
    low_carbon_first: bool = False,
    no_low_carbon: bool = False,
    non_preemptible: bool = False,
    notify: str | None = None,
    idempotency_key: str | None = None,
    allow_unknown: bool = False,
    array: str | None = None,
    after: list[str] | None = None,
    wait: bool = False,
) -> None:
    """Submit a job; prints its id. Example: minga job submit --gpus 1 -- python train.py

    Or from a spec file, flags overriding it: minga job submit -f train.toml --gpus 2"""
    if gpus < 0:
        raise errors.FlagError("--gpus", f"{gpus} is negative: use 0 or more")
    if cpus is not None and cpus <= 0:
        raise errors.FlagError("--cpus", f"{cpus:g} must be more than 0")
    if max_attempts < 1:
        raise errors.FlagError("--max-attempts", f"{max_attempts} must be at least 1")
    if no_low_carbon and (low_carbon or low_carbon_first):
        raise errors.FlagError("--no-low-carbon", "cannot be given with --low-carbon or --low-carbon-first")
    if working_dir is not None and not working_dir.is_dir():
        raise errors.FlagError("--working-dir", f"{working_dir} is not a directory")
    resources = Resources(
        gpus=gpus,
        gpu_models=tuple(gpu_model or ()),
        min_gpu_memory_mb=flag_value("--min-gpu-memory", parse_gpu_memory_mb, min_gpu_memory) if min_gpu_memory else 0,
        memory_mb=flag_value("--memory", parse_size, memory) // (1024 * 1024) if memory else 0,
    )
    if cpus is not None:
        resources = replace(resources, cpus=cpus)
    spec = JobSpec(
        name=name,
        entrypoint=entrypoint_of(entrypoint or []),
        resources=resources,
        countries=tuple(flag_value("--country", parse_country, c) for c in country or ()),
        walltime_seconds=flag_value("--walltime", parse_duration, walltime) if walltime else 0,
        max_attempts=max_attempts,
        retry_failed=retry_failed,
        runtime_env=RuntimeEnv(pip=tuple(pip or ()), env=_pairs(flag_value("--env", parse_env, env or []))),
        project=project,
        data_country=flag_value("--data-country", parse_country, data_country) if data_country else "",
        preemptible=not non_preemptible,
        site_labels=_pairs(flag_value("--label", parse_env, label or [])),
        secret_env=_pairs(flag_value("--secret-env", parse_secret_env, secret_env or [])),
        notify_url=notify or "",
        after=tuple(after or ()),
        low_carbon=False if no_low_carbon else (True if low_carbon or low_carbon_first else None),
        low_carbon_first=low_carbon_first,
    )
    with call.client() as c:
        if working_dir is not None:
            digest = _upload_working_dir(c, working_dir)
            spec = replace(spec, runtime_env=replace(spec.runtime_env, working_dir_digest=digest))
        submitted = c.submit_job(spec, idempotency_key, allow_unknown=allow_unknown, array=array or "")
    again = "" if submitted.created else " (already submitted with this idempotency key)"
    if wait:
        from minga.cli.actions import wait as waiting  # lazy: only for --wait

        return waiting.after_submit(call, submitted, again)
    if isinstance(submitted.what, ArraySummary):
        grouped = render_arrays.array_to_dict(submitted.what)

        def array_lines() -> None:
            print(grouped["id"], flush=True)
            note(
                f"{grouped['tasks']} tasks, jobs {grouped['id']}_<index>{again}; follow them with: "
                f"minga job status {grouped['id']}"
            )

        call.show({**grouped, "created": submitted.created}, array_lines)
        return
    job = render.job_to_dict(submitted.what)

    def job_lines() -> None:
        print(job["id"], flush=True)
        note(f"{job['state']}{again}; follow it with: minga job logs --follow {job['id']}")

    call.show({**job, "created": submitted.created}, job_lines)


def _pairs(mapping: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(mapping.items()))


def list_jobs(call: Call, all_: bool = False, expand: bool = False, state: str | None = None) -> None:
    """List your jobs (admins: everyone's); finished ones only with --all."""
    wanted = flag_value("--state", parse_job_state, state) if state else None
    finished = all_ or state is not None
    arrays: list[ArraySummary] = []
    with call.client() as c:
        if expand:
            found = c.list_jobs(include_finished=finished, state=wanted)
        else:
            found, arrays = c.list_jobs_and_arrays(include_finished=finished, state=wanted)
    jobs = [render.job_to_dict(j) for j in found]
    grouped = [render_arrays.array_to_dict(a) for a in arrays]
    now = time.time()
    call.show(grouped + jobs, lambda: render.jobs_table(jobs, now, [render_arrays.array_row(a, now) for a in grouped]))


def status(call: Call, job_id: str) -> None:
    """Show a job: state, site, country, attempts, and why it waits or ended. A job
    array's id shows its tasks counted by state; ID_INDEX shows one task."""
    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        found = c.get_job_or_array(job_id)
    if isinstance(found, ArraySummary):
        array = render_arrays.array_to_dict(found)
        call.show(array, lambda: render_arrays.array_detail(array))
        return
    job = render.job_to_dict(found)
    call.show(job, lambda: render.job_detail(job, time.time()))


def logs(call: Call, job_id: str, follow: bool = False) -> None:
    """Print the log of the job's current or last run, as raw bytes.

    A pending job has no log yet: it says so and why, and exits with code 7; with
    `--follow` it waits for the job to start, then streams its log."""
    out = sys.stdout.buffer
    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        job = c.get_job(job_id)
        pending = job if job.state == JobState.PENDING else None
        if pending is not None and follow:
            note(f"{_pending_note(pending)}; waiting for it to start (Ctrl-C stops waiting, the job stays queued)")
        for data in c.job_logs(job_id, follow=follow):
            out.write(data)
            out.flush()
    if pending is not None and not follow:
        note(f"{_pending_note(pending)}; its log starts when it runs: minga job logs --follow {job_id}")
        raise errors.Quit(errors.EXIT_PENDING)


def _pending_note(job: Job) -> str:
    """ "job j-1 is pending: <why it waits>", the reason `job status` shows."""
    again = f" again after {job.attempts} attempt{'s' if job.attempts != 1 else ''}" if job.attempts else ""
    return f"job {job.id} is pending{again}: {job.reason or 'waiting for the next scheduling cycle'}"


def cancel(call: Call, job_id: str, with_dependents: bool = False) -> None:
    """Cancel a job; a running one goes CANCELLING until its site confirms the stop. A job
    array's id cancels every task not ended yet; ID_INDEX cancels one task. With
    --with-dependents, the jobs waiting for it (--after) too, and theirs in turn."""
    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        found, dependents = c.cancel_with_dependents(job_id, with_dependents)
    also = {"cancelled_dependents": dependents} if with_dependents else {}

    def dependent_lines() -> None:
        if with_dependents:
            print(f"and {len(dependents)} job(s) waiting for it: {' '.join(dependents) or '-'}", flush=True)

    if isinstance(found, ArraySummary):
        array = render_arrays.array_to_dict(found)

        def array_lines() -> None:
            print(f"job array {array['id']}: {render_arrays.array_counts(array)}", flush=True)
            dependent_lines()

        call.show({**array, **also}, array_lines)
        return
    job = render.job_to_dict(found)

    def job_lines() -> None:
        print(f"job {job['id']} is {job['state']}", flush=True)
        dependent_lines()

    call.show({**job, **also}, job_lines)
