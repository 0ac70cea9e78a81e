"""The one table between Ray's job states and minga's run states, and the
conversion of run states to and from the wire.

| Ray `JobStatus` | minga `RunState` | why                                           |
|-----------------|------------------|-----------------------------------------------|
| PENDING         | STARTING         | submitted; waiting for resources or runtime env |
| RUNNING         | RUNNING          | the entrypoint runs                           |
| SUCCEEDED       | SUCCEEDED        | the entrypoint exited 0                       |
| FAILED          | FAILED           | non-zero exit, or Ray could not start it      |
| STOPPED         | STOPPED          | stopped on request (cancel, fencing)          |

A run Ray does not know at all is UNKNOWN; that is not a Ray status, so callers
say it themselves (the backend returns None).
"""

from __future__ import annotations

from ray.job_submission import JobStatus

from minga.common.domain import RunState
from minga.v1 import common_pb2

RAY_TO_RUN_STATE: dict[JobStatus, RunState] = {
    JobStatus.PENDING: RunState.STARTING,
    JobStatus.RUNNING: RunState.RUNNING,
    JobStatus.SUCCEEDED: RunState.SUCCEEDED,
    JobStatus.FAILED: RunState.FAILED,
    JobStatus.STOPPED: RunState.STOPPED,
}

_RUN_STATE_TO_PROTO: dict[RunState, int] = {
    RunState.STARTING: common_pb2.RUN_STATE_STARTING,
    RunState.RUNNING: common_pb2.RUN_STATE_RUNNING,
    RunState.SUCCEEDED: common_pb2.RUN_STATE_SUCCEEDED,
    RunState.FAILED: common_pb2.RUN_STATE_FAILED,
    RunState.STOPPED: common_pb2.RUN_STATE_STOPPED,
    RunState.UNKNOWN: common_pb2.RUN_STATE_UNKNOWN,
    RunState.LOST: common_pb2.RUN_STATE_LOST,
}
_PROTO_TO_RUN_STATE: dict[int, RunState] = {v: k for k, v in _RUN_STATE_TO_PROTO.items()}


def run_state_from_ray(status: JobStatus | str) -> RunState:
    """The run state for a Ray job status (accepts the enum or its string value)."""
    return RAY_TO_RUN_STATE[JobStatus(status)]


def run_state_to_proto(state: RunState) -> int:
    """`common_pb2.RunState` value of a domain run state."""
    return _RUN_STATE_TO_PROTO[state]


def run_state_from_proto(value: int) -> RunState:
    """Domain run state of a `common_pb2.RunState` value; UNSPECIFIED reads as UNKNOWN."""
    return _PROTO_TO_RUN_STATE.get(value, RunState.UNKNOWN)
