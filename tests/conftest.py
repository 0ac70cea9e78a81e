"""Shared pytest setup. Fixtures live in plugin modules, one per area, so that
work on the broker, the agent and the CLI does not collide in one file."""

import atexit
import os
import shutil
import tempfile

# Brokers started without explicit paths use the data dir (a federation CA there turns
# on mutual TLS): point it at an empty directory, never at the user's real one.
os.environ["MINGA_DATA_DIR"] = tempfile.mkdtemp(prefix="minga-test-data-")
atexit.register(shutil.rmtree, os.environ["MINGA_DATA_DIR"], True)
# Every `minga` a test runs is its own process, and leaves no command server behind
# (tests/test_cli_cmdserver.py starts and stops its own). The CLI cache goes with the run.
os.environ["MINGA_CMDSERVER"] = "off"
os.environ["MINGA_CACHE_DIR"] = tempfile.mkdtemp(prefix="minga-test-cache-")
atexit.register(shutil.rmtree, os.environ["MINGA_CACHE_DIR"], True)
pytest_plugins = [
    "tests.fixtures_ray",
    "tests.fixtures_broker",
    "tests.browser",
    "tests.tiers",
]
