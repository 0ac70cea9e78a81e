"""`minga admin limits set`: an institution's borrowing and lending limits (GPUs); and the
limits per user and per project (`account_limits.py`)."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.commands.admin.account_limits import project_limits, show_limits, user_limits
from minga.cli.options import with_call

app = typer.Typer(
    help="Limits: an institution's borrowing and lending; a project's or a user's GPUs, pending jobs, walltime.",
    no_args_is_help=True,
)
app.command("user")(user_limits)
app.command("project")(project_limits)
app.command("show")(show_limits)


def _limit(gpus: int | None) -> str:
    return "unlimited" if gpus is None else str(gpus)


def _flag_limit(gpus: int) -> int | None:
    """--borrow/--lend -1: unlimited (None)."""
    return None if gpus < 0 else gpus


def _json_limit(gpus: int | None) -> int:
    """-1 in JSON: unlimited, as the flags say it."""
    return -1 if gpus is None else gpus


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
        r = c.set_limits(institution, _flag_limit(borrow), _flag_limit(lend))
    data = {
        "institution": r.institution,
        "borrowing_limit": _json_limit(r.borrowing_limit),
        "lending_limit": _json_limit(r.lending_limit),
    }
    call.show(
        data,
        lambda: typer.echo(f"{r.institution}: borrow {_limit(r.borrowing_limit)}, lend {_limit(r.lending_limit)}"),
    )
