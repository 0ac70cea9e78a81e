"""Issue 10's policy settings in `minga.scheduler.service.shares.set_policy`: fair-share preemption
on/off, its threshold, cap and notice, the entitlement floor's fraction, and the age at which
a waiting gang holds a reservation first (Slurm's bf_min_age_reserve). Each bad value
is refused with INVALID_ARGUMENT naming the field, and changes nothing, not even the good
fields sent with it; through gRPC, false and 0 can be set (the fields have presence)."""

from __future__ import annotations

import math

import grpc
import pytest

from minga.common.domain import InvalidArgument
from minga.scheduler.policy import ShareSettings
from minga.scheduler.service import shares
from minga.v1 import admin_pb2
from tests.fixtures_broker import RunningBroker

BAD: list[tuple[str, float]] = [
    ("preemption_threshold", -0.1),
    ("preemption_threshold", 1.0),
    ("preemption_threshold", math.nan),
    ("preemption_cap", 0.0),
    ("preemption_cap", -0.5),
    ("preemption_cap", 1.01),
    ("preemption_cap", math.inf),
    ("preemption_notice_seconds", 0.0),
    ("preemption_notice_seconds", 0.5),
    ("preemption_notice_seconds", 3601.0),
    ("preemption_notice_seconds", 59.5),
    ("preemption_notice_seconds", math.nan),
    ("base_grant_fraction", -0.01),
    ("base_grant_fraction", 0.91),
    ("base_grant_fraction", math.inf),
    ("half_life_seconds", math.nan),
    ("preemption_grace_seconds", math.inf),
    ("reservation_min_age_seconds", -1.0),
    ("reservation_min_age_seconds", 7 * 86400 + 1.0),
    ("reservation_min_age_seconds", 600.5),
    ("reservation_min_age_seconds", math.nan),
    ("reservation_min_age_seconds", math.inf),
]

GOOD: list[tuple[str, object]] = [
    ("fair_share_preemption", False),
    ("fair_share_preemption", True),
    ("preemption_threshold", 0.0),
    ("preemption_threshold", 0.99),
    ("preemption_cap", 1.0),
    ("preemption_cap", 0.01),
    ("preemption_notice_seconds", 1.0),
    ("preemption_notice_seconds", 3600.0),
    ("base_grant_fraction", 0.0),
    ("base_grant_fraction", 0.9),
    ("reservation_min_age_seconds", 0.0),
    ("reservation_min_age_seconds", 7 * 86400.0),
    ("reservation_min_age_seconds", 3600.0),
]


@pytest.mark.parametrize("field,value", BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_a_bad_value_is_refused_naming_the_field_and_changes_nothing(
    broker: RunningBroker, field: str, value: float
) -> None:
    core = broker.broker.core
    before = shares.get_policy(core)
    update = ShareSettings(**{field: value, "age_weight": 5.0})  # a good change sent with it
    with pytest.raises(InvalidArgument) as err:
        shares.set_policy(core, update, {field, "age_weight"})
    assert field in str(err.value)
    assert shares.get_policy(core) == before


@pytest.mark.parametrize("field,value", GOOD, ids=[f"{f}={v}" for f, v in GOOD])
def test_a_good_value_is_kept_and_nothing_else_changes(broker: RunningBroker, field: str, value: object) -> None:
    core = broker.broker.core
    before = shares.get_policy(core)
    after = shares.set_policy(core, ShareSettings(**{field: value}), {field})
    assert getattr(after, field) == value
    assert shares.get_policy(core) == after
    assert {f: getattr(after, f) for f in vars(before) if f != field} == {
        f: getattr(before, f) for f in vars(before) if f != field
    }


def test_the_defaults_are_issue_10s(broker: RunningBroker) -> None:
    got = broker.admin.admin.GetPolicy(admin_pb2.GetPolicyRequest(), metadata=broker.admin.md)
    assert all(
        got.HasField(f)
        for f in (
            "fair_share_preemption",
            "preemption_threshold",
            "preemption_cap",
            "preemption_notice_seconds",
            "base_grant_fraction",
            "reservation_min_age_seconds",
        )
    )
    assert (
        got.fair_share_preemption,
        got.preemption_threshold,
        got.preemption_cap,
        got.preemption_notice_seconds,
        got.base_grant_fraction,
        got.reservation_min_age_seconds,
    ) == (True, 0.1, 0.25, 60.0, 0.25, 600.0)


def test_false_and_zero_are_set_through_grpc_and_unset_fields_are_kept(broker: RunningBroker) -> None:
    a = broker.admin

    def set_policy(**fields: object) -> admin_pb2.Policy:
        return a.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(**fields)), metadata=a.md)

    got = set_policy(fair_share_preemption=False, preemption_threshold=0.0, base_grant_fraction=0.0)
    assert (got.fair_share_preemption, got.preemption_threshold, got.base_grant_fraction) == (False, 0.0, 0.0)
    got = set_policy(preemption_cap=0.5, preemption_notice_seconds=120)
    assert (got.fair_share_preemption, got.preemption_threshold, got.preemption_cap, got.preemption_notice_seconds) == (
        False,
        0.0,
        0.5,
        120.0,
    )
    got = set_policy(half_life_seconds=86400)  # none of the optional fields: all kept
    assert (got.fair_share_preemption, got.preemption_cap, got.base_grant_fraction) == (False, 0.5, 0.0)
    settings = broker.broker.core.store.shares.settings()
    assert (settings.fair_share_preemption, settings.preemption_cap, settings.preemption_notice_seconds) == (
        False,
        0.5,
        120.0,
    )
    with pytest.raises(grpc.RpcError) as err:
        set_policy(preemption_cap=0.0, half_life_seconds=3600)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "preemption_cap" in err.value.details()
    assert broker.broker.core.store.shares.settings() == settings


def test_reservation_min_age_is_set_to_zero_through_grpc_and_refused_out_of_range(broker: RunningBroker) -> None:
    a = broker.admin

    def set_policy(**fields: object) -> admin_pb2.Policy:
        return a.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(**fields)), metadata=a.md)

    assert set_policy(reservation_min_age_seconds=0).reservation_min_age_seconds == 0.0  # 0: reserve at once
    assert broker.broker.core.store.shares.settings().reservation_min_age_seconds == 0.0
    got = set_policy(preemption_cap=0.5)  # unset: kept
    assert got.HasField("reservation_min_age_seconds") and got.reservation_min_age_seconds == 0.0
    settings = broker.broker.core.store.shares.settings()
    for bad in (-60.0, 8 * 86400.0, 1.5):
        with pytest.raises(grpc.RpcError) as err:
            set_policy(reservation_min_age_seconds=bad, age_weight=2.0)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reservation_min_age_seconds must be whole seconds from 0 to 604800" in err.value.details()
    assert broker.broker.core.store.shares.settings() == settings
