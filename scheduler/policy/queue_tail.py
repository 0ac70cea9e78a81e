"""The rest of the queue once capacity is gone: decided per request shape, in bulk.

At queue depth most jobs come after the last GPU was placed: no READY pool has a
GPU free and none of them is within its guarantee (those come first in the queue),
so none can reclaim. A GPU job can then only wait, and what it waits for depends on
its request shape alone: either no site could ever hold it, or it waits for that many
GPUs with none free now, except for the first job of each GPU model that has no
reservation yet, which gets it (`gang_reservations.py`). So those few are decided one by one,
the verdict is found once per shape for the others, and the tail is kept as positions
that the `WaitingList` pairs with their shape's verdict when read: no job is read here
(see `queue.py` on why reading jobs in queue order is the cost). CPU-only jobs still
look for CPUs one by one, in queue order.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import cast

from minga.scheduler.policy.cpu_only import cpu_reason, place_cpu_only
from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.pending_columns import Shape
from minga.scheduler.policy.waiting_list import Verdict


def decide_tail(cycle: Cycle, positions: array[int], decide: Callable[[Cycle, int], None]) -> None:
    """Decide the jobs at `positions` (in queue order) of a cycle with no GPU free; `decide`
    decides one job on its own (for the ones that take a model's reservation)."""
    queue = cycle.queue
    verdicts = [_verdict(cycle, example, shape) for example, shape in zip(queue.examples, queue.shapes, strict=True)]
    reserving = _reserve_unreserved_models(cycle, positions, verdicts, decide)
    if reserving:
        positions = array("l", (pos for pos in positions if pos not in reserving))
    cpu_only = {sid for sid, verdict in enumerate(verdicts) if verdict is None}
    if cpu_only and not cpu_only.isdisjoint(map(queue.shape_of.__getitem__, positions)):
        _one_by_one(cycle, positions, verdicts)
        return
    # None marks a CPU-only shape, and none of those is left among the positions: every
    # verdict the tail reads is one.
    cycle.tail, cycle.tail_verdicts = positions, cast("list[Verdict]", verdicts)


def _reserve_unreserved_models(
    cycle: Cycle, positions: Sequence[int], verdicts: list[Verdict | None], decide: Callable[[Cycle, int], None]
) -> set[int]:
    """Decide, one by one and in queue order, the first job of each GPU model without a
    reservation that could take one (a GPU job that could fit somewhere); the positions
    decided. The scan stops once no model is left open: a model is closed when it gets its
    reservation, or when a job allowing it got none (no pool of it could ever free up)."""
    queue, shape_of = cycle.queue, cycle.queue.shape_of
    open_models = {m for m in cycle.index.models if m not in cycle.reserved_models}
    wanting: dict[int, set[str]] = {}  # shape id -> the open models it allows (memo)
    decided: set[int] = set()
    for pos in positions:
        if not open_models:
            break
        sid = shape_of[pos]
        models = wanting.get(sid)
        if models is None:
            verdict, allowed = verdicts[sid], queue.shapes[sid][1]
            models = wanting[sid] = (
                set()
                if verdict is None or verdict[1] or queue.shapes[sid][0] < 2
                else {m for m in cycle.index.models if not allowed or m in allowed}
            )
        if models.isdisjoint(open_models):
            continue
        reserved = len(cycle.reservations)
        decide(cycle, pos)
        decided.add(pos)
        open_models -= cycle.reserved_models if len(cycle.reservations) > reserved else models
    return decided


def _one_by_one(cycle: Cycle, positions: array[int], verdicts: list[Verdict | None]) -> None:
    """The same decisions when CPU-only jobs are among them: their outcome depends on the
    CPUs the jobs ahead took, and their reasons interleave with the others'."""
    jobs, shape_of = cycle.queue.jobs, cycle.queue.shape_of
    for pos in positions:
        verdict = verdicts[shape_of[pos]]
        if verdict is not None:
            cycle.wait(pos, *verdict)
        elif not place_cpu_only(cycle, jobs[pos]):
            cycle.wait(pos, cpu_reason(jobs[pos]))


def _verdict(cycle: Cycle, example: int, shape: Shape) -> Verdict | None:
    """What `fair_cycle.decide` says in the tail of a job of this shape (`example` is the
    position of one); None for a CPU-only job that could fit."""
    never = cycle.never_fits(example)
    if never:
        return never, True
    gpus = shape[0]
    return None if gpus == 0 else (cycle.capacity_reason(gpus, 0), False)
