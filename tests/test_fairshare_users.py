"""Fair share down to each researcher: the user leaves of the account tree (pure policy)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import Job, Run
from minga.common.shares import ShareSettings, model_weight
from minga.scheduler.accounting import Ledger, charge, decayed
from minga.scheduler.policy.entitlement import build_tree
from minga.scheduler.policy.fairshare import order_pending, user_factors
from minga.scheduler.policy.user_tree import build_users, user_shares_now
from tests.test_fairshare_helpers import HOUR, NOW, ProjectShare, decide, inst, job, placed, pool, run, site, snap

PROJECT = "uchile/nlp"


def owned(j: Job, owner: str) -> Job:
    return replace(j, owner=owner)


def run_of(r: Run, owner: str) -> Run:
    return replace(r, owner=owner)


def sweep_and_single(busy: int = 4, free: int = 1, user_usage=(), user_weights=()):
    """alice: a 1,000-job sweep submitted first, `busy` of her runs live; bob: one job, later."""
    sweep = [owned(job(f"a{i:04d}", "uchile", project="nlp", submitted=i), "alice") for i in range(1000)]
    single = owned(job("b0", "uchile", project="nlp", submitted=5000), "bob")
    runs = [run_of(run(f"r{i}", "s1", "uchile", project=PROJECT), "alice") for i in range(busy)]
    s = snap(
        [site("s1", "uchile", pool(total=busy + free))],
        [inst("uchile")],
        pending=[*sweep, single],
        runs=runs,
        projects=[ProjectShare(PROJECT, "uchile")],
    )
    return replace(s, user_usage=tuple(user_usage), user_weights=tuple(user_weights))


def test_the_single_job_goes_before_the_sweep_in_queue_order():
    s = sweep_and_single()
    order = [j.id for j in order_pending(s, NOW)]
    assert order[0] == "b0"
    assert order[1:4] == ["a0000", "a0001", "a0002"]  # then alice's, in submit order


def test_the_single_job_takes_the_one_free_gpu():
    d = decide(sweep_and_single())
    assert list(placed(d)) == ["b0"]


def test_in_submit_order_without_user_leaves_the_sweep_would_win():
    """The same jobs, all one owner: then only submit time decides, and the sweep goes first."""
    s = sweep_and_single()
    s = replace(s, pending=tuple(owned(j, "alice") for j in s.pending))
    assert list(placed(decide(s))) == ["a0000"]


def test_lower_decayed_usage_goes_first_even_with_no_gpus_held():
    s = sweep_and_single(busy=0, user_usage=(("uchile/nlp/alice", 10 * HOUR), ("uchile/nlp/bob", HOUR)))
    assert order_pending(s, NOW)[0].id == "b0"
    s = sweep_and_single(busy=0, user_usage=(("uchile/nlp/alice", HOUR), ("uchile/nlp/bob", 10 * HOUR)))
    assert order_pending(s, NOW)[0].id == "a0000"


def test_weights_shift_the_order():
    """Usage over entitlement: alice used 3x bob's, but weighs 4x: she is below her share."""
    usage = (("uchile/nlp/alice", 3 * HOUR), ("uchile/nlp/bob", HOUR))
    s = sweep_and_single(busy=0, user_usage=usage)
    assert order_pending(s, NOW)[0].id == "b0"
    s = sweep_and_single(busy=0, user_usage=usage, user_weights=(("uchile/nlp/alice", 4.0),))
    assert order_pending(s, NOW)[0].id == "a0000"
    factors = user_factors(s)
    assert factors["uchile/nlp/alice"] > factors["uchile/nlp/bob"]


def test_water_filling_splits_free_gpus_among_users():
    """Two users, each with many jobs and none running: four free GPUs (borrowed: within
    a guarantee the queue's Fair Tree order goes first) go two and two."""
    a = [owned(job(f"a{i}", "uchile", project="nlp", submitted=i), "alice") for i in range(10)]
    b = [owned(job(f"b{i}", "uchile", project="nlp", submitted=100 + i), "bob") for i in range(10)]
    s = snap([site("s1", "puc", pool(total=4))], [inst("uchile"), inst("puc")], pending=[*a, *b])
    got = sorted(placed(decide(s)))
    assert got == ["a0", "a1", "b0", "b1"]


def test_user_factors_rank_every_leaf_depth_first():
    """Two projects: the project ahead in Fair Tree has both its users ahead of the other's."""
    jobs = [
        owned(job("x", "uchile", project="nlp"), "alice"),
        owned(job("y", "uchile", project="nlp"), "bob"),
        owned(job("z", "uchile", project="cv"), "carol"),
    ]
    s = snap(
        [site("s1", "uchile")],
        [inst("uchile")],
        pending=jobs,
        projects=[ProjectShare(PROJECT, "uchile"), ProjectShare("uchile/cv", "uchile")],
        usage=(("uchile/cv", 5 * HOUR),),
    )
    f = user_factors(s)
    assert set(f) == {"uchile/nlp/alice", "uchile/nlp/bob", "uchile/cv/carol"}
    assert min(f["uchile/nlp/alice"], f["uchile/nlp/bob"]) > f["uchile/cv/carol"]
    assert sorted(f.values()) == [1 / 3, 2 / 3, 1.0]


def test_users_of_a_project_come_from_jobs_runs_and_usage():
    s = sweep_and_single(busy=1, user_usage=(("uchile/nlp/dora", 1.0), ("uchile/nlp/gone", 0.0)))
    s = replace(s, pending=s.pending[:1], user_weights=(("uchile/nlp/dora", 2.0),))
    users = build_users(s, build_tree(s))
    assert users == {PROJECT: {"uchile/nlp/alice": 1.0, "uchile/nlp/dora": 2.0}}


def test_charging_keeps_a_decayed_ledger_per_user():
    settings_ = ShareSettings(half_life_seconds=HOUR)
    r = replace(run_of(run("r1", "s1", "uchile", gpus=2, project=PROJECT), "alice"), charged_until=NOW)
    old = {"uchile/nlp/alice": Ledger(100.0, NOW - HOUR)}
    batch = charge(NOW + 10, settings_, [r], [], {PROJECT: Ledger(100.0, NOW - HOUR)}, {}, old)
    expected = decayed(100.0, NOW - HOUR, NOW + 10, HOUR) + 2 * model_weight(settings_, "A100") * 10
    assert batch.user_usage["uchile/nlp/alice"].value == expected
    assert batch.usage[PROJECT].value == expected  # the project's is its users' sum


def test_a_projects_share_now_is_split_among_its_users_by_max_min():
    users = {PROJECT: {"uchile/nlp/alice": 1.0, "uchile/nlp/bob": 1.0, "uchile/nlp/carol": 2.0}}
    demand = {"uchile/nlp/alice": 100.0, "uchile/nlp/bob": 1.0, "uchile/nlp/carol": 100.0}
    share = user_shares_now(users, {PROJECT: 10.0}, demand)
    assert share["uchile/nlp/bob"] == 1.0
    assert abs(share["uchile/nlp/alice"] - 3.0) < 1e-9
    assert abs(share["uchile/nlp/carol"] - 6.0) < 1e-9


@settings(max_examples=40, deadline=None)
@given(
    sweep=st.integers(min_value=1, max_value=60),
    busy=st.integers(min_value=1, max_value=4),
    late=st.floats(min_value=0, max_value=10 * HOUR),
)
def test_a_user_holding_nothing_goes_before_a_user_holding_gpus(sweep, busy, late):
    """Equal usage, equal weight: whoever holds no GPUs now is placed first, whenever they submitted."""
    jobs = [owned(job(f"a{i}", "uchile", project="nlp", submitted=i), "alice") for i in range(sweep)]
    jobs.append(owned(job("b0", "uchile", project="nlp", submitted=late), "bob"))
    runs = [run_of(run(f"r{i}", "s1", "uchile", project=PROJECT), "alice") for i in range(busy)]
    s = snap([site("s1", "uchile", pool(total=busy + 1))], [inst("uchile")], pending=jobs, runs=runs)
    assert order_pending(s, NOW)[0].id == "b0"
    assert list(placed(decide(s))) == ["b0"]
