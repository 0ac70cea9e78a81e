"""The README's walkthrough, run exactly as written, so that README and reality cannot drift.

The fenced ```bash blocks of the section "A five-minute walkthrough" are cut into
commands (a line ending in a backslash goes on with the next one; lines that are
blank or start with `#`, the expected output, are skipped) and typed, in order, into
one `bash` process, as a newcomer would paste them into one terminal. Shell
variables and exports carry over from line to line, as they do there.

The conventions the README keeps for this:
- every value a reader would copy from the output (a token, a job id) is put into a
  shell variable by the README itself, e.g. `JOB=$(minga job submit ...)`;
- the long-running commands, `minga broker serve` and `minga agent run`, end with `&`.
  After such a line the test waits for a positive signal before the next line: the
  broker's announcement (its last line, "stop with Ctrl-C"), then the site connected with
  its GPUs (which a reader sees with `minga site list`). Any other `&` line fails the test.

The home is fresh: HOME, the XDG dirs and minga's config and data dirs all lie under
tmp, and no MINGA_* variable leaks in. `MINGA_DATA_DIR` and `MINGA_CONFIG_DIR` are set to
the Linux defaults under that HOME, so the README's `~/.local/share/minga` paths hold on
macOS too. The commands run in an empty folder whose `.venv` is the venv running the
tests, so the README's `. .venv/bin/activate` is what puts `minga` on PATH.

A command that exits non-zero fails the test, naming the README line and its output.
The broker listens on the README's fixed ports (50551, 50552 and the dashboard's 50553); the test fails at
once, saying so, when they are taken.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.environment import environment_without
from tests.eventually import eventually
from tests.fixtures_ray import pid_alive

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## A five-minute walkthrough"
BACKGROUND = ("minga broker serve ", "minga agent run ")
COMMAND_TIMEOUT = 240.0


def walkthrough_commands(text: str) -> list[str]:
    """The shell commands of the walkthrough's ```bash blocks, in order, continuations joined."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line + "\n"
            if not line.endswith("\\"):
                commands.append(pending.rstrip("\n"))
                pending = ""
        assert not pending, f"a README command ends in a backslash: {pending!r}"
    return commands


def test_the_walkthrough_is_cut_into_commands() -> None:
    commands = walkthrough_commands(README.read_text())
    assert commands[0] == ". .venv/bin/activate          # puts minga on PATH"
    assert any(c.startswith("JOB=$(minga job submit") and c.count("\n") == 1 for c in commands)
    assert not any(c.lstrip().startswith("#") for c in commands)
    assert [
        c for c in commands if c.rstrip().split("#")[0].rstrip().endswith("&") and not c.rstrip().endswith("&&")
    ] == [c for c in commands if c.startswith(BACKGROUND)]


class Shell:
    """One bash process fed line by line; its stdout and stderr are read by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.cwd = cwd
        self.mark = f"__readme_{uuid.uuid4().hex}"
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript: list[str] = []
        self.background: list[int] = []  # PIDs of the README's `&` lines, stopped by the fixture
        self.last_bg = ""  # `$!` after the last command
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.transcript.append(line)
            self.lines.put(line)

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str]:
        """Type `command`, then wait for its exit status; returns it and what was printed meanwhile."""
        assert self.proc.stdin is not None and self.proc.poll() is None, "the shell is gone"
        self.proc.stdin.write(f'{command}\necho "{self.mark} $? $!"\n')
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"README line still running after {timeout:.0f}s:\n{command}\noutput:\n{''.join(out)[-4000:]}"
                ) from None
            if self.mark in line:
                status, _, self.last_bg = line.split(self.mark, 1)[1].strip().partition(" ")
                out.append(line.split(self.mark, 1)[0])
                return int(status), "".join(out)
            out.append(line)

    def until(self, what: str, check: Callable[[], bool], timeout: float = 180) -> None:
        """Wait for `check`; a timeout names `what` and shows the end of the transcript."""
        eventually(check, timeout=timeout, interval=1, what=lambda: f"{what}:\n{''.join(self.transcript)[-4000:]}")


def _port_free(port: int) -> bool:
    """Whether a server could listen on the port now. SO_REUSEADDR, as the broker's servers
    set it: a closed connection that used the port (TIME_WAIT) does not take it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    taken = [p for p in (50551, 50552, 50553) if not _port_free(p)]
    if taken:
        pytest.fail(f"the README's broker ports {taken} are taken on this machine: stop what listens there")
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), f"run the tests from a venv (make test): no {venv}/bin/activate"
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir(parents=True)
    (work / ".venv").symlink_to(venv)
    env = environment_without("MINGA_", "XDG_", "RAY_ADDRESS", "VIRTUAL_ENV")
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local/state"),
        MINGA_DATA_DIR=str(home / ".local/share/minga"),
        MINGA_CONFIG_DIR=str(home / ".config/minga"),
        PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "minga").exists()),
    )  # only the README puts minga there
    home.mkdir()
    sh = Shell(work, env)
    try:
        yield sh
    finally:
        _stop_background(sh)


def _stop_background(sh: Shell) -> None:
    """Stop, by PID, whatever background command the README left running; then the shell."""
    for pid in sh.background:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(pid_alive(p) for p in sh.background) and time.monotonic() < deadline:
        time.sleep(0.5)  # bash reaps its children
    for pid in sh.background:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    if sh.proc.poll() is None:
        assert sh.proc.stdin is not None
        sh.proc.stdin.close()
        try:
            sh.proc.wait(30)
        except subprocess.TimeoutExpired:
            sh.proc.kill()
            sh.proc.wait()


def _site_ready(sh: Shell) -> bool:
    # Into a file: the background agent writes to the same terminal.
    status, out = sh.run("minga site list --output json > ../sites.json")
    assert status == 0, out
    sites = json.loads((sh.cwd.parent / "sites.json").read_text())
    return bool(sites) and all(s["connected"] and sum(g["total"] for g in s["gpus"]) > 0 for s in sites)


def _paste_broker_hint(sh: Shell, printed: str) -> None:
    """The line `broker serve` prints for the admin works pasted as is (in a subshell, so the
    README's own lines run in the environment they were written for)."""
    line = re.search(r"use it with: (export .*)$", printed, re.M)
    assert line, printed
    status, out = sh.run(f"( {line.group(1)}; minga admin institution list --output json )")
    assert status == 0, f"the broker's hint failed when pasted:\n{line.group(1)}\n{out}"


def test_readme_walkthrough_runs_as_written(shell: Shell) -> None:
    sh = shell
    for command in walkthrough_commands(README.read_text()):
        before = len(sh.transcript)
        status, out = sh.run(command)
        assert status == 0, f"README line failed with exit status {status}:\n{command}\noutput:\n{out[-4000:]}"
        if command.rstrip().endswith("&"):
            assert command.startswith(BACKGROUND), (
                f"a README line runs in the background but is not the broker or the agent: {command}"
            )
            pid = int(sh.last_bg)
            sh.background.append(pid)
            if command.startswith("minga broker serve "):
                sh.until(
                    "the broker to listen (its announcement's last line, after every other)",
                    lambda: not pid_alive(pid) or any("stop with Ctrl-C" in line for line in sh.transcript[before:]),
                )
                assert pid_alive(pid), f"the broker exited:\n{''.join(sh.transcript[before:])}"
                _paste_broker_hint(sh, "".join(sh.transcript[before:]))
            else:
                sh.until(
                    "the site to report its GPUs",
                    lambda: (
                        (pid_alive(pid) or pytest.fail(f"the agent exited:\n{''.join(sh.transcript)}"))
                        and _site_ready(sh)
                    ),
                )
    hint = re.search(r"^  minga site join --broker \S+ --token <TOKEN> --ca (\S+)$", "".join(sh.transcript), re.M)
    assert hint and Path(hint.group(1)).is_file(), "the site-token hint names no CA file that exists"
    # The README's last line stops the broker and the agent; `wait` returns once they are gone.
    status, out = sh.run("wait", timeout=90)
    assert status == 0 and not any(pid_alive(p) for p in sh.background), out
