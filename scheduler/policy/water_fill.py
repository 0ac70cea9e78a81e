"""Water-filling inside the cycle: which account's job is considered next.

Weighted max-min fairness by progressive filling (Bertsekas & Gallager, "Data
Networks", 6.5.2), applied at every level of the account tree as in Slurm's Fair Tree
and Kueue's admission fair sharing: the next job comes from the country whose GPUs
held (live runs plus what this cycle has placed) over its weight is lowest, within it
from the institution lowest so, within that from the project lowest so; each project's
jobs keep their submit order. A placement raises the account's standing, so three equal
institutions with equal backlogs on 12 idle GPUs get 4/4/4 in the same cycle, and
weights 1:1:2 on 16 GPUs give 4/4/8. Guarantees act as floors before this
(`guarantees.guarantee_first`).

Ties, e.g. between accounts that hold nothing, go to the account ahead in Fair Tree
order, that is the one that used less of its entitlement over the half-life: decayed
usage still decides who is ahead over days. The admin's priority classes go first,
highest first, each class filled in turn. A job that does not fit leaves its account's
standing unchanged, so the account's next job is considered next.

Deterministic: heaps keyed by (standing, Fair Tree rank, name).
"""
from __future__ import annotations

import heapq
from array import array
from collections import defaultdict
from itertools import filterfalse

from scheduler.policy.cycle_state import Cycle
from scheduler.policy.entitlement import project_id

_TINY = 1e-12


class _Level:
    """Siblings of one parent, in a heap by standing: (held / weight, Fair Tree rank, name)."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, str]] = []

    def push(self, held: float, weight: float, rank: int, name: str) -> None:
        heapq.heappush(self.heap, (held / max(weight, _TINY), rank, name))

    def pop(self) -> str:
        return heapq.heappop(self.heap)[2]


class WaterFill:
    """Hands out the pending jobs not in `chosen` (the guarantee pass took those), as
    positions into the queue, in water-filling order; `taken(gpus)` after each."""

    def __init__(self, cycle: Cycle, chosen: set[int]) -> None:
        tree = cycle.tree
        self._tree = tree
        rank = {pid: k for k, pid in enumerate(cycle.fair_tree)}
        self._rank: dict[str, int] = dict(rank)
        for slug, projects in tree.projects.items():
            self._rank[slug] = min((rank.get(p, len(rank)) for p in projects), default=len(rank))
        for country, members in tree.institutions.items():
            self._rank[country] = min((self._rank.get(s, len(rank)) for s in members), default=len(rank))
        self._held: dict[str, float] = defaultdict(float)   # project, institution and country -> GPUs held
        for pid, gpus in cycle.held.items():
            slug = pid.split("/", 1)[0]
            for key in (pid, slug, tree.country_of.get(slug, "")):
                self._held[key] += gpus
        skip = {cycle.queue.jobs[pos].institution for pos in chosen}
        classes: dict[int, dict[str, array[int]]] = defaultdict(dict)
        for (priority, inst, name), positions in cycle.queue.groups.items():
            if inst in skip:
                positions = array("l", filterfalse(chosen.__contains__, positions))
            pid = project_id(inst, name)
            if positions and pid in classes[priority]:    # "" and "default" name one project
                jobs = cycle.queue.jobs
                positions = array("l", heapq.merge(classes[priority][pid], positions,
                                                   key=lambda pos: (jobs[pos].submitted_at, jobs[pos].id)))
            if positions:
                classes[priority][pid] = positions
        self._classes = [classes[p] for p in sorted(classes, reverse=True)]
        self._cursor: dict[str, int] = {}
        self._last: tuple[str, str, str] = ("", "", "")
        self._start_class()

    # -- the tree's weights ---------------------------------------------------------
    def _country_of(self, pid: str) -> tuple[str, str]:
        slug = pid.split("/", 1)[0]
        return slug, self._tree.country_of.get(slug, "")

    def _push_project(self, slug: str, pid: str) -> None:
        self._projects[slug].push(self._held[pid], self._tree.projects[slug].get(pid, 0.0), self._rank.get(pid, len(self._rank)), pid)

    def _push_institution(self, country: str, slug: str) -> None:
        weight = self._tree.institutions.get(country, {}).get(slug, 0.0)
        self._institutions[country].push(self._held[slug], weight, self._rank[slug], slug)

    def _push_country(self, country: str) -> None:
        self._top.push(self._held[country], self._tree.country_weight.get(country, 0.0), self._rank[country], country)

    # -- the current priority class -------------------------------------------------
    def _start_class(self) -> None:
        self._top = _Level()
        self._institutions: dict[str, _Level] = defaultdict(_Level)
        self._projects: dict[str, _Level] = defaultdict(_Level)
        if not self._classes:
            return
        members: set[tuple[str, str]] = set()
        for pid in self._classes[0]:
            self._cursor[pid] = 0
            slug, country = self._country_of(pid)
            self._push_project(slug, pid)
            members.add((country, slug))
        for country, slug in members:
            self._push_institution(country, slug)
        for country in {country for country, _ in members}:
            self._push_country(country)

    def next(self) -> int | None:
        """The position of the next job to decide, or None when every job was handed out."""
        while not self._top.heap:
            if not self._classes:
                return None
            self._classes.pop(0)
            self._start_class()
        country = self._top.pop()
        slug = self._institutions[country].pop()
        pid = self._projects[slug].pop()
        cursor = self._cursor[pid]
        self._cursor[pid] = cursor + 1
        self._last = (country, slug, pid)
        return self._classes[0][pid][cursor]

    def taken(self, gpus: int) -> None:
        """The job `next` gave was decided and took `gpus` GPUs (0 if it waits)."""
        country, slug, pid = self._last
        if gpus:
            for key in self._last:
                self._held[key] += gpus
        if self._cursor[pid] < len(self._classes[0][pid]):
            self._push_project(slug, pid)
        if self._projects[slug].heap:
            self._push_institution(country, slug)
        if self._institutions[country].heap:
            self._push_country(country)

    def remaining(self) -> array[int]:
        """Every position not handed out yet: by priority class, then Fair Tree rank."""
        out = array("l")
        for k, current in enumerate(self._classes):
            for pid in sorted(current, key=lambda p: (self._rank.get(p, len(self._rank)), p)):
                out += current[pid][self._cursor.get(pid, 0) if k == 0 else 0:]
        return out
