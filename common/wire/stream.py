"""What an agent sends up its site stream (`site_pb2.AgentMessage`): hello, health,
inventory, run reports, logs and heartbeats, each wrapped as the stream carries it.

The agent reads its inventory from Ray straight into a `common_pb2.Inventory`
(agent/inventory.py), so it travels here as that message."""

from __future__ import annotations

from minga.common.site_messages import RunReport
from minga.common.wire.runs import message_text, run_report_to_pb
from minga.v1 import common_pb2, site_pb2

LOG_CHUNK_BYTES = 1024 * 1024  # well below gRPC's default 4 MiB message cap


def hello_to_pb(
    version: str, inventory: common_pb2.Inventory, runs: list[site_pb2.RunReport], ray_down: str | None = None
) -> site_pb2.AgentMessage:
    """`ray_down` (why) when the site's Ray cluster does not answer: then `runs` is empty."""
    health = site_pb2.Health(ray_down=ray_down is not None, message=message_text(ray_down or ""))
    hello = site_pb2.Hello(agent_version=version, inventory=inventory, runs=runs, health=health)
    return site_pb2.AgentMessage(hello=hello)


def health_to_pb(ray_down: str | None) -> site_pb2.AgentMessage:
    """Ray does not answer (`ray_down`, why), or answers again (None)."""
    health = site_pb2.Health(ray_down=ray_down is not None, message=message_text(ray_down or ""))
    return site_pb2.AgentMessage(health=health)


def refusing_to_pb(reason: str | None) -> site_pb2.AgentMessage:
    """Ray answers but keeps refusing new runs (`reason`), or no longer does (None)."""
    health = site_pb2.Health(refusing_starts=reason is not None, message=message_text(reason or ""))
    return site_pb2.AgentMessage(health=health)


def inventory_update_to_pb(inventory: common_pb2.Inventory) -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(inventory=site_pb2.InventoryUpdate(inventory=inventory))


def run_update_to_pb(report: RunReport, job_id: str, epoch: int) -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(run=run_report_to_pb(report, job_id, epoch))


def log_chunks_to_pb(run_id: str, offset: int, data: bytes) -> list[site_pb2.AgentMessage]:
    """`data` (the log from byte `offset` on) as LogChunk messages of bounded size."""
    return [
        site_pb2.AgentMessage(
            log=common_pb2.LogChunk(run_id=run_id, offset=offset + start, data=data[start : start + LOG_CHUNK_BYTES])
        )
        for start in range(0, len(data), LOG_CHUNK_BYTES)
    ]


def heartbeat_to_pb() -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(heartbeat=site_pb2.Heartbeat())
