"""`minga admin weight set`: weights of countries, institutions and projects."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.options import Level, with_call

app = typer.Typer(help="Weights of countries, institutions and projects.", no_args_is_help=True)


@app.command("set")
@with_call()
def set_weight(
    call: Call,
    kind: Annotated[Level, typer.Argument(help="country, institution or project.")],
    key: Annotated[str, typer.Argument(metavar="ID", help="CL, uchile or uchile/nlp.")],
    weight: Annotated[float, typer.Argument(help="The new weight (positive).")],
) -> None:
    """Set the weight of one node of the account tree."""
    with call.client() as c:
        r = c.set_weight(kind.value, key, weight)
    data = {"kind": r.kind, "id": r.id, "weight": r.weight}
    call.show(data, lambda: typer.echo(f"{r.kind} {r.id} now weighs {r.weight:g}"))
