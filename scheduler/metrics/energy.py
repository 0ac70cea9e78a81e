"""`EnergyCollector`: estimated energy and emissions of the runs that ended, by country
(issue 16, docs/carbon.md), summed from the store at scrape time. The per-run figures are
written once as each run ends and never change, so the sums only grow: counters. Only the
leader exposes them (as the federation gauges), so a federation's dashboards count once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

Totals = dict[str, tuple[float, float]]  # country -> (kWh, kgCO2e)


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
