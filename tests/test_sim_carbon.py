"""Energy and emissions in the simulator, and the low-carbon variant of `minga sim` (issue 16
part 4): runs are charged with the broker's formulas and the federation file's `[carbon]`
figures; half the jobs opting in is compared with nobody opting in on the same jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minga.cli.main import app
from minga.common.carbon import DEFAULT_INTENSITY, DEFAULT_PUE, default_intensity
from minga.common.domain import Run, RunState
from minga.scheduler.sim import carbon, federation, scenario
from minga.scheduler.sim.examples import example_federation
from minga.scheduler.sim.metrics import Recorder
from minga.scheduler.sim.report import LOW_CARBON, LowCarbonVariant, compare
from minga.scheduler.sim.workload import SimJob

HOUR = 3600.0


def two_grids(extra: dict[str, Any] | None = None, jobs: int = 6) -> dict[str, Any]:
    """A guest institution with no GPUs, and two idle 8-GPU sites of another: Chile's
    (named first, so best fit's tie goes to it) and Paraguay's. Jobs of 1 GPU for an hour,
    one every two hours: never two at once, so every placement has both sites to choose from."""
    doc: dict[str, Any] = {
        "institutions": [{"slug": "owner", "country": "CL"}, {"slug": "guest", "country": "AR"}],
        "sites": [
            {"name": "a-cl", "institution": "owner", "country": "CL", "model": "A100", "gpus": 8},
            {"name": "b-py", "institution": "owner", "country": "PY", "model": "A100", "gpus": 8},
        ],
        "jobs": [{"institution": "guest", "count": jobs, "gpus": 1, "duration": HOUR, "every": 2 * HOUR}],
    }
    return doc | (extra or {})


def test_the_carbon_table_sets_the_figures_and_the_shipped_ones_fill_the_rest():
    fed = federation.from_doc(two_grids({"carbon": {"pue": 1.2, "intensity": {"CL": 100}, "gpu_watts": {"A100": 500}}}))
    assert fed.carbon.pue == 1.2 and fed.carbon.watts("A100") == 500.0
    assert dict(fed.site_intensity()) == {"a-cl": 100.0, "b-py": DEFAULT_INTENSITY["PY"]}
    kwh, kg = fed.carbon.charge(gpus=2, model="A100", seconds=3 * HOUR, country="CL")
    assert kwh == pytest.approx(2 * 500 * 3 * 1.2 / 1000) and kg == pytest.approx(kwh * 100 / 1000)
    plain = federation.from_doc(two_grids())
    assert plain.carbon.pue == DEFAULT_PUE and plain.carbon.watts("A100") == 400.0  # the vendor's sheet


@pytest.mark.parametrize(
    "table,named",
    [
        ({"pue": 0.5}, "[carbon] pue"),
        ({"intensity": {"CL": -1}}, "[carbon.intensity] CL"),
        ({"gpu_watts": {"A100": "lots"}}, "lots"),
        ({"intensity": 300}, "[carbon.intensity] must be a table"),
        ({"grid": {}}, "unknown key 'grid'"),
    ],
)
def test_a_bad_carbon_table_is_refused_naming_the_field(table, named):
    with pytest.raises(carbon.CarbonTableError, match=None) as err:
        carbon.from_doc({"carbon": table})
    assert named in str(err.value)
    with pytest.raises(scenario.ScenarioError) as bad:
        scenario.parse(two_grids({"carbon": table}), where="x.toml")
    assert named in str(bad.value)


def test_a_run_is_charged_for_the_time_it_held_its_gpus_preempted_or_not():
    fed = federation.from_doc(two_grids())
    rec = Recorder(fed, cohort={"j1"})
    jobs = [SimJob(f"j{k}", "guest", 0.0, HOUR, 2) for k in (1, 2)]
    runs = [
        Run(f"{j.id}-1", j.id, site, 1, "A100", 2, 0.0, RunState.RUNNING, "guest", "guest/default", started_at=0.0)
        for j, site in zip(jobs, ("a-cl", "b-py"), strict=True)
    ]
    for j, r in zip(jobs, runs, strict=True):
        rec.arrived(j, 0.0)
        rec.started(r, j, 0.0, "owner")
    rec.preempted(runs[0], HOUR / 2)  # half an hour of lost work still drew power
    rec.completed(runs[1], HOUR)
    half, full = 2 * 400 * 0.5 * 1.5 / 1000, 2 * 400 * 1.0 * 1.5 / 1000
    got = rec.summary()
    assert got["energy_kwh"] == pytest.approx(half + full)
    cl, py = DEFAULT_INTENSITY["CL"], DEFAULT_INTENSITY["PY"]
    assert got["emissions_kgco2e"] == pytest.approx((half * cl + full * py) / 1000, abs=1e-3)
    assert got["cohort_energy_kwh"] == pytest.approx(half) and got["cohort_intensity_g_per_kwh"] == cl


def test_the_same_jobs_opt_in_on_every_run_near_the_share():
    jobs = [SimJob(f"j{k:05d}", "a", 0.0, 1.0, 1) for k in range(10_000)]
    half = {j.id for j in carbon.opt_in(jobs, 0.5) if j.low_carbon}
    assert half == {j.id for j in carbon.opt_in(jobs, 0.5) if j.low_carbon}
    assert 4_800 <= len(half) <= 5_200
    assert {j.id for j in carbon.opt_in(jobs, 0.3) if j.low_carbon} < half  # a larger share keeps the smaller's
    other = {j.id for j in carbon.opt_in(jobs, 0.5, draw=1) if j.low_carbon}
    assert other != half and 4_800 <= len(other) <= 5_200
    firsts = carbon.opt_in(jobs, 0.5, first=True)
    assert all(j.low_carbon_first == j.low_carbon for j in firsts)


def test_opting_in_moves_the_jobs_to_the_cleaner_grid_and_the_comparison_says_so():
    scen = scenario.parse(two_grids(), name="two-grids")
    out = compare(scen.federation, scen.jobs, ["minga"], sample_seconds=0, low_carbon=LowCarbonVariant(1.0))
    none, some = out["policies"]["minga"], out["policies"][LOW_CARBON]
    cl, py = DEFAULT_INTENSITY["CL"], DEFAULT_INTENSITY["PY"]
    assert none["cohort_intensity_g_per_kwh"] == cl and some["cohort_intensity_g_per_kwh"] == py
    c = out["low_carbon"]
    assert c["jobs"] == 6 and c["cohort_emissions_cut"] == pytest.approx(1 - py / cl, abs=1e-3)
    assert c["utilization"] == [1.0, 1.0] and c["utilization_loss"] == 0.0
    assert c["cohort_emissions_kgco2e"][0] == none["emissions_kgco2e"]  # everyone opted in


def test_a_share_too_small_for_any_job_compares_nothing_without_failing():
    scen = scenario.parse(two_grids(jobs=2), name="two-grids")
    out = compare(scen.federation, scen.jobs, ["minga"], sample_seconds=0, low_carbon=LowCarbonVariant(1e-9))
    c = out["low_carbon"]
    assert c["jobs"] == 0 and c["cohort_emissions_kgco2e"] == [0.0, 0.0] and c["cohort_emissions_cut"] == 0.0


def test_the_example_federation_carries_every_countrys_real_intensity():
    fed = federation.load(example_federation())
    for code in fed.countries:
        assert fed.carbon.country_intensity(code) == default_intensity(code).value == DEFAULT_INTENSITY[code]
    assert fed.carbon.watts("T4") == 70.0 and fed.carbon.pue == DEFAULT_PUE


def test_minga_sim_low_carbon_share_prints_the_comparison(tmp_path: Path):
    path = tmp_path / "two.toml"
    path.write_text(_toml(two_grids()))
    res = CliRunner().invoke(app, ["sim", "--scenario", str(path), "--low-carbon-share", "0.5"])
    assert res.exit_code == 0, res.output
    assert f"minga vs {LOW_CARBON}" in res.output and "their emissions" in res.output
    assert "cohort_emissions_kgco2e" in res.output and "emissions_kgco2e" in res.output
    js = CliRunner().invoke(
        app, ["sim", "--scenario", str(path), "--low-carbon-share", "1", "--low-carbon-first", "--output", "json"]
    )
    assert js.exit_code == 0, js.output
    got = json.loads(js.output)
    assert got["low_carbon"]["first"] is True and got["low_carbon"]["jobs"] == 6
    assert set(got["policies"]) == {"minga", "fifo", "slurm-classic", "static", LOW_CARBON}


@pytest.mark.parametrize(
    "args,named",
    [
        (["--low-carbon-share", "1.5"], "--low-carbon-share"),
        (["--low-carbon-share", "-0.1"], "--low-carbon-share"),
        (["--low-carbon-first"], "needs --low-carbon-share"),
        (["--low-carbon-share", "0.5", "--policy", "fifo"], "include --policy minga"),
    ],
)
def test_bad_low_carbon_flags_exit_2_naming_the_flag(tmp_path: Path, args, named):
    path = tmp_path / "two.toml"
    path.write_text(_toml(two_grids()))
    res = CliRunner().invoke(app, ["sim", "--scenario", str(path), *args])
    assert res.exit_code == 2 and named in res.output


def test_a_broken_federation_file_exits_2_naming_it(tmp_path: Path):
    path = tmp_path / "fed.toml"
    path.write_text('[[sites]]\nname = "s"\n[carbon]\npue = 9\n')
    res = CliRunner().invoke(app, ["sim", "--federation", str(path), "--trace", "synthetic", "--jobs", "10"])
    assert res.exit_code == 2 and str(path) in res.output and "Traceback" not in res.output


def _toml(doc: dict[str, Any]) -> str:
    """A scenario document as TOML (the few shapes `two_grids` uses)."""
    lines = []
    for key in ("institutions", "sites", "jobs"):
        for entry in doc[key]:
            lines.append(f"[[{key}]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def test_a_scenario_job_group_may_opt_in_and_a_bad_value_is_refused():
    doc = two_grids()
    doc["jobs"][0]["low_carbon"] = True
    scen = scenario.parse(doc, name="green")
    assert all(j.low_carbon for j in scen.jobs)
    out = compare(scen.federation, scen.jobs, ["minga"], sample_seconds=0)
    assert out["policies"]["minga"]["intensity_g_per_kwh"] == DEFAULT_INTENSITY["PY"]
    doc["jobs"][0]["low_carbon"] = "yes"
    with pytest.raises(scenario.ScenarioError, match=r"jobs\[0\]\.low_carbon: expected true or false"):
        scenario.parse(doc, where="x.toml")
