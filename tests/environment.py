"""A `minga` that a test runs as a child process: the environment it gets (this one, less
the settings a test chooses itself, the MINGA_ ones say, but keeping the two the test run
sets for every child in tests/conftest.py: no command server that would outlive the test,
and the run's own CLI cache), and a run of the console script that shows what it imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MINGA = str(Path(sys.executable).parent / "minga")  # the venv's console script

KEPT = ("MINGA_CMDSERVER", "MINGA_CACHE_DIR")


def environment_without(*prefixes: str) -> dict[str, str]:
    """os.environ without the variables that start with one of `prefixes` (except KEPT)."""
    return {k: v for k, v in os.environ.items() if k in KEPT or not k.startswith(prefixes)}


def run_minga(*argv: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`minga ARGV` through the console script, under `-X importtime` (see imported_modules)."""
    return subprocess.run([sys.executable, "-X", "importtime", MINGA, *argv], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=120)  # fmt: skip


def imported_modules(stderr: str) -> set[str]:
    """What `-X importtime` saw imported (an `import x` statement, not importlib's calls)."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
