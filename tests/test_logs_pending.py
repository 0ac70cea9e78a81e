"""`minga job logs` on a pending job (issue 11, section 3), through a real broker on
port 0 over a real SQLite file and a scripted site that speaks the agent's stream.

Without --follow it says the job is pending and why (the reason `job status` shows)
and exits with code 7; with --follow it says it waits, then streams the log once the
job starts and ends with the job.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minga.cli import errors
from minga.cli.main import app
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def busy_site(tmp_path: Path) -> Iterator[tuple[RunningBroker, Caller, ScriptedSite, str]]:
    """A site whose 4 GPUs run a first job, and the run id of that job."""
    broker = start_broker(tmp_path)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    _submit(ana, 4)
    first_run = site.next("start").start.run_id
    site.report(first_run, common_pb2.RUN_STATE_RUNNING)
    yield broker, ana, site, first_run
    site.close()
    broker.close()


def _submit(ana: Caller, gpus: int) -> common_pb2.Job:
    spec = common_pb2.JobSpec(entrypoint="python train.py", resources=common_pb2.Resources(gpus=gpus), max_attempts=1)
    return ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job


def _pending(ana: Caller, job_id: str) -> common_pb2.Job:
    """The job once a scheduling cycle has said why it waits."""

    def looked_at() -> common_pb2.Job | None:
        job = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=ana.md)
        assert job.state == common_pb2.JOB_STATE_PENDING
        return job if job.reason != "waiting for the next scheduling cycle" else None

    return eventually(looked_at)


def test_logs_of_a_pending_job_say_why_and_exit_7(busy_site) -> None:
    broker, ana, _, _ = busy_site
    job = _pending(ana, _submit(ana, 4).id)
    result = CliRunner().invoke(app, ["job", "logs", job.id, "--broker", broker.address, "--token", ana.token])
    assert result.exit_code == errors.EXIT_PENDING == 7
    assert result.stdout_bytes == b""
    assert f"job {job.id} is pending: {job.reason}" in result.stderr
    assert f"minga job logs --follow {job.id}" in result.stderr


def test_follow_waits_for_a_pending_job_then_streams_its_log(busy_site) -> None:
    broker, ana, site, first_run = busy_site
    job = _submit(ana, 4)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'proto'}",
        "MINGA_BROKER": broker.address,
        "MINGA_TOKEN": ana.token,
        "COLUMNS": "200",
    }
    env.pop("MINGA_CA", None)
    cli = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import app; app()", "job", "logs", "--follow", job.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: lines.put(cli.stderr.readline()), daemon=True).start()
        said = lines.get(timeout=120).decode()  # the signal that it waits, before the job starts
        assert f"job {job.id} is pending" in said and "waiting for it to start" in said
        site.report(first_run, common_pb2.RUN_STATE_SUCCEEDED)  # frees the GPUs: the job starts
        run_id = site.next("start").start.run_id
        site.report(run_id, common_pb2.RUN_STATE_RUNNING)
        site.log(run_id, 0, b"epoch 1\n")
        site.log(run_id, 8, b"epoch 2\n")
        site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
        out, err = cli.communicate(timeout=120)  # ends with the job (stderr's first line was read above)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err.decode()
    assert out == b"epoch 1\nepoch 2\n"


def test_logs_of_a_running_job_are_unchanged(busy_site) -> None:
    broker, ana, site, first_run = busy_site
    site.log(first_run, 0, b"hello\n")
    job_id = ana.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=ana.md).jobs[0].id

    def logs() -> bytes:  # the log reaches the store through the site's stream
        result = CliRunner().invoke(app, ["job", "logs", job_id, "--broker", broker.address, "--token", ana.token])
        assert result.exit_code == 0 and "pending" not in result.stderr
        return result.stdout_bytes

    assert eventually(logs) == b"hello\n"
