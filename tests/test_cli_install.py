"""`pip install minga` (not editable, no extras) into a fresh venv is the researcher's CLI:
the CLI works against a real broker, the broker, the agent and Ray are not there, and a
command that needs them names the extra to install.

Slow: builds the project and installs its dependencies from PyPI (pip's cache helps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.environment import environment_without
from tests.fixtures_broker import RunningBroker, start_broker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
# What the build reads; copied so that the build leaves nothing in the checkout.
SOURCES = ("pyproject.toml", "README.md", "proto", "common", "scheduler", "agent", "cli")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a new venv holding `pip install <a copy of this checkout>`."""
    root = tmp_path_factory.mktemp("install")
    source = root / "minga"
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    bin_dir = root / "venv" / "bin"
    pip = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=800,
        cwd=root,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return bin_dir


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A real broker, run by this (the project's) venv."""
    running = start_broker(tmp_path)
    yield running
    running.close()


def run(fresh: Path, args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`args` in the fresh venv, from an empty folder, with nothing of this checkout on the path."""
    base = environment_without("MINGA_", "PYTHON", "VIRTUAL_ENV")
    base.update(PATH=f"{fresh}{os.pathsep}{base.get('PATH', '')}", MINGA_CONFIG_DIR=str(tmp_path / "config"))
    base.update(MINGA_DATA_DIR=str(tmp_path / "data"), **env)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=base, cwd=cwd)


@pytest.mark.parametrize("module", ["scheduler", "agent", "cli", "ray", "sqlalchemy", "minga.scheduler.server"])
def test_only_the_cli_is_installed(fresh: Path, module: str, tmp_path: Path) -> None:
    done = run(fresh, [str(fresh / "python"), "-c", f"import {module}"], tmp_path)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, done.stderr


def test_help_works(fresh: Path, tmp_path: Path) -> None:
    done = run(fresh, ["minga", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Submit and follow jobs." in done.stdout


def test_a_researcher_submits_lists_and_reads_a_job(fresh: Path, broker: RunningBroker, tmp_path: Path) -> None:
    broker.institution("uchile", "CL")
    env = {"MINGA_BROKER": broker.address, "MINGA_TOKEN": broker.researcher("ana", "uchile").token}
    submitted = run(fresh, ["minga", "job", "submit", "--allow-unknown", "--", "true"], tmp_path, **env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("j-")
    status = run(fresh, ["minga", "job", "status", job_id, "--output", "json"], tmp_path, **env)
    assert status.returncode == 0 and '"state": "PENDING"' in status.stdout, status.stderr
    listed = run(fresh, ["minga", "job", "list"], tmp_path, **env)
    assert listed.returncode == 0 and job_id in listed.stdout, listed.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["broker", "serve"], "broker"), (["agent", "run", "--ray-address", "http://h:8265"], "site")],
)
def test_a_command_of_an_extra_names_it(fresh: Path, args: list[str], extra: str, tmp_path: Path) -> None:
    done = run(fresh, ["minga", *args], tmp_path)
    command = " ".join(args[:2])
    assert done.stderr == f"error: minga {command} needs the {extra} extra: pip install 'minga[{extra}]'\n"
    assert done.returncode == 1
