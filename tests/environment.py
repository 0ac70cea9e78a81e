"""The environment a test gives a `minga` it runs as a child process: this one, less the
settings a test chooses itself (the MINGA_ ones, say), but keeping the two the test run
sets for every child (tests/conftest.py): no command server that would outlive the test,
and the run's own CLI cache."""

from __future__ import annotations

import os

KEPT = ("MINGA_CMDSERVER", "MINGA_CACHE_DIR")


def environment_without(*prefixes: str) -> dict[str, str]:
    """os.environ without the variables that start with one of `prefixes` (except KEPT)."""
    return {k: v for k, v in os.environ.items() if k in KEPT or not k.startswith(prefixes)}
