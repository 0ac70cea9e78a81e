"""`minga admin limits set`: borrowing and lending limits (GPUs)."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="Borrowing and lending limits (GPUs).", no_args_is_help=True)


def _limit(gpus: int) -> str:
    return "unlimited" if gpus < 0 else str(gpus)


@app.command("set")
@with_call()
def set_limits(
    call: Call,
    institution: Annotated[str, typer.Argument(help="Institution slug.")],
    borrow: Annotated[
        int, typer.Option("--borrow", min=-1, help="GPUs it may use beyond its guarantee; -1: unlimited.")
    ] = -1,
    lend: Annotated[int, typer.Option("--lend", min=-1, help="GPUs of its own it may lend; -1: unlimited.")] = -1,
) -> None:
    """Set an institution's borrowing and lending limits (Kueue's borrowingLimit / lendingLimit)."""
    with call.client() as c:
        r = c.set_limits(institution, borrow, lend)
    data = {"institution": r.institution, "borrowing_limit": r.borrowing_limit, "lending_limit": r.lending_limit}
    call.show(
        data,
        lambda: typer.echo(f"{r.institution}: borrow {_limit(r.borrowing_limit)}, lend {_limit(r.lending_limit)}"),
    )
