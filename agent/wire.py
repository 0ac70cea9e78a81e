"""Conversions between the agent's plain objects and the minga.v1 messages it
exchanges with the broker. The only agent module besides inventory that builds
`_pb2` messages by hand."""

from __future__ import annotations

from minga.agent.backend import RunInfo, RunRequest
from minga.agent.states import run_state_to_proto
from minga.common.domain import RunState
from minga.v1 import common_pb2, site_pb2

LOG_CHUNK_BYTES = 1024 * 1024  # well below gRPC's default 4 MiB message cap
MAX_MESSAGE_CHARS = 16_000  # the broker refuses report texts over 16,384 characters


def run_request(start: site_pb2.StartRun, working_dir: str | None = None) -> RunRequest:
    """What to submit to Ray for a StartRun; `working_dir` is the unpacked package."""
    spec = start.spec
    res = spec.resources
    return RunRequest(
        run_id=start.run_id,
        job_id=start.job_id,
        epoch=start.epoch,
        entrypoint=spec.entrypoint,
        gpus=res.gpus,
        cpus=res.cpus if res.cpus > 0 else 1.0,
        memory_mb=res.memory_mb,
        gpu_model=start.gpu_model,
        working_dir=working_dir,
        pip=tuple(spec.runtime_env.pip),
        env=dict(spec.runtime_env.env),
        secret_env=dict(spec.secret_env),
        notice_seconds=start.notice_seconds,
        array_job_id=start.array_job_id,
        array_index=start.array_index,
    )


def run_report(
    run_id: str, job_id: str, epoch: int, state: RunState, message: str = "", infrastructure: bool = False
) -> site_pb2.RunReport:
    failure = site_pb2.FAILURE_KIND_UNSPECIFIED
    if state is RunState.FAILED:
        failure = site_pb2.FAILURE_KIND_INFRASTRUCTURE if infrastructure else site_pb2.FAILURE_KIND_USER
    return site_pb2.RunReport(
        run_id=run_id,
        job_id=job_id,
        epoch=epoch,
        state=run_state_to_proto(state),
        message=_cut(message),
        failure=failure,
    )


def _cut(text: str) -> str:
    """A report text within the broker's limit (Ray's tracebacks can be long): the end is kept."""
    return text if len(text) <= MAX_MESSAGE_CHARS else "..." + text[-(MAX_MESSAGE_CHARS - 3) :]


def report_of(info: RunInfo) -> site_pb2.RunReport:
    return run_report(info.run_id, info.job_id, info.epoch, info.state, info.message, info.infrastructure)


def run_message(report: site_pb2.RunReport) -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(run=report)


def log_messages(run_id: str, offset: int, data: bytes) -> list[site_pb2.AgentMessage]:
    """`data` (the log from byte `offset` on) as LogChunk messages of bounded size."""
    return [
        site_pb2.AgentMessage(
            log=common_pb2.LogChunk(
                run_id=run_id,
                offset=offset + start,
                data=data[start : start + LOG_CHUNK_BYTES],
            )
        )
        for start in range(0, len(data), LOG_CHUNK_BYTES)
    ]


def hello_message(
    version: str, inventory: common_pb2.Inventory, runs: list[site_pb2.RunReport], ray_down: str | None = None
) -> site_pb2.AgentMessage:
    """`ray_down` (why) when the site's Ray cluster does not answer: then `runs` is empty."""
    health = site_pb2.Health(ray_down=ray_down is not None, message=_cut(ray_down or ""))
    return site_pb2.AgentMessage(
        hello=site_pb2.Hello(agent_version=version, inventory=inventory, runs=runs, health=health)
    )


def health_message(ray_down: str | None) -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(health=site_pb2.Health(ray_down=ray_down is not None, message=_cut(ray_down or "")))


def refusing_message(reason: str | None) -> site_pb2.AgentMessage:
    """Ray answers but keeps refusing new runs (`reason`), or no longer does (None)."""
    return site_pb2.AgentMessage(health=site_pb2.Health(refusing_starts=reason is not None, message=_cut(reason or "")))


def inventory_message(inventory: common_pb2.Inventory) -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(inventory=site_pb2.InventoryUpdate(inventory=inventory))


def heartbeat_message() -> site_pb2.AgentMessage:
    return site_pb2.AgentMessage(heartbeat=site_pb2.Heartbeat())
