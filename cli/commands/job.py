"""`minga job ...`: submit, list, inspect, read logs of, and cancel jobs."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minga.cli import errors, render, render_arrays
from minga.cli.call import Call, with_call
from minga.cli.options import flag_value
from minga.cli.parsing import format_bytes, parse_country, parse_duration, parse_env, parse_gpu_memory_mb, parse_size

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient
    from minga.v1 import common_pb2, job_pb2

app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)


def parse_job_state(text: str) -> common_pb2.JobState:
    """A DESIGN.md state name, any case ("running") -> the wire enum."""
    from minga.v1 import common_pb2

    names = [n.removeprefix("JOB_STATE_") for n, _ in common_pb2.JobState.items() if not n.endswith("UNSPECIFIED")]
    name = text.strip().upper()
    if name not in names:
        raise ValueError(f"bad state {text!r}: use one of {', '.join(names)}")
    state: common_pb2.JobState = getattr(common_pb2, f"JOB_STATE_{name}")
    return state


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
        raise errors.usage_error("no entrypoint: put the command after `--`, e.g. minga job submit -- python train.py")
    return words[0] if len(words) == 1 else shlex.join(words)


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
    note = "uploaded" if sent else "unchanged since the last upload, not re-sent"
    typer.echo(f"working dir {directory} ({what}) {note}: {package.digest}", err=True)
    return package.digest


@app.command("submit")
@with_call()
def submit(
    call: Call,
    entrypoint: Annotated[
        list[str], typer.Argument(metavar="ENTRYPOINT", help="The command to run, after `--`.", show_default=False)
    ],
    name: Annotated[str, typer.Option("--name", help="A name to recognise the job by.")] = "",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs, all on one site and of one model.")] = 0,
    gpu_model: Annotated[
        list[str] | None, typer.Option("--gpu-model", help="Allowed GPU model (repeatable).", show_default=False)
    ] = None,
    min_gpu_memory: Annotated[
        str | None,
        typer.Option(
            "--min-gpu-memory", help="Least memory per GPU: GB (e.g. 40) or a size (40GiB).", show_default=False
        ),
    ] = None,
    country: Annotated[
        list[str] | None,
        typer.Option("--country", help="Country it may run in (repeatable; data residency).", show_default=False),
    ] = None,
    cpus: Annotated[float | None, typer.Option("--cpus", help="CPUs.", show_default="1")] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="Memory to reserve: 4GiB, 512MiB.", show_default=False)
    ] = None,
    walltime: Annotated[
        str | None, typer.Option("--walltime", help="Time limit: 90s, 30m, 24h, 7d.", show_default="unlimited")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for the job (repeatable).", show_default=False)
    ] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            help="KEY=VALUE, or KEY to take "
            "the value from your environment: given to the job "
            "like --env, shown nowhere (repeatable).",
            show_default=False,
        ),
    ] = None,
    pip: Annotated[
        list[str] | None, typer.Option("--pip", help="pip package to install (repeatable).", show_default=False)
    ] = None,
    working_dir: Annotated[
        Path | None,
        typer.Option(
            "--working-dir", help="Directory to ship with the job (.gitignore respected).", show_default=False
        ),
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(
            "--max-attempts",
            help="Failed runs before the job fails: "
            "lost sites, Ray failures, and your own with --retry-failed "
            "(preemption does not count).",
        ),
    ] = 3,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Requeue the job when your code exits non-zero too, up to --max-attempts."),
    ] = False,
    project: Annotated[
        str, typer.Option("--project", help="Project of your institution to charge.", show_default="default")
    ] = "",
    data_country: Annotated[
        str | None,
        typer.Option("--data-country", help="Where the job's data is: prefer sites in or near it.", show_default=False),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE the site must carry (repeatable).", show_default=False),
    ] = None,
    non_preemptible: Annotated[
        bool, typer.Option("--non-preemptible", help="Never preempt it (honoured within your institution's guarantee).")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="Same key, same job: safe to re-run this command.", show_default="random"
        ),
    ] = None,
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Queue it even if no site has its GPU "
            "model or country, or that many GPUs: for a site expected to "
            "join (else such a submit is refused).",
        ),
    ] = False,
    array: Annotated[
        str | None,
        typer.Option(
            "--array",
            help="A job array, as Slurm's: 0-999, 1,3,5-9 or "
            "0-99:2, with %K to run at most K at once (0-999%4). Each "
            "task is job ID_INDEX and sees MINGA_ARRAY_INDEX.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Submit a job; prints its id. Example: minga job submit --gpus 1 -- python train.py"""
    from minga.v1 import common_pb2

    if gpus < 0:
        raise typer.BadParameter(f"{gpus} is negative: use 0 or more", param_hint="--gpus")
    if cpus is not None and cpus <= 0:
        raise typer.BadParameter(f"{cpus:g} must be more than 0", param_hint="--cpus")
    if max_attempts < 1:
        raise typer.BadParameter(f"{max_attempts} must be at least 1", param_hint="--max-attempts")
    if working_dir is not None and not working_dir.is_dir():
        raise typer.BadParameter(f"{working_dir} is not a directory", param_hint="--working-dir")
    resources = common_pb2.Resources(
        gpus=gpus,
        gpu_models=gpu_model or [],
        min_gpu_memory_mb=flag_value("--min-gpu-memory", parse_gpu_memory_mb, min_gpu_memory) if min_gpu_memory else 0,
        cpus=cpus or 0.0,
        memory_mb=flag_value("--memory", parse_size, memory) // (1024 * 1024) if memory else 0,
    )
    spec = common_pb2.JobSpec(
        name=name,
        entrypoint=entrypoint_of(entrypoint),
        resources=resources,
        countries=[flag_value("--country", parse_country, c) for c in country or []],
        walltime_seconds=flag_value("--walltime", parse_duration, walltime) if walltime else 0,
        max_attempts=max_attempts,
        retry_failed=retry_failed,
        runtime_env=common_pb2.RuntimeEnv(pip=pip or [], env=flag_value("--env", parse_env, env or [])),
        project=project,
        data_country=flag_value("--data-country", parse_country, data_country) if data_country else "",
        non_preemptible=non_preemptible,
        site_labels=flag_value("--label", parse_env, label or []),
        secret_env=flag_value("--secret-env", parse_secret_env, secret_env or []),
    )
    with call.client() as c:
        if working_dir is not None:
            spec.runtime_env.working_dir_digest = _upload_working_dir(c, working_dir)
        resp = c.submit_job(spec, idempotency_key, allow_unknown=allow_unknown, array=array or "")
    if resp.HasField("array"):
        _show_submitted_array(call, render_arrays.array_to_dict(resp.array), resp.created)
        return
    job = render.job_to_dict(resp.job)

    def human() -> None:
        typer.echo(job["id"])
        again = "" if resp.created else " (already submitted with this idempotency key)"
        typer.echo(f"{job['state']}{again}; follow it with: minga job logs --follow {job['id']}", err=True)

    call.show({**job, "created": resp.created}, human)


def _show_submitted_array(call: Call, array: dict[str, Any], created: bool) -> None:
    def human() -> None:
        typer.echo(array["id"])
        again = "" if created else " (already submitted with this idempotency key)"
        typer.echo(
            f"{array['tasks']} tasks, jobs {array['id']}_<index>{again}; follow them with: "
            f"minga job status {array['id']}",
            err=True,
        )

    call.show({**array, "created": created}, human)


@app.command("list")
@with_call()
def list_jobs(
    call: Call,
    all_: Annotated[bool, typer.Option("--all", help="Include finished jobs.")] = False,
    expand: Annotated[
        bool, typer.Option("--expand", "--tasks", help="List each task of a job array, not one line per array.")
    ] = False,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="Only jobs in this state: PENDING, LEASED, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List your jobs (admins: everyone's); finished ones only with --all."""
    from minga.v1 import common_pb2

    wire_state = flag_value("--state", parse_job_state, state) if state else common_pb2.JOB_STATE_UNSPECIFIED
    finished = all_ or state is not None
    arrays: list[job_pb2.JobArray] = []
    with call.client() as c:
        if expand:
            found = c.list_jobs(include_finished=finished, state=wire_state)
        else:
            found, arrays = c.list_jobs_and_arrays(include_finished=finished, state=wire_state)
    jobs = [render.job_to_dict(j) for j in found]
    grouped = [render_arrays.array_to_dict(a) for a in arrays]
    now = time.time()
    call.show(grouped + jobs, lambda: render.jobs_table(jobs, now, [render_arrays.array_row(a, now) for a in grouped]))


@app.command("status")
@with_call()
def status(
    call: Call,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id, e.g. j-123.")],
) -> None:
    """Show a job: state, site, country, attempts, and why it waits or ended. A job
    array's id shows its tasks counted by state; ID_INDEX shows one task."""
    from minga.v1 import job_pb2

    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        found = c.get_job_or_array(job_id)
    if isinstance(found, job_pb2.JobArray):
        array = render_arrays.array_to_dict(found)
        call.show(array, lambda: render_arrays.array_detail(array))
        return
    job = render.job_to_dict(found)
    call.show(job, lambda: render.job_detail(job, time.time()))


@app.command("logs")
@with_call(output=False)
def logs(
    call: Call,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep streaming until the job ends; a pending job is waited for until it starts."
        ),
    ] = False,
) -> None:
    """Print the log of the job's current or last run, as raw bytes.

    A pending job has no log yet: it says so and why, and exits with code 7; with
    `--follow` it waits for the job to start, then streams its log."""
    from minga.v1 import common_pb2

    out = sys.stdout.buffer
    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        job = c.get_job(job_id)
        pending = job if job.state == common_pb2.JOB_STATE_PENDING else None
        if pending is not None and follow:
            typer.echo(
                f"{_pending_note(pending)}; waiting for it to start (Ctrl-C stops waiting, the job stays queued)",
                err=True,
            )
        for chunk in c.job_logs(job_id, follow=follow):
            out.write(chunk.data)
            out.flush()
    if pending is not None and not follow:
        typer.echo(f"{_pending_note(pending)}; its log starts when it runs: minga job logs --follow {job_id}", err=True)
        raise typer.Exit(errors.EXIT_PENDING)


def _pending_note(job: common_pb2.Job) -> str:
    """ "job j-1 is pending: <why it waits>", the reason `job status` shows."""
    again = f" again after {job.attempts} attempt{'s' if job.attempts != 1 else ''}" if job.attempts else ""
    return f"job {job.id} is pending{again}: {job.reason or 'waiting for the next scheduling cycle'}"


@app.command("cancel")
@with_call()
def cancel(
    call: Call,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
) -> None:
    """Cancel a job; a running one goes CANCELLING until its site confirms the stop. A job
    array's id cancels every task not ended yet; ID_INDEX cancels one task."""
    from minga.v1 import job_pb2

    with call.client() as c, errors.explain(not_found=f"no job {job_id}"):
        found = c.cancel_job_or_array(job_id)
    if isinstance(found, job_pb2.JobArray):
        array = render_arrays.array_to_dict(found)
        call.show(array, lambda: typer.echo(f"job array {array['id']}: {render_arrays.array_counts(array)}"))
        return
    job = render.job_to_dict(found)
    call.show(job, lambda: typer.echo(f"job {job['id']} is {job['state']}"))
