"""`minga admin institution add|list`: the institutions that pool GPUs."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_country

app = typer.Typer(help="Institutions that pool GPUs.", no_args_is_help=True)


@app.command("add")
@with_call()
def add(
    call: Call,
    slug: Annotated[str, typer.Argument(help="Short id, e.g. uchile.")],
    name: Annotated[str, typer.Option("--name", help="Full name, e.g. 'Universidad de Chile'.")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2 code, e.g. CL.")],
    weight: Annotated[float, typer.Option("--weight", min=0.0, help="Fair-share weight.")] = 1.0,
) -> None:
    """Register an institution."""
    cc = flag_value("--country", parse_country, country)
    with call.client() as c:
        inst = render.institution_to_dict(c.add_institution(slug, name, cc, weight))
    call.show(inst, lambda: typer.echo(f"institution {inst['slug']} ({inst['name']}, {inst['country']}) added"))


@app.command("list")
@with_call()
def list_institutions(call: Call) -> None:
    """List institutions."""
    with call.client() as c:
        items = [render.institution_to_dict(i) for i in c.list_institutions()]
    call.show(items, lambda: render.institutions_table(items))
