"""`DependencyWatch`: what the dependencies phase of the cycle must look at, from the commits.

It follows every commit (the store's write-through hook, as the federation in memory
does) and keeps the ids of the jobs that ended (and their arrays) and of the jobs held
by their dependencies since the last pass. The phase then judges only the jobs that wait
for those (the store's index on `depends_on`), never the whole queue. At the lead, and
after a pass that failed, it asks for one pass over every held job instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from minga.common.domain import JobState
from minga.scheduler.store.changes import Changes


@dataclass
class DependencyWork:
    ended: set[str] = field(default_factory=set)  # jobs (and their arrays) that ended
    held: set[str] = field(default_factory=set)  # jobs held by their dependencies
    everything: bool = False  # judge every held job (at the lead: nothing was watched before)

    def __bool__(self) -> bool:
        return bool(self.ended or self.held or self.everything)


class DependencyWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._work = DependencyWork(everything=True)

    def committed(self, changes: Changes) -> None:
        """Note the jobs of one commit that ended or are held (never raises)."""
        with self._lock:
            for job in changes.jobs.values():
                if job.state.terminal:
                    self._work.ended.add(job.id)
                    if job.array_id:
                        self._work.ended.add(job.array_id)
                elif job.state is JobState.PENDING and job.after_unmet:
                    self._work.held.add(job.id)

    def take(self) -> DependencyWork:
        """What changed since the last take; the watch starts afresh."""
        with self._lock:
            work, self._work = self._work, DependencyWork()
            return work

    def judged(self, job_ids: list[str]) -> None:
        """Held jobs a pass just judged (and rewrote): their own commit is no reason to
        judge them again. Only a pass writes a held job that stays held, so nothing else
        is forgotten."""
        with self._lock:
            self._work.held.difference_update(job_ids)

    def give_back(self, work: DependencyWork) -> None:
        """A pass that failed: its work is done by the next one."""
        with self._lock:
            self._work.ended |= work.ended
            self._work.held |= work.held
            self._work.everything = self._work.everything or work.everything

    def restart(self) -> None:
        """Not watched for a while (a new lead): the next pass judges every held job."""
        with self._lock:
            self._work = DependencyWork(everything=True)
