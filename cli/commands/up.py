"""`minga up`: a whole federation in one process, for trying minga on one machine."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.extras import needs
from minga.cli.lifecycle import configure_logging, sigterm_as_interrupt, stop_signals, wait_until
from minga.cli.options import with_call
from minga.cli.render import Output


@with_call(connect=False)
def up(
    call: Call,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="Logical GPUs per site.")] = 4,
    sites: Annotated[int, typer.Option("--sites", min=1, max=8, help="Sites, each in another country.")] = 1,
    gpu_model: Annotated[str, typer.Option("--gpu-model", help="GPU model the sites advertise.")] = "A100",
    listen: Annotated[str, typer.Option("--listen", help="Broker HOST:PORT (port 0: any free port).")] = "127.0.0.1:0",
) -> None:
    """Start a broker, local Ray sites and their agents; print how to use them; Ctrl-C stops all."""
    with needs(call.command_path, "broker", "site"):
        from minga.cli import up as federation  # lazy: pulls in the broker, the agent and Ray

    configure_logging(logging.WARNING)
    fed = federation.DevFederation(
        federation.UpConfig(gpus=gpus, sites=sites, gpu_model=gpu_model, listen=listen, write_cli_config=True)
    )
    typer.echo(f"starting a broker and {sites} site(s) with {gpus} x {gpu_model} each in {fed.dir} ...", err=True)
    with sigterm_as_interrupt():
        info = fed.start()  # Ctrl-C while starting: start() stops what it began, then exit 130
    stopped = threading.Event()
    with stop_signals(stopped):
        try:
            if call.output == Output.json:
                render.print_json_line(dataclasses.asdict(info))
            else:
                _announce(info, federation.path_setup())
            wait_until(stopped)
            typer.echo("stopping ...", err=True)
        finally:
            fed.stop()
    typer.echo("stopped everything minga up started", err=True)


def _announce(info, path_setup: str) -> None:
    """What to paste in another terminal: every line, and every hint printed later, says plain `minga`."""
    import shlex

    from minga.cli.up import SAMPLE_JOB

    sites = ", ".join(f"{s.name} ({s.country})" for s in info.sites)
    lines = [f"minga is up: broker {info.broker}; sites: {sites}"]
    if info.moved_from:
        lines.append(
            f"note: the last run's port ({info.moved_from}) is taken, so the broker moved to {info.broker}: "
            "paste the export below again"
        )
    lines += [
        f"researcher {info.researcher} ({info.institution}), token: {info.token}",
        f"admin token: in {info.admin_token_file}",
    ]
    if info.web_url:
        lines.append(
            f"dashboard: {info.web_url}  (sign in with a token above; your browser does not know "
            f"the federation's CA: import {info.ca_file} or accept it once)"
        )
    if info.metrics_url:
        lines.append(f"Prometheus metrics: {info.metrics_url}")
    if info.cli_config:
        lines.append(
            f"broker, CA and {info.researcher}'s token are saved in {info.cli_config}: "
            "`minga` finds them in any terminal"
        )
    lines += ["", "in another terminal, paste:"]
    if path_setup:
        lines.append(f"  {path_setup}    # puts minga on PATH")
    lines += [
        f"  export MINGA_BROKER={info.broker} MINGA_TOKEN={info.token} MINGA_CA={shlex.quote(info.ca_file)}",
        f"  minga job submit --gpus 1 -- {SAMPLE_JOB}",
        "  minga job logs --follow <the job id it printed>    # prints the GPU ids, e.g. 0",
        "  minga job list --all; minga site list; minga quota show",
        "",
        f"stop everything with Ctrl-C (state is kept in {info.data_dir}; delete it to start afresh;",
        " a restart keeps the broker's address when its port is free)",
    ]
    typer.echo("\n".join(lines))
