"""Job dependencies (Slurm's `--dependency`): the `after` conditions and what they say.

A job's `spec.after` lists "ID" or "ID:COND". Slurm's names: `ok` is afterok (the job
succeeded; the default), `any` is afterany (it ended, however), `failed` is afternotok
(it FAILED or was CANCELLED). An ID may be a job array's: the condition is then on all
its tasks (afterok: every task succeeded; afterany: every task ended; afternotok: every
task ended and one at least did not succeed), as Slurm applies a dependency on an array.

Pure: no store, no clock. The store (scheduler/store/dependencies.py) feeds it the states
it reads and writes what it decides.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from minga.common.domain import InvalidArgument, JobState

MAX_AFTER = 64  # dependencies of one job (Slurm has no fixed limit; a bound keeps a submit cheap)
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # a job, a job array or one task ("j-abc_3")
WAITING_FOR_CYCLE = "waiting for the next scheduling cycle"


class Condition(enum.StrEnum):
    OK = "ok"  # afterok
    ANY = "any"  # afterany
    FAILED = "failed"  # afternotok


_VERB = {Condition.OK: "succeed", Condition.ANY: "end", Condition.FAILED: "fail"}


@dataclass(frozen=True)
class After:
    """One parsed condition: wait for `job_id` (a job or array) to meet `condition`."""

    job_id: str
    condition: Condition

    def __str__(self) -> str:
        return f"{self.job_id}:{self.condition.value}"


class Status(enum.StrEnum):
    MET = "met"
    WAITING = "waiting"
    NEVER = "never"  # it can no longer hold: the job waiting for it is cancelled


def parse_after(items: Sequence[str]) -> tuple[After, ...]:
    """`spec.after` as given, checked: at most MAX_AFTER, each "ID" or "ID:COND", no ID twice."""
    if len(items) > MAX_AFTER:
        raise InvalidArgument(f"spec.after has {len(items)} dependencies; the limit is {MAX_AFTER}")
    parsed: list[After] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        job_id, sep, cond = item.strip().partition(":")
        if not ID.fullmatch(job_id):
            raise InvalidArgument(
                f"spec.after[{i}] {item[:80]!r} is not a job id (e.g. j-3f9c0a1b2c, j-3f9c0a1b2c:any)"
            )
        if sep and cond not in Condition.__members__.values():
            raise InvalidArgument(
                f"spec.after[{i}] {item[:80]!r}: the condition {cond[:20]!r} is not one of ok, any, failed"
            )
        if job_id in seen:
            raise InvalidArgument(f"spec.after[{i}]: {job_id} is given twice: give one condition per job")
        seen.add(job_id)
        parsed.append(After(job_id, Condition(cond) if sep else Condition.OK))
    return tuple(parsed)


def status_of(condition: Condition, states: Counter[JobState]) -> Status:
    """Where a condition stands, given the states of the job's (or array's) tasks: a plain
    job is an array of one."""
    bad = states[JobState.FAILED] + states[JobState.CANCELLED]
    unfinished = sum(n for s, n in states.items() if not s.terminal)
    if condition is Condition.OK:
        if bad:
            return Status.NEVER
        return Status.WAITING if unfinished else Status.MET
    if unfinished:
        return Status.WAITING
    if condition is Condition.ANY:
        return Status.MET
    return Status.MET if bad else Status.NEVER


def state_text(states: Counter[JobState], array: bool) -> str:
    """A job's state ("SUCCEEDED"); an array's tasks: "7/10 ended, 1 failed"."""
    if not array:
        return next(iter(states)).value if states else ""
    total = sum(states.values())
    ended = sum(n for s, n in states.items() if s.terminal)
    bad = states[JobState.FAILED] + states[JobState.CANCELLED]
    return f"{ended}/{total} ended" + (f", {bad} did not succeed" if bad else "")


def waiting_reason(after: After, array: bool, more: int) -> str:
    """ "waiting for job j-123 to succeed" (and how many more it waits for)."""
    what = "job array" if array else "job"
    others = f" (and {more} more dependenc{'y' if more == 1 else 'ies'})" if more else ""
    return f"waiting for {what} {after.job_id} to {_VERB[after.condition]}{others}"


def never_reason(after: After, states: Counter[JobState], array: bool) -> str:
    """Why a condition can no longer hold: "dependency j-123 failed"."""
    if array:
        bad = states[JobState.FAILED] + states[JobState.CANCELLED]
        if after.condition is Condition.FAILED:
            return f"dependency {after.job_id} succeeded (every task; this job waited for one to fail)"
        return f"dependency {after.job_id} failed ({bad} of its {sum(states.values())} tasks did not succeed)"
    if states[JobState.SUCCEEDED]:
        return f"dependency {after.job_id} succeeded (this job waited for it to fail)"
    if states[JobState.CANCELLED]:
        return f"dependency {after.job_id} was cancelled"
    return f"dependency {after.job_id} failed"


@dataclass(frozen=True)
class Verdict:
    """What a held job's conditions say now: release it, cancel it (reason), or keep it
    waiting (reason, how many conditions are unmet)."""

    status: Status
    reason: str
    unmet: int


def judge(conditions: Sequence[After], states: dict[str, Counter[JobState]], arrays: set[str]) -> Verdict:
    """One verdict over a job's conditions: any that can never hold cancels it; all met
    release it; otherwise it waits for the first unmet one. `states` maps each id waited
    for to its tasks' states (a missing id counts as never: its job is gone)."""
    unmet: list[After] = []
    for after in conditions:
        counted = states.get(after.job_id)
        if not counted:
            return Verdict(Status.NEVER, f"dependency {after.job_id} no longer exists", 0)
        status = status_of(after.condition, counted)
        if status is Status.NEVER:
            return Verdict(Status.NEVER, never_reason(after, counted, after.job_id in arrays), 0)
        if status is Status.WAITING:
            unmet.append(after)
    if not unmet:
        return Verdict(Status.MET, WAITING_FOR_CYCLE, 0)
    first = unmet[0]
    return Verdict(Status.WAITING, waiting_reason(first, first.job_id in arrays, len(unmet) - 1), len(unmet))
