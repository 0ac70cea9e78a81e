"""kill -9 of the broker, a real `minga broker serve` child process, restarted on
the same store and port:

- mid-burst of 1,000 submits from clients that retry under their idempotency
  keys: exactly 1,000 jobs exist afterwards, and every acknowledged one is there
  with the id it was acknowledged with (SQLite and PostgreSQL);
- while jobs run on two real Ray sites: they complete, each with one run, and
  their usage is charged once.
"""

from __future__ import annotations

import json
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from minga.agent.session import Agent, AgentConfig
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.environment import environment_without
from tests.eventually import eventually
from tests.fixtures_broker import Caller
from tests.test_integration_ray import TERMINAL, wait_state
from tests.test_store import store_url  # noqa: F401  (fixture: SQLite, and PostgreSQL in its own schema)

MINGA = str(Path(sys.executable).parent / "minga")
BURST = 1000
CLIENTS = 8
UNSEEN = "waiting for the next scheduling cycle"  # a pending job's reason until a pass sees it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """`minga broker serve` on a fixed port and store, that can be killed and restarted."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        self.tmp, self.db_url = tmp, db_url
        self.address = f"127.0.0.1:{free_port()}"
        self.env = environment_without("MINGA_", "RAY_ADDRESS")
        self.env.update(MINGA_CONFIG_DIR=str(tmp / "config"), MINGA_DATA_DIR=str(tmp / "data"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> BrokerProcess:
        self.starts += 1
        log = open(self.tmp / f"broker-{self.starts}.log", "wb")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [
                MINGA,
                "broker",
                "serve",
                "--listen",
                self.address,
                "--db",
                self.db_url,
                "--admin-token-file",
                str(self.tmp / "admin-token"),
                "--output",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        assert ready, f"broker did not start: {(self.tmp / f'broker-{self.starts}.log').read_text()[-2000:]}"
        assert json.loads(self.proc.stdout.readline())["address"] == self.address  # type: ignore[union-attr]
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def caller(self, token: str) -> Caller:
        return Caller(grpc.insecure_channel(self.address), token)

    def admin(self) -> Caller:
        return self.caller((self.tmp / "admin-token").read_text().strip())


def researcher(broker: BrokerProcess, country: str = "CL") -> Caller:
    admin = broker.admin()
    admin.admin.AddInstitution(
        admin_pb2.AddInstitutionRequest(
            institution=admin_pb2.Institution(slug="uchile", name="U. de Chile", country=country)
        ),
        metadata=admin.md,
    )
    token = admin.admin.AddUser(
        admin_pb2.AddUserRequest(name="ana", institution="uchile", role=common_pb2.ROLE_RESEARCHER), metadata=admin.md
    ).token
    return broker.caller(token)


def await_a_pass(ana: Caller) -> None:
    """Wait for a scheduling pass begun after this call, in a broker whose pass counter is
    out of reach (a child process): a probe job that no site can run gets its waiting
    reason from the first pass that sees it."""
    spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=1), countries=["AQ"])
    probe = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec, allow_unknown=True), metadata=ana.md).job
    eventually(
        lambda: ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=probe.id), metadata=ana.md).reason != UNSEEN,
        what="a scheduling pass",
    )


def test_broker_killed_mid_burst_loses_no_acknowledged_submit(tmp_path, store_url):
    broker = BrokerProcess(tmp_path, store_url).start()
    try:
        ana = researcher(broker)
        acknowledged: dict[str, str] = {}  # idempotency key -> job id, as the client was told
        lock = threading.Lock()
        retries = [0]

        def client(first: int) -> None:
            me = broker.caller(ana.token)
            for i in range(first, BURST, CLIENTS):
                key = f"burst-{i:04d}"
                spec = common_pb2.JobSpec(entrypoint=f"echo {i}", resources=common_pb2.Resources(gpus=0))
                while True:  # what the CLI does: the same key until an answer comes
                    try:
                        job = me.jobs.SubmitJob(
                            job_pb2.SubmitJobRequest(spec=spec, idempotency_key=key), metadata=me.md, timeout=10
                        ).job
                        break
                    except grpc.RpcError as err:
                        assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), (
                            err.details()
                        )
                        with lock:
                            retries[0] += 1
                        time.sleep(0.1)
                with lock:
                    assert acknowledged.setdefault(key, job.id) == job.id

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        eventually(lambda: len(acknowledged) >= BURST // 4, timeout=120)
        broker.kill9()  # mid-burst
        killed_at, refused = len(acknowledged), retries[0]
        eventually(lambda: retries[0] > refused, what="a client to find the broker gone")
        broker.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        assert killed_at < BURST and retries[0] > 0  # the kill really fell inside the burst
        jobs = ana.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana.md).jobs
        assert len(jobs) == BURST
        assert {j.id for j in jobs} == set(acknowledged.values())
        assert len(set(acknowledged.values())) == BURST
    finally:
        broker.stop()


@pytest.mark.ray
def test_broker_killed_while_jobs_run_on_two_sites(tmp_path, ray_head, ray_head_b):
    db_path = tmp_path / "broker.db"
    broker = BrokerProcess(tmp_path, f"sqlite:///{db_path}").start()
    agents: list[Agent] = []
    try:
        ana = researcher(broker)
        admin = broker.admin()
        for site, head, model, country in (("cl", ray_head, "A100", "CL"), ("br", ray_head_b, "T4", "BR")):
            join = admin.admin.CreateSiteToken(
                admin_pb2.CreateSiteTokenRequest(institution="uchile", site=site, country=country), metadata=admin.md
            ).token
            token = broker.caller("").sites.Join(site_pb2.JoinRequest(join_token=join)).site_token
            agents.append(
                Agent(
                    AgentConfig(
                        broker=broker.address,
                        token=token,
                        ray_dashboard_url=head.dashboard_url,
                        gpu_model=model,
                        backoff_max=1.0,
                    )
                ).start()
            )
        eventually(
            lambda: (
                sum(s.connected for s in admin.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=admin.md).sites)
                == 2
            ),
            timeout=60,
        )
        slow = 'python -c "import time; [print(i, flush=True) or time.sleep(1) for i in range(10)]"'
        ids = {}
        for country, gpus in (("CL", 2), ("BR", 1)):
            spec = common_pb2.JobSpec(entrypoint=slow, resources=common_pb2.Resources(gpus=gpus), countries=[country])
            ids[country] = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job.id
        for job_id in ids.values():
            wait_state(ana, job_id, {common_pb2.JOB_STATE_RUNNING}, timeout=60)
        broker.kill9()
        eventually(lambda: not any(a.connected.is_set() for a in agents), what="both agents to lose their session")
        broker.start()
        done = {c: wait_state(ana, j, TERMINAL, timeout=120) for c, j in ids.items()}
        for country, job in done.items():
            assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.reason
            assert job.attempts == 1 and job.country == country
        await_a_pass(ana)  # a pass after the end, which must charge nothing more
        with sqlite3.connect(db_path) as db:
            runs = dict(db.execute("SELECT job_id, COUNT(*) FROM runs GROUP BY job_id").fetchall())
            [(usage,)] = db.execute("SELECT value FROM usage WHERE project = 'uchile/default'").fetchall()
        assert runs == {ids["CL"]: 1, ids["BR"]: 1}  # recorded once
        weights = {"CL": 2 * 0.6, "BR": 1 * 0.1}  # GPUs × the default model weights (A100, T4)
        expected = sum(weights[c] * (j.finished_at - j.started_at) for c, j in done.items())
        assert usage == pytest.approx(expected, rel=0.15)  # charged once, not twice
    finally:
        for agent in agents:
            agent.stop()
        broker.stop()
