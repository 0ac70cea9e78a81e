"""The flags and choices several commands share, declared once.

`--broker/--token/--ca` are accepted both on the root (`minga --broker X job
list`) and on each command that talks to the broker (`minga job list --broker X`):
a command written as `def list_sites(call: Call) -> None` and decorated with
`@with_call()` takes them, with `--output`, without declaring them.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from minga.cli import errors
from minga.cli.call import Call
from minga.cli.render import Output

F = TypeVar("F", bound=Callable[..., Any])


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

    display_type_rich._minga_flags_bare = True  # type: ignore[attr-defined]  # a mark: patched once only
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]  # typer has no hook for it


def with_call(
    *, connect: bool = True, output: bool = True, token: Any = None, flags: Mapping[str, Any] | None = None
) -> Callable[[F], F]:
    """Turn `fn(call: Call, ...)` into a typer command that takes the shared flags.

    `connect` adds `--broker/--token/--ca` (`token` replaces the `--token` option),
    `output` adds `--output` unless `fn` declares its own; they go after `fn`'s own
    flags, and `fn` gets them as one `Call`. `flags` gives typer's Option/Argument
    for `fn`'s parameters by name, so `fn` itself needs no typer (cli/actions/). A
    FlagError from `fn` reads as click's "Invalid value for '--flag'".
    """

    def decorate(fn: F) -> F:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())
        if not own or own[0].name != "call":
            raise TypeError(f"{fn.__name__} must take `call: Call` first")
        declared = flags or {}
        if unknown := set(declared) - {p.name for p in own}:
            raise TypeError(f"{fn.__name__} has no parameter {', '.join(sorted(unknown))}")
        own = [
            p.replace(annotation=Annotated[p.annotation, declared[p.name]]) if p.name in declared else p for p in own
        ]
        shared: dict[str, Any] = {"broker": BrokerOpt, "token": token or TokenOpt, "ca": CaOpt} if connect else {}
        if output and "output" not in {p.name for p in own}:
            shared["output"] = OutputOpt
        keyword = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
            *own[1:],
            *(
                inspect.Parameter(name, keyword, annotation=kind, default=Output.table if name == "output" else None)
                for name, kind in shared.items()
            ),
        ]

        @functools.wraps(fn)
        def command(ctx: typer.Context, **given: Any) -> Any:
            connection = {name: given.pop(name) for name in shared}
            typed = frozenset(name for name in given if _on_command_line(ctx, name))
            call = Call(ctx.command_path, ctx.find_root().obj or {}, **connection, given=typed)
            try:
                return fn(call, **given)
            except errors.FlagError as exc:
                raise typer.BadParameter(str(exc), ctx=ctx, param_hint=exc.flag) from exc

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # typer reads this one
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.minga_action = fn  # type: ignore[attr-defined]  # what cli.fast calls, without typer
        return command  # type: ignore[return-value]  # a command of F's name and doc, with typer's signature

    return decorate


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether parameter `name` was given on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def check_listen(flag: str, listen: str) -> None:
    """A malformed HOST:PORT (--metrics-listen, --web-listen) is a usage error, caught before anything starts."""
    from minga.common.domain import MingaError
    from minga.common.metrics_http import parse_listen

    try:
        parse_listen(flag, listen)
    except MingaError as exc:
        raise errors.usage_error(str(exc)) from exc
