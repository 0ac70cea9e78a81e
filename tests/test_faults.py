"""Fault injection on real processes, all on loopback: a broker on port 0 over
SQLite, agents (in-process, or `minga agent run` as a child process killed with
SIGKILL), real Ray heads, and an in-test TCP proxy that blackholes a site's link.

"Nothing lost, nothing run twice" means here: the job ends SUCCEEDED exactly once,
on the surviving site, with attempts = 2; the stale run on the site that failed is
stopped on Ray (or had already ended) and its reports never change the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient

from minga.agent.local_ray import LocalRayHead
from minga.agent.session import Agent, AgentConfig
from minga.v1 import common_pb2
from tests.environment import environment_without
from tests.eventually import eventually
from tests.fixtures_broker import RunningBroker, start_broker
from tests.fixtures_ray import OBJECT_STORE_BYTES
from tests.netproxy import TcpProxy
from tests.test_integration_ray import TERMINAL, job, submit, wait_site_ready, wait_state
from tests.test_leases import site_info

pytestmark = pytest.mark.ray

TTL = 3.0
MINGA = str(Path(sys.executable).parent / "minga")
# The first attempt is still running on the failed site when it returns, however slow
# the machine (a stale copy left alone would reach SUCCEEDED only after 120 s, past every
# wait); the moved one (MINGA_ATTEMPT=2) ends in 3 s.
SLOW_JOB = (
    "python -c \"import os, time; n = 120 if os.environ['MINGA_ATTEMPT'] == '1' else 3; "
    '[print(i, flush=True) or time.sleep(1) for i in range(n)]"'
)


@pytest.fixture
def broker(tmp_path) -> Iterator[RunningBroker]:
    running = start_broker(tmp_path, lease_ttl_seconds=TTL)
    running.institution("uchile", "CL")
    yield running
    running.close()


def agent_for(
    broker: RunningBroker, site_token: str, head: LocalRayHead, model: str, address: str | None = None
) -> Agent:
    return Agent(
        AgentConfig(
            broker=address or broker.address,
            token=site_token,
            ray_dashboard_url=head.dashboard_url,
            gpu_model=model,
            health_seconds=0.5,
            backoff_max=1.0,
        )
    ).start()


def ray_status(head: LocalRayHead, run_id: str) -> str:
    return JobSubmissionClient(head.dashboard_url).get_job_status(run_id).value


def running_on(ana, site: str) -> tuple[str, common_pb2.Job]:  # type: ignore[no-untyped-def]
    """Submit the slow job and wait until it runs, on `site` (the only one up)."""
    job_id = submit(ana, SLOW_JOB)
    first = wait_state(ana, job_id, {common_pb2.JOB_STATE_RUNNING})
    assert first.site == site
    return job_id, first


def assert_moved_and_done_once(ana, job_id: str, first_run: str, to_site: str) -> common_pb2.Job:  # type: ignore[no-untyped-def]
    done = wait_state(ana, job_id, TERMINAL, timeout=120)
    assert done.state == common_pb2.JOB_STATE_SUCCEEDED, done.reason
    assert (done.site, done.attempts) == (to_site, 2) and done.run_id != first_run
    return done


def test_agent_killed_mid_run_requeues_and_its_return_stops_the_stale_run(broker, ray_head, ray_head_b, tmp_path):
    ana = broker.researcher("ana", "uchile")
    join = broker.join_token("uchile", "killed")
    cred = tmp_path / "killed.json"
    env = environment_without("MINGA_", "RAY_ADDRESS")
    env.update(MINGA_CONFIG_DIR=str(tmp_path / "config"), MINGA_DATA_DIR=str(tmp_path / "data"))
    subprocess.run(
        [MINGA, "site", "join", "--broker", broker.address, "--token", join, "--credential", str(cred)],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    agent_cmd = [
        MINGA,
        "agent",
        "run",
        "--ray-address",
        ray_head.dashboard_url,
        "--gpu-model",
        "A100",
        "--credential",
        str(cred),
    ]
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(agent_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: site_info(broker, "killed").connected, timeout=60)
        job_id, first = running_on(ana, "killed")
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-run
        proc.wait()
        survivor = agent_for(broker, broker.join("uchile", "survivor"), ray_head_b, "T4")
        try:
            eventually(lambda: job(ana, job_id).site == "survivor", timeout=TTL + 30)  # leased there
            assert site_info(broker, "killed").state == common_pb2.SITE_STATE_LOST
            # The killed agent comes back while its Ray still runs the stale copy.
            proc = subprocess.Popen(agent_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            eventually(lambda: ray_status(ray_head, first.run_id) in ("STOPPED", "SUCCEEDED"), timeout=60)
            assert_moved_and_done_once(ana, job_id, first.run_id, "survivor")
            assert ray_status(ray_head, first.run_id) == "STOPPED"  # stopped, not run to the end
            eventually(lambda: site_info(broker, "killed").connected, timeout=60)  # back, and reported
            broker.full_pass()  # a pass since it returned: the broker acted on what it said
            assert job(ana, job_id).site == "survivor"  # its late reports changed nothing
        finally:
            survivor.stop()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


def test_network_cut_requeues_and_the_restored_site_stops_its_stale_run(broker, ray_head, ray_head_b):
    ana = broker.researcher("ana", "uchile")
    proxy = TcpProxy(broker.address)
    cut_token = broker.join("uchile", "cut")
    cut = agent_for(broker, cut_token, ray_head, "A100", address=proxy.address)
    survivor = None
    try:
        wait_site_ready(broker, cut_token)
        job_id, first = running_on(ana, "cut")
        proxy.cut()
        survivor = agent_for(broker, broker.join("uchile", "survivor"), ray_head_b, "T4")
        eventually(lambda: job(ana, job_id).site == "survivor", timeout=TTL + 30)
        assert site_info(broker, "cut").state == common_pb2.SITE_STATE_LOST
        proxy.restore()  # the agent reconnects with a Hello
        eventually(lambda: site_info(broker, "cut").state == common_pb2.SITE_STATE_READY, timeout=60)
        eventually(lambda: ray_status(ray_head, first.run_id) in ("STOPPED", "SUCCEEDED"), timeout=60)
        assert ray_status(ray_head, first.run_id) == "STOPPED"
        assert_moved_and_done_once(ana, job_id, first.run_id, "survivor")
    finally:
        cut.stop()
        if survivor is not None:
            survivor.stop()
        proxy.close()


def test_ray_head_killed_makes_the_site_degraded_and_its_job_moves(broker, ray_head_b):
    ana = broker.researcher("ana", "uchile")
    head = LocalRayHead(gpus=2, gpu_model="A100", object_store_memory=OBJECT_STORE_BYTES).start()
    doomed_token = broker.join("uchile", "doomed")
    doomed = agent_for(broker, doomed_token, head, "A100")
    survivor = None
    try:
        wait_site_ready(broker, doomed_token)
        job_id, first = running_on(ana, "doomed")
        head.stop()  # the site's Ray head dies, its agent lives
        eventually(lambda: site_info(broker, "doomed").state == common_pb2.SITE_STATE_DEGRADED, timeout=30)
        assert "Ray cluster down" in site_info(broker, "doomed").state_reason
        assert site_info(broker, "doomed").connected  # the agent still reports: not LOST
        survivor = agent_for(broker, broker.join("uchile", "survivor"), ray_head_b, "T4")
        assert_moved_and_done_once(ana, job_id, first.run_id, "survivor")
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
        head.stop()
