"""The `%K` cap of job arrays: at most K tasks of one array hold GPUs at once.

Slurm's `--array=0-999%4` rule. Before the policy proper runs, the pending tasks of a
capped array beyond its free slots (K minus its live tasks) are set aside, lowest index
first, so every other phase (fair share, placement, reservations, preemption) sees only
the tasks that may start now; the ones set aside wait with the cap as their reason.
"""

from __future__ import annotations

from dataclasses import replace

from minga.common.domain import Job
from minga.common.snapshot import Decisions, Snapshot, Waiting


def cap_reason(live: int, limit: int) -> str:
    return f"array: {live} of its tasks run already (%{limit})"


def split_capped(snapshot: Snapshot) -> tuple[Snapshot, tuple[Waiting, ...]]:
    """The snapshot without the tasks over their array's cap, and those tasks' verdicts.

    `Snapshot.array_live` names every capped array with pending tasks, so a federation
    without one pays nothing here: no pass over 100,000 pending jobs."""
    if not snapshot.array_live:
        return snapshot, ()
    live = dict(snapshot.array_live)
    by_array: dict[str, list[Job]] = {}
    for job in snapshot.pending:
        if job.array_limit > 0 and job.array_id in live:
            by_array.setdefault(job.array_id, []).append(job)
    held: set[str] = set()
    waiting: list[Waiting] = []
    for array_id in sorted(by_array):
        tasks = sorted(by_array[array_id], key=lambda j: (j.array_index, j.id))
        limit, running = tasks[0].array_limit, live[array_id]
        for job in tasks[max(0, limit - running) :]:
            held.add(job.id)
            waiting.append(Waiting(job.id, cap_reason(running, limit)))
    if not held:
        return snapshot, ()
    pending = tuple(j for j in snapshot.pending if j.id not in held)
    return replace(snapshot, pending=pending), tuple(waiting)


def with_capped(decisions: Decisions, capped: tuple[Waiting, ...]) -> Decisions:
    if not capped:
        return decisions
    return replace(decisions, waiting=(*decisions.waiting, *capped))
