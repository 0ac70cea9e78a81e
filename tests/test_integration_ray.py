"""The federation end to end on real components: a broker on port 0 over a real
SQLite file, real agents, and real local Ray clusters with logical GPUs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from ray.job_submission import JobSubmissionClient

from minga.agent.local_ray import LocalRayHead
from minga.agent.session import Agent, AgentConfig
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, start_broker

pytestmark = pytest.mark.ray

TERMINAL = {common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}


@contextmanager
def running_agent(broker: RunningBroker, site_token: str, head: LocalRayHead, model: str | None) -> Iterator[Agent]:
    agent = Agent(
        AgentConfig(broker=broker.address, token=site_token, ray_dashboard_url=head.dashboard_url, gpu_model=model)
    )
    agent.start()
    try:
        wait_site_ready(broker, site_token)
        yield agent
    finally:
        agent.stop()


def wait_site_ready(broker: RunningBroker, site_token: str, timeout: float = 60.0) -> None:
    """Until the agent is connected and its inventory (GPUs) has reached the broker."""
    me = broker.caller(site_token)
    name = me.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=me.md).name
    admin = broker.admin
    eventually(
        lambda: any(
            s.name == name and s.connected and s.inventory.gpus
            for s in admin.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=admin.md).sites
        ),
        timeout=timeout,
        what=f"site {name} connected with its GPUs",
    )


def submit(who: Caller, entrypoint: str, gpus: int = 1, countries: list[str] | None = None) -> str:
    spec = common_pb2.JobSpec(
        entrypoint=entrypoint, resources=common_pb2.Resources(gpus=gpus), countries=countries or []
    )
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


def job(who: Caller, job_id: str) -> common_pb2.Job:
    return who.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=who.md)


def wait_state(who: Caller, job_id: str, states: set[int], timeout: float = 90.0) -> common_pb2.Job:
    def stuck() -> str:
        current = job(who, job_id)
        return f"{job_id} out of {common_pb2.JobState.Name(current.state)} ({current.reason})"

    return eventually(lambda: (current := job(who, job_id)).state in states and current, timeout=timeout, what=stuck)


def logs(who: Caller, job_id: str) -> str:
    chunks = who.jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=job_id), metadata=who.md)
    return b"".join(c.data for c in chunks).decode()


@pytest.fixture
def federation(tmp_path: Path, ray_head: LocalRayHead) -> Iterator[tuple[RunningBroker, Caller]]:
    broker = start_broker(tmp_path)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    token = broker.join("uchile", "dcc")
    with running_agent(broker, token, ray_head, "A100"):
        yield broker, ana
    broker.close()


def test_job_completes_with_its_gpus_and_logs(federation):
    broker, ana = federation
    job_id = submit(ana, "python -c \"import os; print('CVD=' + os.environ['CUDA_VISIBLE_DEVICES'])\"", gpus=2)
    done = wait_state(ana, job_id, TERMINAL)
    assert done.state == common_pb2.JOB_STATE_SUCCEEDED, done.reason
    assert done.site == "dcc" and done.gpu_model == "A100"
    line = next(text for text in logs(ana, job_id).splitlines() if text.startswith("CVD="))
    assert len(line.removeprefix("CVD=").split(",")) == 2


def test_failing_job_is_failed_with_a_reason(federation):
    broker, ana = federation
    job_id = submit(ana, "python -c 'import sys; print(\"boom\"); sys.exit(3)'")
    done = wait_state(ana, job_id, TERMINAL)
    assert done.state == common_pb2.JOB_STATE_FAILED and done.reason
    assert "boom" in logs(ana, job_id)


def test_cancel_while_running_stops_it_on_ray(federation, ray_head):
    broker, ana = federation
    job_id = submit(ana, "python -c 'import time; print(\"started\", flush=True); time.sleep(300)'")
    running = wait_state(ana, job_id, {common_pb2.JOB_STATE_RUNNING})
    ana.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job_id), metadata=ana.md)
    done = wait_state(ana, job_id, TERMINAL, timeout=60)
    assert done.state == common_pb2.JOB_STATE_CANCELLED
    status = JobSubmissionClient(ray_head.dashboard_url).get_job_status(running.run_id)
    assert status.is_terminal() and status.name == "STOPPED"


def test_too_big_for_any_site_is_rejected(federation):
    broker, ana = federation
    with pytest.raises(grpc.RpcError) as err:
        submit(ana, "true", gpus=64)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "largest site has 4" in err.value.details()


def test_country_pin_picks_the_right_site(tmp_path, ray_head, ray_head_b):
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        broker.institution("usp", "BR")
        ana = broker.researcher("ana", "uchile")
        cl, br = broker.join("uchile", "dcc"), broker.join("usp", "ime")
        with running_agent(broker, cl, ray_head, "A100"), running_agent(broker, br, ray_head_b, "T4"):
            to_br = submit(ana, "python -c 'print(1)'", countries=["BR"])
            to_cl = submit(ana, "python -c 'print(2)'", countries=["CL"])
            br_job = wait_state(ana, to_br, TERMINAL)
            cl_job = wait_state(ana, to_cl, TERMINAL)
        assert (br_job.state, br_job.site, br_job.country) == (common_pb2.JOB_STATE_SUCCEEDED, "ime", "BR")
        assert (cl_job.state, cl_job.site, cl_job.country) == (common_pb2.JOB_STATE_SUCCEEDED, "dcc", "CL")
    finally:
        broker.close()


def test_agent_restart_does_not_duplicate_runs(tmp_path, ray_head):
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana = broker.researcher("ana", "uchile")
        token = broker.join("uchile", "dcc")
        with running_agent(broker, token, ray_head, "A100"):
            job_id = submit(ana, "python -c 'import time; time.sleep(6); print(\"once\")'")
            running = wait_state(ana, job_id, {common_pb2.JOB_STATE_RUNNING})
        with running_agent(broker, token, ray_head, "A100"):  # a fresh agent, same site
            done = wait_state(ana, job_id, TERMINAL)
        assert done.state == common_pb2.JOB_STATE_SUCCEEDED and done.attempts == 1
        ray_jobs = [
            j
            for j in JobSubmissionClient(ray_head.dashboard_url).list_jobs()
            if j.submission_id and j.submission_id.startswith(f"minga-{job_id}-")
        ]
        assert [j.submission_id for j in ray_jobs] == [running.run_id]
        assert logs(ana, job_id).splitlines().count("once") == 1  # ran exactly once
    finally:
        broker.close()


def test_broker_restart_while_a_job_runs(tmp_path, ray_head):
    first = start_broker(tmp_path)
    first.institution("uchile", "CL")
    ana_token = first.researcher("ana", "uchile").token
    token = first.join("uchile", "dcc")
    with running_agent(first, token, ray_head, "A100"):
        ana = first.caller(ana_token)
        job_id = submit(ana, "python -c 'import time; time.sleep(8); print(\"survived\")'")
        wait_state(ana, job_id, {common_pb2.JOB_STATE_RUNNING})
        port = first.address.rsplit(":", 1)[1]
        first.close()
        second = _restart_on(tmp_path, port)
        try:
            ana = second.caller(ana_token)
            done = wait_state(ana, job_id, TERMINAL)
            assert done.state == common_pb2.JOB_STATE_SUCCEEDED and done.attempts == 1
            assert "survived" in logs(ana, job_id)
        finally:
            second.close()


def _restart_on(tmp_path: Path, port: str) -> RunningBroker:
    """A broker on the same store and the same port, as after a restart."""
    from minga.scheduler.server import Broker, BrokerConfig

    broker = Broker(
        BrokerConfig(
            listen=f"127.0.0.1:{port}",
            db_url=f"sqlite:///{tmp_path / 'broker.db'}",
            admin_token_file=tmp_path / "admin-token",
            tick_seconds=0.5,
        )
    )
    refusals: list[Exception] = []

    def started() -> bool:
        try:
            broker.start()
        except Exception as exc:  # noqa: BLE001 - the old broker's port may not be free yet: retry
            refusals.append(exc)
            return False
        return True

    eventually(started, timeout=15, what=lambda: f"a broker on port {port} (last refusal: {refusals[-1]!r})")
    return RunningBroker(broker, broker.config.db_url, tmp_path / "admin-token")
