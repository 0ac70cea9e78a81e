"""What becomes of a job whose run ended without finishing: the pure rules over plain
values, so the store only applies them (and a test or the simulator can call them alone).

Two budgets: `max_attempts` counts the user's failures, infrastructure requeues have their
own bound and backoff, and a preemption counts in neither. See docs/reliability.md,
"Failures are told apart".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minga.common.domain import JobState

BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0
INFRA_REQUEUE_LIMIT = 20  # infrastructure requeues before the job gives up
INFRA_BACKOFF_FIRST_SECONDS = 2.0
INFRA_BACKOFF_MAX_SECONDS = 240.0  # 2 s, 4 s, ... then every 4 minutes


class Fault(StrEnum):
    """Whose fault a run's end is."""

    USER = "user"  # the user's code failed, and it asked for retries
    INFRASTRUCTURE = "infrastructure"  # the site, its Ray cluster, or the network


@dataclass(frozen=True, slots=True)
class Requeue:
    """The job's next state and counters after one run ended badly."""

    state: JobState  # PENDING (requeued) or FAILED (gave up)
    failures: int
    infra_requeues: int
    not_before: float  # not placed before this (0 when FAILED)
    reason: str


def backoff_seconds(failures: int) -> float:
    """After a user's failure: 2 s after the first, doubling, at most 5 minutes."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2.0 ** max(0, failures - 1))


def infra_backoff_seconds(requeues: int) -> float:
    """After an infrastructure requeue: 2 s after the first, doubling, at most 4 minutes."""
    return min(INFRA_BACKOFF_MAX_SECONDS, INFRA_BACKOFF_FIRST_SECONDS * 2.0 ** max(0, requeues - 1))


def after_run_ended(
    fault: Fault,
    failures: int,
    infra_requeues: int,
    max_attempts: int,
    reason: str,
    now: float,
    infra_limit: int = INFRA_REQUEUE_LIMIT,
) -> Requeue:
    """Count one run that ended badly against the right budget: requeue after a backoff,
    or FAILED once that budget is spent."""
    if fault is Fault.USER:
        failures += 1
        if failures >= max_attempts:
            return Requeue(
                JobState.FAILED,
                failures,
                infra_requeues,
                0.0,
                f"{reason} (failed {failures} of {max_attempts} attempts)",
            )
        delay = backoff_seconds(failures)
        return Requeue(
            JobState.PENDING,
            failures,
            infra_requeues,
            now + delay,
            f"requeued: {reason} (failed {failures} of {max_attempts} attempts; retry in {delay:.0f} s)",
        )
    infra_requeues += 1
    if infra_requeues > infra_limit:
        return Requeue(
            JobState.FAILED,
            failures,
            infra_requeues,
            0.0,
            f"{reason} (gave up after {infra_limit} infrastructure requeues)",
        )
    delay = infra_backoff_seconds(infra_requeues)
    return Requeue(
        JobState.PENDING,
        failures,
        infra_requeues,
        now + delay,
        f"requeued: {reason} (infrastructure requeue {infra_requeues} of {infra_limit}, "
        f"not counted against max attempts; retry in {delay:.0f} s)",
    )


def resend_start_after_hello(site_reported_run: bool) -> bool:
    """A live run the site's Hello does not list: resend its start only if the site never
    reported it (the StartRun was lost in transit). A run the site had reported was on its
    Ray cluster, which no longer knows it (e.g. a restarted head): it is lost, and must
    never run again silently under the same run id."""
    return not site_reported_run
