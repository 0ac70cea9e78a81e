"""`minga quota show`: each institution's GPUs per model: owned, in use, held, pending."""
from __future__ import annotations

import typer

from .. import render
from ..options import BrokerOpt, CaOpt, OutputOpt, TokenOpt, client
from ..render import Output

app = typer.Typer(help="GPU quotas per institution and model.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    broker: BrokerOpt = None, token: TokenOpt = None, ca: CaOpt = None, output: OutputOpt = Output.table,
) -> None:
    """Show, per institution and GPU model, what it owns, uses, holds and waits for."""
    with client(ctx, broker, token, ca) as c:
        rows = [render.quota_to_dict(r) for r in c.show_quotas()]
    render.show(output, rows, lambda: render.quotas_table(rows))
