"""What the simulator measures, and the fairness yardstick it measures against.

- The optimum (the fair share now): the policy's own `max_min.tree_fill` over the
  federation's account tree (`Federation.tree()`, built by the policy's `build_tree`:
  country weights explicit or the sum of their institutions', institution weights as the
  share policy defines them), with each institution's guarantee (`guarantees.guarantees`,
  summed over models) as its floor: weighted max-min over the current demands (GPUs of
  running plus pending jobs) at the country level, then within each country. It treats the
  federation as one pool of GPUs: model constraints and one-site gangs are ignored by it.
  Computed once per distinct demand vector.
- `share_deviation`: over contended periods (total demand above capacity), the
  time-average of 1/2 * sum_i |achieved_i - optimum_i| / capacity: the fraction of the
  federation's GPUs held by the wrong institution. `share_deviation_flat` measures against
  the plain weighted water-filling over institutions (`water_fill`: no tree, no guarantees).
- `jain`: Jain's fairness index (Jain, Chiu & Hawe 1984) of r_i = achieved GPU-time /
  optimum GPU-time over the contended periods, for every institution with an optimum > 0.
- `time_to_fair_share`: an episode opens when an institution's demand goes from 0 to > 0
  and closes when it holds at least 90% of its fair share now (the optimum above, which is
  its demand when nobody contends; recomputed as demands change), or its whole-GPU part when
  that is less (a share of 2.67 GPUs is reached with 2). An episode whose demand drops to 0
  first ends then; one still open at the end of the simulation is counted until the end.
  Reported: episodes, p50 and max of their lengths (all episodes), and `never`: those that
  ended or were cut without reaching the share.
- `utilization`: busy GPU-time / the GPU-time that could have been busy, i.e. the integral
  of busy GPUs over the integral of min(capacity, demand), where demand is the GPUs of
  running plus pending jobs: 1.0 is perfectly work-conserving, and idle GPUs count against
  a policy only while someone wanted them. `utilization_capacity`: busy GPU-time over
  capacity * makespan (first arrival to last completion).
- waits: first start - arrival, p50/p95/max overall and by job size (1, 2-4, 8+ GPUs); a
  job never started waited until the simulation's end.
- preemptions, and GPU-hours lost: GPUs * time run before the preemption, plus the GPUs *
  notice of every run placed behind a preempted run's notice (held, not useful);
  `lost_fraction`: that over the busy GPU-hours (every GPU-hour a run held).
- energy and emissions (`sim/carbon.py`, the broker's formulas): every run is charged
  GPUs x W x hours held x PUE, times its site's country intensity, when it completes or
  is preempted (work lost to a preemption used energy too); `intensity_g_per_kwh` is
  emissions over energy. `cohort_*`: the same for the jobs of the cohort the recorder was
  given (the jobs that opt in to low-carbon placement in a variant), whether or not they
  opted in on this run, so a run where nobody opts in measures the same jobs.
- `owner_reclaim_max_s`: the longest wait of a job submitted while it was clearly within its
  institution's guarantee (own sites' GPUs, or the explicit guarantee): for some guaranteed
  model m the job may use, the GPUs the institution holds on m plus all its pending GPUs
  (this job's included) fit in its guarantee on m, and a pool of its guarantee of model m
  has a node big enough for the job.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minga.scheduler.policy.guarantees import guarantees
from minga.scheduler.policy.max_min import tree_fill, water_fill
from minga.scheduler.policy.share_now import guarantee_floors

if TYPE_CHECKING:
    from minga.common.domain import Run
    from minga.scheduler.sim.federation import Federation
    from minga.scheduler.sim.workload import SimJob


def jain(values: Sequence[float]) -> float:
    vals = [v for v in values]
    if not vals:
        return 1.0
    sq = sum(v * v for v in vals)
    return (sum(vals) ** 2) / (len(vals) * sq) if sq > 0 else 1.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return float(s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))])


def reached_share(held: float, share: float) -> bool:
    """Holds 90% of `share`, or its whole-GPU part (at least one GPU) when that is less."""
    return held + 1e-9 >= min(0.9 * share, max(math.floor(share + 1e-9), 1.0))


@dataclass
class Energy:
    """Energy and emissions summed over runs."""

    kwh: float = 0.0
    kg: float = 0.0

    def add(self, kwh: float, kg: float) -> None:
        self.kwh += kwh
        self.kg += kg

    def summary(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}energy_kwh": round(self.kwh, 3),
            f"{prefix}emissions_kgco2e": round(self.kg, 3),
            f"{prefix}intensity_g_per_kwh": round(1000 * self.kg / self.kwh, 2) if self.kwh else 0.0,
        }


def size_class(gpus: int) -> str:
    return "1" if gpus <= 1 else "2-4" if gpus <= 4 else "8+"


class Recorder:
    """Fed by the engine; integrates the piecewise-constant state between events."""

    def __init__(self, fed: Federation, sample_seconds: float | None = None, cohort: Collection[str] | None = None):
        self.capacity = fed.capacity
        self.tree = fed.tree()
        self.weights = fed.entitlements()
        self.project = {slug: next(iter(p), f"{slug}/default") for slug, p in self.tree.projects.items()}
        self.tree_floor = guarantee_floors(guarantees(fed.policy_snapshot())[0])
        self.country = {i.slug: i.country for i in fed.institutions}
        self.guarantee = fed.guarantees()
        # Per institution, the (model, largest node) of the pools its guarantee lives on: its
        # own sites, or for an explicit guarantee every site of a guaranteed model.
        own = {i.slug for i in fed.institutions if not i.guarantee}
        self.guarantee_pools: dict[str, set[tuple[str, int]]] = {i: set() for i in self.guarantee}
        for site in fed.sites:
            for p in site.inventory.gpus:
                for inst, g in self.guarantee.items():
                    if (inst in own and site.institution == inst) or (inst not in own and p.model in g):
                        self.guarantee_pools[inst].add((p.model, min(p.total, p.largest_node or p.total)))
        self.floor = {i: float(sum(g.values())) for i, g in self.guarantee.items()}
        self.flat_integral = 0.0
        self.share_s: dict[str, float] = dict.fromkeys(self.weights, 0.0)  # fair share x time, while wanting
        self.held_s: dict[str, float] = dict.fromkeys(self.weights, 0.0)  # held x time, while wanting
        self.wanting_s: dict[str, float] = dict.fromkeys(self.weights, 0.0)  # time with demand > 0
        self._wanting: set[str] = set()
        self._episode: dict[str, float] = {}  # institution -> start of its open episode
        self.episodes: list[tuple[float, bool]] = []  # (length, reached its fair share)
        self.running: dict[str, int] = dict.fromkeys(self.weights, 0)
        self.pending: dict[str, int] = dict.fromkeys(self.weights, 0)
        self.held: dict[tuple[str, str], int] = {}  # (institution, model) -> GPUs its runs hold
        self.achieved: dict[str, float] = dict.fromkeys(self.weights, 0.0)
        self.optimum: dict[str, float] = dict.fromkeys(self.weights, 0.0)
        self.contended_s = 0.0
        self.deviation_integral = 0.0
        self.busy_total = 0.0
        self.servable = 0.0
        self._last_key: tuple[tuple[str, float], ...] = ()
        self._last_opt: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self.first_arrival: float | None = None
        self.last_arrival = 0.0
        self.end = 0.0
        self.last_completion = 0.0
        self.arrival_at: dict[str, float] = {}
        self.size: dict[str, int] = {}
        self.waits: dict[str, float] = {}
        self.reclaim_jobs: set[str] = set()
        self.preemptions = 0
        self.lost_gpu_s = 0.0
        self.notice_gpu_s = 0.0
        self.rejected_jobs = 0
        self.stuck: list[str] = []
        self.sample_seconds = sample_seconds or 0.0
        self.next_sample = 0.0
        self.series: list[tuple[float, dict[str, int]]] = []
        self.carbon = fed.carbon
        self.site_country = {s.name: s.country for s in fed.sites}
        self.cohort = None if cohort is None else frozenset(cohort)  # None: no cohort to report
        self.energy = Energy()
        self.cohort_energy = Energy()

    # ---- events -------------------------------------------------------------------------
    def arrived(self, sj: SimJob, now: float) -> None:
        if self.first_arrival is None:
            self.first_arrival = now
        self.last_arrival = now
        self.arrival_at[sj.id], self.size[sj.id] = now, sj.gpus
        self.pending[sj.institution] += sj.gpus
        # Within the guarantee, conservatively: for some guaranteed model m it may use, what
        # the institution holds on m plus ALL its pending GPUs (this job's included) fit in
        # its guarantee on m, and one pool of m in its guarantee can hold the job.
        i = sj.institution
        g = self.guarantee.get(i, {})
        if any(
            (not sj.models or m in sj.models)
            and m in g
            and most >= sj.gpus
            and self.held.get((i, m), 0) + self.pending[i] <= g[m]
            for m, most in self.guarantee_pools.get(i, ())
        ):
            self.reclaim_jobs.add(sj.id)

    def started(self, run: Run, sj: SimJob, now: float, site_owner: str, delay: float = 0.0) -> None:
        """`delay`: the notice of a preempted run the new one holds GPUs behind (no useful work)."""
        self.pending[run.institution] -= run.gpus
        self.running[run.institution] += run.gpus
        self._hold(run, run.gpus)
        self.waits.setdefault(run.job_id, now + delay - self.arrival_at[run.job_id])
        self.lost_gpu_s += run.gpus * delay
        self.notice_gpu_s += run.gpus * delay

    def _hold(self, run: Run, gpus: int) -> None:
        key = (run.institution, run.gpu_model)
        self.held[key] = self.held.get(key, 0) + gpus

    def completed(self, run: Run, now: float) -> None:
        self.running[run.institution] -= run.gpus
        self._hold(run, -run.gpus)
        self.last_completion = now
        self._charge(run, now)

    def _charge(self, run: Run, now: float) -> None:
        """The run's energy and emissions, from its start to `now` (`sim/carbon.py`)."""
        kwh, kg = self.carbon.charge(run.gpus, run.gpu_model, now - run.started_at, self.site_country[run.site])
        self.energy.add(kwh, kg)
        if self.cohort is not None and run.job_id in self.cohort:
            self.cohort_energy.add(kwh, kg)

    def preempted(self, run: Run, now: float) -> None:
        self.running[run.institution] -= run.gpus
        self._hold(run, -run.gpus)
        self.pending[run.institution] += run.gpus
        self.preemptions += 1
        self.lost_gpu_s += run.gpus * (now - run.started_at)
        self._charge(run, now)

    def rejected(self, sj: SimJob) -> None:
        self.pending[sj.institution] -= sj.gpus
        self.rejected_jobs += 1
        self.reclaim_jobs.discard(sj.id)

    def segment(self, t0: float, t1: float) -> None:
        dt = t1 - t0
        busy = sum(self.running.values())
        self.busy_total += busy * dt
        if self.sample_seconds and t0 >= self.next_sample:
            by_country: dict[str, int] = {}
            for i, x in self.running.items():
                by_country[self.country[i]] = by_country.get(self.country[i], 0) + x
            self.series.append((t0, by_country))
            self.next_sample = t0 + self.sample_seconds
        demand: dict[str, float] = {i: r + self.pending[i] for i, r in self.running.items() if r or self.pending[i]}
        total = sum(demand.values())
        self.servable += min(total, self.capacity) * dt
        contended = total > self.capacity
        # Institutions without demand hold nothing and are owed nothing: left out.
        key = tuple(demand.items())
        if key != self._last_key:
            self._last_key = key
            self._last_opt = self._optimum(demand) if contended else (demand, demand)
        opt, flat = self._last_opt
        self._episodes(t0, demand, opt)
        for i, a in opt.items():
            self.share_s[i] += a * dt
            self.held_s[i] += self.running[i] * dt
            self.wanting_s[i] += dt
        if not contended:
            return
        self.contended_s += dt
        dev = dev_flat = 0.0
        for i, a in opt.items():
            x = self.running[i]
            self.achieved[i] += x * dt
            self.optimum[i] += a * dt
            dev += abs(x - a)
            dev_flat += abs(x - flat[i])
        self.deviation_integral += dt * dev / (2 * self.capacity)
        self.flat_integral += dt * dev_flat / (2 * self.capacity)

    def _optimum(self, demand: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """The hierarchical optimum (`tree_fill` with guarantees as floors) and the flat one."""
        by_project = {self.project.get(i, f"{i}/default"): d for i, d in demand.items()}
        shares = tree_fill(self.tree, self.capacity, by_project, self.tree_floor).institution
        return ({i: shares.get(i, 0.0) for i in demand}, water_fill(demand, self.weights, self.capacity))

    def _episodes(self, t: float, demand: Mapping[str, float], share: Mapping[str, float]) -> None:
        """Open, close or end the time-to-fair-share episodes for the state from `t` on."""
        for i in self._wanting - demand.keys():
            if i in self._episode:  # its demand dropped to 0 before it reached its share
                self.episodes.append((t - self._episode.pop(i), False))
        for i in demand.keys() - self._wanting:
            self._episode.setdefault(i, t)
        self._wanting = set(demand)
        for i in [i for i in self._episode if i in share and reached_share(self.running[i], share[i])]:
            self.episodes.append((t - self._episode.pop(i), True))

    def finish(self, now: float, stuck: list[str]) -> None:
        self.end = max(self.last_completion, self.last_arrival) if not stuck else now
        self.stuck = stuck
        demand: dict[str, float] = {i: r + self.pending[i] for i, r in self.running.items() if r or self.pending[i]}
        self._episodes(now, demand, self._optimum(demand)[0] if demand else {})
        for _, start in sorted(self._episode.items()):  # never reached: counted until the end
            self.episodes.append((now - start, False))
        self._episode.clear()

    # ---- results ------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        cap = self.capacity
        start = self.first_arrival or 0.0
        makespan = self.end - start
        ratios = [self.achieved[i] / self.optimum[i] for i in self.optimum if self.optimum[i] > 0]
        # A job still pending at the end (static quotas can strand one) waited until the end.
        all_waits = dict(self.waits)
        for j in self.stuck:
            all_waits.setdefault(j, self.end - self.arrival_at[j])
        waits = list(all_waits.values())
        by_size: dict[str, list[float]] = {}
        for j, w in all_waits.items():
            by_size.setdefault(size_class(self.size[j]), []).append(w)
        reclaim = [self.waits[j] for j in self.reclaim_jobs if j in self.waits]
        return {
            "utilization": round(self.busy_total / self.servable, 4) if self.servable > 0 else 0.0,
            "utilization_capacity": round(self.busy_total / (cap * makespan), 4) if makespan > 0 and cap else 0.0,
            "share_deviation": round(self.deviation_integral / self.contended_s, 4) if self.contended_s else 0.0,
            "share_deviation_flat": round(self.flat_integral / self.contended_s, 4) if self.contended_s else 0.0,
            "jain": round(jain(ratios), 4),
            "wait_p50_s": round(percentile(waits, 50), 1),
            "wait_p95_s": round(percentile(waits, 95), 1),
            "wait_max_s": round(max(waits, default=0.0), 1),
            "wait_by_size": {
                k: {
                    "jobs": len(v),
                    "p50_s": round(percentile(v, 50), 1),
                    "p95_s": round(percentile(v, 95), 1),
                    "max_s": round(max(v), 1),
                }
                for k, v in sorted(by_size.items())
            },
            "preemptions": self.preemptions,
            "gpu_hours_lost": round(self.lost_gpu_s / 3600, 4),
            "lost_fraction": round(self.lost_gpu_s / self.busy_total, 4) if self.busy_total > 0 else 0.0,
            "notice_gpu_hours": round(self.notice_gpu_s / 3600, 4),
            "time_to_fair_share_episodes": len(self.episodes),
            "time_to_fair_share_p50_s": round(percentile([x for x, _ in self.episodes], 50), 1),
            "time_to_fair_share_max_s": round(max((x for x, _ in self.episodes), default=0.0), 1),
            "time_to_fair_share_never": sum(1 for _, ok in self.episodes if not ok),
            "owner_reclaim_max_s": round(max(reclaim, default=0.0), 1),
            "contended_s": round(self.contended_s, 1),
            "makespan_s": round(makespan, 1),
            "jobs_started": len(self.waits),
            "jobs_rejected": self.rejected_jobs,
            "jobs_stuck": len(self.stuck),
            **self.energy.summary(""),
            **(self.cohort_energy.summary("cohort_") if self.cohort is not None else {}),
        }

    def institution_shares(self) -> dict[str, dict[str, float]]:
        """Per institution: GPU-hours achieved vs the optimum over contended periods, the mean
        GPUs it held and was owed (its fair share now) over them, and the same means over the
        time it wanted GPUs (contended or not)."""
        c = self.contended_s
        return {
            i: {
                "achieved_gpu_h": round(self.achieved[i] / 3600, 3),
                "optimum_gpu_h": round(self.optimum[i] / 3600, 3),
                "held_contended_gpus": round(self.achieved[i] / c, 3) if c else 0.0,
                "fair_contended_gpus": round(self.optimum[i] / c, 3) if c else 0.0,
                "held_mean_gpus": round(self.held_s[i] / self.wanting_s[i], 3) if self.wanting_s[i] else 0.0,
                "fair_mean_gpus": round(self.share_s[i] / self.wanting_s[i], 3) if self.wanting_s[i] else 0.0,
                "wanting_s": round(self.wanting_s[i], 1),
            }
            for i in sorted(self.achieved)
            if self.achieved[i] or self.optimum[i] or self.wanting_s[i]
        }
