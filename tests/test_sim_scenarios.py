"""Simulator scenarios (examples/scenarios), the fairness metrics of issue 10, and the
preemption notice in the engine.

The target tests replay each scenario (and variants built from the same file with other
weights, sizes and durations) through minga's policy and assert the issue's targets as
bounds on deterministic outcomes.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minga.common.domain import GpuPool, Inventory, Site
from minga.scheduler.policy import Decisions, InstitutionShare, Placement, Preemption, ShareSettings, Snapshot, Waiting
from minga.scheduler.policy.entitlement import build_tree, institution_weights
from minga.scheduler.policy.max_min import tree_fill
from minga.scheduler.sim import scenario as scen
from minga.scheduler.sim.baselines import POLICIES, fifo
from minga.scheduler.sim.engine import Engine
from minga.scheduler.sim.federation import Federation, load
from minga.scheduler.sim.metrics import Recorder, reached_share
from minga.scheduler.sim.workload import SimJob

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "examples" / "scenarios"
SHIPPED = sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def _site(name: str, inst: str, gpus: int, model: str = "G2", country: str = "CL") -> Site:
    return Site(
        name=name,
        institution=inst,
        country=country,
        connected=True,
        inventory=Inventory(gpus=(GpuPool(model, 0, gpus, gpus, gpus),), cpus=64.0),
    )


def _fed(sites, insts, **settings) -> Federation:
    return Federation(
        sites=tuple(sites),
        institutions=tuple(insts),
        cycle_seconds=30.0,
        settings=ShareSettings(policy="static", **settings),
    )


def _doc(name: str) -> dict:
    return scen.read_doc(SCENARIOS / f"{name}.toml")


def _replay(doc: dict, policy: str = "minga") -> tuple[dict, dict, scen.Scenario]:
    s = scen.parse(doc)
    rec = Engine(s.federation, s.jobs, POLICIES[policy]).run()
    return rec.summary(), rec.institution_shares(), s


# ---- the shipped scenarios load ------------------------------------------------------------


def test_the_four_scenarios_are_shipped():
    assert {"burst", "late-arrival", "gangs-vs-stream", "floor"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_loads_and_says_what_it_shows(name):
    path = SCENARIOS / f"{name}.toml"
    s = scen.load(path)
    assert s.name == name and s.jobs and s.federation.capacity > 0
    header = path.read_text().split("\n[", 1)[0]
    assert header.startswith("# Scenario:") and "What it shows" in header and "Target" in header
    assert scen.resolve(name, SCENARIOS) == path and scen.resolve(str(path), SCENARIOS) == path
    # Small: every policy replays it in a few seconds (job count as a proxy).
    assert len(s.jobs) <= 1000


def test_job_groups_expand_in_file_order_with_spaced_arrivals():
    doc = _doc("burst")
    doc["jobs"] = [
        {
            "institution": "a",
            "count": 3,
            "gpus": 1,
            "duration": 60,
            "arrival": 100,
            "every": 30,
            "models": ["A100"],
            "name": "x",
        },
        {"institution": "b", "count": 1, "gpus": 2, "duration": 5},
    ]
    jobs = scen.parse(doc).jobs
    assert [(j.institution, j.arrival, j.gpus, j.models) for j in jobs] == [
        ("a", 100.0, 1, ("A100",)),
        ("a", 130.0, 1, ("A100",)),
        ("a", 160.0, 1, ("A100",)),
        ("b", 0.0, 2, ()),
    ]
    assert [j.id for j in jobs] == sorted(j.id for j in jobs) and jobs[0].name == "x-0"


# ---- validation ------------------------------------------------------------------------------


def _broken(change) -> dict:
    doc = copy.deepcopy(_doc("burst"))
    change(doc)
    return doc


BAD = {
    "unknown top-level key": (lambda d: d.update(workload=[]), "unknown key 'workload'"),
    "unknown job key": (lambda d: d["jobs"][0].update(cout=3), "jobs[0]: unknown key 'cout'"),
    "unknown settings key": (lambda d: d["settings"].update(grace=1), "[settings]: unknown key 'grace'"),
    "missing count": (lambda d: d["jobs"][1].pop("count"), "jobs[1]: missing 'count'"),
    "missing site gpus": (lambda d: d["sites"][0].pop("gpus"), "sites[0]: missing 'gpus'"),
    "negative count": (lambda d: d["jobs"][0].update(count=-4), "jobs[0].count: must be at least 1"),
    "negative arrival": (lambda d: d["jobs"][0].update(arrival=-1), "jobs[0].arrival: must be at least 0"),
    "zero duration": (lambda d: d["jobs"][0].update(duration=0), "jobs[0].duration: must be more than 0"),
    "count as text": (lambda d: d["jobs"][0].update(count="3"), "jobs[0].count: expected a whole number"),
    "unknown institution": (
        lambda d: d["jobs"][2].update(institution="zz"),
        "jobs[2].institution: unknown institution 'zz'",
    ),
    "site of an unknown owner": (lambda d: d["sites"][1].update(institution="zz"), "sites[1].institution: unknown"),
    "unknown model": (lambda d: d["jobs"][0].update(models=["H100"]), "jobs[0].models: unknown GPU model 'H100'"),
    "gang no site holds": (lambda d: d["jobs"][0].update(gpus=9), "jobs[0]: no site can hold 9 GPUs"),
    "bad share policy": (lambda d: d["settings"].update(policy="fair"), "[settings] policy: 'fair' is not one of"),
    "negative reservation age": (
        lambda d: d["settings"].update(reservation_min_age_seconds=-1),
        "[settings] reservation_min_age_seconds: must be at least 0",
    ),
    "no jobs": (lambda d: d.pop("jobs"), "missing 'jobs'"),
    "duplicate institution": (lambda d: d["institutions"].append(dict(d["institutions"][0])), "listed twice"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenarios_are_refused_with_a_clear_message(case):
    change, message = BAD[case]
    with pytest.raises(scen.ScenarioError) as err:
        scen.parse(_broken(change), name="broken")
    assert message in str(err.value) and str(err.value).startswith("broken: ")


def test_reservation_min_age_in_settings_reaches_the_policy():
    doc = _doc("burst")
    doc["settings"]["reservation_min_age_seconds"] = 1800
    assert scen.parse(doc).federation.settings.reservation_min_age_seconds == 1800.0
    assert scen.parse(_doc("burst")).federation.settings.reservation_min_age_seconds == 600.0  # the default


def test_bad_scenario_file_exits_2_without_a_traceback(tmp_path):
    from minga.cli.main import app

    bad = tmp_path / "bad.toml"
    bad.write_text((SCENARIOS / "burst.toml").read_text().replace("count = 48", "count = -48", 1))
    for arg in (str(bad), "no-such-scenario"):
        res = CliRunner().invoke(app, ["sim", "--scenario", arg])
        assert res.exit_code == 2, res.output
        assert "error:" in res.output and "Traceback" not in res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
    res = CliRunner().invoke(app, ["sim", "--scenario", str(bad)])
    assert "jobs[0].count: must be at least 1" in res.output
    garbled = tmp_path / "garbled.toml"
    garbled.write_text("[[jobs]\ncount = ")
    res = CliRunner().invoke(app, ["sim", "--scenario", str(garbled)])
    assert res.exit_code == 2 and "not valid TOML" in res.output
    # A scenario brings its own federation and jobs.
    res = CliRunner().invoke(app, ["sim", "--scenario", "burst", "--trace", "synthetic"])
    assert res.exit_code == 2 and "--trace" in res.output


def test_minga_sim_scenario_by_name_prints_every_policy(tmp_path):
    from minga.cli.main import app

    csv_file = tmp_path / "m.csv"
    res = CliRunner().invoke(app, ["sim", "--scenario", "floor", "--output", "json", "--csv", str(csv_file)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["scenario"] == "floor" and set(out["policies"]) == set(POLICIES)
    for m in out["policies"].values():
        for key in (
            "time_to_fair_share_p50_s",
            "time_to_fair_share_max_s",
            "time_to_fair_share_never",
            "time_to_fair_share_episodes",
            "lost_fraction",
            "gpu_hours_lost",
            "share_deviation_flat",
        ):
            assert isinstance(m[key], (int, float)), key
    fed = out["federation"]
    assert fed["share_policy"] == "contribution" and fed["min_entitlement_institution"] == "nogpu"
    assert fed["min_entitlement_pct"] == pytest.approx(100 / 12, abs=0.01) and fed["base_grant"] > 1
    assert "held_mean_gpus" in out["institutions"]["minga"]["nogpu"]
    header = csv_file.read_text().splitlines()[0]
    assert "time_to_fair_share_max_s" in header and "lost_fraction" in header
    table = CliRunner().invoke(app, ["sim", "--scenario", "floor", "--policy", "fifo"])
    assert table.exit_code == 0, table.output
    assert "entitlement floor: base grant" in table.output and "smallest entitlement 8.33% (nogpu)" in table.output
    assert "held_mean_gpus[nogpu]" in table.output and "time_to_fair_share_max_s" in table.output


def test_load_zero_replays_trace_arrivals_as_they_are(tmp_path):
    from minga.cli.main import app
    from minga.scheduler.sim import workload

    jobs = [SimJob(f"j{k}", "a", arrival=k * 1000.0, duration=500.0, gpus=2) for k in range(5)]
    assert workload.scale_to_load(jobs, capacity=4, load=0) == (jobs, 1.0)
    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[[institutions]]\nslug = "a"\ncountry = "CL"\n'
        '[[sites]]\nname = "s1"\ninstitution = "a"\ncountry = "CL"\nmodel = "G2"\ngpus = 8\n'
    )
    res = CliRunner().invoke(app, ["sim", "--federation", str(fed), "--trace", "synthetic", "--load", "0"])
    assert res.exit_code == 2 and "load above 0" in res.output


# ---- the yardstick: hierarchical optimum, episodes, lost work ---------------------------------


def _two_countries(country_weights: dict | None = None) -> Federation:
    doc = {
        "settings": {"policy": "static"},
        "institutions": [
            {"slug": "x1", "country": "X"},
            {"slug": "x2", "country": "X"},
            {"slug": "y1", "country": "Y"},
        ],
        "sites": [{"name": "s", "institution": "x2", "country": "X", "model": "G2", "gpus": 12}],
        "jobs": [{"institution": "x1", "count": 1, "gpus": 1, "duration": 1}],
    }
    if country_weights:
        doc["country_weights"] = country_weights
    return scen.parse(doc).federation


def test_hierarchical_optimum_against_the_flat_one_on_two_countries():
    # Country X (x1, x2) weighs 2 (the sum of its institutions), Y (y1) weighs 1. x2 owns the
    # 12 GPUs but wants none. With x1 and y1 both wanting 20: the tree gives X 8 and Y 4
    # (x1 takes X's whole 8); the flat water-filling over institutions gives 6 and 6.
    rec = Recorder(_two_countries())
    opt, flat = rec._optimum({"x1": 20.0, "y1": 20.0})
    assert opt == pytest.approx({"x1": 8.0, "y1": 4.0}) and flat == pytest.approx({"x1": 6.0, "y1": 6.0})
    # Explicit country weights 1:1: 6 and 6, and X's 6 split 3/3 when x2 wants too
    # (x2's guarantee, its 12 own GPUs, is a floor: it gets its demand of 2 first).
    rec = Recorder(_two_countries({"X": 1.0, "Y": 1.0}))
    assert rec._optimum({"x1": 20.0, "y1": 20.0})[0] == pytest.approx({"x1": 6.0, "y1": 6.0})
    assert rec._optimum({"x1": 20.0, "x2": 2.0, "y1": 20.0})[0] == pytest.approx({"x1": 4.0, "x2": 2.0, "y1": 6.0})
    # The guarantee floor: x2 wanting 10 gets its own 10 back before anyone's weight counts.
    # X's floor (10) comes first at the country level too: Y gets the 2 left, x1 nothing.
    assert rec._optimum({"x1": 20.0, "x2": 10.0, "y1": 20.0})[0] == pytest.approx({"x1": 0.0, "x2": 10.0, "y1": 2.0})


def test_share_deviation_measures_against_the_tree_and_flat_against_plain_weights():
    # x1 and y1 each flood 12 GPUs at t=0 with 100 s jobs, x1 first: FIFO gives x1 all 12
    # for 100 s, then y1 12 for 100 s (contended only while both want). Tree optimum 8/4:
    # deviation (4 + 4) / 2 / 12 = 1/3... x1 holds 12 vs 8, y1 0 vs 4 -> 1/3; flat 6/6: 1/2.
    fed = _two_countries()
    jobs = [SimJob(f"j{k:03d}", "x1", 0.0, 100.0, 1) for k in range(12)]
    jobs += [SimJob(f"j{k:03d}", "y1", 0.0, 100.0, 1) for k in range(12, 24)]
    m = Engine(fed, jobs, fifo).run().summary()
    assert m["contended_s"] == pytest.approx(100.0)
    assert m["share_deviation"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["share_deviation_flat"] == pytest.approx(1 / 2, abs=1e-4)


def test_yardstick_is_the_policys_tree_fill_on_the_example_federation():
    fed = load(REPO / "examples" / "latam-federation.toml")
    rng = random.Random(7)
    for share_policy in ("static", "contribution"):
        f = Federation(
            sites=fed.sites,
            institutions=fed.institutions,
            cycle_seconds=fed.cycle_seconds,
            settings=ShareSettings(**{**fed.settings.__dict__, "policy": share_policy}),
        )
        rec = Recorder(f)
        for _ in range(60):
            demand = {i: float(rng.randint(1, 80)) for i in rng.sample(sorted(rec.weights), rng.randint(1, 60))}
            rec.capacity = rng.choice((100, 400, 770))
            want = tree_fill(
                rec.tree, rec.capacity, {f"{i}/default": d for i, d in demand.items()}, rec.tree_floor
            ).institution
            assert rec._optimum(demand)[0] == pytest.approx({i: want.get(i, 0.0) for i in demand}, abs=1e-9)


def test_entitlements_are_what_the_policy_sees():
    fed = Federation(
        sites=(_site("s1", "a", 8), _site("s2", "b", 2, "T4")),
        institutions=(InstitutionShare("a", "CL"), InstitutionShare("b", "AR"), InstitutionShare("c", "PE")),
        settings=ShareSettings(policy="contribution", half_life_seconds=3600.0),
    )
    e = fed.entitlements()
    assert e == pytest.approx(institution_weights(fed.policy_institutions(), fed.settings))
    eng = Engine(fed, [], fifo)
    tree = build_tree(eng.snapshot(), accounts=())
    assert e == pytest.approx({s: w for m in tree.institutions.values() for s, w in m.items()})
    # base_grant_fraction 0.25: c (no GPUs) is entitled to a quarter of the mean entitlement.
    frac = fed.entitlement_fractions()
    assert frac["c"] == pytest.approx(0.25 / 3, rel=1e-6)
    assert fed.base_grant() == pytest.approx(e["c"])


def test_reached_share_is_ninety_percent_or_the_whole_gpus():
    assert reached_share(4, 4) and not reached_share(3, 4)
    assert reached_share(9, 10) and not reached_share(8, 10)
    assert reached_share(2, 2.67) and not reached_share(1, 2.67)  # whole-GPU part of 2.67
    assert reached_share(1, 0.5) and not reached_share(0, 0.5)  # a share below one GPU: one
    assert reached_share(0, 0.0)


def test_time_to_fair_share_episodes_hand_computed():
    """4 GPUs of host o. a fills them at t=0 (runs of 1000 s, two of them 40 s). b arrives at
    10 with two 20-s jobs: share 2 of 4 (a wants 4). The scripted policy preempts one run of a
    for b's first job at the cycle at 30 (b holds 1 < 1.8: not reached), and at 60 says b's
    second job never fits: b's demand drops to 0 first (at 50 its demand is 1 and it holds 0),
    an episode of 50 s, not reached. c arrives at 100 with a job nobody ever places: never
    reached, counted until the end (1020). a: placed in the cycle at its arrival: 0 s."""
    fed = _fed(
        [_site("s1", "o", 4)], [InstitutionShare(x, "CL") for x in ("o", "a", "b", "c")], preemption_notice_seconds=0.0
    )
    jobs = [SimJob(f"a{k}", "a", 0.0, 40.0 if k < 2 else 1000.0, 1) for k in range(4)]
    jobs += [SimJob("b0", "b", 10.0, 20.0, 1), SimJob("b1", "b", 10.0, 20.0, 1), SimJob("c0", "c", 100.0, 10.0, 1)]

    def script(snap: Snapshot, now: float) -> Decisions:
        if now == 0:
            return fifo(snap, now)
        if now == 30:
            victim = next(r for r in snap.live_runs if r.job_id == "a3")
            return Decisions(
                preemptions=(Preemption(victim.id, "a3", "s1", "test"),),
                placements=(Placement("b0", "s1", "G2", 1, 0.0),),
            )
        if now == 60:
            return Decisions(waiting=(Waiting("b1", "model: never", never_fits=True),))
        return Decisions()

    rec = Engine(fed, jobs, script).run()
    m = rec.summary()
    # Episodes: a 0 s (reached), b 10 -> 60 (dropped), c 100 -> end. The end: a2 ends at 1000,
    # the cycle at 1020 places nothing, c0 (and a3, which the script never places) is stuck.
    assert sorted(rec.episodes) == [(0.0, True), (50.0, False), (920.0, False)]
    assert m["time_to_fair_share_episodes"] == 3 and m["time_to_fair_share_never"] == 2
    assert m["time_to_fair_share_p50_s"] == 50.0 and m["time_to_fair_share_max_s"] == 920.0


def test_time_to_fair_share_with_fifo_is_the_wait_for_the_first_runs_to_end():
    # a takes all 4 GPUs at t=0 for 100 s; b arrives at 10 (share 2 of 4). FIFO gives b its
    # GPUs at the cycle after a's runs end (120): 110 s.
    fed = _fed([_site("s1", "o", 4)], [InstitutionShare(x, "CL") for x in ("o", "a", "b")])
    jobs = [SimJob(f"a{k}", "a", 0.0, 100.0, 1) for k in range(4)] + [
        SimJob(f"b{k}", "b", 10.0, 100.0, 1) for k in range(4)
    ]
    m = Engine(fed, jobs, fifo).run().summary()
    assert (
        m["time_to_fair_share_episodes"],
        m["time_to_fair_share_p50_s"],
        m["time_to_fair_share_max_s"],
        m["time_to_fair_share_never"],
    ) == (2, 0.0, 110.0, 0)


# ---- the preemption notice -----------------------------------------------------------------------


def _preempt_and_place(notice: float, same_pool: bool = True):
    """j0 (2 GPUs, 100 s) runs on s1 from 0; at the cycle at 30 it is preempted and j1 (1 GPU,
    10 s) is placed on s1 (or on s2)."""
    fed = _fed(
        [_site("s1", "a", 2), _site("s2", "a", 2)], [InstitutionShare("a", "CL")], preemption_notice_seconds=notice
    )

    def policy(snap: Snapshot, now: float) -> Decisions:
        if now == 30:
            r = snap.live_runs[0]
            return Decisions(
                preemptions=(Preemption(r.id, r.job_id, r.site, "test"),),
                placements=(Placement("j1", "s1" if same_pool else "s2", "G2", 1, 0.0),),
            )
        if now == 0:
            return Decisions(placements=(Placement("j0", "s1", "G2", 2, 0.0),))
        return Decisions(
            placements=tuple(
                Placement(j.id, "s1", "G2", j.spec.resources.gpus, 0.0) for j in snap.pending if not snap.live_runs
            )
        )

    eng = Engine(fed, [SimJob("j0", "a", 0.0, 100.0, 2), SimJob("j1", "a", 30.0, 10.0, 1)], policy)
    return eng, eng.run()


def test_a_run_placed_behind_a_preemption_starts_after_the_notice():
    _, rec = _preempt_and_place(notice=60.0)
    m = rec.summary()
    # j1 holds its GPU from 30 but works from 90 to 100; j0 reruns from the cycle at 120 to 220.
    assert rec.waits["j1"] == pytest.approx(60.0) and rec.waits["j0"] == 0.0
    assert m["makespan_s"] == pytest.approx(220.0)
    # Lost: j0's 2 GPUs x 30 s before the preemption + j1's GPU x the 60-s notice = 120 GPU-s,
    # of 2*30 + 1*70 + 2*100 = 330 busy GPU-s.
    assert m["gpu_hours_lost"] == pytest.approx(120 / 3600, abs=1e-4)
    assert m["notice_gpu_hours"] == pytest.approx(60 / 3600, abs=1e-4)
    assert m["lost_fraction"] == pytest.approx(120 / 330, abs=1e-4)


def test_no_notice_elsewhere_or_when_it_is_zero():
    _, rec = _preempt_and_place(notice=60.0, same_pool=False)
    assert rec.waits["j1"] == 0.0 and rec.summary()["gpu_hours_lost"] == pytest.approx(60 / 3600, abs=1e-4)
    _, rec = _preempt_and_place(notice=0.0)  # j1 runs 30 to 40: 2*30 + 1*10 + 2*100 busy GPU-s
    assert rec.waits["j1"] == 0.0 and rec.summary()["lost_fraction"] == pytest.approx(60 / 270, abs=1e-4)


def test_settings_of_issue_10_are_read_from_the_file():
    doc = _doc("late-arrival")
    doc["settings"].update(
        preemption_notice_seconds=15.0,
        base_grant_fraction=0.1,
        fair_share_preemption=False,
        preemption_threshold=0.2,
        preemption_cap=0.5,
    )
    st = scen.parse(doc).federation.settings
    assert (
        st.preemption_notice_seconds,
        st.base_grant_fraction,
        st.fair_share_preemption,
        st.preemption_threshold,
        st.preemption_cap,
    ) == (15.0, 0.1, False, 0.2, 0.5)


# ---- targets: each scenario and its variants, replayed through minga's policy ------------------


def burst(weights=(1, 1, 2), gpus: int = 1, duration: float = 3600, capacity: int = 16) -> dict:
    """burst.toml with other weights, job sizes, durations and federation sizes (8-GPU sites;
    the backlogs keep the federation full for about 9 hours at any fair split)."""
    doc = _doc("burst")
    for inst, w in zip(doc["institutions"][1:], weights, strict=True):
        inst["weight"] = float(w)
    site = doc["sites"][0]
    doc["sites"] = [dict(site, name=f"host-{k}", gpus=min(8, capacity - 8 * k)) for k in range(math.ceil(capacity / 8))]
    count = math.ceil(9 * 3600 * capacity / (duration * gpus * 3))
    for group in doc["jobs"]:
        group.update(count=count, gpus=gpus, duration=duration)
    return doc


BURSTS = {
    "shipped": {},
    "weights 1:2:3": {"weights": (1, 2, 3)},
    "weights 2:1:1": {"weights": (2, 1, 1)},
    "2-GPU jobs": {"gpus": 2},
    "30-min jobs": {"duration": 1800},
    "24 GPUs": {"capacity": 24},
    "40 GPUs 1:2:3": {"capacity": 40, "weights": (1, 2, 3)},
}


@pytest.mark.parametrize("variant", sorted(BURSTS))
def test_burst_is_split_in_the_same_cycle(variant):
    m, _, _ = _replay(burst(**BURSTS[variant]))
    assert m["jobs_stuck"] == 0
    assert m["share_deviation"] <= 0.05, m


def late_arrival(
    weight_b: float = 1.0, capacity: int = 16, duration_a: float = 14400, late: float = 3600, gpus: int = 1
) -> dict:
    doc = _doc("late-arrival")
    doc["institutions"][2]["weight"] = weight_b
    site = doc["sites"][0]
    doc["sites"] = [dict(site, name=f"host-{k}", gpus=8) for k in range(capacity // 8)]
    a, b = doc["jobs"]
    a.update(count=2 * capacity // gpus, duration=duration_a, gpus=gpus)
    b.update(count=2 * capacity // gpus, arrival=late, gpus=gpus)
    return doc


LATE = {
    "shipped": {},
    "b weighs 3": {"weight_b": 3.0},
    "32 GPUs": {"capacity": 32},
    "2-GPU jobs, 2 h late": {"gpus": 2, "late": 7200},
}


@pytest.mark.parametrize("variant", sorted(LATE))
def test_late_arrival_gets_its_share_within_grace_and_two_cycles(variant):
    m, shares, s = _replay(late_arrival(**LATE[variant]))
    st, cycle = s.federation.settings, s.federation.cycle_seconds
    assert m["time_to_fair_share_never"] == 0, m
    assert m["time_to_fair_share_max_s"] <= st.preemption_grace_seconds + 2 * cycle, m


def gangs(gang_duration: float = 3600, stream_duration: float = 1800, every: float = 120) -> dict:
    doc = _doc("gangs-vs-stream")
    gang, s1, s2 = doc["jobs"]
    gang["duration"] = gang_duration
    for group in (s1, s2):
        group.update(duration=stream_duration, every=every, count=int(12 * 3600 / every))
    s2["arrival"] = every / 2
    return doc


GANGS = {
    "shipped": {},
    "2-h gangs": {"gang_duration": 7200},
    "1-h stream jobs": {"stream_duration": 3600, "every": 240},
}


@pytest.mark.parametrize("variant", sorted(GANGS))
def test_gangs_do_not_starve_behind_the_stream(variant):
    doc = gangs(**GANGS[variant])
    m, _, _ = _replay(doc)
    gang_duration = doc["jobs"][0]["duration"]
    assert m["jobs_stuck"] == 0
    assert m["wait_by_size"]["8+"]["max_s"] <= 2 * gang_duration, m["wait_by_size"]


def floor(
    capacity_contrib: int = 8, capacity_host: int = 8, fraction: float | None = None, duration: float = 3600
) -> dict:
    doc = _doc("floor")
    doc["sites"][0]["gpus"], doc["sites"][1]["gpus"] = capacity_contrib, capacity_host
    if fraction is not None:
        doc["settings"]["base_grant_fraction"] = fraction
    contrib, nogpu = doc["jobs"]
    contrib.update(count=int(12 * 3600 * (capacity_contrib + capacity_host) / duration), duration=duration)
    nogpu["duration"] = duration
    return doc


FLOORS = {
    "shipped": {},
    "fraction 0.1": {"fraction": 0.1},
    "16 + 8 GPUs": {"capacity_contrib": 16},
    "30-min jobs": {"duration": 1800},
}


@pytest.mark.parametrize("variant", sorted(FLOORS))
def test_gpuless_institution_holds_at_least_its_floor(variant):
    _, shares, s = _replay(floor(**FLOORS[variant]))
    floor_share = s.federation.entitlement_fractions()["nogpu"] * s.federation.capacity
    assert shares["nogpu"]["held_mean_gpus"] >= floor_share, (shares["nogpu"], floor_share)
