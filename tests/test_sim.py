"""The simulator: trace rules, the fairness yardstick, the engine, and `minga sim --output json`."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minga.common.domain import GpuPool, Inventory, Site
from minga.scheduler.policy import Decisions, InstitutionShare, Placement, Preemption, ShareSettings, Snapshot
from minga.scheduler.policy import schedule as minga_schedule
from minga.scheduler.policy.max_min import water_fill
from minga.scheduler.sim import workload
from minga.scheduler.sim.baselines import POLICIES, classic_factors, fifo, slurm_classic, static
from minga.scheduler.sim.engine import Engine, OverCommitError
from minga.scheduler.sim.federation import Federation, load
from minga.scheduler.sim.metrics import jain, percentile
from minga.scheduler.sim.workload import SimJob

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO.parent / "shared" / "traces"
POD_TRACE = TRACES / "alibaba-openb-2023" / "openb_pod_list_gpuspec33.csv"
needs_traces = pytest.mark.skipif(not POD_TRACE.exists(), reason="../shared/traces is not here")

# Seven rows of openb_pod_list_gpuspec33.csv, selected as the FIRST row in file order of each
# kind: CPU-only (num_gpu 0), fractional (gpu_milli < 1000), 8-GPU gang, a gpu_spec with a
# repeated model, a plain 1-GPU task, a task longer than 2 days, a 4-GPU gang.
ROWS = """name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
openb-pod-0005,20000,65536,0,0,,LS,Running,2759674,12902960,2759676
openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061
openb-pod-0017,88000,327680,8,1000,G2,Burstable,Succeeded,9437497,10769854,9437497
openb-pod-0527,3152,5600,1,1000,V100M16|V100M32|V100M32,BE,Pending,10218024,10218029,
openb-pod-0026,16000,32768,1,1000,,LS,Running,9924220,9964972,9924222
openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0
openb-pod-2182,32200,132096,4,1000,V100M16|V100M32,LS,Failed,10793686,10800396,10793686
"""


def _site(name: str, inst: str, gpus: int, model: str = "G2", country: str = "CL") -> Site:
    return Site(
        name=name,
        institution=inst,
        country=country,
        connected=True,
        inventory=Inventory(gpus=(GpuPool(model, 0, gpus, gpus, gpus),), cpus=64.0),
    )


def _fed(sites: tuple[Site, ...], insts: tuple[InstitutionShare, ...], **settings) -> Federation:
    return Federation(
        sites=sites, institutions=insts, cycle_seconds=30.0, settings=ShareSettings(policy="static", **settings)
    )


# ---- trace rules ---------------------------------------------------------------------------


def test_trace_rules_on_checked_in_rows(tmp_path):
    path = tmp_path / "pods.csv"
    path.write_text(ROWS)
    jobs = workload.read_trace(path, [("a", 1.0), ("b", 3.0)])
    by_name = {j.name: j for j in jobs}
    assert "openb-pod-0005" not in by_name  # CPU-only: skipped
    assert by_name["openb-pod-0001"].gpus == 1  # 460 milli -> one whole GPU
    assert by_name["openb-pod-0017"].gpus == 8 and by_name["openb-pod-0017"].models == ("G2",)
    assert by_name["openb-pod-0527"].models == ("V100M16", "V100M32")  # split on |, deduplicated
    assert by_name["openb-pod-0527"].duration == 5.0
    assert by_name["openb-pod-0026"].duration == 9964972 - 9924220
    assert by_name["openb-pod-0000"].duration == workload.DEFAULT_MAX_DURATION  # capped at 2 days
    assert by_name["openb-pod-2182"].gpus == 4
    # Arrival order, shifted to 0, ids in that order.
    assert [j.name for j in jobs][0] == "openb-pod-0000" and jobs[0].arrival == 0
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    assert all(a.arrival <= b.arrival for a, b in pairwise(jobs))
    # --jobs N keeps the last N GPU tasks.
    assert [j.name for j in workload.read_trace(path, [("a", 1.0)], jobs=2)] == ["openb-pod-0527", "openb-pod-2182"]


def test_institution_mapping_is_a_stable_weighted_hash():
    picker = workload.InstitutionPicker([("a", 1.0), ("b", 3.0)])
    assert picker.pick(0.0) == "a" and picker.pick(0.24) == "a" and picker.pick(0.26) == "b"
    assert picker.pick(0.999999) == "b"
    names = [f"openb-pod-{k:04d}" for k in range(4000)]
    share_b = sum(picker.pick(workload.name_fraction(n)) == "b" for n in names) / len(names)
    assert 0.72 < share_b < 0.78
    assert workload.name_fraction("openb-pod-0001") == workload.name_fraction("openb-pod-0001")


def test_scale_to_load_hits_the_offered_load():
    jobs = [SimJob(f"j{k}", "a", arrival=k * 1000.0, duration=500.0, gpus=2) for k in range(200)]
    scaled, f = workload.scale_to_load(jobs, capacity=4, load=1.5)
    assert workload.mean_demand(scaled, 1.0) == pytest.approx(6.0, rel=0.02)
    assert f < 1


def test_synthetic_is_seeded():
    w = [("a", 1.0), ("b", 2.0)]
    one = workload.synthetic(500, w, ["G2", "T4"], 64, seed=7)
    assert one == workload.synthetic(500, w, ["G2", "T4"], 64, seed=7)
    assert one != workload.synthetic(500, w, ["G2", "T4"], 64, seed=8)
    assert {j.gpus for j in one} <= {1, 2, 4, 8}


# ---- the yardstick -------------------------------------------------------------------------


def test_water_fill_hand_computed():
    # Equal weights, 12 GPUs: b's 2 is below the level, a and c split the other 10.
    assert water_fill({"a": 10, "b": 2, "c": 10}, {"a": 1, "b": 1, "c": 1}, 12) == {"a": 5, "b": 2, "c": 5}
    # Weights 2:1 on 9 GPUs: 6 and 3.
    assert water_fill({"a": 10, "b": 10}, {"a": 2, "b": 1}, 9) == pytest.approx({"a": 6, "b": 3})
    # No contention: everyone gets its demand.
    assert water_fill({"a": 3, "b": 1}, {"a": 1, "b": 5}, 10) == {"a": 3, "b": 1}
    # A capped institution's leftover goes to the others by weight: 1 + 3 + 6 = 10.
    assert water_fill({"a": 1, "b": 10, "c": 10}, {"a": 1, "b": 1, "c": 2}, 10) == pytest.approx(
        {"a": 1, "b": 3, "c": 6}
    )


def test_jain_index_and_percentiles():
    assert jain([1, 1, 1]) == 1.0
    assert jain([1, 0, 0]) == pytest.approx(1 / 3)
    assert jain([1, 2]) == pytest.approx(0.9)
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([5, 1, 3, 2, 4], 100) == 5
    assert percentile([], 95) == 0.0


# ---- the engine ----------------------------------------------------------------------------


def _flood() -> tuple[Federation, list[SimJob]]:
    """a floods a 4-GPU federation at t=0; b asks for 4 GPUs one second later. The site's
    owner o submits nothing, so nobody's guarantee is in play."""
    fed = _fed(
        (_site("s1", "o", 4),),
        (InstitutionShare("a", "CL", 1.0), InstitutionShare("b", "AR", 1.0), InstitutionShare("o", "PE", 1.0)),
    )
    jobs = [SimJob(f"j{k:03d}", "a", 0.0, 100.0, 1) for k in range(12)]
    jobs += [SimJob(f"j{k:03d}", "b", 1.0, 100.0, 1) for k in range(12, 16)]
    return fed, jobs


def test_fifo_is_measurably_unfair_and_the_metrics_show_it():
    fed, jobs = _flood()
    f = Engine(fed, jobs, fifo).run().summary()
    s = Engine(fed, jobs, slurm_classic).run().summary()
    # FIFO: b gets nothing until a's 12 jobs are done (t=300), while its fair share is 2 of 4.
    assert f["share_deviation"] > 0.3 and f["jain"] < 0.8
    assert f["wait_max_s"] >= 299
    # Slurm-classic's 2^(-U/S) puts b first as soon as GPUs free up.
    assert s["share_deviation"] < f["share_deviation"] and s["jain"] > f["jain"]
    # Busy but for the cycle latency: runs end at 100, 200, 300; the next cycles are at 120, 210, 300.
    assert 0.8 < f["utilization"] < 1.0 and f["preemptions"] == 0


def test_classic_factor_prefers_the_unused():
    fed, _ = _flood()
    snap = Snapshot(
        sites=fed.sites,
        live_runs=(),
        pending=(),
        institutions=fed.institutions,
        projects=fed.projects,
        usage=(("a/default", 100.0),),
    )
    f = classic_factors(snap)
    assert f["b"] == 1.0 and f["a"] == pytest.approx(2**-3)  # U = 1, S = 1/3


def test_static_caps_at_the_guarantee():
    fed = _fed(
        (_site("s1", "a", 4), _site("s2", "b", 4)), (InstitutionShare("a", "CL", 1.0), InstitutionShare("b", "AR", 1.0))
    )
    jobs = [SimJob(f"j{k:03d}", "a", 0.0, 100.0, 1) for k in range(8)]
    m = Engine(fed, jobs, static).run().summary()
    # a never borrows b's idle GPUs: two waves of 4 (the second starts at the cycle at 120).
    assert m["makespan_s"] == pytest.approx(220.0) and m["wait_max_s"] == pytest.approx(120.0)
    assert Engine(fed, jobs, fifo).run().summary()["makespan_s"] == pytest.approx(100.0)


def test_same_seed_same_metrics():
    fed = _fed(
        (_site("s1", "a", 8), _site("s2", "b", 4, "T4")),
        (
            InstitutionShare("a", "CL", 2.0),
            InstitutionShare("b", "AR", 1.0),
            InstitutionShare("c", "PE", 1.0, guarantee=(("G2", 2),)),
        ),
    )
    w = [(i.slug, i.weight) for i in fed.institutions]
    for name in ("minga", "fifo", "slurm-classic", "static"):
        runs = [
            Engine(fed, workload.synthetic(300, w, ["G2", "T4"], 12, seed=3), POLICIES[name]).run().summary()
            for _ in range(2)
        ]
        assert runs[0] == runs[1]


def test_preemption_requeues_with_full_duration():
    fed = _fed((_site("s1", "a", 2),), (InstitutionShare("a", "CL", 1.0),))
    calls = {"n": 0}

    def policy(snap: Snapshot, now: float) -> Decisions:
        calls["n"] += 1
        if snap.live_runs and calls["n"] == 2:  # preempt the one run at the second cycle
            r = snap.live_runs[0]
            return Decisions(preemptions=(Preemption(r.id, r.job_id, r.site, "test"),))
        return fifo(snap, now)

    # The second arrival, at t=30, makes the second cycle, which preempts j000's run.
    jobs = [SimJob("j000", "a", 0.0, 100.0, 2), SimJob("j001", "a", 30.0, 10.0, 1)]
    eng = Engine(fed, jobs, policy)
    m = eng.run().summary()
    assert m["preemptions"] == 1
    assert m["gpu_hours_lost"] == pytest.approx(2 * 30 / 3600, abs=1e-4)
    assert m["jobs_stuck"] == 0 and eng.now >= 30 + 100  # rerun from scratch: full 100 s


def test_over_commit_is_caught():
    fed = _fed((_site("s1", "a", 2),), (InstitutionShare("a", "CL", 1.0),))

    def greedy(snap: Snapshot, now: float) -> Decisions:
        return Decisions(placements=tuple(Placement(j.id, "s1", "G2", 2, 0.0) for j in snap.pending))

    with pytest.raises(OverCommitError):
        Engine(fed, [SimJob("j0", "a", 0.0, 50.0, 2), SimJob("j1", "a", 0.0, 50.0, 2)], greedy).run()


def test_minga_policy_runs_in_the_engine_without_over_commit():
    fed, jobs = _flood()
    m = Engine(fed, jobs, minga_schedule).run().summary()
    assert m["jobs_started"] == len(jobs) and m["jobs_stuck"] == 0


# ---- the example federation and the command -------------------------------------------------


@needs_traces
def test_example_federation_is_reproducible_from_the_traces():
    from minga.scheduler.sim import make_federation as mf

    committed = (REPO / "examples" / "latam-federation.toml").read_text()
    assert mf.render(mf.build(TRACES)) == committed
    fed = load(REPO / "examples" / "latam-federation.toml")
    assert len({i.country for i in fed.institutions}) == 19
    owners = {s.institution for s in fed.sites}
    gpuless = [i for i in fed.institutions if i.slug not in owners]
    assert len(gpuless) == 19 and all(i.guarantee for i in gpuless)
    assert sum(n for i in gpuless for _, n in i.guarantee) <= 0.1 * fed.capacity


@needs_traces
def test_minga_sim_json_shape():
    from minga.cli.main import app

    res = CliRunner().invoke(app, ["sim", "--jobs", "300", "--output", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["policies"]) == {"minga", "fifo", "slurm-classic", "static"}
    for m in out["policies"].values():
        for key in (
            "utilization",
            "share_deviation",
            "jain",
            "wait_p50_s",
            "wait_p95_s",
            "wait_max_s",
            "preemptions",
            "owner_reclaim_max_s",
        ):
            assert isinstance(m[key], (int, float)), key
    assert out["workload"]["jobs"] == 300


def test_minga_sim_synthetic_writes_csv(tmp_path):
    from minga.cli.main import app

    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[settings]\npolicy = "static"\n[[institutions]]\nslug = "a"\ncountry = "CL"\n'
        '[[institutions]]\nslug = "b"\ncountry = "AR"\nguarantee = { G2 = 2 }\n'
        '[[sites]]\nname = "s1"\ninstitution = "a"\ncountry = "CL"\nmodel = "G2"\ngpus = 8\n'
    )
    csv_file = tmp_path / "m.csv"
    res = CliRunner().invoke(
        app,
        [
            "sim",
            "--federation",
            str(fed),
            "--trace",
            "synthetic",
            "--jobs",
            "200",
            "--seed",
            "1",
            "--csv",
            str(csv_file),
            "--policy",
            "fifo",
            "--policy",
            "static",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "share_deviation" in res.output
    assert csv_file.read_text().splitlines()[0].startswith("policy,utilization,share_deviation")


def test_water_fill_with_floors_hand_computed():
    from minga.scheduler.policy.max_min import water_fill_with_floors as wf

    # No floors: the plain water-filling.
    assert wf({"a": 10, "b": 2, "c": 10}, {"a": 1, "b": 1, "c": 1}, {}, 12) == pytest.approx({"a": 5, "b": 2, "c": 5})
    # a owns 8 of 12 GPUs and wants 10; b (weight 3) wants 10: a gets its 8 back, b the other 4,
    # although b's weight alone would give it 9.
    assert wf({"a": 10, "b": 10}, {"a": 1, "b": 3}, {"a": 8}, 12) == pytest.approx({"a": 8, "b": 4})
    # A floor above demand gives only the demand; the rest is filled by weight: 2 + 5 + 5.
    assert wf({"a": 2, "b": 10, "c": 10}, {"a": 1, "b": 1, "c": 1}, {"a": 6}, 12) == pytest.approx(
        {"a": 2, "b": 5, "c": 5}
    )
    # Floor below the fair level: it does not add; a gets max(floor, level) = 4, b 4, c 4.
    assert wf({"a": 10, "b": 10, "c": 10}, {"a": 1, "b": 1, "c": 1}, {"a": 2}, 12) == pytest.approx(
        {"a": 4, "b": 4, "c": 4}
    )
    # Floors beyond capacity are scaled down.
    assert wf({"a": 10, "b": 10}, {"a": 1, "b": 1}, {"a": 8, "b": 8}, 8) == pytest.approx({"a": 4, "b": 4})


def test_plot_writes_a_png_of_share_over_time(tmp_path):
    from minga.cli.main import app

    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[[institutions]]\nslug = "a"\ncountry = "CL"\n[[institutions]]\nslug = "b"\ncountry = "AR"\n'
        '[[sites]]\nname = "s1"\ninstitution = "a"\ncountry = "CL"\nmodel = "G2"\ngpus = 8\n'
    )
    png = tmp_path / "share.png"
    res = CliRunner().invoke(
        app,
        [
            "sim",
            "--federation",
            str(fed),
            "--trace",
            "synthetic",
            "--jobs",
            "80",
            "--policy",
            "fifo",
            "--policy",
            "minga",
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000  # a real rendered chart, not an empty file


def test_owner_reclaim_counts_only_jobs_within_the_guarantee():
    # o owns 4 GPUs; a borrows all of them at t=0 for 1000 s; o then asks for 2 (within its
    # guarantee) and for 8 (beyond it). FIFO makes o wait for a's runs to end.
    fed = _fed(
        (_site("s1", "o", 4), _site("s2", "x", 8)),
        (InstitutionShare("a", "CL", 1.0), InstitutionShare("o", "PE", 1.0), InstitutionShare("x", "AR", 1.0)),
    )
    jobs = [SimJob(f"j{k:03d}", "a", 0.0, 1000.0, 1) for k in range(12)]
    jobs += [SimJob("j100", "o", 10.0, 50.0, 2), SimJob("j101", "o", 10.0, 50.0, 8)]
    m = Engine(fed, jobs, fifo).run().summary()
    assert m["owner_reclaim_max_s"] == pytest.approx(1000.0 - 10.0 + 20.0)  # next cycle after 1000 is 1020


def test_periodic_cycles_give_the_same_fifo_result_with_more_cycles():
    fed, jobs = _flood()
    lazy, busy = Engine(fed, jobs, fifo), Engine(fed, jobs, fifo, periodic=True)
    assert lazy.run().summary() == busy.run().summary()
    assert busy.cycles > lazy.cycles


@needs_traces
def test_make_federation_command_writes_the_committed_file(tmp_path):
    from minga.cli.main import app

    out = tmp_path / "fed.toml"
    res = CliRunner().invoke(app, ["sim", "make-federation", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text() == (REPO / "examples" / "latam-federation.toml").read_text()


def test_contribution_entitlement_follows_the_sites():
    fed = Federation(
        sites=(_site("s1", "a", 8), _site("s2", "b", 2, "T4")),
        institutions=(
            InstitutionShare("a", "CL", 5.0),
            InstitutionShare("b", "AR", 5.0),
            InstitutionShare("c", "PE", 5.0),
        ),
        settings=ShareSettings(
            policy="contribution", half_life_seconds=3600.0, base_grant=1.0, model_weights=(("G2", 0.5), ("T4", 0.1))
        ),
    )
    e = fed.entitlements()
    # steady contribution = GPUs * model weight * half-life / ln 2, in GPU-hours
    import math

    assert e["a"] == pytest.approx(1.0 + 8 * 0.5 / math.log(2))
    assert e["b"] == pytest.approx(1.0 + 2 * 0.1 / math.log(2))
    assert e["c"] == 1.0
    assert Engine(fed, [], fifo).contribution["a"] == pytest.approx(8 * 0.5 * 3600 / math.log(2))


def test_runs_carry_their_jobs_walltime():
    fed = _fed((_site("s1", "a", 2),), (InstitutionShare("a", "CL", 1.0),))
    seen: list = []

    def spy(snap: Snapshot, now: float) -> Decisions:
        seen.extend(snap.live_runs)
        return fifo(snap, now)

    Engine(fed, [SimJob("j0", "a", 0.0, 99.5, 1), SimJob("j1", "a", 40.0, 10.0, 1)], spy).run()
    assert seen and all(r.walltime_seconds == 100 for r in seen)  # ceil(99.5)
