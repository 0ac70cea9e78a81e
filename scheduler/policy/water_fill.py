"""Water-filling inside the cycle: which account's job is considered next.

Weighted max-min by progressive filling (Bertsekas & Gallager, "Data Networks", 6.5.2) at
every level of the tree, as in Slurm's Fair Tree and Kueue's admission fair sharing: the
next job comes from the account whose GPUs held over its weight is lowest; ties go to the
account ahead in Fair Tree order, priority classes first. Deterministic: heaps keyed by
(standing, Fair Tree rank, name). Examples: docs/fairshare.md, "Usage and order"."""

from __future__ import annotations

import heapq
from array import array
from collections import defaultdict
from itertools import filterfalse

from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.entitlement import project_id
from minga.scheduler.policy.user_tree import leaf_project, user_id

_TINY = 1e-12


class WaterFill:
    """Hands out the pending jobs not in `chosen` (decided already: the guarantee pass and
    the waiting gangs), as positions into the queue, in water-filling order; `taken(gpus)`
    after each.

    Four levels of heaps, each entry (GPUs held / weight, Fair Tree rank, name): the
    countries with work left, each country's institutions, each institution's projects,
    each project's users (the tree's leaves, `user_tree.py`).
    """

    def __init__(self, cycle: Cycle, chosen: set[int]) -> None:
        tree = cycle.tree
        last = len(cycle.fair_users)
        self._rank_u = {leaf: k for k, leaf in enumerate(cycle.fair_users)}
        self._rank_p = {
            pid: min((self._rank_u.get(u, last) for u in cycle.users.get(pid, ())), default=last)
            for projects in tree.projects.values()
            for pid in projects
        }
        self._rank_i = {
            slug: min((self._rank_p.get(p, last) for p in projects), default=last)
            for slug, projects in tree.projects.items()
        }
        self._rank_c = {
            c: min((self._rank_i.get(s, last) for s in members), default=last)
            for c, members in tree.institutions.items()
        }
        self._weight_u = {leaf: max(w, _TINY) for users in cycle.users.values() for leaf, w in users.items()}
        self._weight_p = {pid: max(w, _TINY) for projects in tree.projects.values() for pid, w in projects.items()}
        self._weight_i = {slug: max(w, _TINY) for members in tree.institutions.values() for slug, w in members.items()}
        self._weight_c = {c: max(w, _TINY) for c, w in tree.country_weight.items()}
        self._country = tree.country_of
        self._held_u: dict[str, float] = defaultdict(float, cycle.held_users)
        self._held_p: dict[str, float] = defaultdict(float)
        self._held_i: dict[str, float] = defaultdict(float)
        self._held_c: dict[str, float] = defaultdict(float)
        for pid, gpus in cycle.held.items():
            slug = pid.split("/", 1)[0]
            self._held_p[pid] += gpus
            self._held_i[slug] += gpus
            self._held_c[self._country.get(slug, "")] += gpus
        self._skip = chosen
        classes: dict[int, dict[str, array[int]]] = defaultdict(dict)
        jobs = cycle.queue.jobs
        for (priority, inst, name, owner), positions in cycle.queue.groups.items():
            leaf = user_id(project_id(inst, name), owner)
            if leaf in classes[priority]:  # "" and "default" name one project
                positions = array(
                    "l",
                    heapq.merge(
                        classes[priority][leaf], positions, key=lambda pos: (jobs[pos].submitted_at, jobs[pos].id)
                    ),
                )
            if positions:
                classes[priority][leaf] = positions
        self._classes = [classes[p] for p in sorted(classes, reverse=True)]
        self._cursor: dict[str, int] = {}
        self._last: tuple[str, str, str, str] = ("", "", "", "")
        self._again = False
        self._start_class()

    # -- standing: (held / weight, Fair Tree rank, name) ----------------------------
    def _user(self, leaf: str) -> tuple[float, int, str]:
        return self._held_u[leaf] / self._weight_u.get(leaf, _TINY), self._rank_u.get(leaf, len(self._rank_u)), leaf

    def _project(self, pid: str) -> tuple[float, int, str]:
        return self._held_p[pid] / self._weight_p.get(pid, _TINY), self._rank_p.get(pid, len(self._rank_u)), pid

    def _institution(self, slug: str) -> tuple[float, int, str]:
        return self._held_i[slug] / self._weight_i.get(slug, _TINY), self._rank_i.get(slug, len(self._rank_u)), slug

    def _country_key(self, country: str) -> tuple[float, int, str]:
        return (
            self._held_c[country] / self._weight_c.get(country, _TINY),
            self._rank_c.get(country, len(self._rank_u)),
            country,
        )

    # -- the current priority class -------------------------------------------------
    def _start_class(self) -> None:
        self._top: list[tuple[float, int, str]] = []
        self._institutions: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        self._projects: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        self._users: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        if not self._classes:
            return
        for leaf in self._classes[0]:
            self._cursor[leaf] = 0
            self._users[leaf_project(leaf)].append(self._user(leaf))
        for pid, heap in self._users.items():
            heapq.heapify(heap)
            self._projects[pid.split("/", 1)[0]].append(self._project(pid))
        for slug, heap in self._projects.items():
            heapq.heapify(heap)
            self._institutions[self._country.get(slug, "")].append(self._institution(slug))
        for country, heap in self._institutions.items():
            heapq.heapify(heap)
            self._top.append(self._country_key(country))
        heapq.heapify(self._top)

    def next(self) -> int | None:
        """The position of the next job to decide, or None when every job was handed out."""
        while True:
            if self._again:  # the last account waited: its standing, still the lowest, is unchanged
                self._again = False
                country, slug, pid, leaf = self._last
            else:
                while not self._top:
                    if not self._classes:
                        return None
                    self._classes.pop(0)
                    self._start_class()
                country = heapq.heappop(self._top)[2]
                slug = heapq.heappop(self._institutions[country])[2]
                pid = heapq.heappop(self._projects[slug])[2]
                leaf = heapq.heappop(self._users[pid])[2]
            positions, cursor, skip = self._classes[0][leaf], self._cursor[leaf], self._skip
            while cursor < len(positions) and positions[cursor] in skip:  # decided already
                cursor += 1
            self._cursor[leaf] = cursor + 1
            self._last = (country, slug, pid, leaf)
            if cursor < len(positions):
                return positions[cursor]
            self.taken(0)

    def taken(self, gpus: int) -> None:
        """The job `next` gave was decided and took `gpus` GPUs (0 if it waits)."""
        country, slug, pid, leaf = self._last
        more = self._cursor[leaf] < len(self._classes[0][leaf])
        if not gpus and more:
            self._again = True  # nothing moved: the same account goes next, no heap touched
            return
        if gpus:
            self._held_u[leaf] += gpus
            self._held_p[pid] += gpus
            self._held_i[slug] += gpus
            self._held_c[country] += gpus
        if more:
            heapq.heappush(self._users[pid], self._user(leaf))
        if self._users[pid]:
            heapq.heappush(self._projects[slug], self._project(pid))
        if self._projects[slug]:
            heapq.heappush(self._institutions[country], self._institution(slug))
        if self._institutions[country]:
            heapq.heappush(self._top, self._country_key(country))

    def remaining(self) -> array[int]:
        """Every position not handed out yet: by priority class, then Fair Tree rank."""
        out = array("l")
        last, decided = len(self._rank_u), self._skip.__contains__
        for k, current in enumerate(self._classes):
            for leaf in sorted(current, key=lambda u: (self._rank_u.get(u, last), u)):
                rest = current[leaf][self._cursor.get(leaf, 0) if k == 0 else 0 :]
                if self._skip.isdisjoint(rest):
                    out += rest
                else:
                    out.extend(filterfalse(decided, rest))
        return out
