"""`EnergyCollector`: estimated energy and emissions of the runs that ended, by country
(issue 16, docs/carbon.md). The per-run figures are written once as each run ends and
never change, so the sums only grow: counters. `RunningTotals` keeps them in memory and,
at each scrape, adds only the rows written since the last one (a watermark on the rows'
write order), so a scrape costs the new rows, not the whole history. Only the leader
exposes them (as the federation gauges), so a federation's dashboards count once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

Totals = dict[str, tuple[float, float]]  # country -> (kWh, kgCO2e)


class Increment(Protocol):
    """What the store answers (`CarbonRepo.energy_since`): sums over the rows after a watermark."""

    @property
    def by_country(self) -> Totals: ...

    @property
    def upto(self) -> int: ...


class RunningTotals:
    """Totals by country over every ended run, read incrementally: the first read sums
    every row, each later one adds the rows written after the previous read's watermark."""

    def __init__(self, since: Callable[[int], Increment]) -> None:
        self._since = since
        self._lock = threading.Lock()  # scrapes may overlap
        self._totals: Totals = {}
        self._upto = 0

    def read(self) -> Totals:
        with self._lock:
            got = self._since(self._upto)
            for country, (kwh, kg) in got.by_country.items():
                have_kwh, have_kg = self._totals.get(country, (0.0, 0.0))
                self._totals[country] = (have_kwh + kwh, have_kg + kg)
            self._upto = got.upto
            return dict(self._totals)


class EnergyCollector(Collector):
    """`totals()` is None while this broker does not lead."""

    def __init__(self, totals: Callable[[], Totals | None]) -> None:
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        totals = self._totals()
        if totals is None:
            return
        kwh = CounterMetricFamily(
            "minga_energy_kwh", "Estimated energy of the runs that ended, in kWh.", labels=["country"]
        )
        kg = CounterMetricFamily(
            "minga_emissions_kgco2e", "Estimated emissions of the runs that ended, in kg CO2e.", labels=["country"]
        )
        for country, (energy, emissions) in sorted(totals.items()):
            kwh.add_metric([country or "unknown"], energy)
            kg.add_metric([country or "unknown"], emissions)
        yield kwh
        yield kg
