"""A command whose extra is not installed names the extra to install, in one line, exit code 1.

The missing distribution is simulated in a fresh interpreter by blocking its module
(`sys.modules[name] = None`, which makes `import name` fail as if it were absent).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from minga.cli.extras import EXTRA_MODULES

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Distributions whose module is not their name.
MODULE_OF = {"nvidia-ml-py": "pynvml"}


def run_without(module: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from minga.cli.main import app; sys.exit(app(sys.argv[1:], 'minga', standalone_mode=False))"
    )
    env = {"PATH": "/usr/bin:/bin", "MINGA_DATA_DIR": str(tmp_path / "data"), "MINGA_CONFIG_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )


@pytest.mark.parametrize(
    ("module", "args", "command", "extra"),
    [
        ("sqlalchemy", ["broker", "serve"], "broker serve", "broker"),
        ("cryptography", ["broker", "init", "--san", "localhost"], "broker init", "broker"),
        ("cryptography", ["agent", "run", "--ray-address", "http://h:8265"], "agent run", "site"),
        ("cryptography", ["site", "join", "--broker", "h:1", "--token", "t"], "site join", "site"),
        ("numpy", ["sim", "--trace", "synthetic", "--jobs", "5"], "sim", "sim"),
    ],
)
def test_a_missing_extra_is_named(module: str, args: list[str], command: str, extra: str, tmp_path: Path) -> None:
    done = run_without(module, args, tmp_path)
    assert done.stderr == f"error: minga {command} needs the {extra} extra: pip install 'minga[{extra}]'\n"
    assert done.returncode == 1


def test_up_names_both_extras(tmp_path: Path) -> None:
    done = run_without("ray", ["up"], tmp_path)
    assert done.stderr == "error: minga up needs the broker and site extras: pip install 'minga[broker,site]'\n"
    assert done.returncode == 1


def test_another_missing_module_is_not_blamed_on_an_extra(tmp_path: Path) -> None:
    """A module no extra brings is a bug, not a missing extra: it keeps its traceback."""
    done = run_without("minga.scheduler.server", ["broker", "serve"], tmp_path)
    assert "needs the broker extra" not in done.stderr
    assert "ModuleNotFoundError" in done.stderr


def test_the_extras_table_matches_pyproject() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_MODULES) == set(extras) - {"all", "dev"}
    for extra, modules in EXTRA_MODULES.items():
        names = {re.split(r"[\[<>=!;~ ]", req, maxsplit=1)[0] for req in extras[extra]}
        assert {MODULE_OF.get(n, n.lower()) for n in names} == modules, extra
    (everything,) = extras["all"]
    assert set(everything.removeprefix("minga[").removesuffix("]").split(",")) == set(EXTRA_MODULES)
