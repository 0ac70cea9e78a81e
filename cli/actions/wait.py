"""What `minga job wait ID...` and `minga job submit --wait` do: wait for jobs to end, for scripts.

The exit code says how they ended (docs/cli.md), the first that applies:

  8  a job FAILED (a job array: one of its tasks)
  9  a job was CANCELLED, and none failed
  6  --timeout ran out before every job ended (errors.EXIT_TIMEOUT, as other waits)
  0  every job SUCCEEDED

and as any command: 2 a usage mistake, 3 the broker unreachable, 5 no such job, 130
Ctrl-C, which stops the waiting and leaves the jobs as they are (nothing is cancelled).
A failure or a cancel outranks the timeout: no more waiting would change it.

It polls the broker (GetJob) with a backoff from 0.5 s to 10 s: no busy loop, and a
thousand waiting scripts cost the broker little. After the first answer, a broker that
cannot be reached for a while (a restart, a failover) is waited for too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minga.cli import errors, render, render_arrays
from minga.cli.call import Call
from minga.cli.parsing import flag_value, parse_duration
from minga.common.domain import ArraySummary, Job, JobState

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient, Submitted

EXIT_JOB_FAILED = errors.EXIT_JOB_FAILED
EXIT_JOB_CANCELLED = errors.EXIT_JOB_CANCELLED
FIRST_POLL = 0.5  # seconds before the second look
MAX_POLL = 10.0  # the longest pause between two looks
BACKOFF = 1.5

Found = Job | ArraySummary


@dataclass(frozen=True)
class Outcome:
    """The jobs as last seen (in the order asked for) and what their ending means."""

    jobs: list[Found]
    timed_out: bool

    @property
    def name(self) -> str:
        if any(_count(j, JobState.FAILED) for j in self.jobs):
            return "failed"
        if any(_count(j, JobState.CANCELLED) for j in self.jobs):
            return "cancelled"
        return "timeout" if self.timed_out else "succeeded"

    @property
    def exit_code(self) -> int:
        return {
            "failed": EXIT_JOB_FAILED,
            "cancelled": EXIT_JOB_CANCELLED,
            "timeout": errors.EXIT_TIMEOUT,
            "succeeded": 0,
        }[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.name, "exit_code": self.exit_code, "jobs": [_to_dict(j) for j in self.jobs]}


def _count(found: Found, state: JobState) -> int:
    if isinstance(found, ArraySummary):
        return {JobState.FAILED: found.failed, JobState.CANCELLED: found.cancelled}.get(state, 0)
    return int(found.state == state)


def ended(found: Found) -> bool:
    return found.done if isinstance(found, ArraySummary) else found.state.terminal


def _to_dict(found: Found) -> dict[str, Any]:
    return render_arrays.array_to_dict(found) if isinstance(found, ArraySummary) else render.job_to_dict(found)


def wait(call: Call, job_id: list[str], timeout: str | None = None) -> None:
    """Wait until the jobs end (a job array: all its tasks); print how each ended.

    Exit 0 if all SUCCEEDED, 8 if one FAILED, 9 if one was CANCELLED (none failed), 6 if
    --timeout ran out first. Ctrl-C stops waiting (exit 130) and cancels nothing."""
    if not job_id:
        raise errors.usage_error("no job id: minga job wait ID...")
    limit = flag_value("--timeout", parse_duration, timeout) if timeout is not None else None
    ids = list(dict.fromkeys(job_id))
    try:
        with call.client() as c:
            outcome = watch(c, ids, limit, waiting=_waiting)
    except KeyboardInterrupt:
        _interrupted(ids)
    show(call, outcome, human=lambda: _lines(outcome, sys.stdout))


def _waiting(jobs: list[Found]) -> None:
    """Said once, after the first look, if a job has not ended: for the person at the terminal."""
    left = [j for j in jobs if not ended(j)]
    what = f"job {left[0].id}" if len(left) == 1 else f"{len(left)} jobs"
    note(f"waiting for {what} to end (Ctrl-C stops waiting; nothing is cancelled)")


def after_submit(call: Call, submitted: Submitted, again: str) -> None:
    """`job submit --wait`: say the id, stream the job's log until it ends (a job array:
    wait for its tasks), then end with `job wait`'s exit code. stdout holds the id and
    the log; the final state goes to stderr. With `--output json`, stdout holds only
    `job wait`'s document, and no log."""
    what = submitted.what
    table = call.output.value != "json"
    if table:
        print(what.id, flush=True)
        if isinstance(what, ArraySummary):
            note(f"{what.tasks} tasks{again}; waiting for them to end (Ctrl-C stops waiting, the jobs keep going)")
        else:
            note(f"{what.state}{again}; streaming its log until it ends (Ctrl-C stops waiting, the job keeps going)")
    try:
        with call.client() as c:
            if table and isinstance(what, Job):
                out = sys.stdout.buffer
                for data in c.job_logs(what.id, follow=True):
                    out.write(data)
                    out.flush()
            outcome = watch(c, [what.id], None)
    except KeyboardInterrupt:
        _interrupted([what.id])
    show(call, outcome, human=lambda: _lines(outcome, sys.stderr))


def show(call: Call, outcome: Outcome, human: Callable[[], None]) -> None:
    call.show(outcome.to_dict(), human)
    if outcome.exit_code:
        raise errors.Quit(outcome.exit_code)


def watch(
    c: BrokerClient,
    ids: list[str],
    limit: float | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    waiting: Callable[[list[Found]], None] | None = None,
) -> Outcome:
    """Look at the jobs until all have ended, or `limit` seconds have passed (0: look once).
    `waiting` is called once, with the jobs, when the first look finds one not ended."""
    from minga.cli.client import RETRYABLE

    deadline = None if limit is None else clock() + limit
    latest: dict[str, Found] = {}
    pause = FIRST_POLL
    unreachable_said = False
    while True:
        for job_id in [i for i in ids if i not in latest or not ended(latest[i])]:
            try:
                with errors.explain(not_found=f"no job {job_id}"):
                    latest[job_id] = c.get_job_or_array(job_id)
            except Exception as exc:
                # The first look must work: a wrong address or id fails at once. Later, a
                # broker restarting or failing over is waited for.
                if len(latest) < len(ids) or not errors.is_rpc_error(exc) or exc.code() not in RETRYABLE:
                    raise
                if not unreachable_said:
                    note(f"the broker did not answer ({exc.code().name}); still waiting")
                    unreachable_said = True
                break
        if all(ended(latest[i]) for i in ids):
            return Outcome([latest[i] for i in ids], timed_out=False)
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            return Outcome([latest[i] for i in ids], timed_out=True)
        if waiting is not None:
            waiting([latest[i] for i in ids])
            waiting = None
        sleep(pause if left is None else min(pause, left))
        pause = min(pause * BACKOFF, MAX_POLL)


def _lines(outcome: Outcome, stream: Any) -> None:
    """One line per job: `ID STATE`, with the reason of a job that did not succeed."""
    for found in outcome.jobs:
        if isinstance(found, ArraySummary):
            line = f"{found.id} {render_arrays.array_counts(render_arrays.array_to_dict(found))}"
        else:
            why = f": {found.reason}" if found.reason and found.state != JobState.SUCCEEDED else ""
            line = f"{found.id} {found.state}{why}"
        print(line, file=stream, flush=True)
    if outcome.timed_out and outcome.name == "timeout":
        left = sum(not ended(j) for j in outcome.jobs)
        note(f"timed out: {left} job{'s' if left != 1 else ''} not ended yet (they keep going)")


def _interrupted(ids: list[str]) -> None:
    """Ctrl-C: stop waiting, cancel nothing, and say how to."""
    print(file=sys.stderr)
    note(f"stopped waiting; nothing was cancelled (to cancel: minga job cancel {' '.join(ids)})")
    raise errors.Quit(errors.EXIT_INTERRUPTED)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
