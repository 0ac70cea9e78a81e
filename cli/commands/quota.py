"""`minga quota show [--tree]`: each institution's fair share and GPUs per model."""
from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..options import BrokerOpt, CaOpt, OutputOpt, TokenOpt, client
from ..render import Output

app = typer.Typer(help="GPU quotas per institution and model.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    tree: Annotated[bool, typer.Option("--tree", help="Also show the whole account tree.")] = False,
    broker: BrokerOpt = None, token: TokenOpt = None, ca: CaOpt = None, output: OutputOpt = Output.table,
) -> None:
    """Per institution: weight, entitlement, decayed usage, fair-share factor; per GPU model:
    owned, guaranteed, in use, held, borrowed, lent and pending."""
    with client(ctx, broker, token, ca) as c:
        resp = c.show_quotas(tree)
    rows = [render.quota_to_dict(r) for r in resp.rows]
    nodes = [render.tree_node_to_dict(n) for n in resp.tree]

    def tables() -> None:
        render.quotas_table(rows)
        if tree:
            render.tree_table(nodes)

    render.show(output, {"rows": rows, "tree": nodes} if tree else rows, tables)
