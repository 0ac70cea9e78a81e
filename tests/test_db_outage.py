"""The broker's database goes away for a while: calls answer UNAVAILABLE and
write nothing, sites stay connected and keep their leases, and the broker
recovers by itself when the database is back.

- PostgreSQL: the broker reaches the server through an in-test TCP proxy that
  resets every connection while the outage lasts (a server that is down).
- SQLite: another process holds the write lock past the busy timeout (a disk or
  a stuck writer), so every writing transaction fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest

from minga.common.clock import FakeClock
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, Renewals, ScriptedSite, gpu_inventory, start_broker
from tests.netproxy import TcpProxy
from tests.pg import pg_schema, url_in_schema
from tests.test_leases import site_info, submit

TTL = 30.0  # seconds of the injected clock: the test moves it, nothing waits for it


@contextmanager
def postgres_behind_proxy() -> Iterator[tuple[str, Callable[[], object], Callable[[], object]]]:
    with pg_schema() as schema:
        proxy = TcpProxy("127.0.0.1:5432")
        try:
            yield url_in_schema(schema, f"postgresql://postgres@{proxy.address}/test"), proxy.refuse, proxy.restore
        finally:
            proxy.close()


@contextmanager
def sqlite_with_a_stuck_writer(path: str) -> Iterator[tuple[str, Callable[[], object], Callable[[], object]]]:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def stall() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        holder.execute("ROLLBACK")

    try:
        yield f"sqlite:///{path}", stall, release
    finally:
        holder.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_database_outage_answers_unavailable_and_recovers(backend, tmp_path, monkeypatch):
    outage = (
        postgres_behind_proxy() if backend == "postgres" else sqlite_with_a_stuck_writer(str(tmp_path / "broker.db"))
    )
    with outage as (db_url, break_db, restore_db):
        clock = FakeClock()
        broker = start_broker(tmp_path, db_url=db_url, clock=clock, lease_ttl_seconds=TTL)
        try:
            broker.institution("uchile", "CL")
            ana = broker.researcher("ana", "uchile")
            renewals = Renewals(broker, monkeypatch)
            site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory(gpus=4))
            site.next("welcome")
            before = submit(ana, gpus=2)
            start = site.next("start").start
            site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
            eventually(
                lambda: (
                    ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=before), metadata=ana.md).state
                    == common_pb2.JOB_STATE_RUNNING
                )
            )

            break_db()
            with pytest.raises(grpc.RpcError) as refused:
                submit(ana, gpus=1, name="during-outage")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
            assert "database is unavailable" in refused.value.details()
            for _ in range(4):  # longer than a lease passes inside the outage; the site keeps talking
                clock.advance(TTL / 2)
                site.heartbeat()
                assert renewals.heard("dcc", since=clock.now())  # its lease was alive when it spoke
            assert not site.ended.is_set()  # the site kept its session
            restore_db()

            after = eventually(lambda: _try_submit(ana), timeout=30)  # recovers by itself
            broker.full_pass()  # a pass on the store that is back
            assert site_info(broker, "dcc").state == common_pb2.SITE_STATE_READY  # not declared lost
            jobs = ana.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana.md).jobs
            assert sorted(j.id for j in jobs) == sorted([before, after])  # the refused submit left nothing
            kept = next(j for j in jobs if j.id == before)
            assert kept.state == common_pb2.JOB_STATE_RUNNING and kept.attempts == 1
            assert site.next("start", timeout=15).start.job_id == after  # scheduling resumed
            site.close()
        finally:
            broker.close()


def _try_submit(ana: Caller) -> str | None:
    try:
        return submit(ana, gpus=1, name="after-outage")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
        return None


@pytest.mark.postgres
def test_a_pooled_connection_that_died_while_idle_is_replaced_not_used(monkeypatch):
    """A connection idle past PING_AFTER_IDLE_SECONDS is tested before use: one the server
    side dropped meanwhile is replaced, and the transaction succeeds. Without the test the
    same transaction fails."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from minga.scheduler.store import db

    with postgres_behind_proxy() as (url, _refuse, drop_connections):
        engine, _ = db.make_engines(url)
        try:

            def use_then_drop() -> None:
                with engine.connect() as conn:
                    assert conn.execute(text("SELECT 1")).scalar() == 1
                assert engine.pool.checkedin() == 1
                drop_connections()  # the pooled connection is dead now

            monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never tested first
            use_then_drop()
            with pytest.raises(OperationalError), engine.connect() as conn:
                conn.execute(text("SELECT 2"))
            monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # always tested first
            use_then_drop()
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 3")).scalar() == 3
        finally:
            engine.dispose()
