"""The one job state machine. Every job state change goes through `transition`.

A terminal state is final, so a late or duplicate report can never give a job a
second outcome (DESIGN.md invariant 2).
"""

from __future__ import annotations

from minga.common.domain import JobState, RunState

S = JobState

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.PENDING: frozenset({S.LEASED, S.CANCELLED, S.FAILED}),
    # A short job may end before the site ever reported it RUNNING.
    S.LEASED: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.PENDING, S.CANCELLING}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.PENDING, S.CANCELLING}),
    # A run may finish on its own before the stop reaches it.
    S.CANCELLING: frozenset({S.CANCELLED, S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransitionError(ValueError):
    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"job cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def can_transition(current: JobState, target: JobState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def transition(current: JobState, target: JobState) -> JobState:
    """Return `target` if the move is legal, else raise IllegalTransitionError."""
    if not can_transition(current, target):
        raise IllegalTransitionError(current, target)
    return target


def job_state_after_run_report(current: JobState, run: RunState) -> JobState | None:
    """The job state a report about its *current* run leads to, or None for no change.

    Stale runs never reach this function: fencing filters them out first.
    """
    if current.terminal:
        return None
    if run is RunState.RUNNING and current is S.LEASED:
        return S.RUNNING
    if run is RunState.SUCCEEDED:
        return S.SUCCEEDED
    if run is RunState.FAILED:
        return S.FAILED
    if run is RunState.STOPPED:
        return S.CANCELLED if current is S.CANCELLING else S.FAILED
    return None
