"""Standby brokers: of the brokers on one store exactly one leads, the others refuse
calls naming the leader, and a standby takes over within seconds when the leader
goes away. In-process brokers on port 0 over one SQLite file or one PostgreSQL
schema; then the fault test on real processes (`minga broker serve`, kill -9)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psycopg
import pytest
from typer.testing import CliRunner

from minga.common.clock import FakeClock
from minga.common.domain import JobState, SiteState
from minga.scheduler.leader import (
    QUERY_TIMEOUT_SECONDS,
    Attempt,
    FileLock,
    LeaderRecord,
    NotLeadingError,
    PostgresLock,
    leader_fence,
    lock_for,
    record_leader,
)
from minga.scheduler.policy import schedule
from minga.scheduler.server import Broker, BrokerConfig
from minga.scheduler.store import Store
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.environment import environment_without
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory
from tests.pg import PG_URL, pg_schema, url_in_schema
from tests.test_store import NOW, add_institution, join_site, new_job, store_url  # noqa: F401  (fixture)

POLL = 0.2  # the in-process brokers' leader poll
MINGA = str(Path(sys.executable).parent / "minga")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    with pg_url() as url:
        yield url


@contextmanager
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema (tests.pg), dropped afterwards."""
    with pg_schema() as schema:
        yield url_in_schema(schema)


def start(tmp_path: Path, db_url: str, name: str) -> RunningBroker:
    token_file = tmp_path / "admin-token"  # shared: only the first leader writes it
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0", db_url=db_url, admin_token_file=token_file, tick_seconds=0.5, leader_poll_seconds=POLL
        )
    )
    broker.start()
    return RunningBroker(broker, db_url, token_file)


def status(b: RunningBroker) -> admin_pb2.BrokerStatusResponse:
    a = b.admin
    return a.admin.BrokerStatus(admin_pb2.BrokerStatusRequest(), metadata=a.md, timeout=5)


def submit(caller: Caller, name: str = "j") -> str:
    spec = common_pb2.JobSpec(name=name, entrypoint="python train.py", resources=common_pb2.Resources(gpus=1))
    return caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=caller.md, timeout=5).job.id


def test_one_broker_leads_the_standby_refuses_and_takes_over(tmp_path, db_url):
    first = start(tmp_path, db_url, "first")
    second = start(tmp_path, db_url, "second")
    try:
        assert first.broker.leading and not second.broker.leading
        lead, stand = status(first), status(second)
        assert (lead.leading, lead.role, lead.address) == (True, "leader", first.broker.advertised)
        assert lead.leader_address == first.broker.advertised and lead.leading_since > 0
        assert (stand.leading, stand.role) == (False, "standby")
        assert (stand.leader_address, stand.leading_since) == (lead.leader_address, lead.leading_since)

        first.institution("uchile", "CL")
        site = ScriptedSite(first.address, first.join("uchile", "dcc"), gpu_inventory(gpus=2))
        site.next("welcome")
        site.close()
        ana_first = first.researcher("ana", "uchile")
        before = submit(ana_first, "before")
        ana_second = second.caller(ana_first.token)
        with pytest.raises(grpc.RpcError) as refused:
            submit(ana_second)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert refused.value.details() == f"standby broker; the leader is at {first.broker.advertised}"

        first.close()
        eventually(lambda: second.broker.leading)
        now = status(second)
        assert (now.leading, now.leader_address) == (True, second.broker.advertised)
        after = submit(ana_second, "after")
        jobs = ana_second.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana_second.md).jobs
        assert {j.id for j in jobs} == {before, after}
    finally:
        first.close()
        second.close()


def test_a_site_moves_to_the_new_leader(tmp_path, db_url):
    first = start(tmp_path, db_url, "first")
    second = start(tmp_path, db_url, "second")
    try:
        first.institution("uchile", "CL")
        token = first.join("uchile", "dcc")
        refused = ScriptedSite(second.address, token, gpu_inventory(gpus=2))
        assert refused.ended.wait(5) and refused.inbox.empty()  # a standby takes no site session
        assert refused.error is not None and refused.error.code() == grpc.StatusCode.UNAVAILABLE
        site = ScriptedSite(first.address, token, gpu_inventory(gpus=2), heartbeat_seconds=0.3)
        site.next("welcome")
        first.close()
        assert site.ended.wait(5)  # the old leader closed the session
        eventually(lambda: second.broker.leading, timeout=5)
        back = ScriptedSite(second.address, token, gpu_inventory(gpus=2), heartbeat_seconds=0.3)
        back.next("welcome")
        ana = second.researcher("ana", "uchile")
        job_id = submit(ana)
        assert back.next("start").start.job_id == job_id  # the new leader schedules
        back.close()
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_a_leader_whose_lock_connection_dies_yields_to_exactly_one(tmp_path, monkeypatch):
    with pg_url() as url:
        first = start(tmp_path, url, "first")
        second = start(tmp_path, url, "second")
        try:
            lock = first.broker.election.lock  # type: ignore[union-attr]
            assert isinstance(lock, PostgresLock) and lock._backend is not None
            hooks = hook_calls(first, monkeypatch)
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (lock._backend[0],))
            # The first broker notices (it pauses), then takes its lock again or yields it.
            eventually(lambda: {"resume", "step_down"} & set(hooks), what=lambda: f"a retake or a step-down: {hooks}")
            assert hooks[0] == "pause"
            eventually(lambda: first.broker.leading != second.broker.leading, timeout=5)
            leader, standby = (first, second) if first.broker.leading else (second, first)
            assert status(standby).leader_address == leader.broker.advertised
        finally:
            first.close()
            second.close()


def hook_calls(broker: RunningBroker, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The election hooks (pause, resume, step_down) that run on `broker` from now on, in order."""
    calls: list[str] = []

    def recording(name: str) -> Callable[[], None]:
        hook = getattr(broker.broker, name)

        def recorded() -> None:
            hook()
            calls.append(name)

        return recorded

    for name in ("pause", "resume", "step_down"):
        monkeypatch.setattr(broker.broker, name, recording(name))
    return calls


def test_locks_are_per_store(tmp_path):
    a, b = FileLock(tmp_path / "a.db.lock"), FileLock(tmp_path / "a.db.lock")
    other = FileLock(tmp_path / "b.db.lock")
    try:
        assert a.try_acquire() is Attempt.ACQUIRED
        assert b.try_acquire() is Attempt.HELD
        assert other.try_acquire() is Attempt.ACQUIRED
        a.release()
        assert b.try_acquire() is Attempt.ACQUIRED
    finally:
        for lock in (a, b, other):
            lock.release()
    assert isinstance(lock_for("sqlite:///x/broker.db"), FileLock)
    assert lock_for("sqlite:///x/broker.db").path == Path("x/broker.db.lock")  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_postgres_locks_are_per_schema():
    with pg_url() as one, pg_url() as two:
        a, b, c = PostgresLock(one), PostgresLock(one), PostgresLock(two)
        try:
            assert a.try_acquire() is Attempt.ACQUIRED
            assert b.try_acquire() is Attempt.HELD
            assert c.try_acquire() is Attempt.ACQUIRED
            assert a.check()
            a.release()
            eventually(lambda: b.try_acquire() is Attempt.ACQUIRED, timeout=5)
        finally:
            for lock in (a, b, c):
                lock.release()


# -- the fault test: kill -9 the leading broker of two real processes on PostgreSQL ----


def _serve(db_url: str, tmp_path: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict]:
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            MINGA,
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db_url,
            "--admin-token-file",
            str(tmp_path / f"{name}-admin-token"),
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, f"broker {name} printed nothing: {(tmp_path / f'{name}.log').read_text()[-2000:]}"
    return proc, json.loads(proc.stdout.readline())


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_kill_9_of_the_leader_the_standby_leads_and_agents_and_cli_follow(tmp_path):
    from minga.agent.credentials import join_site
    from minga.agent.session import Agent, AgentConfig
    from minga.cli.main import app
    from minga.common.domain import RunState
    from tests.fakes.fake_backend import FakeBackend

    env = environment_without("MINGA_", "RAY_ADDRESS")
    env.update(MINGA_CONFIG_DIR=str(tmp_path / "config"), MINGA_DATA_DIR=str(tmp_path / "data"))
    runner = CliRunner()
    procs: list[subprocess.Popen[bytes]] = []
    agent = None
    with pg_url() as db_url:
        try:
            first, announced = _serve(db_url, tmp_path, "first", env)
            procs.append(first)
            assert announced["leading"] and announced["bootstrapped"]
            second, standby = _serve(db_url, tmp_path, "second", env)
            procs.append(second)
            assert not standby["leading"] and not standby["bootstrapped"]
            brokers = f"{announced['address']},{standby['address']}"
            admin = (tmp_path / "first-admin-token").read_text().strip()

            def minga(*args: str, token: str = admin) -> dict | list:
                result = runner.invoke(app, [*args], env={**env, "MINGA_BROKER": brokers, "MINGA_TOKEN": token})
                assert result.exit_code == 0, result.output
                return json.loads(result.stdout)

            minga("admin", "institution", "add", "uchile", "--name", "U. de Chile", "--country", "CL", "-o", "json")
            ana = minga("admin", "user", "add", "ana", "--institution", "uchile", "-o", "json")["token"]
            join = minga("admin", "site-token", "create", "--institution", "uchile", "--site", "dcc", "-o", "json")
            credential = join_site(brokers, join["token"])  # the site credential keeps the list
            assert credential.broker == brokers
            backend = FakeBackend()
            inventory = common_pb2.Inventory(
                gpus=[common_pb2.GpuPool(model="A100", memory_mb=40960, total=2, free=2, largest_node=2)],
                cpus=8,
                nodes=1,
            )
            agent = Agent(
                AgentConfig(
                    broker=credential.broker,
                    token=credential.token,
                    ray_dashboard_url="http://unused",
                    poll_seconds=0.05,
                    cache_dir=tmp_path / "cache",
                ),
                backend=backend,
                inventory_source=lambda: inventory,
            ).start()
            assert agent.connected.wait(15) and agent.broker == announced["address"]

            before = minga("job", "submit", "--gpus", "1", "-o", "json", "--", "python", "train.py", token=ana)["id"]
            run_id = eventually(lambda: next((r.run_id for r in backend.submissions if r.job_id == before), None))
            backend.set_state(run_id, RunState.RUNNING)
            eventually(lambda: minga("job", "status", before, "-o", "json", token=ana)["state"] == "RUNNING")

            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            eventually(lambda: _leads(runner, app, env, standby["address"], admin), timeout=30)
            eventually(lambda: agent.sessions >= 2 and agent.connected.is_set(), timeout=30)
            assert agent.broker == standby["address"]

            rows = {b["address"]: b for b in minga("broker", "status", "-o", "json")}
            assert rows[announced["address"]]["role"] == "unreachable"
            assert rows[standby["address"]]["role"] == "leader"
            assert rows[standby["address"]]["leader_address"] == standby["address"]

            after = minga("job", "submit", "--gpus", "1", "-o", "json", "--", "python", "eval.py", token=ana)["id"]
            jobs = {j["id"]: j for j in minga("job", "list", "--all", "-o", "json", token=ana)}
            assert set(jobs) == {before, after}
            assert (jobs[before]["state"], jobs[before]["attempts"]) == ("RUNNING", 1)  # kept, not requeued
            eventually(lambda: any(r.job_id == after for r in backend.submissions))  # the new leader schedules
        finally:
            if agent is not None:
                agent.stop()
            for proc in procs:  # exactly the processes started here
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _leads(runner: CliRunner, app, env: dict[str, str], address: str, token: str) -> bool:  # type: ignore[no-untyped-def]
    result = runner.invoke(
        app, ["broker", "status", "--broker", address, "-o", "json"], env={**env, "MINGA_TOKEN": token}
    )
    return result.exit_code == 0 and json.loads(result.stdout)[0]["leading"]


def test_the_client_passes_a_standby_and_a_dead_address_and_remembers_the_leader(tmp_path):
    from minga.cli.client import BrokerClient

    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    first = start(tmp_path, db_url, "first")
    second = start(tmp_path, db_url, "second")
    try:
        token = first.admin_token_file.read_text().strip()
        with BrokerClient(f"127.0.0.1:1,{second.address},{first.address}", token) as client:
            assert client.list_institutions() == []
            assert client.address == first.address
            rows = dict(client.broker_statuses())
            assert isinstance(rows["127.0.0.1:1"], grpc.RpcError)
            assert rows[second.address].role == "standby" and rows[first.address].role == "leader"
            first.close()
            eventually(lambda: second.broker.leading, timeout=5)
            assert client.list_institutions() == []
            assert client.address == second.address
    finally:
        first.close()
        second.close()


class ScriptedLock:
    """A lock whose answers the test sets."""

    def __init__(self) -> None:
        self.attempt = Attempt.ACQUIRED
        self.alive = True
        self.released = 0

    def try_acquire(self) -> Attempt:
        return self.attempt

    def check(self) -> bool:
        return self.alive

    def release(self) -> None:
        self.released += 1


class Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    def take_over(self) -> None:
        self.calls.append("take_over")
        if self.fail:
            raise RuntimeError("database went away")

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def step_down(self) -> None:
        self.calls.append("step_down")


def election(  # type: ignore[no-untyped-def]
    lock: ScriptedLock, hooks: Hooks, step_down_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
):
    from minga.scheduler.leader import Election

    return Election(lock, hooks, poll_seconds=0.01, step_down_seconds=step_down_seconds, clock=clock)


def test_a_leader_that_loses_its_lock_pauses_then_resumes_or_steps_down():
    from minga.scheduler.leader import Role

    lock, hooks = ScriptedLock(), Hooks()
    e = election(lock, hooks)
    e.start()
    e.stop()  # no thread: the test polls by hand
    assert e.role is Role.LEADER and hooks.calls == ["take_over"]
    lock.alive, lock.attempt = False, Attempt.UNREACHABLE
    e.poll()
    assert e.role is Role.UNSURE and e.leading and hooks.calls[-1] == "pause"
    lock.alive, lock.attempt = True, Attempt.ACQUIRED
    e.poll()
    assert e.role is Role.LEADER and hooks.calls[-1] == "resume"
    lock.alive, lock.attempt = False, Attempt.HELD  # another broker got it meanwhile
    e.poll()
    assert e.role is Role.STANDBY and not e.leading and hooks.calls[-2:] == ["pause", "step_down"]


def test_an_unreachable_database_makes_the_leader_step_down_after_a_while():
    from minga.scheduler.leader import Role

    lock, hooks, clock = ScriptedLock(), Hooks(), FakeClock()
    e = election(lock, hooks, step_down_seconds=15.0, clock=clock.now)
    e.start()
    e.stop()
    lock.alive, lock.attempt = False, Attempt.UNREACHABLE
    e.poll()
    assert e.role is Role.UNSURE
    clock.advance(14.0)
    e.poll()
    assert e.role is Role.UNSURE and hooks.calls[-1] == "pause"  # not yet
    clock.advance(1.0)
    e.poll()
    assert e.role is Role.STANDBY and hooks.calls[-1] == "step_down"


def test_a_standby_takes_over_and_a_failed_takeover_lets_go_of_the_lock():
    from minga.scheduler.leader import Role

    lock, hooks = ScriptedLock(), Hooks()
    lock.attempt = Attempt.HELD
    e = election(lock, hooks)  # not started: the test polls by hand
    e.poll()
    assert e.role is Role.STANDBY and hooks.calls == []
    lock.attempt, hooks.fail = Attempt.ACQUIRED, True
    e.poll()
    assert e.role is Role.STANDBY and lock.released == 1
    hooks.fail = False
    e.poll()
    assert e.role is Role.LEADER and hooks.calls == ["take_over", "take_over"]


def test_a_first_takeover_that_fails_fails_the_start():
    lock, hooks = ScriptedLock(), Hooks()
    hooks.fail = True
    with pytest.raises(RuntimeError):
        election(lock, hooks).start()
    assert lock.released == 1


def test_an_agent_given_the_standby_first_finds_the_leader(tmp_path):
    from minga.agent.session import Agent, AgentConfig
    from tests.fakes.fake_backend import FakeBackend

    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    first = start(tmp_path, db_url, "first")
    second = start(tmp_path, db_url, "second")
    agent = None
    try:
        first.institution("uchile", "CL")
        token = first.join("uchile", "dcc")
        agent = Agent(
            AgentConfig(
                broker=f"{second.address},{first.address}",
                token=token,
                ray_dashboard_url="http://unused",
                cache_dir=tmp_path / "cache",
            ),
            backend=FakeBackend(),
            inventory_source=lambda: gpu_inventory(gpus=2),
        ).start()
        assert agent.connected.wait(10) and agent.broker == first.address
    finally:
        if agent is not None:
            agent.stop()
        first.close()
        second.close()


@pytest.mark.postgres
@pytest.mark.timeout(10 * QUERY_TIMEOUT_SECONDS)  # a check that hangs fails here
def test_a_lock_connection_that_stops_answering_counts_as_lost_within_seconds():
    """The link to PostgreSQL swallows every byte: the check gives up after its timeout."""
    from tests.netproxy import TcpProxy

    with pg_url() as url:
        host = PG_URL.split("@", 1)[1].split("/", 1)[0]
        proxy = TcpProxy(host)
        lock = PostgresLock(url.replace(host, proxy.address))
        try:
            assert lock.try_acquire() is Attempt.ACQUIRED
            proxy.cut()
            assert not lock.check()  # an answer, not a hang (the test's timeout catches one)
        finally:
            lock.release()
            proxy.close()


@pytest.mark.postgres
def test_a_broker_ends_its_own_lingering_lock_session():
    """A cut link leaves the server holding the lock for the broker's lost session; when
    the broker reaches the server again it ends that session itself and leads on."""
    with pg_url() as url:
        lock, other = PostgresLock(url), PostgresLock(url)
        lingering = None
        try:
            assert lock.try_acquire() is Attempt.ACQUIRED
            lingering, lock._conn = lock._conn, None  # lost to the broker, alive on the server
            assert other.try_acquire() is Attempt.HELD
            assert lock.try_acquire() is Attempt.ACQUIRED
            assert other.try_acquire() is Attempt.HELD
        finally:
            for held in (lock, other):
                held.release()
            if lingering is not None:
                lingering.close()


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_deposed_leaders_scheduling_pass_writes_nothing(store_url):
    """Fencing: every write of the cycle first checks, under a lock on the leader record,
    that the store still names this broker; a leader that lost its lock but has not yet
    noticed cannot lease, requeue or charge."""
    store = Store(store_url)
    try:
        add_institution(store)
        join_site(store, "dcc")
        store.jobs.submit(new_job("j-1"), None)
        record_leader(store.db, LeaderRecord(address="b:1", since=NOW, broker_id="broker-b"))
        decisions = schedule(store.runs.load_snapshot(NOW), NOW)
        assert decisions.placements
        with pytest.raises(NotLeadingError, match="broker-b"):
            store.runs.apply_decisions(decisions, NOW, fence=leader_fence("broker-a"))
        with pytest.raises(NotLeadingError):
            store.runs.site_lost("dcc", "no report", NOW, fence=leader_fence("broker-a"))
        assert store.jobs.get("j-1").state is JobState.PENDING  # nothing was written
        assert store.sites.get("dcc").state is SiteState.READY
        assert store.runs.apply_decisions(decisions, NOW, fence=leader_fence("broker-b"))  # the leader may
    finally:
        store.close()
