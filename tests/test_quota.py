"""The quota view (scheduler/quota.py): owned, in use, held and pending GPUs per institution and model;
per institution its fair share now (issue 10), and the entitlement floor."""

from __future__ import annotations

import pytest

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Site
from minga.scheduler.policy import InstitutionShare, ShareSettings, Snapshot
from minga.scheduler.policy.share_now import snapshot_share_now
from minga.scheduler.quota import ANY_MODEL, QuotaRow, entitlement_floor, quota_rows, quota_view, tree_nodes
from tests.test_fairshare_helpers import inst, pool, run, snap
from tests.test_fairshare_helpers import job as pending
from tests.test_fairshare_helpers import site as gpu_site

INSTITUTIONS = [("uchile", "CL"), ("usp", "BR"), ("unam", "MX")]


def site(name, institution, *pools) -> Site:
    return Site(
        name=name,
        institution=institution,
        country="CL",
        inventory=Inventory(gpus=tuple(GpuPool(m, 40_000, n, n) for m, n in pools), cpus=64),
    )


_ids = iter(range(10_000))


def job(institution, state, gpus, model="", models=()) -> Job:
    spec = JobSpec(entrypoint="x", resources=Resources(gpus=gpus, gpu_models=tuple(models)))
    return Job(
        id=f"j{next(_ids)}",
        spec=spec,
        state=state,
        owner="ana",
        institution=institution,
        submitted_at=0.0,
        gpu_model=model,
    )


def rows_by_key(rows):
    return {(r.institution, r.gpu_model): r for r in rows}


def test_owned_sums_every_site_of_the_institution():
    sites = [
        site("a", "uchile", ("A100", 8), ("T4", 4)),
        site("b", "uchile", ("A100", 2)),
        site("c", "usp", ("H100", 4)),
    ]
    rows = rows_by_key(quota_rows(INSTITUTIONS, sites, []))
    assert rows[("uchile", "A100")].owned == 10
    assert rows[("uchile", "T4")].owned == 4
    assert rows[("usp", "H100")].owned == 4
    assert ("usp", "A100") not in rows


def test_institution_with_nothing_gets_one_empty_row():
    rows = quota_rows(INSTITUTIONS, [site("a", "uchile", ("A100", 8))], [])
    assert [r for r in rows if r.institution == "unam"] == [QuotaRow("unam", "MX", "")]


def test_running_counts_as_in_use_and_held():
    rows = rows_by_key(quota_rows(INSTITUTIONS, [], [job("uchile", JobState.RUNNING, 4, model="A100")]))
    r = rows[("uchile", "A100")]
    assert (r.in_use, r.held, r.pending) == (4, 4, 0)


def test_leased_and_cancelling_are_held_not_in_use():
    jobs = [job("uchile", JobState.LEASED, 2, model="A100"), job("uchile", JobState.CANCELLING, 3, model="A100")]
    r = rows_by_key(quota_rows(INSTITUTIONS, [], jobs))[("uchile", "A100")]
    assert (r.in_use, r.held) == (0, 5)


def test_pending_is_charged_to_its_one_model_or_to_any():
    jobs = [
        job("usp", JobState.PENDING, 2, models=("H100",)),
        job("usp", JobState.PENDING, 1),
        job("usp", JobState.PENDING, 3, models=("H100", "A100")),
    ]
    rows = rows_by_key(quota_rows(INSTITUTIONS, [], jobs))
    assert rows[("usp", "H100")].pending == 2
    assert rows[("usp", ANY_MODEL)].pending == 4


def test_terminal_and_cpu_only_jobs_count_for_nothing():
    jobs = [job("uchile", s, 4, model="A100") for s in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)]
    jobs.append(job("uchile", JobState.RUNNING, 0))
    jobs.append(job("uchile", JobState.PENDING, 0))
    rows = quota_rows(INSTITUTIONS, [], jobs)
    assert [r for r in rows if r.institution == "uchile"] == [QuotaRow("uchile", "CL", "")]


def test_jobs_are_charged_to_their_own_institution():
    sites = [site("a", "uchile", ("A100", 8))]
    jobs = [job("usp", JobState.RUNNING, 4, model="A100")]  # usp runs on uchile's GPUs
    rows = rows_by_key(quota_rows(INSTITUTIONS, sites, jobs))
    assert (rows[("uchile", "A100")].owned, rows[("uchile", "A100")].in_use) == (8, 0)
    assert (rows[("usp", "A100")].owned, rows[("usp", "A100")].in_use) == (0, 4)


def test_rows_are_sorted_and_carry_the_country():
    sites = [site("a", "usp", ("T4", 1), ("A100", 1)), site("b", "uchile", ("H100", 1))]
    rows = quota_rows(list(reversed(INSTITUTIONS)), sites, [])
    assert [(r.institution, r.gpu_model) for r in rows] == [
        ("uchile", "H100"),
        ("unam", ""),
        ("usp", "A100"),
        ("usp", "T4"),
    ]
    assert {r.institution: r.country for r in rows} == {"uchile": "CL", "usp": "BR", "unam": "MX"}


def test_unknown_institutions_are_not_listed():
    rows = quota_rows(
        [("uchile", "CL")], [site("x", "ghost", ("A100", 8))], [job("ghost", JobState.RUNNING, 1, model="A100")]
    )
    assert [r.institution for r in rows] == ["uchile"]


# -- issue 10: the fair share now, next to what each institution holds -------------------


def _now_snapshot() -> Snapshot:
    """A host lends 12 GPUs; `a` holds 8 of them and wants 8 more, `b` wants 6, `c` wants 2."""
    return snap(
        [gpu_site("big", "host", pool("A100", 12))],
        [inst("host"), inst("a", "AR"), inst("b", "BR"), inst("c", "MX")],
        pending=[
            pending("a1", "a", 8),
            pending("b1", "b", 4),
            pending("b2", "b", 2),
            pending("c1", "c", 2),
            pending("huge", "c", 99),
        ],  # no site could ever hold it: not demand
        runs=[run("r1", "big", "a", 8)],
        settings=ShareSettings(policy="static"),
    )


def test_the_view_gives_each_institution_its_max_min_share_now():
    snapshot = _now_snapshot()
    view = quota_view([("host", "CL"), ("a", "AR"), ("b", "BR"), ("c", "MX")], [], snapshot, tree=False)
    now = {i.institution: (i.held, i.demand, round(i.fair_share_gpus, 6)) for i in view.institutions}
    # 12 GPUs over demands 16, 6, 2: c gets its 2, a and b split the other 10 equally
    assert now == {"a": (8, 16, 5.0), "b": (0, 6, 5.0), "c": (0, 2, 2.0), "host": (0, 0, 0.0)}
    assert view.capacity == 12 and view.tree == []
    assert {i.institution: i.guarantee for i in view.institutions}["host"] == 12
    assert (view.floor.share_policy, view.floor.base_grant, view.floor.base_grant_fraction) == ("static", 1.0, 0.25)


def test_the_tree_carries_the_share_now_at_every_level():
    snapshot = _now_snapshot()
    _, now = snapshot_share_now(snapshot)
    nodes = {n.id: n for n in tree_nodes(snapshot, now)}
    assert (
        nodes["AR"].fair_share_gpus,
        nodes["a"].fair_share_gpus,
        nodes["a/default"].fair_share_gpus,
    ) == pytest.approx((5.0, 5.0, 5.0))
    assert (nodes["AR"].held, nodes["AR"].demand, nodes["MX"].demand) == (8, 16, 2)
    assert all(n.fair_share_gpus == 0 and n.held == 0 for n in tree_nodes(snapshot))  # without `now`


def test_the_floor_is_the_base_grant_in_effect():
    rich = [InstitutionShare("rich", "CL", contribution=300.0), InstitutionShare("poor", "BR")]
    floor = entitlement_floor(snap([], rich, settings=ShareSettings(base_grant_fraction=0.25)))
    assert floor.base_grant == pytest.approx(0.25 / 0.75 * 150.0)  # a quarter of the mean weight, or more
    assert entitlement_floor(snap([], rich, settings=ShareSettings(base_grant_fraction=0.0))).base_grant == 1.0
