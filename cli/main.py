"""The `minga` command tree (console script `minga = "minga.cli.main:app"`).

A command group's module (cli/commands/) is imported only when that group is used,
so `minga job list` loads neither the other groups nor the broker, the agent or the
simulator. Failures go through cli.errors: one line, an exit code.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from minga.cli.commands import login, up
from minga.cli.errors import MingaGroup
from minga.cli.options import BrokerOpt, CaOpt, TokenOpt, hide_flag_types

# name -> the module whose `app` is that command group, in the order `minga --help` lists them.
GROUPS = {
    "admin": "minga.cli.commands.admin",
    "site": "minga.cli.commands.site",
    "agent": "minga.cli.commands.agent",
    "broker": "minga.cli.commands.broker",
    "job": "minga.cli.commands.job",
    "quota": "minga.cli.commands.quota",
    "usage": "minga.cli.commands.usage",
    "sim": "minga.cli.commands.sim",
    "token": "minga.cli.commands.token",
}


class MingaRoot(MingaGroup):
    """The root group: builds a command group from its module the first time it is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in GROUPS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS and cmd_name not in self.commands:
            group = typer.main.get_group(importlib.import_module(GROUPS[cmd_name]).app)
            group.name = cmd_name
            self.add_command(group)
        return super().get_command(ctx, cmd_name)


hide_flag_types()

app = typer.Typer(
    name="minga",
    cls=MingaRoot,
    help="minga: pool GPUs across institutions; submit Ray jobs to the federation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    broker_: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
) -> None:
    """Connection flags given before the command apply to it (its own flags win)."""
    ctx.obj = {"broker": broker_, "token": token, "ca": ca}


app.command("login")(login.login)
app.command("up")(up.up)

__all__ = ["app"]
