"""`minga admin limits user|project|show`: limits per user and per project (Slurm's QOS
and association limits). Registered on `minga admin limits` (limits.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_duration

if TYPE_CHECKING:
    from minga.common.limits import AccountLimit

UNLIMITED_WORDS = ("-1", "unlimited", "none")

MaxGpus = Annotated[
    int | None,
    typer.Option("--max-gpus", min=-1, help="GPUs its live runs may hold at once; -1: unlimited.", show_default=False),
]
MaxPending = Annotated[
    int | None,
    typer.Option(
        "--max-pending",
        min=-1,
        help="Jobs it may have pending (an array counts its tasks); -1: unlimited.",
        show_default=False,
    ),
]
MaxWalltime = Annotated[
    str | None,
    typer.Option(
        "--max-walltime", help="Longest walltime a job may ask: 90m, 24h, 7d; unlimited: no limit.", show_default=False
    ),
]


def _walltime(text: str | None) -> int | None:
    """--max-walltime: None (not given), -1 (unlimited) or seconds."""
    if text is None:
        return None
    if text.strip().lower() in UNLIMITED_WORDS:
        return -1
    seconds = flag_value("--max-walltime", parse_duration, text)
    if seconds <= 0:
        raise typer.BadParameter("must be a positive duration, or 'unlimited'", param_hint="--max-walltime")
    return seconds


def limit_to_dict(lim: AccountLimit) -> dict[str, Any]:
    """JSON: null is unlimited."""
    return {
        "kind": lim.kind,
        "id": lim.key,
        "max_gpus": lim.max_gpus,
        "max_pending": lim.max_pending,
        "max_walltime_seconds": lim.max_walltime_seconds,
    }


def _set(call: Call, kind: str, key: str, gpus: int | None, pending: int | None, walltime: str | None) -> None:
    seconds = _walltime(walltime)
    if gpus is None and pending is None and seconds is None:
        raise typer.BadParameter("give at least one of --max-gpus, --max-pending, --max-walltime")
    with call.client() as c:
        data = limit_to_dict(c.set_account_limits(kind, key, gpus, pending, seconds))
    call.show(data, lambda: typer.echo(f"{kind} {key}: {render.limits_line(data)}"))


@with_call()
def user_limits(
    call: Call,
    key: Annotated[str, typer.Argument(metavar="INST/PROJECT/USER", help="A user within a project.")],
    max_gpus: MaxGpus = None,
    max_pending: MaxPending = None,
    max_walltime: MaxWalltime = None,
) -> None:
    """Set a user's limits within a project (Slurm's association limits); the others stay."""
    _set(call, "user", key, max_gpus, max_pending, max_walltime)


@with_call()
def project_limits(
    call: Call,
    key: Annotated[str, typer.Argument(metavar="INST/PROJECT", help="A project.")],
    max_gpus: MaxGpus = None,
    max_pending: MaxPending = None,
    max_walltime: MaxWalltime = None,
) -> None:
    """Set a project's limits, for all its users together; the others stay."""
    _set(call, "project", key, max_gpus, max_pending, max_walltime)


@with_call()
def show_limits(call: Call) -> None:
    """The limits per user and per project you may see (a researcher: its own and its projects')."""
    with call.client() as c:
        items = [limit_to_dict(lim) for lim in c.list_account_limits()]
    call.show(items, lambda: render.account_limits_table(items))
