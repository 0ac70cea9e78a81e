"""The broker's Prometheus metrics (docs/metrics.md): counters and histograms updated where
events happen (`events`, `rpc`), gauges read from the leader's federation in memory at
scrape time (`federation`). The policy never imports this package."""

from minga.scheduler.metrics.events import BrokerMetrics

__all__ = ["BrokerMetrics"]
