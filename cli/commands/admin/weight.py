"""`minga admin weight set`: weights of countries, institutions, projects and users."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.options import with_call


class Node(enum.StrEnum):
    """A weighted node of the account tree: a level below the federation, users the leaves."""

    country = "country"
    institution = "institution"
    project = "project"
    user = "user"


app = typer.Typer(help="Weights of countries, institutions, projects and users.", no_args_is_help=True)


@app.command("set")
@with_call()
def set_weight(
    call: Call,
    kind: Annotated[Node, typer.Argument(help="country, institution, project or user.")],
    key: Annotated[str, typer.Argument(metavar="ID", help="CL, uchile, uchile/nlp or uchile/nlp/alice.")],
    weight: Annotated[float, typer.Argument(help="The new weight (positive).")],
) -> None:
    """Set the weight of one node of the account tree."""
    with call.client() as c:
        r = c.set_weight(kind.value, key, weight)
    data = {"kind": r.kind, "id": r.id, "weight": r.weight}
    call.show(data, lambda: typer.echo(f"{r.kind} {r.id} now weighs {r.weight:g}"))
