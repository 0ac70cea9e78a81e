"""`never_fits_reason` at queue depth: one check per distinct request, over distinct sites.

Callers ask once per request shape (the cycle keeps the answer by shape id), and most
shapes are settled by a memoized test against a set of distinct site capabilities, so
100,000 pending jobs cost a few thousand dictionary lookups, not 100,000 scans of
every site. The rules and the reasons themselves
stay in `feasibility.never_fits_reason`.
"""

from __future__ import annotations

from collections.abc import Iterable

from minga.common.domain import Job, Site
from minga.scheduler.policy.feasibility import never_fits_reason
from minga.scheduler.policy.pending_columns import Shape

Labels = tuple[tuple[str, str], ...]
Capabilities = frozenset[tuple[str, int, int, float]]
"""Distinct (GPU model, memory MB, one-node GPUs, CPUs) of some sites; ("", 0, 0, CPUs) for CPUs alone."""


class NeverFits:
    """Memoized `never_fits_reason`, with a cheap "something could hold it" test first.

    For each (countries, labels) the distinct (model, memory, one-node GPUs, CPUs)
    capabilities of the matching sites are kept; a request that one of them covers
    can fit somewhere, and only the rest pay for the full check with its reason.
    """

    def __init__(self, sites: Iterable[Site]) -> None:
        self._sites = sorted(sites, key=lambda s: s.name)
        self._caps: dict[tuple[tuple[str, ...], Labels], Capabilities] = {}
        self._interned: dict[Capabilities, Capabilities] = {}
        self._fit_memo: dict[tuple[Capabilities, int, tuple[str, ...], int, float], bool] = {}
        groups: dict[tuple[str, frozenset[tuple[str, str]]], set[tuple[str, int, int, float]]] = {}
        for site in self._sites:
            caps = groups.setdefault((site.country, frozenset(site.labels)), set())
            cpus = site.inventory.cpus
            caps.add(("", 0, 0, cpus))
            for p in site.inventory.gpus:
                caps.add((p.model, p.memory_mb, min(p.total, p.largest_node or p.total), cpus))
        self._groups = sorted(groups.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1])))
        self._by_country: dict[str, list[Site]] = {}
        for site in self._sites:
            self._by_country.setdefault(site.country, []).append(site)

    def _capabilities(self, countries: tuple[str, ...], labels: Labels) -> Capabilities:
        """The capabilities of the sites in `countries` with `labels`; equal sets are one object
        (countries with the same kinds of sites share it), so `_fits` memoizes across them."""
        key = (countries, labels)
        caps = self._caps.get(key)
        if caps is None:
            wanted = set(labels)
            found: set[tuple[str, int, int, float]] = set()
            for (country, site_labels), group in self._groups:
                if (not countries or country in countries) and wanted <= site_labels:
                    found |= group
            caps = self._caps[key] = self._interned.setdefault(frozenset(found), frozenset(found))
        return caps

    def _fits(self, caps: Capabilities, gpus: int, models: tuple[str, ...], memory: int, cpus: float) -> bool:
        key = (caps, gpus, models, memory, cpus)
        fits = self._fit_memo.get(key)
        if fits is None:
            fits = self._fit_memo[key] = any(
                c >= cpus and (gpus == 0 or (lim >= gpus and mem >= memory and m and (not models or m in models)))
                for m, mem, lim, c in caps
            )
        return fits

    def reason(self, job: Job, shape: Shape) -> str | None:
        """Why nothing could ever hold `job`, or None. `shape` is its request shape as the
        queue reads it: (GPUs, models, min GPU memory, CPUs, countries, labels)."""
        gpus, models, memory, cpus, countries, labels = shape
        caps = self._caps.get((countries, labels)) or self._capabilities(countries, labels)
        if self._fits(caps, gpus, models, memory, cpus):
            return None
        return never_fits_reason(job, self._in(countries))

    def _in(self, countries: tuple[str, ...]) -> list[Site]:
        """The sites in `countries` (all without any): the only ones the reason looks at
        (`never_fits_reason` narrows to them first), without a scan of every site per shape."""
        if not countries:
            return self._sites
        return [site for country in sorted(set(countries)) for site in self._by_country.get(country, ())]
