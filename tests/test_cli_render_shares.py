"""The renderer's policy and quota parts (issue 10): JSON keys, tables that fit 80 columns,
and the footer that says what SHARE splits and which entitlement floor is in effect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from minga.cli import render
from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode
from minga.common.shares import PartialSettings
from minga.common.wire.shares import partial_settings_from_pb
from minga.v1 import admin_pb2

NEW_POLICY_KEYS = {
    "fair_share_preemption",
    "preemption_threshold",
    "preemption_cap",
    "preemption_notice_seconds",
    "base_grant_fraction",
    "reservation_min_age_seconds",
}


def _policy(**overrides: Any) -> PartialSettings:
    """The policy a broker answers, read as the client reads it."""
    fields: dict[str, Any] = dict(
        share_policy="contribution",
        half_life_seconds=7 * 86400,
        base_grant=1.0,
        preemption_grace_seconds=600,
        model_weights=[admin_pb2.ModelWeight(model="H100", weight=1.0)],
        fair_share_preemption=True,
        preemption_threshold=0.1,
        preemption_cap=0.25,
        preemption_notice_seconds=60,
        base_grant_fraction=0.25,
        reservation_min_age_seconds=600,
    )
    fields.update(overrides)
    return partial_settings_from_pb(admin_pb2.Policy(**fields))


def _older_broker_policy() -> PartialSettings:
    """A broker that predates issue 10's settings leaves them out."""
    return partial_settings_from_pb(admin_pb2.Policy(share_policy="static"))


def test_policy_to_dict_has_the_new_keys() -> None:
    data = render.policy_to_dict(_policy(fair_share_preemption=False, preemption_threshold=0.0))
    assert {k: data[k] for k in NEW_POLICY_KEYS} == {
        "fair_share_preemption": False,
        "preemption_threshold": 0.0,
        "preemption_cap": 0.25,
        "preemption_notice_seconds": 60.0,
        "base_grant_fraction": 0.25,
        "reservation_min_age_seconds": 600.0,
    }
    json.dumps(data)


def test_policy_from_an_older_broker_says_null_not_a_false_default() -> None:
    data = render.policy_to_dict(_older_broker_policy())
    assert all(data[k] is None for k in NEW_POLICY_KEYS)


def _lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}


def test_policy_table_says_each_setting_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    render.policy_table(render.policy_to_dict(_policy()))
    lines = _lines(capsys)
    assert lines["fair-share preemption"].split()[-1] == "on"
    assert "0.1 (only for an account under 90% of its fair share)" in lines["preemption threshold"]
    assert "0.25 (at most 25% of the GPUs per cycle)" in lines["preemption cap"]
    assert "1m (SIGTERM, then SIGKILL)" in lines["preemption notice"]
    assert "0.25 (contribution: at least 25% of the mean weight)" in lines["entitlement floor"]
    assert "10m (gangs waiting this long reserve first)" in lines["reservation min age"]
    assert all(len(line) <= 80 for line in lines.values())
    render.policy_table(render.policy_to_dict(_older_broker_policy()))
    old = _lines(capsys)
    assert old["fair-share preemption"].split()[-1] == "-" and old["preemption cap"].split()[-1] == "-"
    assert old["reservation min age"].split()[-1] == "-"


def _view(share_policy: str = "contribution", fraction: float = 0.25, tree: bool = False) -> QuotaView:
    institutions = [
        InstitutionQuota(
            institution="uchile",
            country="CL",
            weight=1234.5,
            entitlement_pct=60.0,
            usage_pct=90.0,
            fairshare=0.35,
            guarantee=12,
            held=12,
            demand=20,
            fair_share_gpus=6.0,
        ),
        InstitutionQuota(
            institution="universidad-de-buenos-aires",
            country="AR",
            weight=411.5,
            entitlement_pct=40.0,
            demand=9,
            fair_share_gpus=10 / 3,
        ),
    ]
    rows = [
        QuotaRow(
            institution="uchile",
            country="CL",
            gpu_model="A100",
            owned=12,
            in_use=12,
            held=12,
            pending=8,
            guarantee=12,
            weight=1234.5,
        ),
        QuotaRow(institution="universidad-de-buenos-aires", country="AR", gpu_model="any", pending=9),
    ]
    nodes = (
        [
            TreeNode(
                level="country",
                id="AR",
                parent="",
                weight=411.5,
                entitlement_pct=40.0,
                usage_pct=0.0,
                fairshare=0.0,
                held=0,
                demand=9,
                fair_share_gpus=10 / 3,
            )
        ]
        if tree
        else []
    )
    return QuotaView(
        rows=rows,
        institutions=institutions,
        tree=nodes,
        capacity=16,
        floor=Floor(share_policy=share_policy, base_grant=411.5, base_grant_fraction=fraction),
    )


def test_quota_view_to_dict() -> None:
    data = render.quota_view_to_dict(_view(tree=True))
    assert set(data) == {
        "rows",
        "institutions",
        "capacity",
        "share_policy",
        "base_grant",
        "base_grant_fraction",
        "tree",
    }
    assert (data["capacity"], data["share_policy"], data["base_grant"], data["base_grant_fraction"]) == (
        16,
        "contribution",
        411.5,
        0.25,
    )
    uba = data["institutions"][1]
    assert uba == {
        "institution": "universidad-de-buenos-aires",
        "country": "AR",
        "weight": 411.5,
        "entitlement_pct": 40.0,
        "usage_pct": 0.0,
        "fairshare": 0.0,
        "guarantee": 0,
        "held": 0,
        "demand": 9,
        "fair_share_gpus": 3.33,
    }
    assert data["tree"][0]["fair_share_gpus"] == 3.33 and data["tree"][0]["demand"] == 9
    assert data["rows"][0]["gpu_model"] == "A100"
    json.dumps(data)


def test_quota_table_fits_80_columns_with_share_next_to_held(capsys: pytest.CaptureFixture[str]) -> None:
    view = render.quota_view_to_dict(_view())
    render.quotas_table(view)
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    lines = out.splitlines()
    assert lines[0].split() == ["INST", "CC", "WEIGHT", "ENT%", "USE%", "FS", "GUAR", "HELD", "DEMAND", "SHARE"]
    assert lines[1].split() == ["uchile", "CL", "1234", "60.0", "90.0", "0.35", "12", "12", "20", "6"]
    assert lines[2].split()[-4:] == ["0", "0", "9", "3.3"]
    assert ["INST", "MODEL", "OWN", "GUAR", "USE", "HELD", "BORR", "LENT", "PEND"] in [line.split() for line in lines]
    words = " ".join(out.split())
    assert "SHARE: each institution's fair share of the 16 GPUs that can hold runs now" in words
    assert "Entitlement floor: base grant 412 in effect, so every institution weighs at least 25% of the mean." in words


@pytest.mark.parametrize(
    "policy,fraction,says",
    [
        ("contribution", 0.0, "Entitlement floor: base grant 412 in effect (no floor fraction)."),
        (
            "static",
            0.25,
            "Entitlement floor: none under the static policy (weights as set); under contribution "
            "every institution would weigh at least 25% of the mean.",
        ),
    ],
)
def test_quota_footer_names_the_floor(policy: str, fraction: float, says: str) -> None:
    assert render.quota_footer(render.quota_view_to_dict(_view(policy, fraction)))[1] == says


def test_quota_table_without_institutions(capsys: pytest.CaptureFixture[str]) -> None:
    render.quotas_table(render.quota_view_to_dict(QuotaView([], [], [], 0, Floor("", 0.0, 0.0))))
    assert capsys.readouterr().out == "no quotas yet: no institution has GPUs or jobs\n"


def test_tree_table_shows_the_share_now_per_node(capsys: pytest.CaptureFixture[str]) -> None:
    render.tree_table(render.quota_view_to_dict(_view(tree=True))["tree"])
    head, row = capsys.readouterr().out.splitlines()
    assert head.split() == ["ACCOUNT", "WEIGHT", "ENT%", "USE%", "FS", "HELD", "DEMAND", "SHARE"]
    assert row.split() == ["AR", "412", "40.0", "0.0", "0.00", "0", "9", "3.3"]
