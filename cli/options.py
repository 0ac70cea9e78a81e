"""Options shared by many commands, and the factory that turns them into a client.

`--broker/--token/--ca` are accepted both on the root (`minga --broker X job
list`) and on each command (`minga job list --broker X`); the command's flag
wins, then the root's, then the environment, then the `minga login` config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minga.cli import config, errors
from minga.cli.client import BrokerClient
from minga.cli.render import Output

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

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich._minga_flags_bare = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def root_settings(ctx: typer.Context) -> dict[str, object]:
    """The root command's --broker/--token/--ca (stored by the root callback)."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, dict) else {}


def connection(ctx: typer.Context, broker: str | None, token: str | None, ca: Path | None) -> config.Connection:
    """Resolve flag > root flag > env > config file, with config errors as one line."""
    root = root_settings(ctx)
    try:
        return config.resolve_connection(
            broker or root.get("broker"),  # type: ignore[arg-type]
            token or root.get("token"),  # type: ignore[arg-type]
            ca or root.get("ca"),  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise errors.CliError(str(exc), errors.EXIT_USAGE) from exc


def read_ca(ca_file: Path | None) -> bytes | None:
    """The CA certificate's bytes, or a clear error naming the missing file."""
    if ca_file is None:
        return None
    try:
        return ca_file.expanduser().read_bytes()
    except OSError as exc:
        raise errors.usage_error(f"cannot read CA certificate {ca_file}: {exc.strerror or exc}") from exc


def open_client(conn: config.Connection) -> BrokerClient:
    """A client for `conn`; fails with one line when no broker is known."""
    if not conn.broker:
        raise errors.usage_error("no broker address: pass --broker HOST:PORT, set MINGA_BROKER, or run `minga login`")
    errors.note_connection(conn.broker, has_token=bool(conn.token), has_ca=conn.ca_file is not None)
    return BrokerClient(conn.broker, conn.token, read_ca(conn.ca_file))


def client(ctx: typer.Context, broker: str | None, token: str | None, ca: Path | None) -> BrokerClient:
    """Shortcut used by every command that talks to the broker."""
    return open_client(connection(ctx, broker, token, ca))
