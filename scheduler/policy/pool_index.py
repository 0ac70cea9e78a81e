"""Per-cycle indexes over GPU pools, so placing one job costs no scan of every site.

Built once per `schedule()` call from the frozen snapshot and mutated only inside
that call. Pools of READY, connected sites are kept in buckets by free GPU count,
per (country, model) and per model for the whole federation ("*"). Best fit
(the classic best-fit bin-packing rule: the pool left with the fewest idle GPUs)
is then the first acceptable pool in the lowest bucket at or above the request.
Free counts only go down within a cycle (preemptions free GPUs in the next one),
which is what makes the failure memo in `cycle_state.py` sound.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from minga.common.domain import Run, Site
from minga.scheduler.policy.placement import accepts_new_runs

ANY = "*"


class Pool:
    """One (site, model) pool as the cycle sees it; `free` changes as jobs are placed."""

    __slots__ = ("site", "model", "key", "memory", "limit", "total", "owner", "country", "labels", "free", "ready")

    def __init__(self, site: Site, model: str, memory: int, limit: int, total: int) -> None:
        self.site = site.name
        self.model = model
        self.key = (site.name, model)  # (site, model): how the cycle's tables name a pool
        self.memory = memory
        self.limit = limit  # most GPUs one job can take here (one node)
        self.total = total
        self.owner = site.institution
        self.country = site.country
        self.labels = frozenset(site.labels)
        self.free = total
        self.ready = accepts_new_runs(site)


class PoolIndex:
    """Pools, free CPUs, live runs per pool, and the free-count buckets."""

    def __init__(self, sites: Iterable[Site], runs: Iterable[Run]) -> None:
        self.sites = {s.name: s for s in sorted(sites, key=lambda s: s.name)}
        self.pools: dict[tuple[str, str], Pool] = {}
        self.cpus: dict[str, float] = {}
        self.by_owner: dict[str, list[Pool]] = defaultdict(list)  # each in (site, model) order
        self.by_model: dict[str, list[Pool]] = defaultdict(list)
        self.runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
        for site in self.sites.values():
            self.cpus[site.name] = site.inventory.cpus
            for gp in sorted(site.inventory.gpus, key=lambda p: p.model):
                limit = min(gp.total, gp.largest_node or gp.total)
                pool = Pool(site, gp.model, gp.memory_mb, limit, gp.total)
                self.pools[(site.name, gp.model)] = pool
                self.by_owner[site.institution].append(pool)
                self.by_model[gp.model].append(pool)
        for run in sorted(runs, key=lambda r: r.id):
            self.cpus[run.site] = self.cpus.get(run.site, 0.0) - run.cpus
            if run.gpus:
                self.runs[(run.site, run.gpu_model)].append(run)
                held = self.pools.get((run.site, run.gpu_model))
                if held is not None:
                    held.free -= run.gpus
        self.models = sorted(self.by_model)
        self.model_gpus = {m: sum(p.total for p in pools) for m, pools in self.by_model.items()}  # how plentiful
        self.countries = sorted({s.country for s in self.sites.values()})
        self.buckets: dict[tuple[str, str], list[dict[tuple[str, str], Pool]]] = {}
        self.top: dict[tuple[str, str], int] = {}  # (scope, model) -> its fullest bucket, 0 if none
        # What memos of "nothing takes this" check: every `take` (or `touch`) counts under
        # the pool's owner, and every drop of a model's most free GPUs counts in `top_changes`.
        self.owner_changes: dict[str, int] = defaultdict(int)
        self.top_changes = 0
        for key, pool in self.pools.items():
            if pool.ready and pool.free > 0:
                self._add(key, pool)

    def _bucket(self, scope: str, model: str, size: int) -> list[dict[tuple[str, str], Pool]]:
        b = self.buckets.get((scope, model))
        if b is None:
            b = self.buckets[(scope, model)] = []
        while len(b) <= size:
            b.append({})
        return b

    def _add(self, key: tuple[str, str], pool: Pool) -> None:
        for scope in (pool.country, ANY):
            self._bucket(scope, pool.model, pool.free)[pool.free][key] = pool
            if pool.free > self.top.get((scope, pool.model), 0):
                self.top[(scope, pool.model)] = pool.free

    def _remove(self, key: tuple[str, str], pool: Pool) -> None:
        for scope in (pool.country, ANY):
            buckets = self.buckets[(scope, pool.model)]
            buckets[pool.free].pop(key, None)
            top = self.top[(scope, pool.model)]
            if pool.free == top:
                while top > 0 and not buckets[top]:
                    top -= 1
                if scope == ANY and top != pool.free:
                    self.top_changes += 1
                self.top[(scope, pool.model)] = top

    def take(self, pool: Pool, gpus: int, cpus: float) -> None:
        """Hold `gpus` of `pool` and `cpus` of its site for the rest of the cycle."""
        key = pool.key
        self.owner_changes[pool.owner] += 1
        if pool.ready and pool.free > 0:
            self._remove(key, pool)
        pool.free -= gpus
        if pool.ready and pool.free > 0:
            self._add(key, pool)
        self.cpus[pool.site] -= cpus

    def touch(self, owner: str) -> None:
        """Something of `owner`'s sites changed outside `take` (a CPU-only placement)."""
        self.owner_changes[owner] += 1

    def largest_free(self, model: str, scope: str = ANY) -> int:
        """The most free GPUs of `model` on a READY pool in `scope` (monotone within a cycle)."""
        return self.top.get((scope, model), 0)

    def first_fit_by_bucket(
        self, scopes: list[str], models: list[str], gpus: int, ok: Callable[[Pool], bool]
    ) -> Pool | None:
        """Best fit over `scopes`: the acceptable pool in the lowest free bucket >= `gpus`."""
        live = []
        for scope in scopes:
            for model in models:
                top = self.top.get((scope, model), 0)
                if top >= gpus:
                    live.append((top, self.buckets[(scope, model)]))
        if not live:
            return None
        for free in range(gpus, max(t for t, _ in live) + 1):
            for top, b in live:
                if free <= top:
                    for pool in b[free].values():
                        if ok(pool):
                            return pool
        return None
