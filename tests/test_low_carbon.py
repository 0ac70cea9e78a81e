"""Low-carbon placement (issue 16 part 2): a soft preference of the pure policy.

Examples: among the sites that fit, the lower grid intensity wins; the institution's own
sites and the data country's nearness still come first unless `low_carbon_first`; a job
without the flag is placed as before. Properties over random fair-share snapshots
(`test_fairshare_properties.snapshots`): with every job low-carbon, placements still honour
every hard constraint and never over-commit, the fair-share queue order is the same, and
a lone job is placed exactly when it would be without the flag.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Site, SiteState
from minga.scheduler.policy import InstitutionShare, Snapshot, schedule
from minga.scheduler.policy.cycle_state import Cycle
from minga.scheduler.policy.low_carbon import site_intensities
from tests import test_policy_properties as fifo
from tests.test_fairshare_properties import NOW, check_sound, snapshots
from tests.test_policy_properties import raw_snapshots

PROPS = settings(max_examples=150, deadline=None)


def site(name: str, country: str, institution: str = "owner", gpus: int = 4) -> Site:
    pool = GpuPool(model="A100", memory_mb=81_920, total=gpus)
    return Site(
        name=name,
        institution=institution,
        country=country,
        state=SiteState.READY,
        connected=True,
        inventory=Inventory(gpus=(pool,), cpus=64.0),
    )


def job(low: bool = False, first: bool = False, inst: str = "guest", data_country: str = "", gpus: int = 2) -> Job:
    spec = JobSpec(
        entrypoint="x",
        resources=Resources(gpus=gpus, cpus=1.0),
        data_country=data_country,
        low_carbon=low or first,
        low_carbon_first=first,
    )
    return Job(id="j", spec=spec, state=JobState.PENDING, owner="u", institution=inst, submitted_at=NOW)


def placed_site(sites: list[Site], j: Job, home: str = "MX", **kw) -> str | None:
    insts = tuple(
        InstitutionShare(slug=s, country=home if s == "guest" else "CL", weight=1.0, contribution=0.0)
        for s in sorted({s.institution for s in sites} | {"guest"})
    )
    snap = Snapshot(sites=tuple(sites), live_runs=(), pending=(j,), institutions=insts, **kw)
    d = schedule(snap, NOW)
    return d.placements[0].site if d.placements else None


# Chile's grid: 304 gCO2e/kWh, Brazil's 96, Paraguay's 25 (common/carbon.py's defaults).


def test_prefers_the_lower_intensity_among_fitting_sites():
    sites = [site("cl", "CL", gpus=3), site("py", "PY")]
    assert placed_site(sites, job()) == "cl"  # best fit (3 GPUs free, a tighter fit than 4), as before
    assert placed_site(sites, job(low=True)) == "py"


def test_an_idle_pool_stays_whole_while_a_pool_that_it_fills_takes_the_job():
    # Chile's 2 GPUs are exactly the job's 2; Paraguay's idle 4 would be broken up.
    sites = [site("cl", "CL", gpus=2), site("py", "PY")]
    assert placed_site(sites, job(low=True)) == "cl"
    assert placed_site(sites, job(low=True, gpus=4)) == "py"  # a whole-node job breaks nothing


def test_a_site_that_does_not_fit_is_never_chosen_for_its_intensity():
    sites = [site("cl", "CL", gpus=2), site("py", "PY", gpus=1)]
    assert placed_site(sites, job(low=True)) == "cl"


def test_the_snapshots_intensity_overrides_the_default():
    sites = [site("cl", "CL", gpus=4), site("py", "PY", gpus=3)]
    assert placed_site(sites, job(low=True), intensity=(("cl", 5.0), ("py", 25.0))) == "cl"


def test_own_sites_still_win_unless_low_carbon_first():
    sites = [site("cl", "CL", institution="guest", gpus=4), site("py", "PY")]
    assert placed_site(sites, job(low=True)) == "cl"
    assert placed_site(sites, job(first=True)) == "py"


def test_the_data_country_still_wins_unless_low_carbon_first():
    sites = [site("cl", "CL", gpus=4), site("br", "BR")]  # from CL, Brazil is farther
    assert placed_site(sites, job(low=True, data_country="CL")) == "cl"
    assert placed_site(sites, job(first=True, data_country="CL")) == "br"
    # With no data country, the guest's home (MX) is as far from both: intensity decides.
    assert placed_site(sites, job(low=True)) == "br"


def test_first_come_first_served_fallback_prefers_lower_intensity_too():
    sites = [site("cl", "CL", gpus=3), site("py", "PY")]
    snap = Snapshot(sites=tuple(sites), live_runs=(), pending=(job(low=True),))
    assert schedule(snap, NOW).placements[0].site == "py"
    snap = Snapshot(sites=tuple(sites), live_runs=(), pending=(job(),))
    assert schedule(snap, NOW).placements[0].site == "cl"


def test_site_intensities_default_to_the_country_figure():
    snap = Snapshot(sites=(site("cl", "CL"), site("x", "ES")), live_runs=(), pending=(), intensity=(("cl", 7.0),))
    assert site_intensities(snap) == {"cl": 7.0, "x": 483.0}


# -- properties --------------------------------------------------------------


@st.composite
def green_snapshots(draw) -> tuple[Snapshot, Snapshot]:
    """(the snapshot with every pending job low-carbon, some `low_carbon_first`, and random
    site intensities; the same without the flags)."""
    snap = draw(snapshots())
    intensity = tuple((s.name, float(draw(st.sampled_from([25, 98, 291, 480, 5])))) for s in snap.sites)
    first = draw(st.sampled_from([False, True, None]))  # None: mixed
    green = tuple(
        replace(
            j,
            spec=replace(
                j.spec,
                low_carbon=True,
                low_carbon_first=draw(st.booleans()) if first is None else first,
            ),
        )
        for j in snap.pending
    )
    plain = replace(snap, intensity=intensity)
    return replace(plain, pending=green), plain


@PROPS
@given(green_snapshots())
def test_low_carbon_never_breaks_a_hard_constraint_nor_over_commits(pair):
    green, _ = pair
    check_sound(green, schedule(green, NOW))


@PROPS
@given(green_snapshots())
def test_low_carbon_never_changes_the_fair_share_queue_order(pair):
    green, plain = pair
    assert [j.id for j in Cycle.start(green, NOW).queue.jobs] == [j.id for j in Cycle.start(plain, NOW).queue.jobs]


@PROPS
@given(green_snapshots())
def test_a_lone_job_is_placed_exactly_when_it_would_be_without_the_flag(pair):
    green, plain = pair
    for g, p in zip(green.pending, plain.pending, strict=True):
        dg = schedule(replace(green, pending=(g,)), NOW)
        dp = schedule(replace(plain, pending=(p,)), NOW)
        assert [x.job_id for x in dg.placements] == [x.job_id for x in dp.placements]
        assert [(x.gpus, x.cpus) for x in dg.placements] == [(x.gpus, x.cpus) for x in dp.placements]


@PROPS
@given(raw_snapshots(), st.lists(st.sampled_from([5.0, 25.0, 98.0, 291.0, 480.0]), min_size=6, max_size=6))
def test_first_come_first_served_with_low_carbon_stays_sound(raw, figures):
    """The policy before accounts exist: same oracles as test_policy_properties."""
    snap = fifo.build(raw)
    green = replace(
        snap,
        pending=tuple(replace(j, spec=replace(j.spec, low_carbon=True)) for j in snap.pending),
        intensity=tuple((s.name, f) for s, f in zip(snap.sites, figures, strict=False)),
    )
    d = schedule(green, NOW)
    fifo.check_no_gpu_or_cpu_is_promised_twice(green, d)
    fifo.check_placements_honour_every_hard_constraint(green, d)
    fifo.check_every_job_is_placed_or_waiting_exactly_once(green, d)
    fifo.check_placements_follow_queue_order(green, d)


def test_a_job_that_may_use_any_model_leaves_the_scarce_one_alone():
    # Paraguay has 4 A100 and 4 T4; Brazil 8 more T4: T4 is the plentiful model, A100 the scarce.
    pools = (GpuPool(model="A100", memory_mb=81_920, total=4), GpuPool(model="T4", memory_mb=16_384, total=4))
    py = replace(site("py", "PY"), inventory=Inventory(gpus=pools, cpus=64.0))
    t4 = GpuPool(model="T4", memory_mb=16_384, total=8)
    br = replace(site("br", "BR"), inventory=Inventory(gpus=(t4,), cpus=64.0))
    insts = tuple(InstitutionShare(slug=s, country="CL", weight=1.0, contribution=0.0) for s in ("guest", "owner"))
    snap = Snapshot(sites=(py, br), live_runs=(), pending=(job(low=True),), institutions=insts)
    placed = schedule(snap, NOW).placements[0]
    assert (placed.site, placed.gpu_model) == ("py", "T4")
    low = job(low=True)
    only_a100 = replace(low, spec=replace(low.spec, resources=Resources(gpus=2, cpus=1.0, gpu_models=("A100",))))
    placed = schedule(replace(snap, pending=(only_a100,)), NOW).placements[0]
    assert (placed.site, placed.gpu_model) == ("py", "A100")
