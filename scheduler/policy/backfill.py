"""Reservation with backfill for jobs that do not fit: EASY backfill (Lifka, 1995).

The highest-ranked job that does not fit gets one reservation: the pool where
enough GPUs free up earliest, estimated from live runs' walltimes (start plus
walltime). Runs without a walltime count as never ending. Lower-ranked jobs may
then use the reserved pool only if they end before the reservation starts, or if
they take only the GPUs the reservation will not need (EASY's "extra nodes").
When no estimate is finite, the pool with most GPUs free or ending is held
outright: it drains as its runs finish, so a gang job cannot wait forever behind a
stream of small jobs while capacity churns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from minga.common.domain import Run
from minga.scheduler.policy.pool_index import Pool

NEVER = float("inf")


def run_end(run: Run) -> float:
    """When a live run is expected to end: its start plus its walltime; NEVER without one."""
    return run.started_at + run.walltime_seconds if run.walltime_seconds > 0 else NEVER


@dataclass
class Reservation:
    """GPUs of one pool promised to `job_id` from `start`; `spare` GPUs it will not need.

    A pool kept for a gang that fits now (`kept=True`) also takes a job at least as large
    that is due no later (`due`): it is kept from being cut up by smaller jobs and from
    gangs due later, while water-filling orders equal gangs fairly."""

    job_id: str
    site: str
    model: str
    gpus: int
    start: float
    spare: int
    kept: bool = False
    due: float = NEVER

    def admits(self, pool: Pool, gpus: int, walltime: float, now: float, due: float = NEVER) -> bool:
        """May a lower-ranked job take `gpus` of `pool` without delaying the reservation?"""
        if pool.site != self.site or pool.model != self.model:
            return True
        if self.start < NEVER and walltime > 0 and now + walltime <= self.start:
            return True
        return gpus <= self.spare or (self.kept and gpus >= self.gpus and due <= self.due)

    def consume(self, pool: Pool, gpus: int, walltime: float, now: float) -> None:
        """Record a backfilled job that uses the reservation's spare GPUs."""
        if pool.site != self.site or pool.model != self.model:
            return
        if not (self.start < NEVER and walltime > 0 and now + walltime <= self.start):
            self.spare -= gpus


UNKNOWN_WALLTIME = 7 * 86400.0  # a job without a walltime is due as if it had a week's


def due(submitted: float, walltime: float) -> float:
    """When a job would have ended had it started on arrival: submit time + walltime. The
    order of waiting gangs (earliest due first) lets short gangs through a drained pool
    before a long one holds it for days, yet none starves: a gang that arrives later is
    due later once the clock has passed an old gang's due time."""
    return submitted + (walltime or UNKNOWN_WALLTIME)


Ends = tuple[list[tuple[float, int]], int]
"""A pool's run ends, sorted: [(when, GPUs)], and the GPUs of those that end at all."""


def pool_ends(ends: list[tuple[float, int]]) -> Ends:
    """`Ends` from the (end, GPUs) of a pool's runs, in any order."""
    ends = sorted(ends)
    return ends, sum(n for e, n in ends if e < NEVER)


def earliest_start(pool: Pool, ends: list[tuple[float, int]], gpus: int, now: float) -> tuple[float, int]:
    """(when `gpus` are free on `pool`, GPUs free then beyond the job's), from its sorted run ends."""
    free = pool.free
    if free >= gpus:
        return now, free - gpus
    for end, n in ends:
        if end == NEVER:
            break
        free += n
        if free >= gpus:
            return max(now, end), free - gpus
    return NEVER, 0


def plan_reservation(
    job_id: str, gpus: int, candidates: list[Pool], ends_of: Callable[[Pool], Ends], now: float
) -> Reservation | None:
    """The reservation on the pool where the job can start earliest (ties: most free, name)."""
    best: tuple[tuple[float, int, str, str], Reservation] | None = None
    for pool in candidates:
        ends, finite = ends_of(pool)
        start, spare = earliest_start(pool, ends, gpus, now)
        key = (start, -(pool.free + finite), pool.site, pool.model)
        if best is None or key < best[0]:
            best = (key, Reservation(job_id, pool.site, pool.model, gpus, start, spare))
    return best[1] if best else None
