"""cli.cmdserver: a command run by the command server reads and writes the caller's own
stdin/stdout/stderr, in its directory and environment, and ends with the same exit
code and output as the `minga` process would have on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minga.cli import cmdserver, fast
from tests.environment import imported_modules, run_minga
from tests.eventually import eventually
from tests.test_cli_commands import ANA, Fake


@pytest.fixture
def broker() -> Iterator[Fake]:
    fake = Fake()
    yield fake
    fake.server.stop(None)


@pytest.fixture
def shell(tmp_path: Path, broker: Fake) -> Iterator[dict[str, str]]:
    """The environment of a user's shell, with the command server on and a fake broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGA_")}
    env.update(MINGA_CACHE_DIR=str(tmp_path / "cache"), MINGA_CONFIG_DIR=str(tmp_path / "config"))
    env.update(MINGA_BROKER=broker.address, MINGA_TOKEN=ANA, MINGA_DATA_DIR=str(tmp_path / "data"))
    yield env
    for sock in (tmp_path / "cache").glob("cli/*/cmd.sock"):
        cmdserver.stop(sock.parent)


def _said(stderr: str) -> str:
    return "".join(line + "\n" for line in stderr.splitlines() if not line.startswith("import time:"))


def test_commands_through_the_server_end_as_they_would_on_their_own(
    shell: dict[str, str], broker: Fake, tmp_path: Path
) -> None:
    first = run_minga("job", "submit", "--", "true", env=shell)  # no server yet: runs here, then starts one
    assert first.returncode == 0 and first.stdout == "j-1\n", first.stderr
    eventually(lambda: next((tmp_path / "cache").glob("cli/*/cmd.sock"), None), what="a command server")
    alone = {**shell, cmdserver.OFF_ENV: "off"}
    for argv in (
        ["job", "list", "-o", "json"],
        ["job", "status", "j-1"],
        ["job", "status", "j-404"],  # NOT_FOUND: one line, exit 5
        ["job", "submit", "--gpus", "x", "--", "true"],  # typer's own refusal, exit 2
        ["--help"],
    ):
        served = run_minga(*argv, env=shell)
        own = run_minga(*argv, env=alone)
        assert (served.returncode, served.stdout, _said(served.stderr)) == (
            own.returncode,
            own.stdout,
            _said(own.stderr),
        ), argv
        loaded = imported_modules(served.stderr)
        assert "minga.cli.cmdserver" in loaded and "grpc" not in loaded, argv  # the server did the work
    # The caller's directory and environment: a relative working dir, the token from the env.
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")
    served = run_minga("job", "submit", "--working-dir", "proj", "--", "python train.py", env=shell, cwd=tmp_path)
    assert served.returncode == 0 and served.stdout == "j-2\n", served.stderr
    assert "working dir proj (1 files" in served.stderr and broker.jobs.uploads == 1
    assert "grpc" not in imported_modules(served.stderr)


def test_the_server_leaves_when_idle_or_when_its_socket_goes(tmp_path: Path) -> None:
    directory = tmp_path / "cli"
    directory.mkdir(mode=0o700)
    server = subprocess.Popen([sys.executable, "-c", f"from minga.cli import cmdserver; from pathlib import Path; "
                               f"cmdserver.serve(Path({str(directory)!r}), idle_seconds=1.0)"])  # fmt: skip
    try:
        eventually(lambda: cmdserver.socket_path(directory).exists(), what="the socket")
        assert server.wait(timeout=30) == 0  # a second without a command: it leaves
        assert not cmdserver.socket_path(directory).exists()
    finally:
        server.kill()


def test_no_server_where_it_is_turned_off(shell: dict[str, str], tmp_path: Path) -> None:
    done = run_minga("job", "list", env={**shell, cmdserver.OFF_ENV: "off"})
    assert done.returncode == 0 and "grpc" in imported_modules(done.stderr)
    cache = next((tmp_path / "cache").glob("cli/*"))
    assert cache.is_dir() and not cmdserver.socket_path(cache).exists()
    assert fast.Cache(cache).read(fast.SPEC_FILE) is not None


def test_only_help_and_fast_commands_go_to_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker, an agent or `up` lasts, and its supervisor signals its own process: never served."""
    monkeypatch.setenv("MINGA_CACHE_DIR", str(tmp_path))
    cache = fast.Cache.open()
    assert cache is not None
    assert fast.served(["--help"], cache) and fast.served(["job", "submit", "--", "true"], cache)
    assert fast.served(["job", "list", "-o", "json"], cache)
    long_or_typers = (
        ["broker", "serve"],
        ["agent", "run"],
        ["up"],
        ["admin", "institution", "list"],
        ["job", "list", "-x"],
    )
    for argv in long_or_typers:
        assert not fast.served(argv, cache), argv
