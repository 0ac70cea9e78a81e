"""The Grafana dashboard and the Prometheus alert rules name only metrics that exist: every
`minga_*` name in an expression is in docs/metrics.md (which test_metrics_doc.py holds to
what the broker and agents expose), and the alerts the operations guide promises are there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.test_metrics_doc import documented

DOCS = Path(__file__).resolve().parent.parent / "docs"
NAME = re.compile(r"\bminga_\w+")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def known_series() -> set[str]:
    """Every series name a scrape can carry: histograms' too."""
    names = set()
    for section in ("The broker", "An agent"):
        for name, (kind, _) in documented(section).items():
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in HISTOGRAM_SERIES)
    return names


def unknown(expressions: list[str]) -> set[str]:
    named = {n for e in expressions for n in NAME.findall(e)}
    assert named, "no metric named: the expressions were not found"
    return named - known_series()


def test_the_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads((DOCS / "grafana" / "minga.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert unknown(exprs) == set()
    shown = {n for e in exprs for n in NAME.findall(e)}
    assert {
        "minga_fairness_error_ratio",
        "minga_pending_jobs",
        "minga_agent_ray_reachable",
        "minga_energy_kwh_total",
        "minga_emissions_kgco2e_total",
    } <= shown


def test_the_alert_rules_name_only_metrics_that_exist_and_cover_the_promised_cases() -> None:
    rules = [r for g in yaml.safe_load((DOCS / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert unknown([str(r["expr"]) for r in rules]) == set()
    assert {r["alert"] for r in rules} >= {
        "MingaSiteLost",
        "MingaSlowCycle",
        "MingaLeaderFlapping",
        "MingaDatabaseOutage",
        "MingaInstitutionFarBelowShare",
    }
    assert all(r["annotations"]["summary"] and r["labels"]["severity"] for r in rules)
