"""The preemption notice on a real local Ray cluster, through the real agent session: a
StartRun with a notice, then a StopRun (what a preemption, a cancel or a walltime sends).
A job that handles SIGTERM saves a checkpoint naming its attempt, although the save takes
longer than Ray's own 3 s default; a job that ignores SIGTERM is killed once the notice
has passed. Both run side by side, so the test costs one notice, not two."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient

from minga.agent.local_ray import LocalRayHead
from minga.agent.session import Agent, AgentConfig
from minga.v1 import common_pb2
from tests.eventually import eventually
from tests.fakes.fake_broker import FakeBroker, make_start_run

pytestmark = pytest.mark.ray

SAVE_SECONDS = 4.0  # a checkpoint save slower than Ray's default notice (3 s)
GRACEFUL_NOTICE = 10  # ... but well within this one
STUBBORN_NOTICE = 5  # Ray's default would kill at 3 s

JOB = """
import json, os, signal, sys, time
out = os.environ["OUT_DIR"]
stopping = False

def on_sigterm(signum, frame):
    global stopping
    stopping = True
    with open(os.path.join(out, "sigterm"), "w") as f:
        f.write(repr(time.time()))

signal.signal(signal.SIGTERM, on_sigterm)
with open(os.path.join(out, "ready"), "w") as f:
    f.write(str(os.getpid()))
while not stopping or os.environ["MODE"] == "stubborn":   # the stubborn one never stops by itself
    time.sleep(0.05)
time.sleep(float(os.environ["SAVE_SECONDS"]))               # the slow checkpoint save
with open(os.path.join(out, "checkpoint.json"), "w") as f:
    json.dump({k: os.environ[k] for k in ("MINGA_ATTEMPT", "MINGA_JOB_ID", "MINGA_RUN_ID")}, f)
"""


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by Ray's supervisor counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_sigterm_then_the_notice_then_sigkill(ray_head: LocalRayHead, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    broker = FakeBroker().start()
    agent = Agent(
        AgentConfig(
            broker=broker.address,
            token=broker.token,
            ray_dashboard_url=ray_head.dashboard_url,
            heartbeat_seconds=1,
            inventory_seconds=5,
            cache_dir=tmp_path / "cache",
        )
    ).start()
    runs = {"graceful": ("minga-j-ckpt-a2", GRACEFUL_NOTICE), "stubborn": ("minga-j-hold-a1", STUBBORN_NOTICE)}
    try:
        assert broker.wait_for(lambda: broker.connected() and len(broker.hellos) == 1, timeout=30)
        for mode, (run_id, notice) in runs.items():
            (tmp_path / mode).mkdir()
            env = {"OUT_DIR": str(tmp_path / mode), "MODE": mode, "SAVE_SECONDS": str(SAVE_SECONDS)}
            job_id, epoch = run_id.removeprefix("minga-").rsplit("-a", 1)
            broker.start_run(
                make_start_run(
                    run_id,
                    job_id,
                    epoch=int(epoch),
                    notice_seconds=notice,
                    env=env,
                    entrypoint=f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
                )
            )
        eventually(
            lambda: all((tmp_path / mode / "ready").exists() for mode in runs),
            timeout=60,
            what=lambda: f"both jobs ready; reports: {[broker.reports(r) for r, _ in runs.values()]}",
        )
        for run_id, _ in runs.values():
            broker.stop_run(run_id, "preempted: reclaim: a test")
        assert broker.wait_for(
            lambda: all(common_pb2.RUN_STATE_STOPPED in broker.states(r) for r, _ in runs.values()), timeout=60
        ), [broker.reports(r) for r, _ in runs.values()]
    finally:
        agent.stop()
        broker.stop()

    # The graceful job saved its checkpoint after SIGTERM, past Ray's default notice.
    saved = json.loads((tmp_path / "graceful" / "checkpoint.json").read_text())
    assert saved == {"MINGA_ATTEMPT": "2", "MINGA_JOB_ID": "j-ckpt", "MINGA_RUN_ID": "minga-j-ckpt-a2"}
    # The stubborn one got SIGTERM, kept going, and was killed once its notice had passed.
    stubborn = tmp_path / "stubborn"
    assert not (stubborn / "checkpoint.json").exists()
    pid = int((stubborn / "ready").read_text())
    eventually(lambda: _gone(pid), timeout=10)
    sigterm_at = float((stubborn / "sigterm").read_text())
    stopped_at = JobSubmissionClient(ray_head.dashboard_url).get_job_info(runs["stubborn"][0]).end_time / 1000
    assert stopped_at - sigterm_at >= STUBBORN_NOTICE - 1.0  # not killed before its notice ran out
