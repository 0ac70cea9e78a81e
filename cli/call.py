"""One command's run (`Call`): the connection flags given to it and before it, the
broker client they make, and how to show the answer.

The broker is resolved flag > root flag > env > the `minga login` config. Nothing
here imports typer (cli.options.with_call turns a function of a Call into a typer
command), so an action can run without it (cli.fast).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minga.cli import config, errors
from minga.cli.render import Output

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient

SHARED_FLAGS = ("broker", "token", "ca", "output")  # the flags `with_call` adds, in that order


@dataclass(frozen=True)
class Call:
    """A command's path ("minga job list"), the connection flags given before it (`root`)
    and to it, and how to show its answer."""

    command_path: str
    root: Mapping[str, Any] = field(default_factory=dict)
    broker: str | None = None
    token: str | None = None
    ca: Path | None = None
    output: Output = Output.table
    # The names of the command's own parameters given on its command line; None where
    # unknown. A spec file (cli.specfile) fills only the others: the command line wins.
    given: frozenset[str] | None = None

    def connection(self) -> config.Connection:
        """Flag > root flag > env > config file; a bad config file is one line."""
        root = self.root
        try:
            return config.resolve_connection(
                self.broker or root.get("broker"), self.token or root.get("token"), self.ca or root.get("ca")
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
