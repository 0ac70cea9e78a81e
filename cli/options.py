"""The flags and choices several commands share, declared once.

`--broker/--token/--ca` are accepted both on the root (`minga --broker X job
list`) and on each command that talks to the broker (`minga job list --broker X`);
cli.call adds them, with `--output`, to those commands.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")
V = TypeVar("V")


class Output(enum.StrEnum):
    """How a command shows its result."""

    table = "table"
    json = "json"


class Level(enum.StrEnum):
    """A level of the account tree below the federation."""

    country = "country"
    institution = "institution"
    project = "project"


BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Broker address HOST:PORT, or a standby pair HOST:PORT,HOST:PORT "
        "(calls go to the leader); env MINGA_BROKER, else `minga login`.",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token; env MINGA_TOKEN, else `minga login`.", show_default=False),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificate (PEM) to verify the broker's TLS (env MINGA_CA).", show_default=False),
]
OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="table for people, json for scripts (keys in docs/cli.md)."),
]


def hide_flag_types() -> None:
    """Show no value type next to a flag in `--help`.

    Typer's rich help prints `<bool>` after every flag (`--help -h <bool>`), as if
    it took a value; a flag takes none, and click's plain help shows none either.
    """
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_minga_flags_bare", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:  # ctx: typer's click Context
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich._minga_flags_bare = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def flag_value(flag: str, parse: Callable[[V], T], value: V) -> T:
    """`parse(value)`; its ValueError becomes a one-line usage error naming `flag`."""
    try:
        return parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from exc
