"""`never_fits_reason` at queue depth: one check per distinct request, over distinct sites.

The answer is memoized per request shape and most shapes are settled by a set of
distinct site capabilities, so 100,000 pending jobs cost a few hundred cheap
checks, not 100,000 scans of every site. The rules and the reasons themselves
stay in `feasibility.never_fits_reason`.
"""
from __future__ import annotations

from collections.abc import Iterable

from scheduler.domain import Job, Site
from scheduler.policy.feasibility import never_fits_reason


class NeverFits:
    """Memoized `never_fits_reason`, with a cheap "something could hold it" test first.

    For each (countries, labels) the distinct (model, memory, one-node GPUs, CPUs)
    capabilities of the matching sites are kept; a request that one of them covers
    can fit somewhere, and only the rest pay for the full check with its reason.
    """

    def __init__(self, sites: Iterable[Site]) -> None:
        self._sites = sorted(sites, key=lambda s: s.name)
        self._caps: dict[tuple, set[tuple[str, int, int, float]]] = {}
        self._memo: dict[tuple, str | None] = {}
        groups: dict[tuple[str, frozenset], set[tuple[str, int, int, float]]] = {}
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

    def _capabilities(self, countries: tuple[str, ...], labels: tuple) -> set[tuple[str, int, int, float]]:
        key = (countries, labels)
        caps = self._caps.get(key)
        if caps is None:
            wanted = set(labels)
            caps = set()
            for (country, site_labels), group in self._groups:
                if (not countries or country in countries) and wanted <= site_labels:
                    caps |= group
            self._caps[key] = caps
        return caps

    def reason(self, job: Job, shape: tuple) -> str | None:
        """Why nothing could ever hold `job`, or None. `shape` is its request shape as the
        queue reads it: (GPUs, models, min GPU memory, CPUs, countries, labels)."""
        if shape in self._memo:
            return self._memo[shape]
        gpus, models, memory, cpus, countries, labels = shape
        fits = any(
            c >= cpus and (gpus == 0 or (lim >= gpus and mem >= memory and m and (not models or m in models)))
            for m, mem, lim, c in self._capabilities(countries, labels))
        self._memo[shape] = None if fits else never_fits_reason(job, self._in(countries))
        return self._memo[shape]

    def _in(self, countries: tuple[str, ...]) -> list[Site]:
        """The sites in `countries` (all without any): the only ones the reason looks at
        (`never_fits_reason` narrows to them first), without a scan of every site per shape."""
        if not countries:
            return self._sites
        return [site for country in sorted(set(countries)) for site in self._by_country.get(country, ())]
