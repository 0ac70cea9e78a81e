"""`minga sim` after a plain (non-editable) pip install (issue 11, section 4): the example
federation and scenarios ship inside the wheel, and the installed CLI runs from a folder
that has no `examples/`. The wheel is built offline from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minga.cli.main import app
from minga.scheduler.sim.examples import example_federation, scenarios_dir

REPO = Path(__file__).resolve().parents[1]
DATA = "minga/scheduler/sim/data"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout (no network: no build isolation, no dependencies)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (found,) = out.glob("minga-*.whl")
    return found


def test_the_wheel_holds_the_example_federation_and_scenarios(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        assert whl.read(f"{DATA}/latam-federation.toml") == example_federation().read_bytes()
    shipped = {f"{DATA}/scenarios/{p.name}" for p in scenarios_dir().glob("*.toml")}
    assert shipped and shipped <= names


def test_examples_in_the_repository_are_the_shipped_files_not_copies() -> None:
    assert (REPO / "examples" / "latam-federation.toml").resolve() == example_federation().resolve()
    assert (REPO / "examples" / "scenarios").resolve() == scenarios_dir().resolve()


def test_installed_minga_sim_runs_where_there_is_no_examples_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Only the installed copy of minga is importable: not this checkout, not its examples/.
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "from minga.cli.main import app; app()"
    args = ["sim", "--trace", "synthetic", "--jobs", "60", "--policy", "fifo"]
    done = subprocess.run(
        [sys.executable, "-P", "-c", code, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "federation: 107 sites" in done.stdout
    assert "utilization" in done.stdout
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import minga; print(minga.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))


def test_a_federation_file_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    res = CliRunner().invoke(app, ["sim", "--federation", str(missing), "--trace", "synthetic", "--jobs", "10"])
    assert res.exit_code == 2
    assert "does not exist" in res.output and "nope.toml" in res.output
    assert "Traceback" not in res.output


def test_a_missing_trace_says_what_to_pass(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["sim", "--traces-dir", str(tmp_path), "--jobs", "10"])
    assert res.exit_code == 2
    assert "--trace synthetic" in " ".join(res.output.split())
