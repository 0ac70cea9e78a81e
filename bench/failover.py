"""Leader failover on PostgreSQL: kill -9 of the leading `minga broker serve` of two.

Each round starts two brokers on a fresh database and a real agent session (over the fake
Ray backend) given both addresses, kills the leader, and prints how long after the kill
the standby led (polled through BrokerStatus) and how long after that the agent was back.
docs/production.md states the bounds checked here; tests/test_leader.py checks that
failover works, without timing it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import harness

from minga.agent.session import Agent, AgentConfig
from minga.v1 import admin_pb2, common_pb2
from tests.fakes.fake_backend import FakeBackend

TAKEOVER_BOUND_SECONDS = 5.0  # docs/production.md: lock poll 1 s + takeover wait 1 s, plus margin
RECONNECT_BOUND_SECONDS = 5.0  # after the takeover: the agent's next round (at most 1 s apart) + Hello
POLL = 0.02
INVENTORY = common_pb2.Inventory(
    gpus=[common_pb2.GpuPool(model="A100", memory_mb=40960, total=2, free=2, largest_node=2)], cpus=8, nodes=1
)


def seconds_until(condition: Callable[[], bool], since: float, timeout: float = 60.0) -> float:
    """Seconds from `since` (monotonic) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout:.0f} s: {condition}")
        time.sleep(POLL)
    return time.monotonic() - since


def leads(broker: harness.BrokerProcess) -> bool:
    try:
        return broker.admin.BrokerStatus(admin_pb2.BrokerStatusRequest(), metadata=broker.admin_md, timeout=1).leading
    except Exception:  # noqa: BLE001 - not answering yet counts as not leading
        return False


def one_round(workdir: Path) -> tuple[float, float]:
    """(seconds from the kill until the standby led, seconds from then until the agent was back)."""
    with harness.store_url("postgres", workdir) as url:
        (workdir / "first").mkdir()
        (workdir / "second").mkdir()
        first = harness.BrokerProcess(url, workdir / "first")
        for shared in ("token-key", "admin-token"):  # one key per store; the standby writes no admin token
            shutil.copy(workdir / "first" / shared, workdir / "second" / shared)
        second = harness.BrokerProcess(url, workdir / "second")
        agent = None
        try:
            first.institution("uchile")
            agent = Agent(
                AgentConfig(
                    broker=f"{first.address},{second.address}",
                    token=first.join_site("uchile", "dcc"),
                    ray_dashboard_url="http://unused",
                    poll_seconds=0.05,
                    cache_dir=workdir / "cache",
                ),
                backend=FakeBackend(),
                inventory_source=lambda: INVENTORY,
            ).start()
            if not agent.connected.wait(30):
                raise SystemExit("the agent did not connect")
            killed = time.monotonic()
            os.kill(first.pid, signal.SIGKILL)
            first.proc.wait()
            led = seconds_until(lambda: leads(second), killed)
            back = seconds_until(lambda: agent.sessions >= 2 and agent.connected.is_set(), killed) - led
            return led, back
        finally:
            if agent is not None:
                agent.stop()
            first.stop()
            second.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not harness.pg_available():
        print(f"PostgreSQL at {harness.PG_ADMIN_URL} unreachable: skipped")
        return 0
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="minga-bench-failover-") as tmp:
            led, back = one_round(Path(tmp))
        rounds.append((led, back))
        print(f"round {i + 1}: the standby led {led:.2f} s after the kill; the agent was back {back:.2f} s later")
    worst_led, worst_back = max(r[0] for r in rounds), max(r[1] for r in rounds)
    print(
        f"median {statistics.median(r[0] for r in rounds):.2f} s to lead, "
        f"{statistics.median(r[1] for r in rounds):.2f} s to reconnect; worst {worst_led:.2f} s "
        f"(bound {TAKEOVER_BOUND_SECONDS:g} s) and {worst_back:.2f} s (bound {RECONNECT_BOUND_SECONDS:g} s)"
    )
    return 0 if worst_led < TAKEOVER_BOUND_SECONDS and worst_back < RECONNECT_BOUND_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
