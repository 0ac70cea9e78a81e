"""`minga up`: a whole federation in one process, for trying minga on one machine."""
from __future__ import annotations

from typing import Annotated

import typer

from ..options import OutputOpt
from ..render import Output


def up(
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="Logical GPUs per site.")] = 4,
    sites: Annotated[int, typer.Option("--sites", min=1, max=8, help="Sites, each in another country.")] = 1,
    gpu_model: Annotated[str, typer.Option("--gpu-model", help="GPU model the sites advertise.")] = "A100",
    listen: Annotated[str, typer.Option("--listen", help="Broker HOST:PORT (port 0: any free port).")]
    = "127.0.0.1:0",
    output: OutputOpt = Output.table,
) -> None:
    """Start a broker, local Ray sites and their agents; print how to use them; Ctrl-C stops all."""
    from .. import up as federation  # lazy: pulls in the broker, the agent and Ray

    federation.run(federation.UpConfig(gpus=gpus, sites=sites, gpu_model=gpu_model, listen=listen), output)
