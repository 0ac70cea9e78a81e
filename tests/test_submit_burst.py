"""A burst of submits through the real gRPC API (broker on port 0, a SQLite file):
it costs a handful of scheduling cycles, not one each (scheduler.wakeups), no submit
waits for a cycle, and each submit leaves exactly one audit line."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minga.scheduler.cycle import CycleResult
from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import RunningBroker

BURST = 1000
CLIENTS = 16
WAITING = "waiting for the next scheduling cycle"


def start(tmp_path: Path) -> RunningBroker:
    token_file = tmp_path / "admin-token"
    # A long tick, so every cycle counted below was triggered by the burst; a 2 s minimum
    # interval, so a burst however slow on a busy machine fits in a few of them.
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path / 'broker.db'}",
            admin_token_file=token_file,
            tick_seconds=600,
            cycle_min_interval=2.0,
            rate_limit=0,
        )
    )
    broker.start()
    return RunningBroker(broker, broker.config.db_url, token_file)


def test_a_burst_of_submits_costs_a_handful_of_cycles_and_none_waits_for_one(tmp_path) -> None:
    running = start(tmp_path)
    try:
        running.institution("uchile", "CL")
        ana = running.researcher("ana", "uchile")
        cycle = running.broker.core.cycle
        run_once, entered, gate = cycle.run_once, threading.Event(), threading.Event()

        def first_one_blocked() -> CycleResult:
            if not gate.is_set():
                entered.set()
                assert gate.wait(120), "the test never let the cycle go"
            return run_once()

        cycle.run_once = first_one_blocked
        before = cycle.passes
        returned, lock = [0], threading.Lock()
        returned_while_blocked = [0]

        def submit(i: int) -> str:
            spec = common_pb2.JobSpec(entrypoint="true", name=f"sweep-{i}")
            job = ana.jobs.SubmitJob(
                job_pb2.SubmitJobRequest(spec=spec, idempotency_key=f"k-{i}"), metadata=ana.md, timeout=60
            ).job
            with lock:
                returned[0] += 1
            return job.id

        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(submit, i) for i in range(BURST)]
            assert entered.wait(60), "no cycle was triggered by the submits"
            eventually(
                lambda: returned[0] >= BURST // 2 or all(f.done() for f in futures),
                timeout=60,
                interval=0.01,
                what="half the submits to return",
            )
            returned_while_blocked[0] = returned[0]  # the first cycle is still held here
            gate.set()
            ids = [f.result(60) for f in futures]
        assert returned_while_blocked[0] >= BURST // 2, "submits waited for the blocked cycle"
        assert len(set(ids)) == BURST

        eventually(  # a positive signal: a cycle after the whole burst looked at its last job
            lambda: ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=ids[-1]), metadata=ana.md).reason != WAITING,
            timeout=30,
            what="a cycle to look at the burst's last job",
        )
        cycles = cycle.passes - before
        assert 1 <= cycles <= 5, f"{BURST} submits cost {cycles} cycles"

        lines = [
            e for e in running.broker.core.store.audit.list(limit=10 * BURST) if e.method == "JobService/SubmitJob"
        ]
        assert sorted(e.target for e in lines) == sorted(ids)  # one line per submit, none twice
    finally:
        running.close()
