"""`AgentMetrics`: the agent's Prometheus registry (`--metrics-listen`, docs/metrics.md):
whether its Ray cluster answers, its runs by state, and how long starts take on Ray.
Labels are run states only; never a run or job id."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minga.common.domain import RunState

START_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
SUBMITTING = "SUBMITTING"  # a run Ray has not accepted yet (a submit in flight, or a refusal to retry)
RUN_STATES = (SUBMITTING, *(s.value for s in RunState))


class AgentMetrics:
    """One agent's registry; `watch` adds the gauges read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ray_reachable = Gauge(
            "minga_agent_ray_reachable", "1 if the last probe of this site's Ray cluster answered, else 0.", registry=r
        )
        self.submit_seconds = Histogram(
            "minga_agent_ray_submit_duration_seconds",
            "Time Ray's job API took to accept a run's submission.",
            buckets=START_BUCKETS,
            registry=r,
        )
        self.start_seconds = Histogram(
            "minga_agent_run_start_duration_seconds",
            "Time from the broker's StartRun to the run's first RUNNING on Ray.",
            buckets=START_BUCKETS,
            registry=r,
        )

    def watch(self, runs: Callable[[], Mapping[str, int]], connected: Callable[[], bool]) -> None:
        self.registry.register(_AgentCollector(runs, connected))


class _AgentCollector(Collector):
    def __init__(self, runs: Callable[[], Mapping[str, int]], connected: Callable[[], bool]) -> None:
        self._runs = runs
        self._connected = connected

    def collect(self) -> Iterator[Metric]:
        counts = self._runs()
        runs = GaugeMetricFamily("minga_agent_runs", "Runs this agent tracks, by state.", labels=["state"])
        for state in RUN_STATES:
            runs.add_metric([state], counts.get(state, 0))
        yield runs
        connected = GaugeMetricFamily("minga_agent_connected", "1 while a broker has welcomed this agent, else 0.")
        connected.add_metric([], 1.0 if self._connected() else 0.0)
        yield connected
