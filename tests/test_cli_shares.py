"""`minga admin policy|project|weight|guarantee|limits` and the new submit flags,
against a real broker on port 0."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from minga.cli.main import app
from tests.fixtures_broker import RunningBroker, ScriptedSite, gpu_inventory


def minga(broker: RunningBroker, token: str, *args: str) -> Result:
    env = {"MINGA_BROKER": broker.address, "MINGA_TOKEN": token, "MINGA_CONFIG_DIR": "/nonexistent-minga"}
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def fed(broker: RunningBroker) -> Iterator[tuple[RunningBroker, str, str]]:
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    admin = broker.admin_token_file.read_text().strip()
    yield broker, admin, ana.token
    site.close()


def test_policy_show_and_set(fed):
    broker, admin, ana = fed
    shown = minga(
        broker, admin, "admin", "policy", "set", "--half-life", "3d", "--model-weight", "T4=0.15", "--output", "json"
    )
    assert shown.exit_code == 0, shown.output
    policy = json.loads(shown.stdout)
    assert policy["half_life_seconds"] == 3 * 86400 and policy["model_weights"]["T4"] == 0.15
    assert policy["share_policy"] == "contribution"  # untouched
    table = minga(broker, ana, "admin", "policy", "show")
    assert table.exit_code == 0 and "3d" in table.stdout and "T4=0.15" in table.stdout
    bad = minga(broker, admin, "admin", "policy", "set", "--model-weight", "T4")
    assert bad.exit_code != 0 and "MODEL=WEIGHT" in bad.output


def test_projects_weights_guarantees_limits(fed):
    broker, admin, ana = fed
    assert (
        minga(broker, admin, "admin", "project", "add", "nlp", "--institution", "uchile", "--weight", "2").exit_code
        == 0
    )
    listed = json.loads(minga(broker, admin, "admin", "project", "list", "--output", "json").stdout)
    assert [p["id"] for p in listed] == ["uchile/default", "uchile/nlp"]
    weight = minga(broker, admin, "admin", "weight", "set", "country", "CL", "4", "--output", "json")
    assert json.loads(weight.stdout) == {"kind": "country", "id": "CL", "weight": 4.0}
    over = minga(broker, admin, "admin", "guarantee", "set", "uchile", "--model", "A100", "--gpus", "9")
    assert over.exit_code != 0 and "has 4 A100" in over.output
    limits = minga(broker, admin, "admin", "limits", "set", "uchile", "--lend", "2", "--output", "json")
    assert json.loads(limits.stdout) == {"institution": "uchile", "borrowing_limit": -1, "lending_limit": 2}
    denied = minga(broker, ana, "admin", "project", "add", "x", "--institution", "uchile")
    assert denied.exit_code != 0


def test_submit_with_project_data_country_and_labels(fed):
    broker, admin, ana = fed
    minga(broker, admin, "admin", "project", "add", "nlp", "--institution", "uchile")
    out = minga(
        broker,
        ana,
        "job",
        "submit",
        "--gpus",
        "1",
        "--project",
        "nlp",
        "--data-country",
        "cl",
        "--label",
        "tier=gold",
        "--non-preemptible",
        "--output",
        "json",
        "--",
        "true",
    )
    assert out.exit_code == 0, out.output
    job = json.loads(out.stdout)
    assert job["project"] == "uchile/nlp"
    assert job["spec"]["data_country"] == "CL" and job["spec"]["site_labels"] == {"tier": "gold"}
    assert job["spec"]["preemptible"] is False


def test_site_labels(fed):
    broker, admin, ana = fed
    out = minga(broker, admin, "admin", "site", "label", "dcc", "tier=gold", "net=renata", "--output", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["labels"] == {"net": "renata", "tier": "gold"}
    sites = json.loads(minga(broker, ana, "site", "list", "--output", "json").stdout)
    assert sites[0]["labels"] == {"net": "renata", "tier": "gold"}
    snap = broker.broker.core.store.runs.load_snapshot()
    assert snap.sites[0].labels == (("net", "renata"), ("tier", "gold"))
    assert minga(broker, admin, "admin", "site", "label", "dcc", "oops").exit_code != 0


def test_usage_report_as_csv_and_json(fed):
    broker, admin, ana = fed
    broker.broker.core.cycle.run_once()
    out = minga(broker, ana, "usage", "report", "--since", "7d", "--by", "country", "--output", "csv")
    assert out.exit_code == 0, out.output
    header, *rows = out.stdout.strip().splitlines()
    assert header.split(",")[:3] == ["key", "country", "consumed_gpu_hours"]
    assert all(r.startswith("CL,") for r in rows)
    data = json.loads(minga(broker, admin, "usage", "report", "--output", "json").stdout)
    assert data["by"] == "institution" and isinstance(data["lines"], list)
    bad = minga(broker, admin, "usage", "report", "--since", "soon")
    assert bad.exit_code != 0 and "--since" in bad.output


def test_quota_show_with_shares_and_tree(fed):
    broker, admin, ana = fed
    broker.institution("unam", "MX")
    assert minga(broker, admin, "admin", "guarantee", "set", "unam", "--model", "A100", "--gpus", "1").exit_code == 0
    out = minga(broker, ana, "quota", "show", "--tree", "--output", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    rows = {(r["institution"], r["gpu_model"]): r for r in data["rows"]}
    assert rows[("uchile", "A100")]["owned"] == 4 and rows[("uchile", "A100")]["guarantee"] == 4
    assert rows[("unam", "A100")]["guarantee"] == 1 and rows[("unam", "A100")]["owned"] == 0
    ent = {i: r["entitlement_pct"] for (i, _), r in rows.items()}
    assert sum(ent.values()) == pytest.approx(100.0, abs=0.1)
    levels = [n["level"] for n in data["tree"]]
    assert levels.count("country") == 2 and levels.count("project") == 2
    table = minga(broker, ana, "quota", "show")
    assert table.exit_code == 0 and all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
