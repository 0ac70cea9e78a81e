"""Hypothesis properties of the pure policy over random snapshots.

Invariant 1 (no GPU promised twice) and invariant 4 (pure and deterministic) from
DESIGN.md, plus: every job is decided exactly once, placements honour every hard
constraint, `never_fits` means nothing could ever hold the job, and a job that
waits really had no room (skipping, not blocking).

The oracles below are written from the rules, not by calling the policy's helpers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Run, Site, SiteState
from minga.scheduler.policy import Decisions, Snapshot, schedule

MODELS = ["A100", "H100", "T4", "L4"]
ALL_MODELS = MODELS + ["V100"]  # V100 exists nowhere: "model" reasons
MEMORY = [16_000, 24_000, 40_000, 81_920]
COUNTRIES = ["CL", "BR", "MX", "AR"]
ALL_COUNTRIES = COUNTRIES + ["PE"]  # PE hosts no site: "country" reasons
NOW = 1_700_000_000.0

# CPUs are multiples of 0.5, which floats add exactly, so capacity sums compare exactly.

PROPS = settings(max_examples=200, deadline=None)


# -- raw, plain-data descriptions, so the same content can be rebuilt from scratch --


@st.composite
def raw_sites(draw) -> list[dict[str, Any]]:
    # sampled_from leans to its first element, so the lists below start with a busy case.
    n = draw(st.sampled_from([3, 2, 4, 0, 5, 1, 3]))
    sites = []
    for i in range(n):
        models = draw(st.permutations(MODELS))[: draw(st.sampled_from([1, 2, 1, 3, 0]))]
        pools = []
        for m in models:
            total = draw(st.sampled_from([8, 4, 2, 8, 1, 0]))
            largest = draw(st.sampled_from([0, total, 0, total // 2]))  # 0: unknown, one node
            pools.append(
                dict(
                    model=m,
                    memory_mb=draw(st.sampled_from(MEMORY)),
                    total=total,
                    free=draw(st.integers(min_value=0, max_value=total)),
                    largest_node=largest,
                )
            )
        sites.append(
            dict(
                name=f"site-{i}",
                institution=draw(st.sampled_from(["uchile", "usp", "unam"])),
                country=draw(st.sampled_from(COUNTRIES)),
                state=draw(st.sampled_from([SiteState.READY] * 3 + [SiteState.CORDONED, SiteState.LOST])),
                connected=draw(st.sampled_from([True, True, True, False])),
                pools=pools,
                cpus=draw(st.sampled_from([32.0, 16.0, 64.0, 8.0, 4.5, 2.0, 0.0])),
            )
        )
    return sites


@st.composite
def raw_runs(draw, sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live runs that respect every pool's total and every site's CPUs."""
    runs = []
    for s in sites:
        cpus_left = s["cpus"]
        slots = [(p["model"], p["total"]) for p in s["pools"]] + [("", 0)]
        for model, total in slots:
            gpus_left = total
            for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
                gpus = (
                    draw(st.integers(min_value=1 if model else 0, max_value=max(gpus_left, 0)))
                    if (gpus_left or not model)
                    else None
                )
                if gpus is None:
                    break
                cpus = draw(st.integers(min_value=0, max_value=int(cpus_left * 2)).map(lambda n: n / 2))
                gpus_left -= gpus
                cpus_left -= cpus
                runs.append(
                    dict(
                        id=f"run-{len(runs)}",
                        job_id=f"old-{len(runs)}",
                        site=s["name"],
                        gpu_model=model,
                        gpus=gpus,
                        cpus=cpus,
                    )
                )
    return runs


@st.composite
def raw_jobs(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=12))
    jobs = []
    for i in range(n):
        jobs.append(
            dict(
                id=f"job-{i:02d}",
                gpus=draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4, 8, 10])),
                models=draw(st.permutations(ALL_MODELS))[: draw(st.sampled_from([0, 0, 0, 1, 2]))],
                min_mem=draw(st.sampled_from([0, 0, 0, 0, 20_000, 40_000, 100_000])),
                cpus=draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0])),
                countries=draw(st.permutations(ALL_COUNTRIES))[: draw(st.sampled_from([0, 0, 0, 1, 2]))],
                submitted=draw(st.integers(min_value=0, max_value=5)),  # few values: many ties
                priority=draw(st.sampled_from([-1, 0, 0, 1])),
            )
        )
    return jobs


@st.composite
def raw_snapshots(draw) -> dict[str, Any]:
    sites = draw(raw_sites())
    return dict(sites=sites, runs=draw(raw_runs(sites)), jobs=draw(raw_jobs()))


def build_site(d: dict[str, Any]) -> Site:
    return Site(
        name=d["name"],
        institution=d["institution"],
        country=d["country"],
        state=d["state"],
        connected=d["connected"],
        inventory=Inventory(gpus=tuple(GpuPool(**p) for p in d["pools"]), cpus=d["cpus"]),
    )


def build_run(d: dict[str, Any]) -> Run:
    return Run(
        id=d["id"],
        job_id=d["job_id"],
        site=d["site"],
        epoch=1,
        gpu_model=d["gpu_model"],
        gpus=d["gpus"],
        cpus=d["cpus"],
    )


def build_job(d: dict[str, Any]) -> Job:
    res = Resources(gpus=d["gpus"], gpu_models=tuple(d["models"]), min_gpu_memory_mb=d["min_mem"], cpus=d["cpus"])
    spec = JobSpec(entrypoint="python x.py", resources=res, countries=tuple(d["countries"]), priority=d["priority"])
    return Job(
        id=d["id"],
        spec=spec,
        state=JobState.PENDING,
        owner="ana",
        institution="uchile",
        submitted_at=NOW + d["submitted"],
    )


def build(raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        sites=tuple(build_site(s) for s in raw["sites"]),
        live_runs=tuple(build_run(r) for r in raw["runs"]),
        pending=tuple(build_job(j) for j in raw["jobs"]),
    )


# -- oracles, from the rules ------------------------------------------------------


def _node_limit(p: GpuPool) -> int:
    return min(p.total, p.largest_node) if p.largest_node else p.total


def _pool_ok(res: Resources, p: GpuPool) -> bool:
    return (not res.gpu_models or p.model in res.gpu_models) and p.memory_mb >= res.min_gpu_memory_mb


def _country_ok(job: Job, s: Site) -> bool:
    return not job.spec.countries or s.country in job.spec.countries


def could_ever_hold(job: Job, s: Site) -> bool:
    """`s`, if it were empty and READY, could hold `job`."""
    res = job.spec.resources
    if not _country_ok(job, s) or s.inventory.cpus < res.cpus:
        return False
    return res.gpus == 0 or any(_pool_ok(res, p) and _node_limit(p) >= res.gpus for p in s.inventory.gpus)


def used(snap: Snapshot, decisions: Decisions) -> tuple[Counter, Counter]:
    gpus: Counter = Counter()
    cpus: Counter = Counter()
    for r in snap.live_runs:
        gpus[(r.site, r.gpu_model)] += r.gpus
        cpus[r.site] += r.cpus
    for p in decisions.placements:
        gpus[(p.site, p.gpu_model)] += p.gpus
        cpus[p.site] += p.cpus
    return gpus, cpus


# -- invariant 1 and friends: checks on one (snapshot, decisions) pair ----------------


def check_no_gpu_or_cpu_is_promised_twice(snap: Snapshot, decisions: Decisions) -> None:
    gpus, cpus = used(snap, decisions)
    for s in snap.sites:
        for p in s.inventory.gpus:
            assert gpus[(s.name, p.model)] <= p.total, (s.name, p.model)
        assert cpus[s.name] <= s.inventory.cpus, s.name
    # A placement on a pool the site does not have would dodge the check above.
    models = {(s.name, p.model) for s in snap.sites for p in s.inventory.gpus}
    for p in decisions.placements:
        if p.gpus:
            assert (p.site, p.gpu_model) in models


def check_placements_honour_every_hard_constraint(snap: Snapshot, decisions: Decisions) -> None:
    sites = {s.name: s for s in snap.sites}
    jobs = {j.id: j for j in snap.pending}
    for p in decisions.placements:
        job, site = jobs[p.job_id], sites[p.site]
        res = job.spec.resources
        assert site.state is SiteState.READY and site.connected
        assert _country_ok(job, site)
        assert (p.gpus, p.cpus) == (res.gpus, res.cpus)
        if res.gpus:
            pool = site.inventory.pool(p.gpu_model)
            assert pool is not None
            assert not res.gpu_models or pool.model in res.gpu_models
            assert pool.memory_mb >= res.min_gpu_memory_mb
            assert res.gpus <= _node_limit(pool)
        else:
            assert p.gpu_model == ""


def check_every_job_is_placed_or_waiting_exactly_once(snap: Snapshot, decisions: Decisions) -> None:
    decided = [p.job_id for p in decisions.placements] + [w.job_id for w in decisions.waiting]
    assert sorted(decided) == sorted(j.id for j in snap.pending)
    assert len(decided) == len(set(decided))
    for w in decisions.waiting:
        assert w.reason.split(":")[0] in {"country", "model", "memory", "capacity"}, w.reason


def check_never_fits_means_no_site_could_ever_hold_it(snap: Snapshot, decisions: Decisions) -> None:
    jobs = {j.id: j for j in snap.pending}
    for w in decisions.waiting:
        possible = any(could_ever_hold(jobs[w.job_id], s) for s in snap.sites)
        assert w.never_fits == (not possible), (w, jobs[w.job_id].spec.resources)
    for p in decisions.placements:
        assert could_ever_hold(jobs[p.job_id], {s.name: s for s in snap.sites}[p.site])


def check_a_waiting_job_had_no_room_left(snap: Snapshot, decisions: Decisions) -> None:
    """Skipping, not blocking: after all placements no READY site has room for any waiting job."""
    gpus, cpus = used(snap, decisions)
    jobs = {j.id: j for j in snap.pending}
    for w in decisions.waiting:
        job = jobs[w.job_id]
        res = job.spec.resources
        for s in snap.sites:
            if not (s.state is SiteState.READY and s.connected and _country_ok(job, s)):
                continue
            if s.inventory.cpus - cpus[s.name] < res.cpus:
                continue
            if res.gpus == 0:
                raise AssertionError(f"{job.id} waits though {s.name} has the CPUs")
            for p in s.inventory.gpus:
                if _pool_ok(res, p) and _node_limit(p) >= res.gpus:
                    assert p.total - gpus[(s.name, p.model)] < res.gpus, (job.id, s.name, p.model)


def check_placements_follow_queue_order(snap: Snapshot, decisions: Decisions) -> None:
    """Placements come out in (priority desc, submit time, id) order."""
    jobs = {j.id: j for j in snap.pending}
    keys = [(-jobs[p.job_id].spec.priority, jobs[p.job_id].submitted_at, p.job_id) for p in decisions.placements]
    assert keys == sorted(keys)


@PROPS
@given(raw_snapshots())
def test_decisions_are_sound(raw):
    """Invariant 1 and the placement rules, on one random snapshot per example.

    The checks share one generated snapshot (generation dominates the run time);
    each one names itself in the traceback when it fails.
    """
    snap = build(raw)
    decisions = schedule(snap, NOW)
    check_no_gpu_or_cpu_is_promised_twice(snap, decisions)
    check_placements_honour_every_hard_constraint(snap, decisions)
    check_every_job_is_placed_or_waiting_exactly_once(snap, decisions)
    check_never_fits_means_no_site_could_ever_hold_it(snap, decisions)
    check_a_waiting_job_had_no_room_left(snap, decisions)
    check_placements_follow_queue_order(snap, decisions)


# -- invariant 4: pure and deterministic ---------------------------------------------


@PROPS
@given(raw_snapshots(), st.randoms(use_true_random=False))
def test_same_snapshot_same_decisions(raw, rnd):
    snap = build(raw)
    first = schedule(snap, NOW)
    assert schedule(snap, NOW) == first  # called twice
    assert snap == build(raw)  # and left its input untouched
    assert build(raw) == snap and build(raw) is not snap
    assert schedule(build(raw), NOW) == first  # same content, rebuilt from scratch
    pending = list(snap.pending)
    rnd.shuffle(pending)
    shuffled = Snapshot(sites=snap.sites, live_runs=snap.live_runs, pending=tuple(pending))
    assert schedule(shuffled, NOW) == first  # pending order does not matter
    sites, runs = list(snap.sites), list(snap.live_runs)
    rnd.shuffle(sites)
    rnd.shuffle(runs)
    assert schedule(Snapshot(tuple(sites), tuple(runs), tuple(pending)), NOW) == first


def test_generator_reaches_the_interesting_cases():
    """Guard against a generator that silently stopped producing placements or reasons."""
    seen: defaultdict[str, int] = defaultdict(int)

    @settings(max_examples=100, deadline=None, database=None)
    @given(raw_snapshots())
    def collect(raw):
        d = schedule(build(raw), NOW)
        seen["placed"] += len(d.placements)
        seen["runs"] += len(raw["runs"])
        for w in d.waiting:
            seen[w.reason.split(":")[0] + ("-never" if w.never_fits else "")] += 1

    collect()
    for kind in ("placed", "runs", "country-never", "model-never", "capacity", "capacity-never"):
        assert seen[kind] > 0, dict(seen)
