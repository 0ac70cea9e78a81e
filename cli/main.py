"""The `minga` command tree, as typer builds it (cli.launch runs it, or a fast path).

A command group's module (cli/commands/) is imported only when that group is used,
so `minga job list` loads neither the other groups nor the broker, the agent or the
simulator. Failures go through cli.errors: one line, an exit code.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import typer
import typer.core
from typer._click import exceptions as click_exceptions

from minga.cli import errors
from minga.cli.commands import login, up
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


class MingaRoot(typer.core.TyperGroup):
    """The root group: builds a command group from its module the first time it is asked
    for, and routes every failure through `fail`.

    Overriding `main` (not `Typer.__call__`) means the same handling applies to the
    console script and to typer's CliRunner in tests.
    """

    def main(  # type: ignore[override]  # click's names windows_expand_args too; it comes in **extra
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click_exceptions.ClickException, errors.CliError, errors.Quit, typer.Abort, KeyboardInterrupt) as exc:
            return self._exit(fail(exc), standalone_mode)
        except Exception as exc:
            if not errors.is_rpc_error(exc):
                raise
            return self._exit(fail(exc), standalone_mode)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv

    @staticmethod
    def _exit(code: int, standalone_mode: bool) -> int:
        if standalone_mode:
            sys.exit(code)
        return code

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in GROUPS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS and cmd_name not in self.commands:
            group = typer.main.get_group(importlib.import_module(GROUPS[cmd_name]).app)
            group.name = cmd_name
            self.add_command(group)
        return super().get_command(ctx, cmd_name)


def fail(exc: BaseException) -> int:
    """One line for a failure, click's own (a bad flag: with where to look) or ours; its exit code."""
    if isinstance(exc, click_exceptions.UsageError):
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        elsewhere = _same_command_elsewhere(exc)
        if elsewhere:
            hint = f"; did you mean `{'` or `'.join(elsewhere)}`?{hint}"
            exc.message = exc.message.rstrip(".")
        message = exc.format_message().replace("Value error, ", "")  # typer's pydantic coercion prefix
        return errors.fail(f"{message}{hint}", exc.exit_code)
    if isinstance(exc, click_exceptions.ClickException):
        return errors.fail(exc.format_message(), exc.exit_code)
    if isinstance(exc, typer.Abort):
        exc = KeyboardInterrupt()
    return errors.handle(exc)


_NO_SUCH_COMMAND = re.compile(r"No such command '(?P<name>[^']+)'")


def _same_command_elsewhere(exc: click_exceptions.UsageError) -> list[str]:
    """For `No such command 'list'` under `minga admin site`: the full paths of a `list`
    under another group also called `site` (`minga site list`), so a command asked for
    in the wrong group points to where it lives."""
    match = _NO_SUCH_COMMAND.search(exc.message)
    ctx = exc.ctx
    if match is None or ctx is None or ctx.info_name is None:
        return []
    root = ctx.find_root()
    found = [
        path
        for path, group in _group_paths(root.command, root.info_name or "minga", ctx)
        if path.rsplit(" ", 1)[-1] == ctx.info_name and path != ctx.command_path and _visible(group, match["name"], ctx)
    ]
    return [f"{path} {match['name']}" for path in found]


def _group_paths(command: Any, path: str, ctx: Any) -> Iterator[tuple[str, Any]]:
    """Every command group under `command` (itself first), with its full path."""
    if not hasattr(command, "list_commands"):
        return
    yield path, command
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not getattr(sub, "hidden", False):
            yield from _group_paths(sub, f"{path} {name}", ctx)


def _visible(group: Any, name: str, ctx: Any) -> bool:
    sub = group.get_command(ctx, name)
    return sub is not None and not getattr(sub, "hidden", False)


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
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
) -> None:
    """Connection flags given before the command apply to it (its own flags win)."""
    ctx.obj = {"broker": broker, "token": token, "ca": ca}


app.command("login")(login.login)
app.command("up")(up.up)

__all__ = ["app"]
