"""Fair Tree order, entitlement, guarantees and placement preferences: examples."""

from __future__ import annotations

import pytest

from minga.scheduler.policy.entitlement import build_tree, entitlements, job_project, model_weight
from minga.scheduler.policy.fairshare import fair_tree_order, institution_factors, order_pending
from minga.scheduler.policy.guarantees import guarantees, quota_rows
from minga.scheduler.policy.latency import country_groups, default_rank
from minga.scheduler.policy.schedule import schedule_fifo
from tests.test_fairshare_helpers import (
    HOUR,
    NOW,
    ProjectShare,
    ShareSettings,
    decide,
    inst,
    job,
    placed,
    pool,
    run,
    site,
    snap,
    waiting,
)

STATIC = ShareSettings(policy="static")


# -- entitlement -------------------------------------------------------------------


def test_contribution_earns_share_and_the_base_grant_is_a_floor():
    s = snap(
        [],
        [inst("rich", contribution=9.0), inst("poor")],
        settings=ShareSettings(base_grant=1.0, base_grant_fraction=0.0),
    )
    ent = entitlements(build_tree(s)).institution
    assert ent["rich"] > ent["poor"] > 0
    assert ent["rich"] == pytest.approx(10 / 11) and ent["poor"] == pytest.approx(1 / 11)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_the_base_grant_scales_so_no_entitlement_is_below_the_floor(fraction):
    """A GPU-less institution's entitlement is `fraction` of the mean entitlement, whatever
    the contributors made available; contribution still earns more."""
    insts = [inst("big", contribution=1900.0), inst("host", contribution=1900.0), inst("none")]
    s = snap([], insts, settings=ShareSettings(base_grant=1.0, base_grant_fraction=fraction))
    ent = entitlements(build_tree(s)).institution
    assert ent["none"] == pytest.approx(fraction / 3)
    assert ent["big"] == ent["host"] > ent["none"]


def test_a_fixed_base_grant_larger_than_the_scaled_one_wins():
    s = snap([], [inst("a", contribution=4.0), inst("b")], settings=ShareSettings(base_grant=10.0))
    ent = entitlements(build_tree(s)).institution
    assert ent["b"] == pytest.approx(10 / 24)


def test_static_policy_uses_the_admin_weights():
    s = snap([], [inst("a", weight=3.0, contribution=100.0), inst("b", weight=1.0)], settings=STATIC)
    ent = entitlements(build_tree(s)).institution
    assert ent["a"] == pytest.approx(0.75)


def test_country_weight_defaults_to_the_sum_of_its_institutions_and_can_be_set():
    insts = [inst("a", "CL", weight=1.0), inst("b", "CL", weight=1.0), inst("c", "BR", weight=2.0)]
    ent = entitlements(build_tree(snap([], insts, settings=STATIC)))
    assert ent.country["CL"] == pytest.approx(0.5) and ent.institution["c"] == pytest.approx(0.5)
    ent = entitlements(build_tree(snap([], insts, settings=STATIC, country_weights=[("CL", 3.0)])))
    assert ent.country["CL"] == pytest.approx(0.6) and ent.institution["a"] == pytest.approx(0.3)


def test_project_weights_split_the_institution_share():
    s = snap(
        [],
        [inst("a"), inst("b")],
        settings=STATIC,
        projects=[ProjectShare("a/x", "a", 3.0), ProjectShare("a/y", "a", 1.0)],
    )
    ent = entitlements(build_tree(s)).project
    assert ent["a/x"] == pytest.approx(0.375) and ent["a/y"] == pytest.approx(0.125)
    assert ent["b/default"] == pytest.approx(0.5)  # every institution has a default project


def test_model_weights_normalize_and_unknown_models_count_one():
    settings = ShareSettings()
    assert model_weight(settings, "H100") == 1.0 and model_weight(settings, "T4") == 0.1
    assert model_weight(settings, "MI300X") == 1.0


def test_job_project_defaults_and_qualifies():
    assert job_project(job("j", "uchile")) == "uchile/default"
    assert job_project(job("j", "uchile", project="nlp")) == "uchile/nlp"
    assert job_project(job("j", "uchile", project="uchile/nlp")) == "uchile/nlp"


# -- Fair Tree order ---------------------------------------------------------------


def test_institution_with_less_usage_relative_to_entitlement_goes_first():
    sites = [site("s", "x", pool("A100", 1))]
    insts = [inst("heavy"), inst("light"), inst("x")]
    pending = [job("h", "heavy", submitted=0), job("l", "light", submitted=10)]
    d = decide(snap(sites, insts, pending, usage=[("heavy/default", 1000.0), ("light/default", 10.0)], settings=STATIC))
    assert list(placed(d)) == ["l"]


def test_usage_is_relative_to_entitlement():
    """Twice the usage with four times the weight is the lower ratio."""
    s = snap(
        [],
        [inst("big", weight=4.0), inst("small", weight=1.0)],
        settings=STATIC,
        usage=[("big/default", 200.0), ("small/default", 100.0)],
    )
    assert fair_tree_order(s)[:2] == ["big/default", "small/default"]


def test_projects_within_an_institution_are_ordered_by_their_own_usage():
    projects = [ProjectShare("a/busy", "a"), ProjectShare("a/idle", "a")]
    s = snap(
        [], [inst("a"), inst("b")], projects=projects, settings=STATIC, usage=[("a/busy", 500.0), ("b/default", 10.0)]
    )
    order = fair_tree_order(s)
    assert order.index("a/idle") < order.index("a/busy")
    # Fair Tree: institution b (less used relative to share) outranks all of a's projects.
    assert order[0] == "b/default"


def test_fair_tree_compares_countries_first():
    insts = [inst("cl1", "CL"), inst("cl2", "CL"), inst("br1", "BR")]
    s = snap([], insts, settings=STATIC, usage=[("cl1/default", 100.0), ("br1/default", 60.0)])
    # CL used 100 of 2/3 share, BR 60 of 1/3 share: CL's ratio is lower, so both CL
    # institutions go before BR, even cl1, which used more than br1.
    assert fair_tree_order(s) == ["cl2/default", "cl1/default", "br1/default"]


def test_jobs_of_one_project_keep_submit_order():
    s = snap(
        [], [inst("a")], [job("late", "a", submitted=50), job("early", "a", submitted=1), job("mid", "a", submitted=20)]
    )
    assert [j.id for j in order_pending(s, NOW + HOUR)] == ["early", "mid", "late"]


def test_age_factor_keeps_the_heavy_user_from_starving():
    insts = [inst("heavy"), inst("light")]
    usage = [("heavy/default", 1000.0)]
    pending = [job("old", "heavy", submitted=-100 * HOUR), job("new", "light", submitted=0)]
    s = snap([], insts, pending, usage=usage, settings=ShareSettings(policy="static"))
    assert [j.id for j in order_pending(s, NOW)] == ["new", "old"]
    aged = snap([], insts, pending, usage=usage, settings=ShareSettings(policy="static", age_weight=0.01))
    assert [j.id for j in order_pending(aged, NOW)] == ["old", "new"]


def test_live_runs_break_ties_between_equal_usage():
    sites = [site("s", "a", pool("A100", 8))]
    s = snap(sites, [inst("a"), inst("b")], runs=[run("r", "s", "a", 4)], settings=STATIC)
    assert fair_tree_order(s)[0] == "b/default"


def test_institution_factor_is_slurm_classic():
    s = snap([], [inst("a"), inst("b")], settings=STATIC, usage=[("a/default", 1.0)])
    f = institution_factors(s)
    assert f["b"] == 1.0 and f["a"] == pytest.approx(2**-2)


# -- no institutions: FIFO exactly as before ----------------------------------------


def test_without_institutions_the_policy_is_fifo():
    s = snap(
        [site("s", "a", pool("A100", 4))], [], [job("late", "a", 4, submitted=5), job("early", "a", 4, submitted=1)]
    )
    d = decide(s)
    assert d == schedule_fifo(s) and list(placed(d)) == ["early"]


# -- guarantees, borrowing, lending ------------------------------------------------


def test_guarantee_defaults_to_own_sites():
    s = snap(
        [site("s1", "a", pool("A100", 8), pool("T4", 4, 16_000)), site("s2", "a", pool("A100", 2))],
        [inst("a"), inst("b")],
    )
    g, notes = guarantees(s)
    assert g["a"] == {"A100": 10, "T4": 4} and g["b"] == {} and notes == ()


def test_explicit_guarantees_are_capped_by_the_federation():
    s = snap(
        [site("s1", "a", pool("A100", 8))],
        [inst("a"), inst("b", guarantee=(("A100", 16),)), inst("c", guarantee=(("H100", 2),))],
    )
    g, notes = guarantees(s)
    assert g["b"]["A100"] == 8 and g["c"]["H100"] == 0 and len(notes) == 2 and "A100" in notes[0]
    s = snap(
        [site("s1", "a", pool("A100", 8))], [inst("a", guarantee=(("A100", 4),)), inst("b", guarantee=(("A100", 2),))]
    )
    g, notes = guarantees(s)
    assert g["a"]["A100"] == 4 and g["b"]["A100"] == 2 and notes == ()


def test_quota_rows_show_borrowed_and_lent():
    sites = [site("sa", "a", pool("A100", 8)), site("sb", "b", pool("A100", 2))]
    runs = [run("r1", "sa", "b", 4), run("r2", "sb", "b", 2)]
    rows = {(r.institution, r.model): r for r in quota_rows(snap(sites, [inst("a"), inst("b")], runs=runs))}
    assert rows[("b", "A100")].used == 6 and rows[("b", "A100")].borrowed == 4
    assert rows[("a", "A100")].lent == 4 and rows[("a", "A100")].borrowed == 0


def test_borrowing_limit_binds_with_a_quota_reason():
    sites = [site("sa", "a", pool("A100", 8))]
    d = decide(
        snap(
            sites,
            [inst("a"), inst("b", borrowing_limit=2)],
            [job("small", "b", 2, submitted=0), job("more", "b", 1, submitted=1)],
        )
    )
    assert list(placed(d)) == ["small"]
    assert waiting(d)["more"].reason.startswith("quota:")


def test_lending_limit_binds_with_a_quota_reason():
    sites = [site("sa", "a", pool("A100", 8))]
    d = decide(
        snap(sites, [inst("a", lending_limit=3), inst("b")], [job("big", "b", 4), job("ok", "b", 3, submitted=1)])
    )
    assert list(placed(d)) == ["ok"]
    assert waiting(d)["big"].reason.startswith("quota:")
    # The owner itself is not limited by its own lending limit.
    d = decide(snap(sites, [inst("a", lending_limit=0), inst("b")], [job("own", "a", 8)]))
    assert list(placed(d)) == ["own"]


# -- placement preferences -----------------------------------------------------------


def test_own_sites_come_first_even_over_a_tighter_fit():
    sites = [site("other", "b", pool("A100", 2)), site("mine", "a", pool("A100", 8))]
    d = decide(snap(sites, [inst("a"), inst("b")], [job("j", "a", 2)]))
    assert placed(d)["j"].site == "mine"


def test_data_country_then_subregion_then_elsewhere():
    sites = [
        site("mx", "x", pool("A100", 2), country="MX"),
        site("cl", "y", pool("A100", 8), country="CL"),
        site("br", "z", pool("A100", 8), country="BR"),
        site("ar", "w", pool("A100", 8), country="AR"),
    ]
    insts = [inst("u", "PE"), inst("x", "MX"), inst("y", "CL"), inst("z", "BR"), inst("w", "AR")]
    d = decide(snap(sites, insts, [job("j", "u", 2, data_country="BR")]))
    assert placed(d)["j"].site == "br"
    d = decide(snap(sites, insts, [job("j", "u", 2, data_country="UY")]))  # Southern Cone: AR or CL
    assert placed(d)["j"].site in {"ar", "cl"}
    d = decide(snap(sites, insts, [job("j", "u", 2, data_country="GT")]))  # Central America: MX
    assert placed(d)["j"].site == "mx"


def test_data_country_defaults_to_the_institution_country():
    sites = [site("cl", "y", pool("A100", 2), country="CL"), site("mx", "x", pool("A100", 2), country="MX")]
    d = decide(snap(sites, [inst("u", "MX"), inst("x", "MX"), inst("y", "CL")], [job("j", "u", 2)]))
    assert placed(d)["j"].site == "mx"


def test_admin_latency_ranks_override_the_default():
    sites = [site("cl", "y", pool("A100", 8), country="CL"), site("mx", "x", pool("A100", 8), country="MX")]
    settings = ShareSettings(latency=(("AR", "MX", 0), ("AR", "CL", 5)))
    d = decide(
        snap(
            sites,
            [inst("u", "AR"), inst("x", "MX"), inst("y", "CL")],
            [job("j", "u", 2, data_country="AR")],
            settings=settings,
        )
    )
    assert placed(d)["j"].site == "mx"


def test_best_fit_within_a_tier():
    sites = [site("big", "x", pool("A100", 8)), site("small", "y", pool("A100", 2))]
    d = decide(snap(sites, [inst("u"), inst("x"), inst("y")], [job("j", "u", 2)]))
    assert placed(d)["j"].site == "small"


def test_allowed_countries_are_hard():
    sites = [site("cl", "y", pool("A100", 8), country="CL"), site("br", "z", pool("A100", 8), country="BR")]
    d = decide(snap(sites, [inst("u", "CL"), inst("y"), inst("z", "BR")], [job("j", "u", 2, countries=("BR",))]))
    assert placed(d)["j"].site == "br"


def test_site_labels_are_a_hard_constraint():
    ib = (("fabric", "infiniband"),)
    sites = [site("plain", "u", pool("A100", 8)), site("fast", "x", pool("A100", 8), labels=ib)]
    d = decide(snap(sites, [inst("u"), inst("x")], [job("j", "u", 4, labels=ib)]))
    assert placed(d)["j"].site == "fast"
    d = decide(snap(sites[:1], [inst("u")], [job("j", "u", 4, labels=ib)]))
    w = waiting(d)["j"]
    assert w.never_fits and w.reason.startswith("label:") and "fabric=infiniband" in w.reason


@pytest.mark.parametrize(
    ("kw", "prefix"),
    [
        (dict(countries=("PE",)), "country:"),
        (dict(models=("H100",)), "model:"),
        (dict(gpus=16), "capacity:"),
    ],
)
def test_never_fits_reasons_name_the_constraint(kw, prefix):
    kw = {"gpus": 1, **kw}
    d = decide(snap([site("s", "u", pool("A100", 8))], [inst("u")], [job("j", "u", **kw)]))
    w = waiting(d)["j"]
    assert w.never_fits and w.reason.startswith(prefix), w.reason


def test_capacity_reason_when_full():
    sites = [site("s", "u", pool("A100", 4))]
    d = decide(snap(sites, [inst("u")], [job("a", "u", 4), job("b", "u", 2, submitted=1)]))
    assert waiting(d)["b"].reason.startswith(("capacity:", "reservation:"))


def test_cpu_only_jobs_are_placed():
    sites = [site("s", "u", pool("A100", 4), cpus=8)]
    d = decide(snap(sites, [inst("u")], [job("c", "u", 0, cpus=4), job("d", "u", 0, cpus=8, submitted=1)]))
    assert placed(d)["c"].gpus == 0 and waiting(d)["d"].reason.startswith("capacity:")


def test_latency_groups():
    assert default_rank("AR", "AR") == 0 and default_rank("AR", "UY") == 1 and default_rank("AR", "MX") == 2
    assert country_groups("PE", ["MX", "CO", "PE", "BO"], {}) == [["PE"], ["BO", "CO"], ["MX"]]


# -- water-filling inside the cycle ------------------------------------------------


def _held_by(d, pending):
    inst_of = {j.id: j.institution for j in pending}
    held: dict[str, int] = {}
    for p in d.placements:
        held[inst_of[p.job_id]] = held.get(inst_of[p.job_id], 0) + p.gpus
    return held


@pytest.mark.parametrize(
    "gpus, weights, expected",
    [
        (12, (1.0, 1.0, 1.0), {"a": 4, "b": 4, "c": 4}),
        (16, (1.0, 1.0, 2.0), {"a": 4, "b": 4, "c": 8}),
        (30, (1.0, 2.0, 3.0), {"a": 5, "b": 10, "c": 15}),
    ],
)
def test_one_cycle_splits_idle_gpus_by_weight(gpus, weights, expected):
    """A burst from three institutions on idle GPUs owned by a fourth is split in the same
    cycle (weighted max-min), not handed to whoever is first in Fair Tree order."""
    sites = [site("s1", "host", pool("A100", gpus))]
    insts = [inst("host")] + [inst(s, weight=w) for s, w in zip("abc", weights, strict=True)]
    pending = [job(f"{s}{i:02d}", s, 1, submitted=float(i)) for s in "abc" for i in range(gpus)]
    d = decide(snap(sites, insts, pending, settings=STATIC, usage=[("a/default", 1e6)]))
    assert _held_by(d, pending) == expected


def test_water_filling_counts_what_is_held_already():
    """b already holds 6 of 12: the 6 idle GPUs go to a and c, 3 each. b's runs are inside
    the preemption grace here; past it, fair-share preemption evens the split to 4/4/4."""
    sites = [site("s1", "host", pool("A100", 12))]
    insts = [inst("host"), inst("a"), inst("b"), inst("c")]
    pending = [job(f"{s}{i}", s, 1, submitted=float(i)) for s in "abc" for i in range(12)]
    young = [run(f"r{i}", "s1", "b", 1, started=-60) for i in range(6)]
    d = decide(snap(sites, insts, pending, young, settings=STATIC))
    assert _held_by(d, pending) == {"a": 3, "c": 3} and d.preemptions == ()
    old = [run(f"r{i}", "s1", "b", 1, started=-HOUR) for i in range(6)]
    d = decide(snap(sites, insts, pending, old, settings=STATIC))
    assert _held_by(d, pending) == {"a": 4, "c": 4}
    assert sorted((p.kind, p.beneficiary) for p in d.preemptions) == [("fair-share", "a"), ("fair-share", "c")]


def test_water_filling_holds_at_every_level_of_the_tree():
    """Countries first (CL weighs 2, BR 1 by its institutions), then institutions, then projects."""
    sites = [site("s1", "host", pool("A100", 12), country="AR")]
    insts = [inst("host", "AR"), inst("cl1", "CL"), inst("cl2", "CL"), inst("br", "BR")]
    projects = [ProjectShare("cl1/x", "cl1", 1.0), ProjectShare("cl1/y", "cl1", 1.0)]
    pending = (
        [job(f"x{i}", "cl1", project="x", submitted=float(i)) for i in range(12)]
        + [job(f"y{i}", "cl1", project="y", submitted=float(i)) for i in range(12)]
        + [job(f"c{i}", "cl2", submitted=float(i)) for i in range(12)]
        + [job(f"b{i}", "br", submitted=float(i)) for i in range(12)]
    )
    d = decide(snap(sites, insts, pending, settings=STATIC, projects=projects))
    assert _held_by(d, pending) == {"cl1": 4, "cl2": 4, "br": 4}
    by_project = [p.job_id[0] for p in d.placements if p.job_id[0] in "xy"]
    assert sorted(by_project) == ["x", "x", "y", "y"]


def test_jobs_of_one_project_keep_their_order_under_water_filling():
    sites = [site("s1", "host", pool("A100", 4))]
    pending = [job(f"a{i}", "a", 1, submitted=float(-i)) for i in range(6)] + [
        job(f"b{i}", "b", 1, submitted=float(i)) for i in range(6)
    ]
    d = decide(snap(sites, [inst("host"), inst("a"), inst("b")], pending, settings=STATIC))
    assert sorted(placed(d)) == ["a4", "a5", "b0", "b1"]  # each institution's oldest two
