"""The admin side of the wire layer (minga.common.wire): what AdminService answers, as the
broker writes it and the CLI's client reads it back. Each value goes domain -> message ->
bytes -> message -> domain and comes back equal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.accounts import Institution, JoinToken, NewToken, NewUser, TokenInfo, User
from minga.common.audit import AuditEntry
from minga.common.domain import GpuPool, InvalidArgument, Inventory, Principal, Role, Site, SiteState
from minga.common.leadership import LeadershipStatus
from minga.common.lending import LendingPolicy, SiteLending, Window
from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode
from minga.common.shares import (
    OPTIONAL_SETTINGS,
    Guarantee,
    InstitutionLimits,
    NodeWeight,
    PartialSettings,
    ProjectShare,
    ShareSettings,
)
from minga.common.site_view import SiteView
from minga.common.usage import UsageLine, UsageReport
from minga.common.wire import accounts, audit, enums, leadership, lending, quotas, shares, sites, usage
from minga.v1 import admin_pb2, common_pb2

PROPS = settings(max_examples=60, deadline=None)

text = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
count32 = st.integers(min_value=0, max_value=2**31 - 1)
count64 = st.integers(min_value=0, max_value=2**63 - 1)
SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: text,
    int: int32,
    float: finite,
    bool: st.booleans(),
    Role: st.sampled_from(list(Role)),
}


def flat(cls: type) -> st.SearchStrategy[Any]:
    """Values of a dataclass whose fields are all scalars (str, int, float, bool, Role)."""
    return st.builds(cls, **{name: SCALARS[kind] for name, kind in get_type_hints(cls).items()})


def wire(msg: Any) -> Any:
    """Through the bytes, as the network carries it."""
    return type(msg).FromString(msg.SerializeToString())


def sorted_pairs(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    """A map as the domain keeps it: (key, value) pairs sorted by key."""
    return st.dictionaries(text, values, max_size=3).map(lambda d: tuple(sorted(d.items())))


inventories = st.builds(
    Inventory,
    gpus=st.lists(
        st.builds(GpuPool, model=text, memory_mb=count64, total=count32, free=count32, largest_node=count32),
        max_size=3,
    ).map(tuple),
    cpus=finite,
    memory_mb=count64,
    nodes=count32,
)
# A site as the wire carries it: its own health and `reported` stay with the broker.
admin_sites = st.builds(
    Site,
    name=text,
    institution=text,
    country=text,
    state=st.sampled_from(list(SiteState)),
    connected=st.booleans(),
    inventory=inventories,
    last_seen=finite,
    labels=sorted_pairs(text),
    state_reason=text,
)
site_views = st.builds(SiteView, site=admin_sites, gpus_in_use=sorted_pairs(int32))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Windows as `parse_window` makes them, so their text reads back the same."""
    days = tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1))))
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(1, 1440).filter(lambda e: e == 1440 or e != start))
    return Window(days, start, end)


lending_policies = st.builds(
    LendingPolicy,
    allow_countries=st.lists(text, max_size=2).map(tuple),
    deny_countries=st.lists(text, max_size=2).map(tuple),
    allow_institutions=st.lists(text, max_size=2).map(tuple),
    deny_institutions=st.lists(text, max_size=2).map(tuple),
    max_lent_gpus=st.none() | count32,
    guest_max_walltime_seconds=count64,
    timezone=text,
    lend_windows=st.lists(windows(), max_size=2).map(tuple),
    closed_windows=st.lists(windows(), max_size=2).map(tuple),
    no_env=st.booleans(),
    env_allow=st.lists(text, max_size=2).map(tuple),
    no_pip=st.booleans(),
    pip_allow=st.lists(text, max_size=2).map(tuple),
)


@st.composite
def partial_settings(draw: st.DrawFn) -> PartialSettings:
    """Settings as a Policy message gives them: the first six given when not zero or empty
    (they have no presence on the wire), each optional one given or left at its default."""
    plain = {
        "policy": draw(text),
        "half_life_seconds": draw(finite),
        "base_grant": draw(finite),
        "model_weights": tuple(draw(st.lists(st.tuples(text, finite), max_size=3))),
        "preemption_grace_seconds": draw(finite),
        "age_weight": draw(finite),
    }
    optional = {
        name: draw(st.booleans() if name in ("fair_share_preemption", "low_carbon_default") else finite)
        for name in draw(st.sets(st.sampled_from(OPTIONAL_SETTINGS)))
    }
    given = {name for name, value in plain.items() if value} | set(optional)
    return PartialSettings(ShareSettings(**plain, **optional), frozenset(given))


def _quota_views() -> st.SearchStrategy[QuotaView]:
    return st.builds(
        QuotaView,
        rows=st.lists(flat(QuotaRow), max_size=3),
        institutions=st.lists(flat(InstitutionQuota), max_size=3),
        tree=st.lists(flat(TreeNode), max_size=3),
        capacity=int32,
        floor=flat(Floor),
    )


Case = tuple[st.SearchStrategy[Any], Callable[[Any], Any], Callable[[Any], Any]]
CASES: dict[str, Case] = {
    "institution": (flat(Institution), accounts.institution_to_pb, accounts.institution_from_pb),
    "user": (flat(User), accounts.user_to_pb, accounts.user_from_pb),
    "token info": (flat(TokenInfo), accounts.token_info_to_pb, accounts.token_info_from_pb),
    "new user": (
        st.builds(NewUser, user=flat(User), token=text, expires_at=finite),
        accounts.new_user_to_pb,
        accounts.new_user_from_pb,
    ),
    "join token": (flat(JoinToken), accounts.join_token_to_pb, accounts.join_token_from_pb),
    "new token": (flat(NewToken), accounts.new_token_to_pb, accounts.new_token_from_pb),
    "whoami": (
        st.builds(Principal, name=text, role=SCALARS[Role], institution=text),
        accounts.whoami_to_pb,
        accounts.whoami_from_pb,
    ),
    "audit entry": (flat(AuditEntry), audit.audit_entry_to_pb, audit.audit_entry_from_pb),
    "broker status": (flat(LeadershipStatus), leadership.leadership_to_pb, leadership.leadership_from_pb),
    "quota view": (_quota_views(), quotas.quota_view_to_pb, quotas.quota_view_from_pb),
    "usage report": (
        st.builds(
            UsageReport, since=finite, until=finite, by=text, lines=st.lists(flat(UsageLine), max_size=3).map(tuple)
        ),
        usage.usage_report_to_pb,
        usage.usage_report_from_pb,
    ),
    "site view": (site_views, sites.site_view_to_pb, sites.site_view_from_pb),
    "site lending": (
        st.builds(
            SiteLending, site=text, institution=text, policy=st.none() | lending_policies, open_now=st.booleans()
        ),
        lending.site_lending_to_pb,
        lending.site_lending_from_pb,
    ),
    "project": (flat(ProjectShare), shares.project_to_pb, shares.project_from_pb),
    "node weight": (flat(NodeWeight), shares.node_weight_to_pb, shares.node_weight_from_pb),
    "guarantee": (flat(Guarantee), shares.guarantee_to_pb, shares.guarantee_from_pb),
    "limits": (
        st.builds(
            InstitutionLimits, institution=text, borrowing_limit=st.none() | count32, lending_limit=st.none() | count32
        ),
        shares.limits_to_pb,
        shares.limits_from_pb,
    ),
    "partial settings": (partial_settings(), shares.partial_settings_to_pb, shares.partial_settings_from_pb),
}


@pytest.mark.parametrize("case", sorted(CASES))
@PROPS
@given(data=st.data())
def test_round_trip(case: str, data: st.DataObject) -> None:
    values, to_pb, from_pb = CASES[case]
    value = data.draw(values)
    assert from_pb(wire(to_pb(value))) == value


@PROPS
@given(partial_settings())
def test_a_policy_message_reads_back_to_the_same_message(update: PartialSettings) -> None:
    pb = shares.partial_settings_to_pb(update)
    assert shares.partial_settings_to_pb(shares.partial_settings_from_pb(wire(pb))) == pb


def test_a_policy_update_carries_what_it_gives_alone() -> None:
    """`policy set --preemption-cap 0.5 --no-fair-share-preemption`: those two, false included."""
    update = PartialSettings(
        ShareSettings(preemption_cap=0.5, fair_share_preemption=False),
        frozenset({"preemption_cap", "fair_share_preemption"}),
    )
    assert shares.partial_settings_to_pb(update) == admin_pb2.Policy(preemption_cap=0.5, fair_share_preemption=False)


def test_the_whole_policy_gives_every_setting() -> None:
    pb = wire(shares.share_settings_to_pb(ShareSettings(fair_share_preemption=False, base_grant_fraction=0.0)))
    assert all(pb.HasField(name) for name in OPTIONAL_SETTINGS)
    read = shares.partial_settings_from_pb(pb)
    assert read.given >= set(OPTIONAL_SETTINGS) and read.settings.fair_share_preemption is False


def test_a_policy_from_a_broker_before_issue_10_gives_none_of_its_settings() -> None:
    read = shares.partial_settings_from_pb(admin_pb2.Policy(share_policy="static", half_life_seconds=3600.0))
    assert read.given == {"policy", "half_life_seconds"}


def test_unlimited_is_minus_one_on_the_wire() -> None:
    pb = shares.limits_to_pb(InstitutionLimits("uchile", None, 4))
    assert (pb.borrowing_limit, pb.lending_limit) == (-1, 4)
    assert shares.limit_to_pb(None) == -1 and shares.limit_to_pb(0) == 0


def test_a_site_without_a_lending_policy_says_so() -> None:
    pb = lending.site_lending_to_pb(SiteLending("dcc", "uchile", None, True))
    assert not pb.has_policy
    assert lending.site_lending_from_pb(pb).policy is None


def test_the_project_name_is_the_part_after_its_institution() -> None:
    pb = shares.project_to_pb(ProjectShare("uchile/nlp", "uchile", 2.0))
    assert (pb.id, pb.name) == ("uchile/nlp", "nlp")


@pytest.mark.parametrize("state", list(SiteState))
def test_site_state_round_trip(state: SiteState) -> None:
    assert enums.site_state_from_pb(enums.site_state_to_pb(state)) is state


@pytest.mark.parametrize("read", [enums.known_role_from_pb, enums.site_state_from_pb])
def test_an_answer_without_a_role_or_state_is_refused(read: Callable[[int], object]) -> None:
    with pytest.raises(InvalidArgument, match="not a known value"):
        read(common_pb2.ROLE_UNSPECIFIED)
