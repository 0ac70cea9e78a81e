"""The one table between Ray's job states and minga's run states (to and from the wire:
minga.common.wire.enums).

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

RAY_TO_RUN_STATE: dict[JobStatus, RunState] = {
    JobStatus.PENDING: RunState.STARTING,
    JobStatus.RUNNING: RunState.RUNNING,
    JobStatus.SUCCEEDED: RunState.SUCCEEDED,
    JobStatus.FAILED: RunState.FAILED,
    JobStatus.STOPPED: RunState.STOPPED,
}


def run_state_from_ray(status: JobStatus | str) -> RunState:
    """The run state for a Ray job status (accepts the enum or its string value)."""
    return RAY_TO_RUN_STATE[JobStatus(status)]
