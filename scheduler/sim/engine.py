"""The discrete-event engine: simulated clock, arrivals, completions, scheduling cycles.

Each cycle it builds a `Snapshot` exactly as the broker's cycle does (sites, live runs,
pending jobs, the account tree with decayed usage and contribution) and hands it to a
policy callable with the signature of `minga.scheduler.policy.schedule`, then applies the
`Decisions`: placements start runs that end after the job's duration; preemptions stop
runs and requeue the job with its attempt count raised and its FULL duration (a Ray job
restarts from scratch), keeping its original submit time.

The preemption notice (`preemption_notice_seconds`: SIGTERM, then this long before
SIGKILL): a preempted run keeps its GPUs busy for the notice, so a job placed on a pool
where a preemption happened in the same cycle starts its useful work only after it. The
engine frees the preempted run's GPUs at once and lets the new run hold them from its
placement, but ends it at now + notice + duration; its wait is counted to the end of the
notice, and the notice's GPU-seconds count as lost to preemption. The GPUs are thus held
by exactly one run at any moment, so the `OverCommitError` check is unchanged.

Cycles run on the grid k * cycle_seconds, at the first grid point at or after anything
that can change a decision: an arrival, a completion, (while jobs are pending) a live
run leaving its preemption grace period, or the cycle after one that preempted (the
per-cycle preemption cap may have left more to do). Between those nothing changes, so the
engine jumps straight to the next event. With `periodic=True` it instead runs a cycle
every `cycle_seconds` while any job is pending, as the broker does (slower; for policies
whose decisions move with `now` alone, such as an age factor).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from minga.common.domain import Job, JobSpec, JobState, Resources, Run, RunState
from minga.scheduler.policy import Decisions, Snapshot
from minga.scheduler.sim.federation import Federation, default_project
from minga.scheduler.sim.metrics import Recorder
from minga.scheduler.sim.workload import SimJob

Policy = Callable[[Snapshot, float], Decisions]


class OverCommitError(AssertionError):
    """A policy placed more GPUs on a pool than it has: invariant 1 broken."""


@dataclass
class _Live:
    run: Run
    end: float


def make_job(sj: SimJob, attempts: int = 0) -> Job:
    spec = JobSpec(
        entrypoint="sim",
        name=sj.name or sj.id,
        resources=Resources(gpus=sj.gpus, gpu_models=sj.models, cpus=0.0),
        walltime_seconds=int(math.ceil(sj.duration)),
        max_attempts=10**6,
        project=default_project(sj.institution),
        low_carbon=sj.low_carbon,
        low_carbon_first=sj.low_carbon_first,
    )
    return Job(
        id=sj.id,
        spec=spec,
        state=JobState.PENDING,
        owner="sim",
        institution=sj.institution,
        submitted_at=sj.arrival,
        attempts=attempts,
    )


class Engine:
    def __init__(
        self,
        fed: Federation,
        jobs: Sequence[SimJob],
        policy: Policy,
        cycle_seconds: float | None = None,
        sample_seconds: float | None = None,
        periodic: bool = False,
        recorder: Recorder | None = None,
    ):
        self.fed, self.policy, self.periodic = fed, policy, periodic
        self.cycle = cycle_seconds or fed.cycle_seconds
        self.jobs = {j.id: j for j in jobs}
        self.arrivals = sorted(jobs, key=lambda j: (j.arrival, j.id))
        self.next_arrival = 0
        self.pending: dict[str, Job] = {}
        self.live: dict[str, _Live] = {}
        self.ends: list[tuple[float, str]] = []
        self.now = 0.0
        self.pool_total = {(s.name, p.model): p.total for s in fed.sites for p in s.inventory.gpus}
        self.pool_used: dict[tuple[str, str], int] = {}
        self.site_owner = {s.name: s.institution for s in fed.sites}
        self.intensity = fed.site_intensity()
        self.model_weight = dict(fed.settings.model_weights)
        hl = fed.settings.half_life_seconds
        self.decay_rate = math.log(2) / hl if hl > 0 else 0.0
        self.usage: dict[str, float] = {p.id: 0.0 for p in fed.projects}
        self.usage_rate: dict[str, float] = dict.fromkeys(self.usage, 0.0)
        # Contribution starts at its steady state, as in a federation up for many half-lives
        # (rate constant: it then stays there).
        self.contribution: dict[str, float] = {i.slug: 0.0 for i in fed.institutions} | fed.steady_contribution()
        self.contribution_rate = {
            slug: sum(n * self.model_weight.get(m, 1.0) for m, n in d.items()) for slug, d in fed.own_gpus().items()
        }
        self.rec = recorder or Recorder(fed, sample_seconds=sample_seconds)
        self.cycles = 0
        self.max_cycles = math.inf  # bounds on a run (a forecast's cost): no cycle past either
        self.until = math.inf
        self.rejected: list[str] = []
        self.notice = max(fed.settings.preemption_notice_seconds, 0.0)
        self._noticed: set[tuple[str, str]] = set()  # pools with a preemption in this cycle

    # ---- time ---------------------------------------------------------------------------
    def _advance(self, t: float) -> None:
        if t <= self.now:
            return
        dt = t - self.now
        self.rec.segment(self.now, t)
        k = math.exp(-self.decay_rate * dt)
        grow = (1 - k) / self.decay_rate if self.decay_rate else dt  # integral of the decay over dt
        for p, rate in self.usage_rate.items():
            self.usage[p] = self.usage[p] * k + rate * grow
        for i, rate in self.contribution_rate.items():
            self.contribution[i] = self.contribution.get(i, 0.0) * k + rate * grow
        self.now = t

    def _grid(self, t: float) -> float:
        return math.ceil(t / self.cycle - 1e-9) * self.cycle

    def _after(self, t: float) -> float:
        """The next cycle after one at `t` with no event between."""
        return t + self.cycle

    # ---- events -------------------------------------------------------------------------
    def _arrive(self, sj: SimJob) -> None:
        job = make_job(sj)
        self.pending[job.id] = job
        self.rec.arrived(sj, self.now)

    def _complete(self, run_id: str) -> None:
        live = self.live.pop(run_id, None)
        if live is None:
            return  # preempted earlier; this end is stale (a rerun has a new run id)
        self._release(live.run)
        self.rec.completed(live.run, self.now)

    def _release(self, run: Run) -> None:
        key = (run.site, run.gpu_model)
        self.pool_used[key] -= run.gpus
        self.usage_rate[run.project] -= run.gpus * self.model_weight.get(run.gpu_model, 1.0)

    # ---- the cycle ----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        s = self.fed.settings
        insts = tuple(
            replace(i, contribution=self.contribution.get(i.slug, 0.0) / 3600.0) for i in self.fed.institutions
        )
        return Snapshot(
            sites=self.fed.sites,
            live_runs=tuple(lv.run for lv in self.live.values()),
            pending=tuple(self.pending.values()),
            institutions=insts,
            projects=self.fed.projects,
            usage=tuple(sorted(self.usage.items())),
            country_weights=self.fed.country_weights,
            settings=s,
            intensity=self.intensity,
        )

    def run_cycle(self) -> Decisions:
        self.cycles += 1
        decisions = self.policy(self.snapshot(), self.now)
        self._noticed = set()
        for pre in decisions.preemptions:
            self._preempt(pre.run_id)
        for pl in decisions.placements:
            self._place(pl.job_id, pl.site, pl.gpu_model, pl.gpus, pl.cpus)
        self._noticed = set()
        for w in decisions.waiting:
            if w.never_fits and w.job_id in self.pending:
                del self.pending[w.job_id]
                self.rejected.append(w.job_id)
                self.rec.rejected(self.jobs[w.job_id])
        return decisions

    def _preempt(self, run_id: str) -> None:
        live = self.live.pop(run_id, None)
        if live is None:
            return
        self._release(live.run)
        if self.notice > 0:
            self._noticed.add((live.run.site, live.run.gpu_model))
        self.pending[live.run.job_id] = self.requeued(live.run)
        self.rec.preempted(live.run, self.now)

    def requeued(self, run: Run) -> Job:
        """The pending job a preempted run leaves: the whole job again, its attempts raised."""
        return make_job(self.jobs[run.job_id], attempts=run.epoch)

    def _place(self, job_id: str, site: str, model: str, gpus: int, cpus: float) -> None:
        job = self.pending.pop(job_id)
        key = (site, model)
        used = self.pool_used.get(key, 0) + gpus
        if used > self.pool_total.get(key, 0):
            raise OverCommitError(f"{job_id}: {used} GPUs on {key}, which has {self.pool_total.get(key, 0)}")
        self.pool_used[key] = used
        sj = self.jobs[job_id]
        run = Run(
            id=f"{job_id}-{job.attempts + 1}",
            job_id=job_id,
            site=site,
            epoch=job.attempts + 1,
            gpu_model=model,
            gpus=gpus,
            cpus=cpus,
            state=RunState.RUNNING,
            institution=job.institution,
            project=job.spec.project,
            owner=job.owner,
            started_at=self.now,
            preemptible=job.spec.preemptible,
            walltime_seconds=job.spec.walltime_seconds,
        )
        delay = self.notice if key in self._noticed else 0.0  # behind a preempted run's notice
        end = self.now + delay + sj.duration
        self.live[run.id] = _Live(run, end)
        heapq.heappush(self.ends, (end, run.id))
        self.usage_rate[run.project] += gpus * self.model_weight.get(model, 1.0)
        self.rec.started(run, sj, self.now, self.site_owner[site], delay=delay)

    def _grace_wakeup(self) -> float:
        """The first grid point at which a live run leaves its grace period (pending jobs only)."""
        if not self.pending:
            return math.inf
        if self.periodic:
            return self.now + self.cycle
        grace = self.fed.settings.preemption_grace_seconds
        soonest = min(
            (lv.run.started_at + grace for lv in self.live.values() if lv.run.started_at + grace > self.now),
            default=math.inf,
        )
        return self._grid(soonest) if soonest < math.inf else math.inf

    # ---- the loop -----------------------------------------------------------------------
    def finished(self) -> bool:
        """Whether the run may stop before its events run out (a forecast: every job started)."""
        return False

    def run(self, first_cycle: float = math.inf) -> Recorder:
        """Play the events; with `first_cycle`, a cycle then (a forecast's, at its `now`).
        Stops when nothing is left, at `until`, after `max_cycles`, or when `finished()`."""
        next_cycle = first_cycle
        while not self.finished():
            t_arr = self.arrivals[self.next_arrival].arrival if self.next_arrival < len(self.arrivals) else math.inf
            t_end = self.ends[0][0] if self.ends else math.inf
            t = min(t_arr, t_end, next_cycle)
            if t == math.inf or t > self.until or (next_cycle <= t and self.cycles >= self.max_cycles):
                break
            self._advance(t)
            if t_end == t:
                while self.ends and self.ends[0][0] <= t:
                    self._complete(heapq.heappop(self.ends)[1])
                next_cycle = min(next_cycle, self._grid(t))
            if t_arr == t:
                while self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival].arrival <= t:
                    self._arrive(self.arrivals[self.next_arrival])
                    self.next_arrival += 1
                next_cycle = min(next_cycle, self._grid(t))
            if next_cycle <= t:
                decisions = self.run_cycle()
                next_cycle = self._grace_wakeup()
                if decisions.preemptions and self.pending:
                    # A preemption cap may have left work for the next cycle, with no event.
                    next_cycle = min(next_cycle, self._after(t))
                if next_cycle <= t:
                    next_cycle = self._after(t)
        self.rec.finish(self.now, stuck=list(self.pending))
        return self.rec
