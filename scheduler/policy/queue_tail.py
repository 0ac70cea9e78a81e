"""The rest of the queue once capacity is gone: decided per request shape, in bulk.

At queue depth most jobs come after the last GPU was placed: no READY pool has a
GPU free, the cycle's reservation is taken and none of them is within its
guarantee (those come first in the queue), so none can reclaim. A GPU job can then
only wait, and what it waits for depends on its request shape alone: either no
site could ever hold it, or it waits for that many GPUs with none free now. So the
verdict is found once per shape and the waiting columns are extended in C, without
reading any job (see `queue.py` on why reading jobs in queue order is the cost).
CPU-only jobs still look for CPUs one by one, in queue order.
"""
from __future__ import annotations

from scheduler.domain import Job
from scheduler.policy.cpu_only import cpu_reason, place_cpu_only
from scheduler.policy.cycle_state import Cycle

Verdict = tuple[str, bool] | None     # (reason, never fits); None: a CPU-only job to place


def decide_tail(cycle: Cycle, positions: list[int]) -> None:
    """Decide the jobs at `positions` (in queue order) of a cycle with no GPU free."""
    queue = cycle.queue
    sids = list(map(queue.shape_of.__getitem__, positions))
    verdicts = {sid: _verdict(cycle, queue.jobs[queue.examples[sid]], queue.shapes[sid]) for sid in set(sids)}
    if None in verdicts.values():
        _one_by_one(cycle, positions, sids, verdicts)
        return
    cycle.waiting_positions += positions
    cycle.waiting_reasons += map({sid: v[0] for sid, v in verdicts.items()}.__getitem__, sids)
    cycle.waiting_never += map({sid: v[1] for sid, v in verdicts.items()}.__getitem__, sids)


def _one_by_one(cycle: Cycle, positions: list[int], sids: list[int], verdicts: dict[int, Verdict]) -> None:
    """The same decisions when CPU-only jobs are among them: their outcome depends on the
    CPUs the jobs ahead took, and their reasons interleave with the others'."""
    jobs = cycle.queue.jobs
    for pos, sid in zip(positions, sids):
        verdict = verdicts[sid]
        if verdict is not None:
            cycle.wait(pos, *verdict)
        elif not place_cpu_only(cycle, jobs[pos]):
            cycle.wait(pos, cpu_reason(jobs[pos]))


def _verdict(cycle: Cycle, job: Job, shape: tuple) -> Verdict:
    """What `fair_cycle.decide` says of a job of this shape (any such job) in the tail."""
    never = cycle.never.reason(job, shape)
    if never:
        return never, True
    gpus = shape[0]
    return None if gpus == 0 else (cycle.capacity_reason(gpus, 0), False)
