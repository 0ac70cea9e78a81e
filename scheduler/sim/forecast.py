"""When will each pending job start: the simulator's engine run forward from a snapshot.

The broker's own policy is played on simulated time from the state of one cycle, by the
same `Engine` the simulator uses, under stated assumptions (`assumptions`): every live run
ends at its walltime (from its start), or after `default_walltime` when it has none; every
job placed in the forecast runs its walltime (or the default); nothing new arrives, no site
joins, leaves or changes. The answer is an estimate, never a promise.

Its cost is bounded: at most `max_cycles` simulated cycles, up to `horizon` seconds ahead;
a job not started by then is "later than" the time the forecast reached. Usage and
contribution evolve as the engine evolves them (decay, charging), so the fair-share order
moves as it would.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from minga.common.domain import Job, JobSpec, JobState, Resources, Run, StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.sim.engine import Engine, Policy, _Live
from minga.scheduler.sim.federation import Federation
from minga.scheduler.sim.metrics import Recorder
from minga.scheduler.sim.workload import SimJob

DEFAULT_WALLTIME = 24 * 3600.0  # a run or job with no walltime is assumed to take this long
HORIZON = 7 * 86400.0  # the forecast looks no further ahead
MAX_CYCLES = 30  # nor runs more simulated cycles
STEP_RATIO = 0.25  # an estimate's precision: about a quarter of how far ahead it is ...
FIRST_STEP = 30.0  # ... and never finer than this


@dataclass(frozen=True)
class Limits:
    """What a forecast assumes and how far it may go."""

    cycle_seconds: float = FIRST_STEP  # the grid's first step (its only one when step_ratio is 0)
    # Further ahead the grid coarsens by this ratio a step, so far-off ends are played
    # together and the cycles' cost buys a long look; 0: the plain grid, as the simulator.
    step_ratio: float = STEP_RATIO
    default_walltime: float = DEFAULT_WALLTIME
    horizon: float = HORIZON
    max_cycles: int = MAX_CYCLES

    def assumptions(self) -> str:
        return (
            f"running jobs end at their walltime ({_span(self.default_walltime)} when they have none); "
            "nothing new is submitted; no site joins, leaves or changes; "
            f"looked {_span(self.horizon)} or {self.max_cycles} scheduling cycles ahead"
            + (f", to within {self.step_ratio:.0%} of the time ahead" if self.step_ratio else "")
        )


def _span(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    return f"{seconds / 3600:g} h" if seconds % 3600 == 0 else f"{seconds:g} s"


class _Starts(Recorder):
    """Only the first start of each job asked about: what a forecast needs, without the
    metrics' cost."""

    def __init__(self, wanted: Mapping[str, object]) -> None:  # no fairness metrics here
        self.wanted = wanted
        self.first: dict[str, float] = {}

    def arrived(self, sj: SimJob, now: float) -> None:
        pass

    def started(self, run: Run, sj: SimJob, now: float, site_owner: str, delay: float = 0.0) -> None:
        if run.job_id in self.wanted:  # leased then (behind a notice, it runs `delay` later)
            self.first.setdefault(run.job_id, now)

    def completed(self, run: Run, now: float) -> None:
        pass

    def preempted(self, run: Run, now: float) -> None:
        pass

    def rejected(self, sj: SimJob) -> None:
        pass

    def segment(self, t0: float, t1: float) -> None:
        pass

    def finish(self, now: float, stuck: list[str]) -> None:
        pass


class _ForecastEngine(Engine):
    """The engine, started from a broker's snapshot instead of an empty federation."""

    def __init__(self, base: Snapshot, now: float, policy: Policy, limits: Limits, running: Mapping[str, Job]) -> None:
        fed = Federation(
            sites=base.sites,
            institutions=base.institutions,
            settings=base.settings,
            cycle_seconds=limits.cycle_seconds,
            country_weights=base.country_weights,
        )
        self.originals = {j.id: j for j in base.pending}
        self.starts = _Starts(self.originals)
        super().__init__(fed, (), policy, recorder=self.starts)
        self.base, self.now, self.start = base, now, now
        self.step_ratio = limits.step_ratio
        self.until, self.max_cycles = now + limits.horizon, limits.max_cycles
        self.known = {r.job_id: running.get(r.job_id) or _job_of(r) for r in base.live_runs} | self.originals
        self.jobs = {j.id: _sim_job(j, limits.default_walltime) for j in self.known.values()}
        self.pending = dict(self.originals)
        self.usage = {p.id: 0.0 for p in base.projects} | dict(base.usage)
        self.usage_rate = dict.fromkeys(self.usage, 0.0)
        self.contribution = {i.slug: i.contribution * 3600.0 for i in base.institutions}
        for run in base.live_runs:
            self._hold(run, max(run.started_at + (run.walltime_seconds or limits.default_walltime), now))
        heapq.heapify(self.ends)

    def _hold(self, run: Run, end: float) -> None:
        key = (run.site, run.gpu_model)
        self.pool_used[key] = self.pool_used.get(key, 0) + run.gpus
        self.usage_rate[run.project] = self.usage_rate.get(run.project, 0.0) + run.gpus * self.model_weight.get(
            run.gpu_model, 1.0
        )
        self.live[run.id] = _Live(run, end)
        self.ends.append((end, run.id))

    def snapshot(self) -> Snapshot:
        insts = tuple(
            replace(i, contribution=self.contribution.get(i.slug, 0.0) / 3600.0) for i in self.base.institutions
        )
        return replace(
            self.base,
            live_runs=tuple(lv.run for lv in self.live.values()),
            pending=tuple(self.pending.values()),
            institutions=insts,
            usage=tuple(sorted(self.usage.items())),
            columns=None,  # the leader's packed columns describe the base's queue only
        )

    def _point(self, t: float, after: bool) -> float:
        """The first point of the forecast's grid at (or, `after`, past) `t`. The grid is
        geometric from `now` (`Limits.step_ratio`): its first step is `cycle_seconds`, and
        each later one that ratio longer, so far-off ends are played together and a bounded
        number of cycles looks days ahead. Ratio 0: the simulator's plain grid."""
        r = self.step_ratio
        if r <= 0:
            return super()._after(t) if after else super()._grid(t)
        base = self.cycle / r
        k = max(math.ceil(math.log1p(max(t - self.start, 0.0) / base) / math.log1p(r) - 1e-9), 0)
        while (p := self.start + base * ((1 + r) ** k - 1)) < t or (after and p <= t):
            k += 1
        return p

    def _grid(self, t: float) -> float:
        return self._point(t, after=False)

    def _after(self, t: float) -> float:
        return self._point(t, after=True)

    def requeued(self, run: Run) -> Job:
        return replace(self.known[run.job_id], state=JobState.PENDING, attempts=run.epoch)

    def finished(self) -> bool:
        """Every job asked about has started or can never run (a requeued one may still wait)."""
        ended = sum(j in self.originals for j in self.rejected)  # rare: never-fitting jobs
        return len(self.starts.first) + ended >= len(self.originals)

    def _grace_wakeup(self) -> float:
        """Also the first grid point at which a requeued job's backoff (`not_before`) ends."""
        backoff = min((j.not_before for j in self.pending.values() if j.not_before > self.now), default=math.inf)
        return min(super()._grace_wakeup(), self._grid(backoff) if backoff < math.inf else math.inf)


def _job_of(run: Run) -> Job:
    """A live run's job as far as the run tells it (when the caller has not the job itself):
    if preempted, it waits again for the same GPUs, in the queue from its start."""
    res = Resources(gpus=run.gpus, gpu_models=(run.gpu_model,), cpus=run.cpus)
    spec = JobSpec("", resources=res, walltime_seconds=run.walltime_seconds, project=run.project)
    spec = replace(spec, preemptible=run.preemptible)
    return Job(run.job_id, spec, JobState.PENDING, "", run.institution, run.started_at, attempts=run.epoch)


def _sim_job(job: Job, default_walltime: float) -> SimJob:
    """The engine's view of a pending job: its walltime is its duration."""
    res = job.spec.resources
    duration = float(job.spec.walltime_seconds or default_walltime)
    return SimJob(job.id, job.institution, job.submitted_at, duration, res.gpus, res.gpu_models, job.spec.name)


def forecast(
    snapshot: Snapshot,
    now: float,
    policy: Policy,
    limits: Limits = Limits(),
    running: Mapping[str, Job] | None = None,
) -> dict[str, StartEstimate]:
    """Each pending job of `snapshot` -> its estimated start. A job the policy finds can
    never run gets none. The first simulated cycle is the one at `now`, so a job that
    cycle places is estimated to start at `now`. `running`: the jobs of the live runs, by
    id, where the caller has them (a preempted one is queued again as it was)."""
    engine = _ForecastEngine(snapshot, now, policy, limits, running or {})
    engine.run(first_cycle=now)
    rejected = set(engine.rejected)
    # Left pending: the forecast stopped at a bound (later than where it stopped), or ran
    # out of events with the job still waiting (on nothing the forecast changes).
    capped = engine.cycles >= engine.max_cycles
    reached = engine.now if capped else engine.until
    stuck = not capped and not engine.ends and engine._grace_wakeup() == math.inf
    text = limits.assumptions()
    out: dict[str, StartEstimate] = {}
    for job_id in engine.originals:
        if job_id in engine.starts.first:
            out[job_id] = StartEstimate(at=engine.starts.first[job_id], assumptions=text)
        elif job_id not in rejected:
            out[job_id] = StartEstimate(later_than=0.0 if stuck else reached, assumptions=text)
    return out
