"""`minga admin project add|list`: what jobs are charged to, inside an institution."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="Projects: what jobs are charged to, inside an institution.", no_args_is_help=True)


@app.command("add")
@with_call()
def add(
    call: Call,
    name: Annotated[str, typer.Argument(help="Project name, e.g. nlp.")],
    institution: Annotated[str, typer.Option("--institution", help="Slug of the institution it belongs to.")],
    weight: Annotated[float, typer.Option("--weight", min=0.0, help="Share among its institution's projects.")] = 1.0,
) -> None:
    """Add a project to an institution (each institution also has `default`)."""
    with call.client() as c:
        project = render.project_to_dict(c.add_project(institution, name, weight))
    call.show(project, lambda: typer.echo(f"project {project['id']} added (weight {weight:g})"))


@app.command("list")
@with_call()
def list_projects(call: Call) -> None:
    """List projects."""
    with call.client() as c:
        items = [render.project_to_dict(p) for p in c.list_projects()]
    call.show(items, lambda: render.projects_table(items))
