"""Issue 11, section 3: a command asked for under the wrong group (`minga admin site list`)
points to where it lives (`minga site list`), in the one error line, exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from minga.cli import errors
from minga.cli.main import app


@pytest.mark.parametrize(
    "args,line",
    [
        (
            ["admin", "site", "list"],
            "error: No such command 'list'; did you mean `minga site list`? (see `minga admin site --help`)\n",
        ),
        (
            ["site", "cordon", "dcc"],
            "error: No such command 'cordon'; did you mean `minga admin site cordon`? (see `minga site --help`)\n",
        ),
        (
            ["admin", "token", "list"],  # `admin token list` exists: no suggestion needed, nothing changes
            None,
        ),
    ],
)
def test_a_command_in_the_wrong_group_points_to_the_right_one(args: list[str], line: str | None) -> None:
    result = CliRunner().invoke(app, args, env={"MINGA_CONFIG_DIR": "/nonexistent-minga"})
    if line is None:
        assert "No such command" not in result.output
        return
    assert result.exit_code == errors.EXIT_USAGE
    assert result.stderr == line


def test_a_name_no_group_of_that_name_has_gets_no_suggestion() -> None:
    result = CliRunner().invoke(app, ["job", "lst"])
    assert result.exit_code == errors.EXIT_USAGE
    assert "No such command 'lst'" in result.stderr and "`minga" not in result.stderr.split("(see")[0]
