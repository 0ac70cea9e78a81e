"""Reclaim by preemption, and reservation with EASY backfill: examples."""

from __future__ import annotations

from dataclasses import replace

from tests.test_fairshare_helpers import (
    HOUR,
    NOW,
    ShareSettings,
    apply,
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

GRACE = 600.0


def owner_and_borrower(runs, pending, **kw):
    """Institution a owns one 8-GPU site; b has none, so all b uses is borrowed."""
    return snap(
        [site("sa", "a", pool("A100", 8))],
        [inst("a"), inst("b")],
        pending,
        runs,
        settings=ShareSettings(preemption_grace_seconds=GRACE),
        **kw,
    )


def test_owner_reclaims_borrowed_gpus_and_is_placed_on_them_in_the_same_cycle():
    runs = [run(f"r{i}", "sa", "b", 2, started=-HOUR + i) for i in range(4)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))
    assert sorted(p.run_id for p in d.preemptions) == ["r2", "r3"]  # the two newest
    assert all(p.site == "sa" and "reclaim" in p.reason for p in d.preemptions)
    assert {(p.kind, p.beneficiary, p.for_job) for p in d.preemptions} == {("reclaim", "a", "mine")}
    assert {p.job_id for p in d.preemptions} == {"job-of-r2", "job-of-r3"}
    assert placed(d)["mine"].site == "sa"  # Armada: no preemption that helps nobody


def test_a_reclaimed_guarantee_stays_with_its_owner_in_the_next_cycle():
    runs = [run(f"r{i}", "sa", "b", 2, started=-HOUR + i) for i in range(4)]
    s = owner_and_borrower(runs, [job("mine", "a", 4), job("theirs", "b", 2, submitted=-HOUR)])
    d = decide(s)
    assert placed(d)["mine"].site == "sa" and "theirs" not in placed(d)
    d2 = decide(apply(s, d, NOW + 30), NOW + 30)
    assert d2.preemptions == () and d2.placements == ()


def test_runs_inside_the_grace_period_are_never_preempted():
    runs = [run("old", "sa", "b", 4, started=-HOUR), run("young", "sa", "b", 4, started=-GRACE / 2)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))
    assert [p.run_id for p in d.preemptions] == ["old"]
    runs = [run("y1", "sa", "b", 4, started=-60), run("y2", "sa", "b", 4, started=-GRACE + 1)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))
    assert d.preemptions == () and not waiting(d)["mine"].never_fits


def test_newest_borrowed_run_goes_first():
    runs = [
        run("oldest", "sa", "b", 2, started=-3 * HOUR),
        run("newer", "sa", "b", 2, started=-2 * HOUR),
        run("newest", "sa", "b", 2, started=-HOUR),
        run("x", "sa", "b", 2, started=-4 * HOUR),
    ]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 2)]))
    assert [p.run_id for p in d.preemptions] == ["newest"]


def test_fewest_gpus_freed():
    """Newest first, then any run that is not needed is spared."""
    runs = [
        run("new1", "sa", "b", 1, started=-HOUR),
        run("big", "sa", "b", 4, started=-2 * HOUR),
        run("old", "sa", "b", 3, started=-3 * HOUR),
    ]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))
    assert [p.run_id for p in d.preemptions] == ["big"]


def test_free_gpus_count_toward_the_reclaim():
    runs = [run("r1", "sa", "b", 3, started=-HOUR), run("r2", "sa", "b", 3, started=-2 * HOUR)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))  # 2 free + 3 freed
    assert [p.run_id for p in d.preemptions] == ["r1"]


def test_only_borrowed_runs_are_victims():
    """b holds 4 of a's GPUs but is within its own guarantee (its site): nothing to reclaim."""
    sites = [site("sa", "a", pool("A100", 8)), site("sb", "b", pool("A100", 8))]
    runs = [run("ra", "sa", "a", 4), run("rb", "sa", "b", 4)]
    d = decide(snap(sites, [inst("a"), inst("b")], [job("mine", "a", 8)], runs))
    assert d.preemptions == ()


def test_owner_runs_are_never_victims_of_their_owner():
    runs = [run("own", "sa", "a", 8)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 2)]))
    assert d.preemptions == ()


def test_owner_at_its_guarantee_does_not_reclaim():
    runs = [run("own", "sa", "a", 6), run("b1", "sa", "b", 2)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 4)]))
    assert d.preemptions == ()


def test_non_preemptible_is_honoured_only_within_a_guarantee():
    # b borrows: its non-preemptible flag does not protect a borrowed run.
    runs = [run("np", "sa", "b", 4, preemptible=False)]
    d = decide(owner_and_borrower(runs, [job("mine", "a", 8)]))
    assert [p.run_id for p in d.preemptions] == ["np"]
    # c has an explicit guarantee of 2 and holds 4 here: only 2 are borrowed, so its
    # non-preemptible 4-GPU run is partly within its guarantee and stays.
    s = snap(
        [site("sa", "a", pool("A100", 8))],
        [inst("a"), inst("c", guarantee=(("A100", 2),))],
        [job("mine", "a", 8)],
        [run("np", "sa", "c", 4, preemptible=False)],
    )
    assert decide(s).preemptions == ()


def test_explicit_guarantee_reclaims_anywhere():
    sites = [site("sa", "a", pool("A100", 8))]
    insts = [inst("a", guarantee=(("A100", 4),)), inst("g", guarantee=(("A100", 4),)), inst("b")]
    runs = [run("b1", "sa", "b", 4, started=-HOUR), run("a1", "sa", "a", 4)]
    d = decide(snap(sites, insts, [job("need", "g", 4)], runs))
    assert [p.run_id for p in d.preemptions] == ["b1"]


# -- reservation and EASY backfill ------------------------------------------------


def test_gang_job_gets_a_reservation_and_holds_a_draining_site():
    sites = [site("s1", "a", pool("A100", 8))]
    runs = [run("r1", "s1", "a", 4)]  # no walltime: never ends, as far as we know
    s = snap(sites, [inst("a")], [job("gang", "a", 8, submitted=0), job("small", "a", 1, submitted=5)], runs)
    d = decide(s)
    assert waiting(d)["gang"].reason.startswith("reservation:")
    assert waiting(d)["small"].reason.startswith(("reservation:", "capacity:"))
    assert d.placements == ()


def test_easy_backfill_admits_only_jobs_that_end_before_the_reservation():
    sites = [site("s1", "a", pool("A100", 8))]
    runs = [run("r1", "s1", "a", 4, started=-HOUR, walltime=int(2 * HOUR))]  # ends in one hour
    pending = [
        job("gang", "a", 8, submitted=0),
        job("short", "a", 2, submitted=1, walltime=1800),
        job("long", "a", 2, submitted=2, walltime=int(5 * HOUR)),
        job("unknown", "a", 1, submitted=3),
    ]
    d = decide(snap(sites, [inst("a")], pending, runs))
    assert list(placed(d)) == ["short"]
    assert waiting(d)["gang"].reason.startswith("reservation:")
    assert waiting(d)["long"].reason.startswith("reservation:")


def test_backfill_elsewhere_is_free():
    sites = [site("s1", "a", pool("A100", 8)), site("s2", "a", pool("A100", 2))]
    runs = [run("r1", "s1", "a", 4)]
    pending = [job("gang", "a", 8, submitted=0), job("small", "a", 2, submitted=1)]
    d = decide(snap(sites, [inst("a")], pending, runs))
    assert placed(d)["small"].site == "s2"


def test_gang_is_not_starved_by_a_stream_of_small_jobs():
    """Simulated cycles: two 1-GPU jobs arrive per minute; the 8-GPU job starts within a bound."""
    sites = [site("s1", "a", pool("A100", 8))]
    walltime = 600
    pending = [job("gang", "a", 8, submitted=0, walltime=3600)] + [
        job(f"s{i:03d}", "a", 1, submitted=-1 - i, walltime=walltime) for i in range(8)
    ]
    s = snap(sites, [inst("a")], pending)
    t, started = NOW, None
    for cycle in range(40):
        d = decide(s, t)
        if "gang" in placed(d):
            started = t
            break
        s = apply(s, d, t)
        t += 60
        finished = {r.id for r in s.live_runs if r.started_at + r.walltime_seconds <= t}
        arrivals = [job(f"n{cycle:03d}{k}", "a", 1, submitted=t - NOW, walltime=walltime) for k in range(2)]
        s = replace(
            s, live_runs=tuple(r for r in s.live_runs if r.id not in finished), pending=s.pending + tuple(arrivals)
        )
    assert started is not None and started - NOW <= walltime + 120


def test_each_gpu_model_has_its_own_reservation():
    """A gang on a scarce model is not starved by a gang on another model: both reserve."""
    sites = [site("s1", "a", pool("A100", 8)), site("s2", "a", pool("G3", 8))]
    runs = [
        run("r1", "s1", "a", 4, started=-HOUR, walltime=int(2 * HOUR)),
        run("r2", "s2", "a", 4, model="G3", started=-HOUR, walltime=int(3 * HOUR)),
    ]
    pending = [
        job("a100-gang", "a", 8, models=("A100",), submitted=0),
        job("g3-gang", "a", 8, models=("G3",), submitted=1),
        job("long-g3", "a", 1, models=("G3",), submitted=2, walltime=int(5 * HOUR)),
    ]
    d = decide(snap(sites, [inst("a")], pending, runs))
    assert waiting(d)["a100-gang"].reason.startswith("reservation: holds 8 A100 GPUs on s1")
    assert waiting(d)["g3-gang"].reason.startswith("reservation: holds 8 G3 GPUs on s2")
    assert "long-g3" not in placed(d)  # it would delay the G3 gang: not backfilled


def test_a_waiting_gang_is_placed_before_small_jobs_take_its_drained_pool():
    """The gang that has waited longer than the reservation age is decided before the
    water-filling, so small jobs ahead of it in fair share cannot take the GPUs back."""
    sites = [site("s1", "host", pool("A100", 8))]
    insts = [inst("host"), inst("big"), inst("small")]
    pending = [job("gang", "big", 8, submitted=-2 * HOUR, walltime=3600)] + [
        job(f"s{i}", "small", 1, submitted=-HOUR, walltime=3600) for i in range(8)
    ]
    d = decide(snap(sites, insts, pending, usage=[("big/default", 1e6)]))
    assert list(placed(d)) == ["gang"]


def test_waiting_gangs_reserve_earliest_due_first():
    """Due = submit + walltime: a short gang that arrived later goes before a two-day one, and
    the two-day gang keeps its place until the short ones have run."""
    sites = [site("s1", "a", pool("G3", 8)), site("s2", "a", pool("G3", 8))]
    runs = [
        run("r1", "s1", "a", 1, model="G3", started=-HOUR, walltime=int(2 * HOUR)),
        run("r2", "s2", "a", 1, model="G3", started=-HOUR, walltime=int(30 * HOUR)),
    ]
    pending = [
        job("two-days", "a", 8, models=("G3",), submitted=-3 * HOUR, walltime=48 * 3600),
        job("an-hour", "a", 8, models=("G3",), submitted=-2 * HOUR, walltime=3600),
    ]
    d = decide(snap(sites, [inst("a")], pending, runs))
    assert waiting(d)["an-hour"].reason.startswith("reservation: holds 8 G3 GPUs on s1")


def test_owner_within_its_guarantee_goes_before_a_borrower_ahead_in_fair_share():
    """Kueue's order: no-borrowing workloads first, so reclaimed GPUs go to the owner."""
    runs = [run("own", "sa", "a", 6)]
    s = snap(
        [site("sa", "a", pool("A100", 8))],
        [inst("a"), inst("b")],
        [job("borrower", "b", 2, submitted=-HOUR), job("owner", "a", 2)],
        runs,
        usage=[("a/default", 1e6)],
    )
    d = decide(s)
    assert list(placed(d)) == ["owner"]
    assert waiting(d)["borrower"].reason.startswith(("capacity:", "reservation:"))


def test_an_owners_gang_job_keeps_its_place_in_its_own_queue():
    """A small job of the owner behind its own gang job is not moved ahead of it."""
    runs = [run("own", "sa", "a", 4)]
    s = snap(
        [site("sa", "a", pool("A100", 8))],
        [inst("a")],
        [job("gang", "a", 8, submitted=0), job("small", "a", 1, submitted=5)],
        runs,
    )
    d = decide(s)
    assert d.placements == () and waiting(d)["gang"].reason.startswith("reservation:")


def test_a_model_bound_job_that_borrows_does_not_stop_reclaim_for_a_job_of_any_model():
    """Found by `minga sim`: the owner's first job wants only T4 (where it is at its guarantee,
    so it would borrow); its next job has no model constraint and fits its A100 guarantee.
    The T4 job competes for none of those A100s, so it must not hold the owner's A100 reclaim
    back (it did: every later job of the owner was classed as borrowing)."""
    sites = [site("sa", "a", pool("A100", 8)), site("st", "a", pool("T4", 2, memory_mb=16_384))]
    runs = [run(f"b{i}", "sa", "b", 2, started=-HOUR + i) for i in range(4)]
    runs += [run("t", "st", "a", 2, model="T4")]
    pending = [job("t4-only", "a", 1, models=("T4",), submitted=0), job("any", "a", 1, submitted=5)]
    s = snap(sites, [inst("a"), inst("b")], pending, runs, settings=ShareSettings(preemption_grace_seconds=GRACE))
    d = decide(s)
    assert [p.run_id for p in d.preemptions] == ["b3"]  # the newest borrowed run
    assert placed(d)["any"].site == "sa"
    assert waiting(d)["t4-only"].reason.startswith(("capacity:", "reservation:"))


def test_a_default_guarantee_is_not_placed_within_it_on_another_owners_site():
    """Found by `minga sim`: c is ahead in fair share and below its guarantee (its own site
    is held by g, within g's explicit guarantee). c's job must not take the free GPU on a's
    site (as after a's reclaim) as a run within c's guarantee: a could never reclaim it."""
    sites = [site("sa", "a", pool("A100", 2)), site("sc", "c", pool("A100", 2))]
    insts = [inst("a"), inst("c"), inst("g", guarantee=(("A100", 2),))]
    runs = [run("own", "sa", "a", 1), run("g1", "sc", "g", 2)]
    pending = [job("c-job", "c", 1, submitted=-HOUR), job("a-job", "a", 1)]
    d = decide(snap(sites, insts, pending, runs, usage=[("a/default", 1e6)]))
    assert placed(d)["a-job"].site == "sa" and "c-job" not in placed(d)


def test_fair_share_preemption_passes_over_a_victim_larger_than_the_cap():
    """The cheapest victim on s1 (its newest run) frees 2 GPUs, but the cap allows 1 a cycle
    (10% of 16): an older 1-GPU run there is preempted instead, in this cycle, not once it
    has become the cheaper one (a property test found b waiting 37 minutes for that). b's
    2-GPU job, larger than the cap, holds s0's reservation."""
    s = snap(
        [site("s0", "host", pool(total=8)), site("s1", "host", pool(total=8))],
        [inst("host"), inst("a"), inst("b")],
        pending=[job("b-gang", "b", gpus=2, submitted=-1.0), job("b-one", "b")],
        runs=[run(f"s0-{i}", "s0", "a", started=-HOUR) for i in range(8)]
        + [run(f"s1-{i}", "s1", "a", started=-HOUR) for i in range(6)]
        + [run("s1-new", "s1", "a", gpus=2, started=-700.0)],
        settings=ShareSettings(policy="static", preemption_cap=0.1, preemption_threshold=0.0),
    )
    d = decide(s)
    assert [(p.kind, p.beneficiary, p.site) for p in d.preemptions] == [("fair-share", "b", "s1")]
    assert d.preemptions[0].run_id != "s1-new"
    assert placed(d)["b-one"].site == "s1"
