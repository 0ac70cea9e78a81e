"""`minga quota show [--tree]`: each institution's fair share (over days and now) and GPUs per model."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="GPU quotas per institution and model.", no_args_is_help=True)


@app.command("show")
@with_call()
def show(
    call: Call,
    tree: Annotated[bool, typer.Option("--tree", help="Also show the whole account tree.")] = False,
) -> None:
    """Per institution: weight, entitlement, decayed usage, fair-share factor, and its fair
    share of the GPUs now next to what it holds; per GPU model: owned, guaranteed, in use,
    held, borrowed, lent and pending; the entitlement floor in effect."""
    with call.client() as c:
        view = render.quota_view_to_dict(c.show_quotas(tree))

    def tables() -> None:
        render.quotas_table(view)
        if tree:
            sys.stdout.write("\n")
            render.tree_table(view["tree"])

    call.show(view, tables)
