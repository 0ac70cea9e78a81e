"""Energy and emissions through a real broker (issue 16): a run that ends is charged
GPUs x watts x hours x PUE x intensity, with the figures it used; an admin's site figure
wins; the usage report and the metrics show the same figures; bad input changes nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from typer.testing import CliRunner, Result

from minga.cli.main import app
from minga.common import carbon
from minga.common.clock import FakeClock
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import (
    Caller,
    ClockedFederation,
    RunningBroker,
    ScriptedSite,
    gpu_inventory,
    one_site_on_a_fake_clock,
    start_broker,
)

HOUR = 3600.0


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[ClockedFederation]:
    with one_site_on_a_fake_clock(tmp_path) as federation:
        yield federation


def minga(broker: RunningBroker, token: str, *args: str) -> Result:
    env = {"MINGA_BROKER": broker.address, "MINGA_TOKEN": token, "MINGA_CONFIG_DIR": "/nonexistent-minga"}
    return CliRunner().invoke(app, list(args), env=env)


def run_for(broker: RunningBroker, ana: Caller, site: ScriptedSite, clock: FakeClock, gpus: int, hours: float) -> str:
    """Submit a job, run it for `hours` of simulated time, end it SUCCEEDED; its run id."""
    core = broker.broker.core
    spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=gpus))
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "RUNNING")
    clock.advance(hours * HOUR)
    site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: core.store.jobs.get(job.id).state.value == "SUCCEEDED")
    return run_id


def test_an_ended_run_is_charged_its_energy_and_emissions(fed):
    broker, ana, site, clock = fed
    run_id = run_for(broker, ana, site, clock, gpus=2, hours=3)
    row = broker.broker.core.store.carbon.run_energy(run_id)
    assert row is not None
    kwh = 2 * 400.0 * 3 * 1.5 / 1000  # 2 A100 (400 W) x 3 h x PUE 1.5
    assert row.kwh == pytest.approx(kwh, rel=1e-9)
    assert row.kgco2e == pytest.approx(kwh * 304.0 / 1000, rel=1e-9)  # Chile, 2023
    assert (row.intensity, row.watts, row.pue, row.country) == (304.0, 400.0, 1.5, "CL")
    assert row.intensity_source == carbon.INTENSITY_SOURCE


def test_the_admins_site_figures_win_and_the_report_shows_them(fed):
    broker, ana, site, clock = fed
    admin = broker.admin_token_file.read_text().strip()
    done = minga(broker, admin, "admin", "carbon", "site", "dcc", "--intensity", "20", "--pue", "1.2")
    assert done.exit_code == 0, done.output
    assert minga(broker, admin, "admin", "carbon", "gpu", "A100", "380").exit_code == 0
    run_id = run_for(broker, ana, site, clock, gpus=4, hours=2)
    row = broker.broker.core.store.carbon.run_energy(run_id)
    kwh = 4 * 380.0 * 2 * 1.2 / 1000
    assert row is not None and row.kwh == pytest.approx(kwh, rel=1e-9)
    assert row.kgco2e == pytest.approx(kwh * 20.0 / 1000, rel=1e-9)
    assert (row.intensity, row.watts, row.pue, row.intensity_source) == (20.0, 380.0, 1.2, "admin")

    for by, key in (("country", "CL"), ("institution", "uchile"), ("project", "uchile/default")):
        data = json.loads(minga(broker, ana.token, "usage", "report", "--by", by, "--output", "json").stdout)
        (line,) = data["lines"]
        assert line["key"] == key
        assert line["energy_kwh"] == pytest.approx(round(kwh, 3))
        assert line["emissions_kgco2e"] == pytest.approx(round(kwh * 20.0 / 1000, 3))
    csv_out = minga(broker, ana.token, "usage", "report", "--by", "country", "--output", "csv").stdout.splitlines()
    header, first = csv_out[0].split(","), csv_out[1].split(",")
    assert header[-2:] == ["energy_kwh", "emissions_kgco2e"]
    assert float(first[-2]) == pytest.approx(round(kwh, 3))
    table = minga(broker, ana.token, "usage", "report", "--by", "country")
    assert table.exit_code == 0 and "kgCO2e" in table.stdout


def test_show_marks_fallbacks_and_set_changes_a_country(fed):
    broker, ana, site, clock = fed
    admin = broker.admin_token_file.read_text().strip()
    shown = json.loads(minga(broker, admin, "admin", "carbon", "show", "--output", "json").stdout)
    countries = {c["key"]: c for c in shown["countries"]}
    assert countries["CL"]["value"] == 304.0 and countries["CL"]["year"] == 2023 and not countries["CL"]["fallback"]
    assert {g["key"]: g["value"] for g in shown["gpus"]}["H100"] == 700.0
    assert shown["default_pue"] == 1.5
    done = minga(broker, admin, "admin", "carbon", "set", "UY", "150", "--output", "json")
    assert done.exit_code == 0, done.output
    uy = {c["key"]: c for c in json.loads(done.stdout)["countries"]}["UY"]
    assert uy["value"] == 150.0 and uy["source"] == "admin" and uy["set_at"]
    broker.institution("ucm", "ES")  # no shipped figure: the fallback, marked
    broker.join("ucm", "es")
    table = minga(broker, admin, "admin", "carbon", "show")
    assert table.exit_code == 0 and "FALLBACK" in table.stdout
    es = {
        c["key"]: c
        for c in json.loads(minga(broker, admin, "admin", "carbon", "show", "-o", "json").stdout)["countries"]
    }
    assert es["ES"]["fallback"] and es["ES"]["value"] == carbon.FALLBACK_INTENSITY


def test_bad_input_and_researchers_are_refused_and_nothing_changes(fed):
    broker, ana, site, clock = fed
    admin = broker.admin
    before = admin.admin.GetCarbon(admin_pb2.GetCarbonRequest(), metadata=admin.md)
    bad = [
        (admin_pb2.SetCarbonRequest(kind="country", key="chile", intensity=100), "country"),
        (admin_pb2.SetCarbonRequest(kind="country", key="CL", intensity=-1), "intensity"),
        (admin_pb2.SetCarbonRequest(kind="country", key="CL", intensity=float("nan")), "intensity"),
        (admin_pb2.SetCarbonRequest(kind="country", key="CL"), "intensity"),
        (admin_pb2.SetCarbonRequest(kind="site", key="dcc", intensity=10, pue=0.5), "pue"),
        (admin_pb2.SetCarbonRequest(kind="gpu", key="A100", watts=1e9), "watts"),
        (admin_pb2.SetCarbonRequest(kind="planet", key="x"), "kind"),
    ]
    for request, field in bad:
        with pytest.raises(grpc.RpcError) as err:
            admin.admin.SetCarbon(request, metadata=admin.md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        admin.admin.SetCarbon(admin_pb2.SetCarbonRequest(kind="site", key="nowhere", pue=1.1), metadata=admin.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nowhere" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        ana.admin.SetCarbon(admin_pb2.SetCarbonRequest(kind="country", key="CL", intensity=1), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = minga(broker, ana.token, "admin", "carbon", "set", "CL", "1")
    assert denied.exit_code != 0
    assert admin.admin.GetCarbon(admin_pb2.GetCarbonRequest(), metadata=admin.md) == before


def test_the_metrics_count_the_ended_runs_energy_by_country(fed):
    broker, ana, site, clock = fed
    registry = broker.broker.metrics.registry
    assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) == 0.0
    run_for(broker, ana, site, clock, gpus=1, hours=10)
    kwh = 1 * 400.0 * 10 * 1.5 / 1000
    assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) == pytest.approx(kwh)
    got = registry.get_sample_value("minga_emissions_kgco2e_total", {"country": "CL"})
    assert got == pytest.approx(kwh * 304.0 / 1000)

    # Each scrape adds only the runs that ended since the last one: a second run adds its
    # figures, a scrape with nothing new adds nothing.
    run_for(broker, ana, site, clock, gpus=2, hours=5)
    kwh += 2 * 400.0 * 5 * 1.5 / 1000
    for _ in range(2):
        assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) == pytest.approx(kwh)
        got = registry.get_sample_value("minga_emissions_kgco2e_total", {"country": "CL"})
        assert got == pytest.approx(kwh * 304.0 / 1000)


def test_the_energy_counters_are_the_leaders_and_full_again_in_its_next_term(fed, monkeypatch):
    broker, ana, site, clock = fed
    registry = broker.broker.metrics.registry
    run_for(broker, ana, site, clock, gpus=1, hours=10)
    kwh = 1 * 400.0 * 10 * 1.5 / 1000
    assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) == pytest.approx(kwh)
    with monkeypatch.context() as m:
        m.setattr(type(broker.broker), "leading", property(lambda _self: False))
        assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) is None
    assert registry.get_sample_value("minga_energy_kwh_total", {"country": "CL"}) == pytest.approx(kwh)
    assert broker.broker.core.store.carbon.energy_since(0).by_country["CL"][0] == pytest.approx(kwh)


def test_the_dashboards_usage_page_and_csv_show_energy_and_emissions(tmp_path: Path):
    clock = FakeClock(start=1_800_000_000.0)
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400, web_listen="127.0.0.1:0")
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        run_for(broker, ana, site, clock, gpus=2, hours=5)  # 2 x 0.4 kW x 5 h x 1.5 = 6 kWh; x 304 g = 1.824 kg
        admin = broker.admin_token_file.read_text().strip()
        with httpx.Client(base_url=broker.broker.web_url, timeout=10) as client:
            assert client.post("/login", data={"token": admin, "next": "/"}).status_code == 303
            page = client.get("/usage?by=country&since=1d")
            assert page.status_code == 200
            assert "Emissions kgCO2e" in page.text and "<td>6.0</td>" in page.text and "<td>1.82</td>" in page.text
            rows = list(csv.reader(io.StringIO(client.get("/usage.csv?by=country&since=1d").text)))
        assert rows[0][-2:] == ["energy_kwh", "emissions_kgco2e"]
        assert rows[1][0] == "CL" and float(rows[1][-2]) == 6.0 and float(rows[1][-1]) == pytest.approx(1.824)
    finally:
        site.close()
        broker.close()
