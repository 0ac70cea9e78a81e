"""The start estimate (`scheduler/sim/forecast.py`) against what the simulator then does.

Where every job runs exactly its walltime and nothing arrives after the snapshot, the
forecast's assumptions hold, so each pending job's estimate must equal the start the
simulator gives it (within one cycle)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from minga.common.domain import GpuPool, Inventory, Run, RunState, Site
from minga.scheduler.policy import Decisions, InstitutionShare, ShareSettings, Snapshot, schedule
from minga.scheduler.sim.engine import Engine, make_job
from minga.scheduler.sim.federation import Federation
from minga.scheduler.sim.forecast import Limits, forecast
from minga.scheduler.sim.workload import SimJob, synthetic

CYCLE = 30.0


def _site(name: str, inst: str, gpus: int, model: str, country: str) -> Site:
    return Site(
        name=name,
        institution=inst,
        country=country,
        connected=True,
        inventory=Inventory(gpus=(GpuPool(model, 0, gpus, gpus, gpus),), cpus=256.0),
    )


def _federation() -> Federation:
    sites = (
        _site("cl-1", "uchile", 8, "A100", "CL"),
        _site("ar-1", "uba", 4, "A100", "AR"),
        _site("br-1", "usp", 8, "H100", "BR"),
    )
    insts = tuple(
        InstitutionShare(slug, country, weight)
        for slug, country, weight in (
            ("uchile", "CL", 1.0),
            ("uba", "AR", 2.0),
            ("usp", "BR", 1.0),
            ("unam", "MX", 1.0),
        )
    )
    return Federation(sites=sites, institutions=insts, settings=ShareSettings(), cycle_seconds=CYCLE)


def _workload(seed: int) -> list[SimJob]:
    """A contended burst: every job arrives in the first few minutes, durations whole seconds
    (so the walltime the engine gives each job is exactly its duration)."""
    fed = _federation()
    jobs = synthetic(80, [(i.slug, i.weight) for i in fed.institutions], ["A100", "H100"], fed.capacity, seed, load=4.0)
    return [replace(j, arrival=min(j.arrival, 240.0), duration=float(math.ceil(j.duration))) for j in jobs]


class _Watch:
    """The policy, recording each cycle's input and each job's first placement."""

    def __init__(self) -> None:
        self.calls: list[tuple[Snapshot, float]] = []
        self.first: dict[str, float] = {}

    def __call__(self, snap: Snapshot, now: float) -> Decisions:
        self.calls.append((snap, now))
        decisions = schedule(snap, now)
        for p in decisions.placements:
            self.first.setdefault(p.job_id, now)
        return decisions


def test_further_ahead_the_grid_coarsens_to_the_stated_fraction():
    fed = _federation()
    snap = replace(fed.policy_snapshot(), sites=fed.sites[:1])
    run = Run("held-1", "held", "cl-1", 1, "A100", 8, 0.0, RunState.RUNNING, "uba", "uba/default", 0.0, True, 36000)
    waiting = replace(snap, live_runs=(run,), pending=(make_job(SimJob("next", "usp", 1.0, 100.0, 8, ("A100",))),))
    est = forecast(waiting, 0.0, schedule, Limits(cycle_seconds=CYCLE, step_ratio=0.25))["next"]
    assert 36000.0 <= est.at <= 36000.0 * 1.25
    assert "to within 25% of the time ahead" in est.assumptions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_estimate_is_what_the_simulator_then_does(seed):
    fed, jobs = _federation(), _workload(seed)
    watch = _Watch()
    Engine(fed, jobs, watch).run()
    last_arrival = max(j.arrival for j in jobs)
    # A cycle after the last arrival, with work still pending and runs to wait for.
    snap, now = next((s, t) for s, t in watch.calls if t > last_arrival and len(s.pending) > 5)
    after = {}
    for s, t in watch.calls:  # each pending job's first placement from that cycle on
        if t >= now:
            for j in schedule(s, t).placements:
                after.setdefault(j.job_id, t)
    running = {j.id: make_job(j) for j in jobs}
    limits = Limits(cycle_seconds=CYCLE, max_cycles=10**6, horizon=10**9, step_ratio=0.0)
    estimates = forecast(snap, now, schedule, limits, running)
    assert set(estimates) == {j.id for j in snap.pending}
    assert snap.live_runs, "the snapshot must hold runs whose ends the forecast predicts"
    for job in snap.pending:
        est = estimates[job.id]
        assert est.at > 0, (job.id, est)
        assert abs(est.at - after[job.id]) <= CYCLE, (job.id, est.at, after[job.id])
    # Not only the cycle's own placements: some jobs wait for runs to end.
    assert max(e.at for e in estimates.values()) > now + CYCLE


def test_a_bound_says_later_than_where_it_stopped():
    fed, jobs = _federation(), _workload(1)
    watch = _Watch()
    Engine(fed, jobs, watch).run()
    snap, now = next((s, t) for s, t in watch.calls if t > 240.0 and len(s.pending) > 5)
    estimates = forecast(snap, now, schedule, Limits(cycle_seconds=CYCLE, max_cycles=2))
    late = [e for e in estimates.values() if not e.at]
    assert late and all(e.later_than >= now for e in late)
    assert "walltime" in late[0].assumptions and "2 scheduling cycles" in late[0].assumptions


def test_a_run_without_walltime_ends_at_the_stated_default():
    fed = _federation()
    snap = replace(fed.policy_snapshot(), sites=fed.sites[:1])
    jobs = [SimJob("held", "uba", 0.0, 100.0, 8, ("A100",)), SimJob("next", "usp", 1.0, 100.0, 8, ("A100",))]
    placed = schedule(replace(snap, pending=(make_job(jobs[0]),)), 0.0).placements[0]
    run = Run("held-1", "held", placed.site, 1, "A100", 8, 0.0, RunState.RUNNING, "uba", "uba/default", 0.0)
    waiting = replace(snap, live_runs=(run,), pending=(make_job(jobs[1]),))
    limits = Limits(cycle_seconds=CYCLE, default_walltime=3600.0, step_ratio=0.0)
    est = forecast(waiting, 10.0, schedule, limits)["next"]
    assert est.at == pytest.approx(3600.0, abs=CYCLE)
    assert "1 h when they have none" in est.assumptions
