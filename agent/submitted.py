"""The runs this agent had Ray accept, so that none is ever submitted twice under one
run id, in bounded memory.

A run id is listed while its run is tracked. Once the run's end is delivered the
broker never leases it again, but an older broker (a deposed leader) may still resend
it, and a restarted Ray head no longer knows it. A job's runs only get newer epochs
(each attempt a new one, as the broker's fencing requires), so for ended runs it is
exact to remember each job's newest ended epoch: a run of that job with an epoch at or
below it is refused. That record keeps the `max_jobs` jobs whose runs ended last (an
LRU): the bound is `max_jobs` entries, and only a run of a job that ended longer ago
than that falls back on Ray's own refusal of a submission id it still knows.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_ENDED_JOBS = 65_536  # about 100 bytes each: a few MiB at most


class SubmittedRuns:
    """Not thread-safe: the reconciler calls it under its lock."""

    def __init__(self, max_jobs: int = MAX_ENDED_JOBS) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be positive, not {max_jobs}")
        self.max_jobs = max_jobs
        self._live: set[str] = set()  # submitted, still tracked
        self._ended: OrderedDict[str, int] = OrderedDict()  # job id -> newest ended epoch

    def add(self, run_id: str) -> None:
        """Ray accepted `run_id` (or was found to have it)."""
        self._live.add(run_id)

    def seen(self, run_id: str, job_id: str, epoch: int) -> bool:
        """Whether this agent submitted the run before: never submit it again."""
        return run_id in self._live or epoch <= self._ended.get(job_id, 0)

    def ended(self, run_id: str, job_id: str, epoch: int) -> None:
        """The run's end was delivered: the agent stops tracking it."""
        if run_id not in self._live:
            return  # never submitted (e.g. refused): nothing to guard
        self._live.discard(run_id)
        self._ended[job_id] = max(epoch, self._ended.pop(job_id, 0))
        while len(self._ended) > self.max_jobs:
            self._ended.popitem(last=False)

    def __len__(self) -> int:
        """Entries held: live run ids plus ended jobs."""
        return len(self._live) + len(self._ended)
