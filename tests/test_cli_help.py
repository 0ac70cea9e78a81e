"""Every command's `--help` shows what its flags' help strings say.

Typer renders help strings as rich markup, so a `[env MINGA_TOKEN]` in one was
eaten (users saw `Bearer token .`), and every flag was shown as taking a
`<bool>` (`--help -h <bool>`). These tests walk the whole command tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
import typer
from typer.testing import CliRunner

from minga.cli.main import app

WORD = re.compile(r"[A-Za-z0-9_]+")
ENV = re.compile(r"\bMINGA_[A-Z_]+\b")


def _commands(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for the root and every group and command under it (groups load lazily)."""
    yield path, cmd
    ctx = cmd.context_class(cmd, info_name=path[-1] if path else "minga")
    for name in sorted(getattr(cmd, "list_commands", lambda ctx: [])(ctx)):
        yield from _commands(cmd.get_command(ctx, name), (*path, name))


TREE = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_tree_is_walked() -> None:
    paths = {" ".join(p) for p, _ in TREE}
    assert {"job submit", "job list", "site join", "agent run", "login", "admin audit"} <= paths


@pytest.mark.parametrize("path,cmd", TREE, ids=[" ".join(p) or "minga" for p, _ in TREE])
def test_help_shows_every_word_of_every_flag(path: tuple[str, ...], cmd: click.Command) -> None:
    """No word of a parameter's help (env variable names included) is lost to markup."""
    shown = set(WORD.findall(_help(path)))
    for param in cmd.params:
        written = getattr(param, "help", None) or ""
        missing = set(WORD.findall(written)) - shown
        assert not missing, f"`minga {' '.join(path)} --help` drops {sorted(missing)} of {param.name}'s help"


@pytest.mark.parametrize("path,cmd", TREE, ids=[" ".join(p) or "minga" for p, _ in TREE])
def test_no_flag_claims_a_value(path: tuple[str, ...], cmd: click.Command) -> None:
    """A flag (like --help) takes no value, so help shows no `<bool>` after it."""
    text = _help(path)
    assert "<bool>" not in text
    assert re.search(r"--help\s+-h\s+Show this message", text), text


@pytest.mark.parametrize(
    "path,names",
    [
        (("job", "list"), {"MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA"}),
        (("login",), {"MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA"}),
        (("site", "join"), {"MINGA_SITE_CREDENTIAL"}),
        (("agent", "run"), {"MINGA_SITE_CREDENTIAL"}),
        ((), {"MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA"}),
    ],
)
def test_env_variables_are_named(path: tuple[str, ...], names: set[str]) -> None:
    assert names <= set(ENV.findall(_help(path)))
