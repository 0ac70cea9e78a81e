"""The outbox keeps what a broken session may have lost and replays it in order."""

from __future__ import annotations

from minga.agent.outbox import Outbox
from minga.common.clock import FakeClock
from minga.common.domain import RunState
from minga.common.site_messages import RunReport
from minga.common.wire.stream import hello_to_pb, inventory_update_to_pb, run_update_to_pb
from minga.v1 import common_pb2, site_pb2


def report(run_id: str, state: RunState = RunState.RUNNING) -> site_pb2.AgentMessage:
    return run_update_to_pb(RunReport(run_id, state), "j", 1)


def hello() -> site_pb2.AgentMessage:
    return hello_to_pb("test", common_pb2.Inventory(), [])


def run_ids(messages: list[site_pb2.AgentMessage]) -> list[str]:
    return [m.run.run_id for m in messages]


def test_hello_first_then_queue_in_order() -> None:
    box = Outbox(FakeClock(), replay_seconds=2.0)
    for i in range(3):
        box.put(report(f"r{i}"))
    stream = box.stream(hello(), heartbeat_seconds=1e9)
    assert next(stream).WhichOneof("body") == "hello"
    assert run_ids([next(stream) for _ in range(3)]) == ["r0", "r1", "r2"]
    assert box.pending() == 0


def test_recent_messages_are_replayed_in_order_after_a_break() -> None:
    clock = FakeClock()
    delivered: list[str] = []
    box = Outbox(clock, replay_seconds=2.0, on_delivered=lambda m: delivered.append(m.run.run_id))
    box.put(report("old"))
    first = box.stream(hello(), heartbeat_seconds=1e9)
    next(first), next(first)  # hello, "old"
    clock.advance(5)  # "old" is now past the replay window
    box.put(report("a"))
    box.put(report("b"))
    box.put(report("c"))
    next(first), next(first)  # "a" and "b" sent just before the break
    first.close()
    assert delivered == ["old"]
    second = box.stream(hello(), heartbeat_seconds=1e9)
    assert next(second).WhichOneof("body") == "hello"
    assert run_ids([next(second) for _ in range(3)]) == ["a", "b", "c"]


def test_closed_stream_stops_iterating() -> None:
    box = Outbox(FakeClock())
    stream = box.stream(hello(), heartbeat_seconds=1e9)
    next(stream)
    stream.close()
    assert list(stream) == []


def test_only_the_latest_inventory_is_kept_and_a_new_session_drops_it() -> None:
    box = Outbox(FakeClock())
    box.put(inventory_update_to_pb(common_pb2.Inventory(nodes=1)))
    box.put(inventory_update_to_pb(common_pb2.Inventory(nodes=2)))
    assert box.pending() == 1
    stream = box.stream(hello(), heartbeat_seconds=1e9)
    assert box.pending() == 0  # Hello carries a fresh inventory
    next(stream)
    box.put(inventory_update_to_pb(common_pb2.Inventory(nodes=3)))
    assert next(stream).inventory.inventory.nodes == 3


def test_heartbeats_are_sent_on_schedule() -> None:
    clock = FakeClock()
    box = Outbox(clock)
    stream = box.stream(hello(), heartbeat_seconds=5)
    next(stream)
    clock.advance(5)
    assert next(stream).WhichOneof("body") == "heartbeat"
