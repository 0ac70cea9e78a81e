"""`BrokerMetrics`: the broker's registry, and the counters and histograms its events move.

Labels come from bounded sets only (institution, phase, cause, state, method, code); never a
job id or a user name. Gauges are not here: `federation.FederationCollector` reads them at
scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

from minga.common.domain import Job, Run
from minga.scheduler.store.changes import Changes

# Waits run from seconds to days; cycles and calls from milliseconds to a minute.
WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CYCLE_PHASES = ("expire", "charge", "dependencies", "snapshot", "decide", "persist", "publish")
CYCLE_OUTCOMES = ("ok", "store_unavailable", "not_leading", "error")


WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "refused")


class BrokerMetrics:
    """One broker's registry, with the event metrics registered in it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = Counter(
            "minga_rpcs", "gRPC calls finished, by method and status code.", ["method", "code"], registry=r
        )
        self.rpc_seconds = Histogram(
            "minga_rpc_duration_seconds",
            "Time to answer a unary gRPC call.",
            ["method"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.cycles = Counter("minga_cycles", "Scheduling cycles run, by outcome.", ["outcome"], registry=r)
        self.cycle_seconds = Histogram(
            "minga_cycle_duration_seconds", "Time one whole scheduling cycle took.", buckets=FAST_BUCKETS, registry=r
        )
        self.phase_seconds = Histogram(
            "minga_cycle_phase_duration_seconds",
            "Time each phase of a scheduling cycle took.",
            ["phase"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.wait_seconds = Histogram(
            "minga_job_wait_seconds",
            "Time from a job's submit to its placement on a site (a requeued job counts from its submit).",
            ["institution"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.placements = Counter(
            "minga_placements", "Runs the cycle placed, by institution.", ["institution"], registry=r
        )
        self.preemptions = Counter(
            "minga_preemptions", "Runs preempted, by cause (the policy's rule).", ["cause"], registry=r
        )
        self.preempted_gpu_seconds = Counter(
            "minga_preemption_lost_gpu_seconds",
            "GPU-seconds of running work that preempted runs lose, by cause.",
            ["cause"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "minga_jobs_finished",
            "Jobs that reached an end state, by state and institution.",
            ["state", "institution"],
            registry=r,
        )
        self.store_errors = Counter(
            "minga_store_errors", "Database operations that failed as unavailable, by where.", ["where"], registry=r
        )
        self.webhook_deliveries = Counter(
            "minga_webhook_deliveries",
            "Job webhook posts by outcome: delivered, retried (failed, tried again later), failed "
            "(gave up), refused (host not on the allow-list, never contacted).",
            ["outcome"],
            registry=r,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels(outcome)  # every series from the start, at 0
        self.leadership_changes = Counter(
            "minga_leadership_changes", "Times this broker took the lead or stepped down.", ["change"], registry=r
        )
        for phase in CYCLE_PHASES:
            self.phase_seconds.labels(phase)
        for outcome in CYCLE_OUTCOMES:
            self.cycles.labels(outcome)
        for where in ("cycle", "rpc"):
            self.store_errors.labels(where)
        for change in ("took_lead", "stepped_down"):
            self.leadership_changes.labels(change)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase of a cycle (real time: what the work cost, not the injected clock)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds.labels(name).observe(time.perf_counter() - start)

    def placed(self, job: Job, now: float) -> None:
        self.placements.labels(job.institution).inc()
        self.wait_seconds.labels(job.institution).observe(max(0.0, now - job.submitted_at))

    def preempted(self, cause: str, run: Run | None, now: float) -> None:
        self.preemptions.labels(cause or "other").inc()
        if run is not None and run.running_since:
            self.preempted_gpu_seconds.labels(cause or "other").inc(run.gpus * max(0.0, now - run.running_since))

    def committed(self, changes: Changes) -> None:
        """A store observer: count the jobs a commit ended (never raises)."""
        for job in changes.jobs.values():
            if job.state.terminal:
                self.jobs_finished.labels(job.state.value, job.institution).inc()
