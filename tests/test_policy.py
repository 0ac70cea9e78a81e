"""Placement and waiting examples for the pure policy (scheduler/policy/)."""

from __future__ import annotations

import pytest

from minga.common.domain import (
    GpuPool,
    Inventory,
    Job,
    JobSpec,
    JobState,
    Resources,
    Run,
    Site,
    SiteState,
)
from minga.scheduler.policy import Decisions, Placement, Snapshot, Waiting, schedule
from minga.scheduler.policy.feasibility import submit_rejection

NOW = 1_700_000_000.0


def pool(model="A100", total=8, memory_mb=81_920, largest_node=0) -> GpuPool:
    return GpuPool(model=model, memory_mb=memory_mb, total=total, free=total, largest_node=largest_node)


def site(name, *pools, country="CL", cpus=64.0, state=SiteState.READY, connected=True, institution="uchile") -> Site:
    return Site(
        name=name,
        institution=institution,
        country=country,
        state=state,
        connected=connected,
        inventory=Inventory(gpus=tuple(pools), cpus=cpus, memory_mb=256_000, nodes=1),
    )


def job(jid, gpus=1, models=(), min_mem=0, cpus=1.0, countries=(), submitted=0.0, priority=0) -> Job:
    spec = JobSpec(
        entrypoint="python train.py",
        resources=Resources(gpus=gpus, gpu_models=tuple(models), min_gpu_memory_mb=min_mem, cpus=cpus),
        countries=tuple(countries),
        priority=priority,
    )
    return Job(
        id=jid, spec=spec, state=JobState.PENDING, owner="ana", institution="uchile", submitted_at=NOW + submitted
    )


def run(rid, site_name, model, gpus, cpus=1.0) -> Run:
    return Run(id=rid, job_id="other-" + rid, site=site_name, epoch=1, gpu_model=model, gpus=gpus, cpus=cpus)


def decide(sites, pending, runs=()) -> Decisions:
    return schedule(Snapshot(sites=tuple(sites), live_runs=tuple(runs), pending=tuple(pending)), NOW)


def placed(decisions: Decisions) -> dict[str, Placement]:
    return {p.job_id: p for p in decisions.placements}


def waiting(decisions: Decisions) -> dict[str, Waiting]:
    return {w.job_id: w for w in decisions.waiting}


# -- placement constraints ----------------------------------------------------------


def test_single_job_is_placed_with_its_request():
    d = decide([site("a", pool("A100", 8))], [job("j1", gpus=2, cpus=4)])
    assert d.placements == (Placement("j1", "a", "A100", 2, 4.0),)
    assert d.waiting == ()


def test_all_gpus_come_from_one_site():
    """Two sites with 2 free each cannot together hold a 3-GPU job."""
    d = decide([site("a", pool("A100", 2)), site("b", pool("A100", 2))], [job("j1", gpus=3)])
    assert d.placements == ()
    w = waiting(d)["j1"]
    assert w.reason.startswith("capacity:") and w.never_fits


def test_all_gpus_come_from_one_pool():
    """A site with 2 A100 and 2 H100 cannot hold a 3-GPU job: no mixing models."""
    d = decide([site("a", pool("A100", 2), pool("H100", 2))], [job("j1", gpus=3)])
    assert d.placements == ()
    assert waiting(d)["j1"].never_fits


def test_allowed_models_are_honoured():
    sites = [site("a", pool("T4", 8, memory_mb=16_000)), site("b", pool("H100", 4))]
    d = decide(sites, [job("j1", gpus=2, models=["H100"])])
    assert placed(d)["j1"].site == "b" and placed(d)["j1"].gpu_model == "H100"


def test_allowed_models_any_of_several():
    sites = [site("a", pool("T4", 8, memory_mb=16_000)), site("b", pool("L4", 2, memory_mb=24_000))]
    d = decide(sites, [job("j1", gpus=2, models=["H100", "L4"])])
    assert (placed(d)["j1"].site, placed(d)["j1"].gpu_model) == ("b", "L4")


def test_min_gpu_memory_is_honoured():
    sites = [site("a", pool("T4", 8, memory_mb=16_000)), site("b", pool("A100", 4, memory_mb=81_920))]
    d = decide(sites, [job("j1", gpus=2, min_mem=40_000)])
    assert placed(d)["j1"].site == "b"


def test_min_gpu_memory_within_one_site_picks_the_right_pool():
    s = site("a", pool("T4", 8, memory_mb=16_000), pool("A100", 4, memory_mb=81_920))
    d = decide([s], [job("j1", gpus=2, min_mem=40_000)])
    assert placed(d)["j1"].gpu_model == "A100"


def test_allowed_countries_are_honoured():
    sites = [site("cl", pool("A100", 2), country="CL"), site("br", pool("A100", 8), country="BR")]
    d = decide(sites, [job("j1", gpus=2, countries=["BR"])])
    assert placed(d)["j1"].site == "br"
    d = decide(sites, [job("j2", gpus=2, countries=["AR", "CL"])])
    assert placed(d)["j2"].site == "cl"


def test_best_fit_takes_the_tightest_pool():
    """A 2-GPU job goes where it leaves the fewest GPUs idle: the site with 2 free, not 8."""
    sites = [site("big", pool("A100", 8)), site("small", pool("A100", 2))]
    d = decide(sites, [job("j1", gpus=2)])
    assert placed(d)["j1"].site == "small"
    # Same rule whichever order the sites come in.
    assert placed(decide(list(reversed(sites)), [job("j1", gpus=2)]))["j1"].site == "small"


def test_best_fit_counts_free_gpus_not_totals():
    """The big site is mostly busy: 2 free there beats 4 free on an idle small one."""
    sites = [site("big", pool("A100", 8)), site("small", pool("A100", 4))]
    d = decide(sites, [job("j1", gpus=2)], runs=[run("r1", "big", "A100", 6)])
    assert placed(d)["j1"].site == "big"


def test_best_fit_keeps_the_big_hole_for_the_big_job():
    sites = [site("big", pool("A100", 8)), site("small", pool("A100", 2))]
    d = decide(sites, [job("small-job", gpus=2, submitted=0), job("big-job", gpus=8, submitted=1)])
    assert placed(d)["small-job"].site == "small"
    assert placed(d)["big-job"].site == "big"


@pytest.mark.parametrize(
    ("state", "connected"),
    [
        (SiteState.CORDONED, True),
        (SiteState.LOST, True),
        (SiteState.READY, False),
        (SiteState.CORDONED, False),
    ],
)
def test_sites_that_do_not_accept_runs_get_nothing(state, connected):
    sites = [site("off", pool("A100", 8), state=state, connected=connected)]
    d = decide(sites, [job("j1", gpus=1), job("cpu", gpus=0)])
    assert d.placements == ()
    for w in d.waiting:
        assert not w.never_fits  # it could fit once the site is back
        assert "disconnected, cordoned or lost" in w.reason


def test_cordoned_site_is_skipped_for_a_ready_one():
    sites = [site("a", pool("A100", 2), state=SiteState.CORDONED), site("b", pool("A100", 8))]
    assert placed(decide(sites, [job("j1", gpus=2)]))["j1"].site == "b"


def test_job_bigger_than_largest_node_waits_forever():
    """8 GPUs on a site made of two 4-GPU nodes: the entrypoint runs on one node."""
    d = decide([site("a", pool("A100", 8, largest_node=4))], [job("j1", gpus=6)])
    assert d.placements == ()
    w = waiting(d)["j1"]
    assert w.never_fits and w.reason.startswith("capacity:") and "one node" in w.reason
    # A job that fits on one node is placed.
    assert placed(decide([site("a", pool("A100", 8, largest_node=4))], [job("j2", gpus=4)]))["j2"]


def test_live_runs_use_capacity():
    d = decide([site("a", pool("A100", 8))], [job("j1", gpus=4)], runs=[run("r1", "a", "A100", 6)])
    assert d.placements == ()
    w = waiting(d)["j1"]
    assert not w.never_fits
    assert w.reason.startswith("capacity:") and "most free now: 2" in w.reason


def test_no_gpu_is_promised_twice_within_one_cycle():
    d = decide([site("a", pool("A100", 8))], [job(f"j{i}", gpus=3, submitted=i) for i in range(4)])
    assert [p.job_id for p in d.placements] == ["j0", "j1"]
    assert sum(p.gpus for p in d.placements) <= 8
    assert set(waiting(d)) == {"j2", "j3"}


def test_cpus_are_a_capacity_too():
    d = decide(
        [site("a", pool("A100", 8), cpus=8.0)],
        [job("j1", gpus=1, cpus=6, submitted=0), job("j2", gpus=1, cpus=6, submitted=1)],
    )
    assert list(placed(d)) == ["j1"]
    assert not waiting(d)["j2"].never_fits


# -- queue order ----------------------------------------------------------------


def test_fifo_by_submit_time():
    jobs = [job("late", gpus=4, submitted=10), job("early", gpus=4, submitted=1), job("mid", gpus=4, submitted=5)]
    d = decide([site("a", pool("A100", 8))], jobs)
    assert [p.job_id for p in d.placements] == ["early", "mid"]
    assert list(waiting(d)) == ["late"]


def test_priority_comes_before_submit_time():
    jobs = [job("old", gpus=8, submitted=0), job("urgent", gpus=8, submitted=100, priority=5)]
    d = decide([site("a", pool("A100", 8))], jobs)
    assert [p.job_id for p in d.placements] == ["urgent"]
    assert list(waiting(d)) == ["old"]


def test_ties_are_broken_by_job_id():
    jobs = [job("b", gpus=8), job("a", gpus=8)]
    assert [p.job_id for p in decide([site("s", pool("A100", 8))], jobs).placements] == ["a"]


def test_blocked_big_job_does_not_block_a_smaller_one():
    jobs = [job("big", gpus=8, submitted=0), job("small", gpus=2, submitted=1)]
    d = decide([site("a", pool("A100", 8))], jobs, runs=[run("r1", "a", "A100", 4)])
    assert list(placed(d)) == ["small"]
    assert not waiting(d)["big"].never_fits


def test_never_fitting_job_does_not_block_others():
    jobs = [job("huge", gpus=64, submitted=0), job("ok", gpus=1, submitted=1)]
    d = decide([site("a", pool("A100", 8))], jobs)
    assert list(placed(d)) == ["ok"]
    assert waiting(d)["huge"].never_fits


# -- waiting reasons ----------------------------------------------------------------


def test_reason_country():
    d = decide([site("a", pool("A100", 8), country="CL")], [job("j1", countries=["MX", "BR"])])
    w = waiting(d)["j1"]
    assert w.never_fits and w.reason.startswith("country:")
    assert "MX" in w.reason and "BR" in w.reason


def test_reason_model():
    d = decide([site("a", pool("A100", 8))], [job("j1", models=["H100"])])
    w = waiting(d)["j1"]
    assert w.never_fits and w.reason.startswith("model:") and "H100" in w.reason


def test_reason_model_is_about_allowed_countries_only():
    """The H100 exists, but not where the job may run."""
    sites = [site("cl", pool("A100", 8), country="CL"), site("mx", pool("H100", 8), country="MX")]
    w = waiting(decide(sites, [job("j1", models=["H100"], countries=["CL"])]))["j1"]
    assert w.never_fits and w.reason.startswith("model:")


def test_reason_memory():
    d = decide([site("a", pool("T4", 8, memory_mb=16_000))], [job("j1", min_mem=40_000)])
    w = waiting(d)["j1"]
    assert w.never_fits and w.reason.startswith("memory:") and "40000" in w.reason


def test_reason_capacity_never():
    w = waiting(decide([site("a", pool("A100", 4))], [job("j1", gpus=6)]))["j1"]
    assert w.never_fits and w.reason.startswith("capacity:") and "4" in w.reason


def test_reason_capacity_now():
    d = decide([site("a", pool("A100", 4))], [job("first", gpus=4, submitted=0), job("second", gpus=2, submitted=1)])
    w = waiting(d)["second"]
    assert not w.never_fits and w.reason.startswith("capacity:") and "most free now: 0" in w.reason


def test_reason_cpus_never():
    w = waiting(decide([site("a", pool("A100", 4), cpus=8)], [job("j1", gpus=1, cpus=16)]))["j1"]
    assert w.never_fits and w.reason.startswith("capacity:") and "CPU" in w.reason


def test_never_fits_when_the_only_site_with_the_gpus_lacks_the_cpus():
    """The GPU site has too few CPUs and the CPU site has no GPUs: nothing can ever hold it."""
    sites = [site("gpu", pool("A100", 8), cpus=4), site("cpu", cpus=128)]
    w = waiting(decide(sites, [job("j1", gpus=2, cpus=16)]))["j1"]
    assert w.never_fits
    assert w.reason.startswith("capacity:") and "CPU" in w.reason


def test_no_sites_at_all():
    d = decide([], [job("gpu", gpus=1), job("cpu", gpus=0)])
    assert d.placements == ()
    assert all(w.never_fits for w in d.waiting) and len(d.waiting) == 2


def test_order_of_checks_country_before_model():
    w = waiting(decide([site("a", pool("A100", 8), country="CL")], [job("j1", models=["H100"], countries=["MX"])]))[
        "j1"
    ]
    assert w.reason.startswith("country:")


# -- CPU-only jobs ------------------------------------------------------------------


def test_cpu_only_job_goes_anywhere_with_cpus():
    d = decide([site("gpu", pool("A100", 8), cpus=4), site("cpu", cpus=64)], [job("j1", gpus=0, cpus=8)])
    p = placed(d)["j1"]
    assert p.site == "cpu" and p.gpus == 0 and p.gpu_model == "" and p.cpus == 8.0


def test_cpu_only_job_prefers_the_site_with_fewest_free_gpus():
    """It keeps GPU sites free for GPU jobs."""
    d = decide([site("gpu", pool("A100", 8), cpus=64), site("cpu", cpus=64)], [job("j1", gpus=0)])
    assert placed(d)["j1"].site == "cpu"


def test_cpu_only_job_takes_no_gpus():
    d = decide(
        [site("a", pool("A100", 2), cpus=16)],
        [job("cpu", gpus=0, cpus=1, submitted=0), job("gpu", gpus=2, cpus=1, submitted=1)],
    )
    assert set(placed(d)) == {"cpu", "gpu"}


def test_cpu_only_job_waits_for_cpus():
    d = decide([site("a", cpus=8)], [job("j1", gpus=0, cpus=6, submitted=0), job("j2", gpus=0, cpus=6, submitted=1)])
    assert list(placed(d)) == ["j1"]
    w = waiting(d)["j2"]
    assert not w.never_fits and "CPU" in w.reason


# -- submit rejection -----------------------------------------------------------


def test_submit_rejection_beyond_every_site():
    sites = [site("a", pool("A100", 8)), site("b", pool("A100", 4), pool("T4", 8))]
    reason = submit_rejection(JobSpec("x", resources=Resources(gpus=13)), sites)
    assert reason is not None and "13" in reason and "12" in reason


def test_submit_rejection_accepts_what_the_largest_site_holds():
    sites = [site("a", pool("A100", 8)), site("b", pool("A100", 4), pool("T4", 8))]
    assert submit_rejection(JobSpec("x", resources=Resources(gpus=12)), sites) is None
    assert submit_rejection(JobSpec("x", resources=Resources(gpus=1)), sites) is None


def test_submit_rejection_without_sites():
    reason = submit_rejection(JobSpec("x", resources=Resources(gpus=1)), [])
    assert reason is not None and "no site" in reason


def test_submit_rejection_ignores_cpu_only_jobs():
    assert submit_rejection(JobSpec("x", resources=Resources(gpus=0)), []) is None
    assert submit_rejection(JobSpec("x", resources=Resources(gpus=0, cpus=10_000)), [site("a", cpus=2)]) is None


def test_submit_rejection_counts_cordoned_sites():
    """A cordoned site comes back; its GPUs still count at submit."""
    assert (
        submit_rejection(
            JobSpec("x", resources=Resources(gpus=8)), [site("a", pool("A100", 8), state=SiteState.CORDONED)]
        )
        is None
    )


# -- purity ---------------------------------------------------------------------


def test_schedule_does_not_depend_on_now():
    snap = Snapshot(sites=(site("a", pool("A100", 4)),), live_runs=(), pending=(job("j1", gpus=2), job("j2", gpus=4)))
    assert schedule(snap, NOW) == schedule(snap, NOW + 3600) == schedule(snap, 0.0)
