"""One command's run (`Call`), and `with_call`, which gives a command the shared flags.

A command written as `def list_sites(call: Call) -> None` and decorated with
`@with_call()` takes `--broker/--token/--ca/--output` without declaring them; the
broker is resolved flag > root flag > env > the `minga login` config.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from minga.cli import config, errors
from minga.cli.options import BrokerOpt, CaOpt, Output, OutputOpt, TokenOpt

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Call:
    """A command's context, the connection flags given to it, and how to show its answer."""

    ctx: typer.Context
    broker: str | None = None
    token: str | None = None
    ca: Path | None = None
    output: Output = Output.table

    def connection(self) -> config.Connection:
        """Flag > root flag > env > config file; a bad config file is one line."""
        root = self.ctx.find_root().obj
        given = root if isinstance(root, dict) else {}
        try:
            return config.resolve_connection(
                self.broker or given.get("broker"), self.token or given.get("token"), self.ca or given.get("ca")
            )
        except ValueError as exc:
            raise errors.usage_error(str(exc)) from exc

    def client(self, conn: config.Connection | None = None) -> BrokerClient:
        """A client for this call's broker (or `conn`, resolved already); one line when none is known."""
        from minga.cli.client import BrokerClient  # lazy: grpc only for commands that talk to the broker

        conn = conn or self.connection()
        if not conn.broker:
            raise errors.usage_error(
                "no broker address: pass --broker HOST:PORT, set MINGA_BROKER, or run `minga login`"
            )
        errors.note_connection(conn.broker, has_token=bool(conn.token), has_ca=conn.ca_file is not None)
        return BrokerClient(conn.broker, conn.token, read_ca(conn.ca_file))

    def show(self, data: Any, human: Callable[[], None]) -> None:
        """`data` as JSON with `--output json`, else what `human` prints."""
        from minga.cli import render

        render.show(self.output, data, human)


def read_ca(ca_file: Path | None) -> bytes | None:
    """The CA certificate's bytes, or a clear error naming the missing file."""
    if ca_file is None:
        return None
    try:
        return ca_file.expanduser().read_bytes()
    except OSError as exc:
        raise errors.usage_error(f"cannot read CA certificate {ca_file}: {exc.strerror or exc}") from exc


def with_call(*, connect: bool = True, output: bool = True, token: Any = TokenOpt) -> Callable[[F], F]:
    """Turn `fn(call: Call, ...)` into a typer command that takes the shared flags.

    `connect` adds `--broker/--token/--ca` (`token` replaces the `--token` option),
    `output` adds `--output` unless `fn` declares its own; they go after `fn`'s own
    flags, and `fn` gets them as one `Call`.
    """

    def decorate(fn: F) -> F:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())
        if not own or own[0].name != "call":
            raise TypeError(f"{fn.__name__} must take `call: Call` first")
        shared: dict[str, Any] = {"broker": BrokerOpt, "token": token, "ca": CaOpt} if connect else {}
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
        def command(ctx: typer.Context, **flags: Any) -> Any:
            given = {name: flags.pop(name) for name in shared}
            return fn(Call(ctx, **given), **flags)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate
