"""`minga agent run`: the site agent, against an existing Ray cluster or a local one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from minga.cli import errors
from minga.cli.commands.site import CredentialOpt, credential_path
from minga.cli.extras import needs
from minga.cli.lifecycle import (
    configure_logging,
    sigterm_as_interrupt,
    stop_signals,
    this_python_first_on_path,
    wait_until,
)
from minga.cli.options import check_listen

app = typer.Typer(help="Run this site's agent (site operators).", no_args_is_help=True)


def _load_credential(path: Path):
    from minga.agent.credentials import CredentialError, certificate_expiry, load_credential
    from minga.cli.config import warn_if_exposed

    warn_if_exposed(Path(path), "site credential")
    try:
        cred = load_credential(path)
        expires = certificate_expiry(cred)
    except CredentialError as exc:
        raise errors.usage_error(f"{exc} (or pass --credential PATH)") from exc
    if cred.certificate_file:
        warn_if_exposed(Path(cred.certificate_file), "site key")
    if expires is not None and expires <= datetime.now(UTC):
        raise errors.usage_error(
            f"the site certificate in {cred.certificate_file} expired on {expires:%Y-%m-%d %H:%M} "
            "UTC (the agent renews it only while it runs): ask the admin for a join token "
            "and run `minga site join` again"
        )
    return cred


@app.command("run")
def run(
    ctx: typer.Context,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Dashboard URL of the site's Ray cluster, e.g. http://10.0.0.5:8265.",
            show_default=False,
        ),
    ] = None,
    ray_local: Annotated[bool, typer.Option("--ray-local", help="Start a local Ray head for this agent.")] = False,
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="GPUs the local Ray head offers (--ray-local).", show_default=False)
    ] = None,
    gpu_model: Annotated[
        str | None,
        typer.Option("--gpu-model", help="GPU model name to advertise, e.g. A100.", show_default="detected"),
    ] = None,
    gpu_memory: Annotated[
        int | None, typer.Option("--gpu-memory", help="MiB per GPU to advertise.", show_default="detected")
    ] = None,
    credential: CredentialOpt = None,
    metrics_listen: Annotated[
        str,
        typer.Option(
            "--metrics-listen",
            help="HOST:PORT to serve this agent's Prometheus metrics on, at /metrics (docs/metrics.md).",
            show_default="off",
        ),
    ] = "",
) -> None:
    """Connect this site to the broker and run the jobs it places here (Ctrl-C stops)."""
    if bool(ray_address) == ray_local:
        raise errors.usage_error(
            "give exactly one of --ray-address URL (an existing Ray cluster) or --ray-local --gpus N (start one here)"
        )
    if ray_local and gpus is None:
        raise errors.usage_error("--ray-local needs --gpus N (how many GPUs the local Ray head offers)")
    if not ray_local and gpus is not None:
        raise errors.usage_error(
            "--gpus applies only with --ray-local; with --ray-address the agent reads the GPUs from the Ray cluster"
        )
    if gpus is not None and gpus < 0:
        raise typer.BadParameter(f"{gpus} is negative", param_hint="--gpus")
    if gpu_memory is not None and gpu_memory < 0:
        raise typer.BadParameter(f"{gpu_memory} is negative", param_hint="--gpu-memory")
    if metrics_listen:
        check_listen("--metrics-listen", metrics_listen)
    with needs(ctx.command_path, "site"):
        cred = _load_credential(credential_path(credential))
    errors.note_connection(cred.broker, has_token=True, has_ca=bool(cred.ca_file))
    configure_logging()

    with needs(ctx.command_path, "site"):
        from minga.agent.session import Agent, AgentConfig  # lazy: imports Ray
    from minga.common.domain import MingaError

    head = None
    with sigterm_as_interrupt():  # Ctrl-C or `kill` while the Ray head starts: stop it again
        if ray_local:
            from minga.agent.local_ray import LocalRayHead

            head = LocalRayHead(gpus=gpus or 0, gpu_model=gpu_model)
            start_local_head(head)
            typer.echo(f"started a local Ray head with {gpus} GPUs: {head.dashboard_url}", err=True)
    stopped = threading.Event()
    with stop_signals(stopped):
        agent = None
        try:
            agent = Agent(
                AgentConfig(
                    broker=cred.broker,
                    token=cred.token,
                    ray_dashboard_url=head.dashboard_url if head else ray_address or "",  # one is given (checked above)
                    gpu_model=gpu_model,
                    gpu_memory_mb=gpu_memory,
                    ca_file=cred.ca_file,
                    certificate_file=cred.certificate_file,
                    metrics_listen=metrics_listen,
                )
            )
            try:
                agent.start()
            except MingaError as exc:
                raise errors.usage_error(str(exc)) from exc
            if agent.metrics_url:
                typer.echo(f"Prometheus metrics at {agent.metrics_url}", err=True)
            typer.echo(
                f"agent of site {cred.site} ({cred.institution}, {cred.country}) connecting to "
                f"{cred.broker}; stop with Ctrl-C",
                err=True,
            )
            wait_until(stopped)
        finally:
            if agent is not None:
                agent.stop()
            if head is not None:
                head.stop()
    typer.echo("agent stopped", err=True)


def start_local_head(head) -> None:
    """Start a LocalRayHead; a failure shows Ray's log tail, then one error line."""
    from minga.agent.local_ray import RayStartError

    try:
        with this_python_first_on_path():
            head.start()  # when Ray fails to come up, start() stops what it began itself
    except RayStartError as exc:
        first, _, tail = str(exc).partition("\n")
        typer.echo(tail, err=True)
        raise errors.CliError(f"could not start a local Ray head: {first}") from exc
    except BaseException:  # Ctrl-C / SIGTERM while waiting for Ray: stop the half-started head
        with stop_signals(threading.Event()):
            head.stop()
        raise
