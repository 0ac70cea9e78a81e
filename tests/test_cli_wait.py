"""`minga job wait` and `minga job submit --wait` (issue 15, part 3), through a real broker
on port 0 over a real SQLite file, and a scripted site that drives the jobs' states.

Exit codes: 0 every job SUCCEEDED, 8 one FAILED, 9 one CANCELLED (none failed), 6 the
timeout ran out first; Ctrl-C exits 130 and cancels nothing.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from typer.testing import CliRunner, Result

from minga.cli import errors
from minga.cli.actions import wait as waiting
from minga.cli.client import BrokerClient
from minga.cli.main import app
from minga.common.domain import JobState
from minga.v1 import common_pb2
from tests.environment import MINGA, environment_without
from tests.eventually import eventually
from tests.fixtures_broker import ScriptedSite, gpu_inventory, start_broker


class Federation:
    """A broker, researcher ana, and one scripted site with 4 A100s."""

    def __init__(self, tmp_path: Path) -> None:
        self.broker = start_broker(tmp_path)
        self.broker.institution("uchile", "CL")
        self.token = self.broker.researcher("ana", "uchile").token
        self.site = ScriptedSite(self.broker.address, self.broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
        self.site.next("welcome")

    def minga(self, *args: str) -> Result:
        return CliRunner().invoke(app, ["--broker", self.broker.address, "--token", self.token, *args])

    def submit(self, *flags: str) -> str:
        result = self.minga("job", "submit", "--max-attempts", "1", *flags, "--", "python", "train.py")
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    def state(self, job_id: str) -> JobState:
        with BrokerClient(self.broker.address, self.token) as c:
            return c.get_job(job_id).state

    def run(self, job_id: str, end: int, message: str = "") -> None:
        """Start the job's run on the site and end it in `end` (a RUN_STATE_...)."""
        run_id = self.site.next("start").start.run_id
        assert run_id.startswith(f"minga-{job_id}-")
        self.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
        self.site.report(run_id, end, message)
        eventually(lambda: self.state(job_id).terminal, what=f"{job_id} ended")

    def env(self) -> dict[str, str]:
        """A shell's environment for a `minga` child process, connected to this broker."""
        return {**environment_without("MINGA_"), "MINGA_BROKER": self.broker.address, "MINGA_TOKEN": self.token}

    def close(self) -> None:
        self.site.close()
        self.broker.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path)
    yield federation
    federation.close()


def test_the_exit_code_says_how_the_jobs_ended(fed: Federation) -> None:
    ok = fed.submit()
    fed.run(ok, common_pb2.RUN_STATE_SUCCEEDED)
    failed = fed.submit()
    fed.run(failed, common_pb2.RUN_STATE_FAILED, "exit code 3")
    cancelled = fed.submit("--gpus", "8", "--allow-unknown")  # more than the site has: it stays pending
    assert fed.minga("job", "cancel", cancelled).exit_code == 0

    done = fed.minga("job", "wait", ok)
    assert done.exit_code == 0 and done.stdout == f"{ok} SUCCEEDED\n"
    done = fed.minga("job", "wait", failed)
    assert done.exit_code == errors.EXIT_JOB_FAILED == 8
    assert done.stdout.startswith(f"{failed} FAILED: ") and "exit code 3" in done.stdout
    done = fed.minga("job", "wait", cancelled, ok)
    assert done.exit_code == errors.EXIT_JOB_CANCELLED == 9
    assert done.stdout.splitlines() == [f"{cancelled} CANCELLED: {fed_reason(fed, cancelled)}", f"{ok} SUCCEEDED"]
    done = fed.minga("job", "wait", ok, cancelled, failed, "-o", "json")  # a failure outranks a cancel
    assert done.exit_code == 8
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "failed" and answer["exit_code"] == 8
    assert [(j["id"], j["state"]) for j in answer["jobs"]] == [(ok, "SUCCEEDED"), (cancelled, "CANCELLED"),
                                                                 (failed, "FAILED")]  # fmt: skip


def fed_reason(fed: Federation, job_id: str) -> str:
    with BrokerClient(fed.broker.address, fed.token) as c:
        return c.get_job(job_id).reason


def test_a_timeout_exits_6_and_leaves_the_job_be(fed: Federation) -> None:
    pending = fed.submit("--gpus", "8", "--allow-unknown")
    done = fed.minga("job", "wait", pending, "--timeout", "0")
    assert done.exit_code == errors.EXIT_TIMEOUT == 6
    assert done.stdout.startswith(f"{pending} PENDING")
    assert "timed out: 1 job not ended yet" in done.stderr
    assert json.loads(fed.minga("job", "wait", pending, "--timeout", "0", "-o", "json").stdout)["outcome"] == "timeout"
    failed = fed.submit()
    fed.run(failed, common_pb2.RUN_STATE_FAILED, "exit code 1")
    assert fed.minga("job", "wait", pending, failed, "--timeout", "0").exit_code == 8  # no wait would change it
    assert fed.state(pending) == JobState.PENDING


def test_unknown_jobs_and_bad_timeouts_are_refused(fed: Federation) -> None:
    missing = fed.minga("job", "wait", "j-nope")
    assert missing.exit_code == errors.EXIT_NOT_FOUND and "no job j-nope" in missing.stderr
    bad = fed.minga("job", "wait", "j-nope", "--timeout", "soon")
    assert bad.exit_code == errors.EXIT_USAGE and "--timeout" in bad.stderr


def test_a_job_array_is_waited_for_as_a_whole(fed: Federation) -> None:
    array = fed.submit("--array", "0-1")
    for _ in range(2):  # the two tasks start in either order
        run_id = fed.site.next("start").start.run_id
        fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
        fed.site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: all(fed.state(f"{array}_{i}").terminal for i in range(2)), what="both tasks ended")
    done = fed.minga("job", "wait", array)
    assert done.exit_code == 0 and done.stdout == f"{array} 2 tasks: 2 ok\n", done.output


def _lines(stream: IO[bytes]) -> queue.Queue[bytes]:
    """The lines of a child's stream, as they come (a reader thread)."""
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        for line in iter(stream.readline, b""):
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.parametrize(("end", "code"), [(common_pb2.RUN_STATE_SUCCEEDED, 0), (common_pb2.RUN_STATE_FAILED, 8)])
def test_submit_wait_streams_the_log_and_exits_as_the_job_ended(
    fed: Federation, tmp_path: Path, end: int, code: int
) -> None:
    spec = tmp_path / "job.toml"
    spec.write_text('run = "python train.py"\ngpus = 1\nmax-attempts = 1\nwait = true\n')  # --wait from a file
    cli = subprocess.Popen([sys.executable, MINGA, "job", "submit", "-f", str(spec)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=fed.env())  # fmt: skip
    try:
        out = _lines(cli.stdout)  # type: ignore[arg-type]  # PIPE: a stream
        job_id = out.get(timeout=60).decode().strip()  # the signal that it submitted
        run_id = fed.site.next("start").start.run_id
        fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
        fed.site.log(run_id, 0, b"epoch 1\n")
        assert out.get(timeout=60) == b"epoch 1\n"  # streamed while the job runs
        fed.site.log(run_id, 8, b"epoch 2\n")
        fed.site.report(run_id, end, "exit code 2" if code else "")
        cli.wait(timeout=60)
        err = cli.stderr.read().decode()  # type: ignore[union-attr]  # PIPE: a stream
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == code, err
    assert out.get(timeout=5) == b"epoch 2\n" and out.empty()
    assert "streaming its log until it ends" in err
    assert f"{job_id} {'SUCCEEDED' if code == 0 else 'FAILED: '}" in err


def test_ctrl_c_stops_waiting_and_cancels_nothing(fed: Federation) -> None:
    job_id = fed.submit()
    run_id = fed.site.next("start").start.run_id
    fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: fed.state(job_id) == JobState.RUNNING)
    cli = subprocess.Popen([sys.executable, MINGA, "job", "wait", job_id], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=fed.env())  # fmt: skip
    try:
        err = _lines(cli.stderr)  # type: ignore[arg-type]  # PIPE: a stream
        assert f"waiting for job {job_id} to end" in err.get(timeout=60).decode()  # it is in its loop
        cli.send_signal(signal.SIGINT)
        cli.wait(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == errors.EXIT_INTERRUPTED == 130
    said = b"".join(err.get(timeout=5) for _ in range(2)).decode()
    assert "nothing was cancelled" in said and f"minga job cancel {job_id}" in said
    assert fed.state(job_id) == JobState.RUNNING


class _Client:
    """Answers get_job_or_array from a script of states, one per look."""

    def __init__(self, states: list[JobState]) -> None:
        self.states = states
        self.looks = 0

    def get_job_or_array(self, job_id: str) -> object:
        from minga.common.domain import Job, JobSpec

        state = self.states[min(self.looks, len(self.states) - 1)]
        self.looks += 1
        return Job(
            id=job_id,
            spec=JobSpec(name="", entrypoint="x"),
            state=state,
            owner="ana",
            institution="u",
            submitted_at=0.0,
        )


def test_it_polls_with_a_backoff_not_a_busy_loop() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = _Client([JobState.PENDING] * 12 + [JobState.SUCCEEDED])
    outcome = waiting.watch(client, ["j-1"], None, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert outcome.exit_code == 0 and client.looks == 13
    assert slept[0] == waiting.FIRST_POLL and max(slept) == waiting.MAX_POLL
    assert all(b >= a for a, b in zip(slept, slept[1:], strict=False))
    client = _Client([JobState.RUNNING])
    slept.clear()
    outcome = waiting.watch(client, ["j-1"], 3.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert outcome.name == "timeout" and sum(slept) == pytest.approx(3.0)  # the last pause stops at the deadline
