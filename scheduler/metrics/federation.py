"""`FederationCollector`: the broker's gauges, read at scrape time from the leader's federation
in memory (`minga.scheduler.state`), so they cost nothing between scrapes and always agree
with each other. A standby, or a leader whose state is being rebuilt, shows only `minga_leader`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minga.common.clock import Clock
from minga.common.domain import Job, Site, SiteState
from minga.common.snapshot import Snapshot
from minga.scheduler.leases import SiteLeases
from minga.scheduler.policy.fairshare import project_usage
from minga.scheduler.policy.guarantees import quota_rows
from minga.scheduler.policy.share_now import snapshot_share_now
from minga.scheduler.state import FederationState

# A waiting reason's category: the word before its colon ("capacity: waiting for 4 free GPUs").
# Anything else is "other", and a reason no cycle has written yet is "new": a bounded label.
REASONS = frozenset(
    {
        "capacity", "lending", "quota", "reservation", "array", "model", "memory", "label", "country",
        "connecting", "runtime", "requeued", "preempted", "rejected", "reclaim", "fair share",
    }
)  # fmt: skip


def reason_category(reason: str) -> str:
    if not reason:
        return "new"
    word = reason.split(":", 1)[0].strip()
    return word if word in REASONS else "other"


@dataclass(frozen=True)
class Source:
    """What a scrape reads: the leader's state, its leases, and the clock."""

    state: FederationState
    leases: SiteLeases
    clock: Clock


class FederationCollector(Collector):
    """Gauges of the whole federation; `source()` is None while this broker does not lead."""

    def __init__(self, leading: Callable[[], bool], source: Callable[[], Source | None]) -> None:
        self._leading = leading
        self._source = source

    def collect(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily("minga_leader", "1 while this broker leads (runs the cycle), else 0.")
        leader.add_metric([], 1.0 if self._leading() else 0.0)
        yield leader
        source = self._source() if self._leading() else None
        if source is None or source.state.stale:
            return
        now = source.clock.now()
        snapshot = source.state.snapshot(now)
        yield from _pending(source.state.pending_jobs())
        yield from _running(snapshot)
        yield from _shares(snapshot)
        yield from _sites(snapshot, source.leases, now)


def _gauge(name: str, doc: str, labels: list[str], values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values:
        family.add_metric(list(key), value)
    return family


def _pending(jobs: list[Job]) -> Iterator[Metric]:
    count: Counter[tuple[str, str]] = Counter()
    gpus: Counter[tuple[str, str]] = Counter()
    for job in jobs:
        key = (job.institution, reason_category(job.reason))
        count[key] += 1
        gpus[key] += job.spec.resources.gpus
    labels = ["institution", "reason"]
    yield _gauge("minga_pending_jobs", "Pending jobs, by institution and waiting reason.", labels, count.items())
    yield _gauge(
        "minga_pending_gpus", "GPUs pending jobs ask for, by institution and waiting reason.", labels, gpus.items()
    )


def _running(snapshot: Snapshot) -> Iterator[Metric]:
    count: Counter[tuple[str, str]] = Counter()
    gpus: Counter[tuple[str, str]] = Counter()
    for run in snapshot.live_runs:
        count[(run.institution, run.site)] += 1
        gpus[(run.institution, run.site)] += run.gpus
    labels = ["institution", "site"]
    doc = "Live runs (leased, starting or running), by institution and site."
    yield _gauge("minga_running_jobs", doc, labels, count.items())
    yield _gauge("minga_running_gpus", "GPUs live runs hold, by institution and site.", labels, gpus.items())


def _shares(snapshot: Snapshot) -> Iterator[Metric]:
    _, now = snapshot_share_now(snapshot)
    slugs = sorted({i.slug for i in snapshot.institutions} | set(now.shares.institution))
    held = now.held_by_institution()
    usage: dict[str, float] = defaultdict(float)
    for pid, value in project_usage(snapshot).items():
        usage[pid.split("/", 1)[0]] += value
    share = now.shares.institution
    yield _gauge(
        "minga_institution_fair_share_gpus",
        "Each institution's fair share of the federation now, in GPUs (weighted max-min over demand).",
        ["institution"],
        (((s,), share.get(s, 0.0)) for s in slugs),
    )
    yield _gauge("minga_institution_held_gpus", "GPUs each institution's live runs hold.", ["institution"],
                 (((s,), held.get(s, 0.0)) for s in slugs))  # fmt: skip
    yield _gauge(
        "minga_institution_decayed_usage_gpu_seconds",
        "Each institution's decayed usage: model-normalized GPU-seconds, halved every half-life.",
        ["institution"],
        (((s,), usage.get(s, 0.0)) for s in slugs),
    )
    capacity = GaugeMetricFamily("minga_federation_capacity_gpus", "GPUs that can hold runs now.")
    capacity.add_metric([], float(now.capacity))
    yield capacity
    error = GaugeMetricFamily(
        "minga_fairness_error_ratio",
        "Sum of the shortfalls of institutions below their fair share, as a fraction of capacity (0: fair).",
    )
    error.add_metric([], now.fairness_error())
    yield error
    rows = quota_rows(snapshot)
    labels = ["institution", "gpu_model"]
    yield _gauge("minga_institution_guaranteed_gpus", "GPUs guaranteed to each institution, by model.", labels,
                 (((q.institution, q.model), q.guarantee) for q in rows))  # fmt: skip
    yield _gauge("minga_institution_borrowed_gpus", "GPUs each institution holds beyond its guarantee, by model.",
                 labels, (((q.institution, q.model), q.borrowed) for q in rows))  # fmt: skip
    yield _gauge("minga_institution_lent_gpus", "GPUs on each institution's sites held by others, by model.",
                 labels, (((q.institution, q.model), q.lent) for q in rows))  # fmt: skip


def _sites(snapshot: Snapshot, leases: SiteLeases, now: float) -> Iterator[Metric]:
    states = Counter(s.state for s in snapshot.sites)
    yield _gauge("minga_sites", "Sites, by state.", ["state"], (((st.value,), states.get(st, 0)) for st in SiteState))
    used: Counter[tuple[str, str]] = Counter()
    for run in snapshot.live_runs:
        used[(run.site, run.gpu_model)] += run.gpus
    gpus: list[tuple[tuple[str, ...], float]] = []
    for site in snapshot.sites:
        for pool in site.inventory.gpus:
            taken = used.get((site.name, pool.model), 0)
            gpus.append(((site.name, pool.model, "used"), taken))
            gpus.append(((site.name, pool.model, "free"), max(0, pool.total - taken)))
    yield _gauge("minga_site_gpus", "GPUs of each site, by model and state (used: held by a live run).",
                 ["site", "gpu_model", "state"], gpus)  # fmt: skip
    yield _gauge(
        "minga_site_last_report_age_seconds",
        "Seconds since each site last reported to this broker.",
        ["site"],
        (((s.name,), max(0.0, now - _last_report(s, leases))) for s in snapshot.sites),
    )


def _last_report(site: Site, leases: SiteLeases) -> float:
    renewed = leases.renewed_at(site.name)
    return max(site.last_seen, renewed or 0.0)
