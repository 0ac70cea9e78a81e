"""The messages between the broker and a site, as domain values: the commands it sends down
a site's stream (start, stop a run) and the reports a site sends back about its runs (wire: minga.common.wire.runs)."""

from __future__ import annotations

from dataclasses import dataclass

from minga.common.domain import JobSpec, Run, RunState


@dataclass(frozen=True)
class StartRunCommand:
    site: str
    run: Run
    spec: JobSpec
    # The preemption notice in whole seconds (ShareSettings.preemption_notice_seconds): every
    # stop of the run sends SIGTERM, then SIGKILL this long after. 0: Ray's own default.
    notice_seconds: int = 0
    array_id: str = ""  # a job array's task: the array's id and the task's index,
    array_index: int = 0  # which the agent passes on as MINGA_ARRAY_JOB_ID / _INDEX


@dataclass(frozen=True)
class StopRunCommand:
    site: str
    run_id: str
    reason: str


Command = StartRunCommand | StopRunCommand


@dataclass(frozen=True)
class RunReport:
    """What a site says about one of its runs."""

    run_id: str
    state: RunState
    message: str = ""
    infrastructure: bool = False  # a FAILED run that Ray lost, not the user's code
