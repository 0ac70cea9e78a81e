"""`minga admin guarantee set`: explicit per-model GPU guarantees."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="Explicit per-model GPU guarantees.", no_args_is_help=True)


@app.command("set")
@with_call()
def set_guarantee(
    call: Call,
    institution: Annotated[str, typer.Argument(help="Institution slug.")],
    gpu_model: Annotated[str, typer.Option("--model", help="GPU model, e.g. A100.")],
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="GPUs guaranteed; 0 removes the guarantee.")],
) -> None:
    """Guarantee an institution GPUs of one model (checked against what the federation has)."""
    with call.client() as c:
        r = c.set_guarantee(institution, gpu_model, gpus)
    data = {"institution": r.institution, "gpu_model": r.gpu_model, "gpus": r.gpus}
    call.show(data, lambda: typer.echo(f"{r.institution} is guaranteed {r.gpus} {r.gpu_model}"))
