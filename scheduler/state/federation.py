"""`FederationState`: the leader's federation in memory, kept level with the store.

Built once when a broker takes the lead (`load`), then updated by every commit through the
store's write-through hook (`committed`), in commit order. It holds what the scheduling
cycle reads: the pending queue in (submit time, id) order, the live runs, the sites, the
ledgers and the account tree. The store stays the truth: anything that goes wrong here only
marks the state stale, and the next cycle rebuilds it. See docs/architecture.md, "The
federation in memory".
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import attrgetter

import numpy as np

from minga.common.carbon import site_intensities
from minga.common.domain import LIVE_JOB_STATES, Job, JobState, Run, RunState, Site, SiteState
from minga.common.snapshot import Snapshot, Waiting
from minga.scheduler.accounting import ChargeBatch, Ledger, Uptime, charge, decayed_ledgers, shares_at, site_charge
from minga.scheduler.policy.pending_columns import QueueColumns
from minga.scheduler.policy.waiting_list import WaitingList
from minga.scheduler.store.changes import Changes
from minga.scheduler.store.shares import AccountTree
from minga.scheduler.store.state_load import FederationRows

log = logging.getLogger(__name__)

_QUEUE_ORDER = attrgetter("submitted_at", "id")
_MANY = 2_000  # changes to the queue above which one pass beats a search each
FULL_DIFF_JOBS = 5_000  # a queue this short has every waiting reason compared each cycle
REFRESH_JOBS = 1_000  # a deeper one: the new jobs' each cycle, and this many more in turn


class FederationState:
    """The pending queue, live runs, sites, ledgers and account tree, in memory.

    `load_rows` reads everything from the store (at the lead, and after a failure);
    `load_accounts` re-reads the small account tree after an admin changed it.
    Every method is safe to call from any thread.
    """

    def __init__(self, load_rows: Callable[[], FederationRows], load_accounts: Callable[[], AccountTree]) -> None:
        self._load_rows = load_rows
        self._load_accounts = load_accounts
        self._lock = threading.RLock()
        self.loaded = False
        self.stale = True  # rebuild before the next use
        self._accounts_stale = True
        self._pending: dict[str, Job] = {}
        self._queue: list[Job] = []  # self._pending's jobs in queue order, once sorted ...
        self._columns = QueueColumns(ordered=True)  # ... and their columns, for the policy
        self._dropped: list[Job] = []  # ... since when these left it (or were replaced)
        self._added: dict[str, Job] = {}  # ... and these came
        self._fresh: set[str] = set()  # pending jobs whose stored reason no cycle has written yet
        self._refresh_from: tuple[float, str] | None = None  # queue key of the next reasons to compare
        self._backoff: dict[str, float] = {}  # pending job id -> not_before, in the future when set
        self._live_capped: dict[str, str] = {}  # live job of a capped array -> its array id
        self._runs: dict[str, Run] = {}  # live runs
        self._sites: dict[str, Site] = {}
        self._contributed_until: dict[str, float] = {}
        self._uptime: dict[str, Uptime] = {}
        self._usage: dict[str, Ledger] = {}
        self._user_usage: dict[str, Ledger] = {}  # by user leaf
        self._contributions: dict[str, Ledger] = {}
        self._accounts = AccountTree()
        self.rebuilds = 0  # how many full loads: 1 for a healthy leader

    # -- building -------------------------------------------------------------
    def load(self) -> None:
        """Read everything from the store; the caller holds the store's commit lock, so
        no commit falls between this read and the next `committed`."""
        with self._lock:
            rows = self._load_rows()
            self._pending, self._queue, self._dropped, self._added = {}, [], [], {}
            self._fresh, self._refresh_from = set(), None
            self._backoff, self._live_capped, self._runs = {}, {}, {}
            for job in rows.pending:
                self._put_pending(job)
            self._queue = sorted(self._pending.values(), key=_QUEUE_ORDER)
            self._columns.reset(self._queue)
            self._live_capped = dict(rows.live_capped)
            self._runs = {r.id: r for r in rows.live_runs}
            self._sites = {s.name: s for s in rows.sites}
            self._contributed_until = dict(rows.contributed_until)
            self._uptime = dict(rows.uptime)
            self._usage = dict(rows.usage)
            self._user_usage = dict(rows.user_usage)
            self._contributions = dict(rows.contributions)
            self._accounts = self._load_accounts()
            self._accounts_stale = False
            self.loaded, self.stale = True, False
            self.rebuilds += 1

    def committed(self, changes: Changes) -> None:
        """Apply one commit's changes (the store's write-through hook; never raises)."""
        with self._lock:
            if self.stale:
                return  # the next use rebuilds from the store anyway
            try:
                self._apply(changes)
            except Exception:  # logged: a bug here must not fail the writer's commit
                log.exception("in-memory state could not apply a commit; rebuilding it from the store")
                self.stale = True

    def _apply(self, changes: Changes) -> None:
        for job in changes.jobs.values():
            self._put_job(job)
        for job_id, reason in changes.reasons.items():
            pending = self._pending.get(job_id)
            if pending is not None and pending.reason != reason:
                self._reword(pending, replace(pending, reason=reason))
        for run in changes.runs.values():
            if run.live:
                self._runs[run.id] = run
            else:
                self._runs.pop(run.id, None)
        self._sites.update(changes.sites)
        self._contributed_until.update(changes.contributed_until)
        self._uptime.update(changes.uptime)
        self._usage.update(changes.usage)
        self._user_usage.update(changes.user_usage)
        self._contributions.update(changes.contributions)
        if changes.accounts:
            self._accounts_stale = True

    def _put_job(self, job: Job) -> None:
        if job.id in self._pending:
            self._drop_pending(job.id)
        if job.state is JobState.PENDING and not job.after_unmet:  # held by its dependencies: not queued
            self._put_pending(job)
            self._added[job.id] = job
            self._fresh.add(job.id)
        if job.array_limit and job.state in LIVE_JOB_STATES:
            self._live_capped[job.id] = job.array_id
        else:
            self._live_capped.pop(job.id, None)

    def _reword(self, old: Job, new: Job) -> None:
        """A pending job's new waiting reason: its place in the queue stays, so it is
        swapped there (a binary search), not dropped and added again."""
        self._pending[new.id] = new
        if new.id in self._added:
            self._added[new.id] = new
            return
        i = bisect_left(self._queue, _QUEUE_ORDER(old), key=_QUEUE_ORDER)
        if i < len(self._queue) and self._queue[i] is old:
            self._queue[i] = new
        else:  # not sorted in yet (it came back since): let the next sort find it
            self._dropped.append(old)
            self._added[new.id] = new

    def _put_pending(self, job: Job) -> None:
        self._pending[job.id] = job
        if job.not_before:
            self._backoff[job.id] = job.not_before

    def _drop_pending(self, job_id: str) -> None:
        old = self._pending.pop(job_id)
        self._backoff.pop(job_id, None)
        self._fresh.discard(job_id)
        if self._added.pop(job_id, None) is None:
            self._dropped.append(old)

    # -- reading --------------------------------------------------------------
    def ensure_loaded(self, commit_lock: threading.RLock) -> None:
        """Load (or reload, after a failure) under the store's commit lock."""
        if self.stale:
            with commit_lock:
                if self.stale:
                    self.load()

    def snapshot(self, now: float) -> Snapshot:
        """What the policy sees at `now`, as `RunsRepo.load_snapshot(now)` would read it."""
        with self._lock:
            pending = self._sorted_queue()
            held = {j for j, t in self._backoff.items() if t > now}
            keep = None
            if held:
                keep = np.fromiter((j.id not in held for j in pending), dtype=bool, count=len(pending))
                pending = tuple(j for j in pending if j.id not in held)
            columns = self._columns.read(pending, keep)
            capped = {j.array_id for j in pending if j.array_limit}
            live = Counter(a for a in self._live_capped.values() if a in capped)
            tree = self._tree()
            institutions, usage = shares_at(
                tree.institutions, self._contributions, self._usage, now, tree.settings.half_life_seconds
            )
            sites = tuple(self._sites[n] for n in sorted(self._sites))
            return Snapshot(
                sites=sites,
                live_runs=tuple(self._runs.values()),
                pending=pending,
                institutions=institutions,
                projects=tree.projects,
                usage=usage,
                user_usage=decayed_ledgers(self._user_usage, now, tree.settings.half_life_seconds),
                user_weights=tree.users,
                country_weights=tree.countries,
                settings=tree.settings,
                lending=tree.lending,
                array_live=tuple((a, live.get(a, 0)) for a in sorted(capped)),
                account_limits=tree.limits,
                intensity=site_intensities(((s.name, s.country) for s in sites), tree.intensity_figures),
                columns=columns,
            )

    def _sorted_queue(self) -> tuple[Job, ...]:
        """The pending jobs in queue order, changed in place by what came and went since
        the last cycle, and their columns with them: a binary search for each (new jobs are
        usually the newest, and requeued ones keep their submit time). Many changes at
        once: one pass instead. No key tuple is made per job: at depth that would wake the
        garbage collector."""
        queue, pending, columns = self._queue, self._pending, self._columns
        many = len(self._dropped) > _MANY or len(self._added) > _MANY
        if len(self._dropped) > _MANY:
            queue[:] = [j for j in queue if pending.get(j.id) is j]
        else:
            for old in self._dropped:
                i = bisect_left(queue, _QUEUE_ORDER(old), key=_QUEUE_ORDER)
                if i < len(queue) and queue[i] is old:
                    del queue[i]
                    if not many:
                        columns.delete(i)
        self._dropped = []
        if len(self._added) > _MANY:
            queue.extend(self._added.values())
            queue.sort(key=_QUEUE_ORDER)
        else:
            for job in self._added.values():
                i = bisect_right(queue, _QUEUE_ORDER(job), key=_QUEUE_ORDER)
                queue.insert(i, job)
                if not many:
                    columns.insert(i, job)
        self._added = {}
        if many:
            columns.reset(queue)
        return tuple(queue)

    def _tree(self) -> AccountTree:
        """The account tree, re-read if an admin changed it since."""
        if self._accounts_stale:
            self._accounts = self._load_accounts()
            self._accounts_stale = False
        return self._accounts

    def changed_reasons(self, waiting: Sequence[Waiting]) -> dict[str, str]:
        """job id -> reason, for each waiting job still pending whose stored reason differs.

        A waiting reason is derived text, and much of it moves every cycle at depth (the
        free GPUs it quotes). A queue of at most `FULL_DIFF_JOBS` has every reason compared
        each cycle. A deeper one has the reasons of the jobs that came (or came back) since
        the last cycle compared, and `REFRESH_JOBS` more, taken in queue order from where
        the last cycle stopped: every reason is refreshed in turn, and no cycle pays for the
        whole queue (Slurm likewise updates a deep job's reason only when it looks at it)."""
        with self._lock:
            pending = self._pending
            if len(waiting) <= FULL_DIFF_JOBS:
                self._fresh.clear()
                pairs = waiting.pairs() if isinstance(waiting, WaitingList) else ((w.job_id, w.reason) for w in waiting)
                return {i: r for i, r in pairs if (job := pending.get(i)) is not None and job.reason != r}
            wanted, self._fresh = self._fresh | self._next_window(), set()
            if isinstance(waiting, WaitingList):
                found = waiting.reasons_at(self._positions_in(waiting.jobs, wanted))
            else:
                found = {w.job_id: w.reason for w in waiting if w.job_id in wanted}
            return {i: r for i, r in found.items() if (job := pending.get(i)) is not None and job.reason != r}

    def _next_window(self) -> set[str]:
        """The ids of the next `REFRESH_JOBS` jobs in queue order, after the last window's
        (from the front again once the end is reached)."""
        queue = self._queue
        start = 0 if self._refresh_from is None else bisect_left(queue, self._refresh_from, key=_QUEUE_ORDER)
        if start >= len(queue):
            start = 0
        end = start + REFRESH_JOBS
        self._refresh_from = _QUEUE_ORDER(queue[end]) if end < len(queue) else None
        return {job.id for job in queue[start:end]}

    def _positions_in(self, jobs: Sequence[Job], wanted: set[str]) -> list[int]:
        """Where each pending job of `wanted` stands in `jobs` (a snapshot's, in queue order)."""
        positions = []
        for job_id in wanted:
            job = self._pending.get(job_id)
            if job is not None:
                i = bisect_left(jobs, _QUEUE_ORDER(job), key=_QUEUE_ORDER)
                if i < len(jobs) and jobs[i].id == job_id:
                    positions.append(i)
        return positions

    def pending_job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._pending.get(job_id)

    def pending_jobs(self) -> list[Job]:
        """Every pending job, in no order (those in requeue backoff too)."""
        with self._lock:
            return list(self._pending.values())

    def live_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def free_gpus(self) -> dict[tuple[str, str], int]:
        """(site, model) -> GPUs no live run holds: what a lease may still promise."""
        with self._lock:
            free: dict[tuple[str, str], int] = {}
            for site in self._sites.values():
                for pool in site.inventory.gpus:
                    free[(site.name, pool.model)] = free.get((site.name, pool.model), 0) + pool.total
            for run in self._runs.values():
                if run.gpus:
                    free[(run.site, run.gpu_model)] = free.get((run.site, run.gpu_model), 0) - run.gpus
            return free

    def sites_not_lost(self) -> list[str]:
        """Sites whose lease can still expire."""
        with self._lock:
            return sorted(n for n, s in self._sites.items() if s.health is not SiteState.LOST)

    def overdue_runs(self, now: float) -> list[Run]:
        """Live runs past their walltime."""
        with self._lock:
            return [
                r
                for r in self._runs.values()
                if r.walltime_seconds and r.running_since and now >= r.running_since + r.walltime_seconds
            ]

    def charge(self, now: float) -> ChargeBatch:
        """One charging step up to `now`, computed from memory (`minga.scheduler.accounting`)."""
        with self._lock:
            settings = self._tree().settings
            running = [r for r in self._runs.values() if r.state is RunState.RUNNING]
            sites = [
                site_charge(
                    s.name,
                    s.institution,
                    s.country,
                    s.health,
                    ((p.model, p.total) for p in s.inventory.gpus),
                    self._contributed_until.get(s.name, 0.0),
                    self._uptime.get(s.name),
                    settings,
                )
                for s in self._sites.values()
                if s.connected
            ]
            return charge(now, settings, running, sites, self._usage, self._contributions, self._user_usage)
