"""One fair-share scheduling cycle at queue depth: median and p99 cycle time.

A deterministic synthetic federation: 1,000 sites with 8,000 GPUs (a realistic
model mix), 60 institutions in 19 Latin American countries (ten without GPUs),
two to four projects each, decayed usage, about half the GPUs busy with live
runs (70% the owner's own, 30% borrowed), and N pending jobs. `schedule()` is timed over several repetitions on one
core; the figures printed are the median and p99 cycle time, decisions per
second, and the growth from one size to the next against n log n. The load average
is printed too: on a shared machine, other processes inflate every figure.

    .venv/bin/python bench/cycle_bench.py [--sizes 10000,100000,1000000] [--reps 7] [--lend-caps site|inst|both]
                                          [--preemption on|off|both] [--order submit|random]

`--preemption` times the cycle with fair-share preemption on (the default policy), off
(`fair_share_preemption=False`), or both, one after the other on the same snapshots
(default: both). The bench federation is contended (N pending jobs, every GPU wanted), so
the preemption phase has work to do: the `preempt` column counts its decisions.

`--lend-caps` measures the case where lending caps are reached: `site` gives every fifth
site (200) a lending policy with `max_lent=4`, `inst` gives every fifth GPU-owning
institution (10, plus 2 without GPUs: 12) a lending limit of 4 GPUs (`limits set --lend 4`),
`both` does both. GPUs then stay free that only their owner may take.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from dataclasses import replace

from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, Run, RunState, Site
from minga.common.lending import LendingPolicy
from minga.scheduler.policy import InstitutionShare, ProjectShare, ShareSettings, Snapshot, schedule

COUNTRIES = [
    "AR",
    "CL",
    "UY",
    "PY",
    "BO",
    "PE",
    "EC",
    "CO",
    "VE",
    "BR",
    "MX",
    "GT",
    "HN",
    "SV",
    "CR",
    "PA",
    "CU",
    "DO",
    "PR",
]
MODELS = [
    ("A100", 81_920, 35),
    ("V100", 32_768, 20),
    ("T4", 16_384, 20),
    ("H100", 81_920, 10),
    ("L4", 24_576, 10),
    ("A10", 24_576, 5),
]
NOW = 1_800_000_000.0


def _model(rnd: random.Random) -> tuple[str, int]:
    r = rnd.randrange(100)
    for name, mem, pct in MODELS:
        if r < pct:
            return name, mem
        r -= pct
    return MODELS[0][:2]


def federation(rnd: random.Random) -> tuple[list[InstitutionShare], list[ProjectShare], list[Site]]:
    insts = [
        InstitutionShare(
            slug=f"inst{i:02d}",
            country=COUNTRIES[i % len(COUNTRIES)],
            weight=rnd.choice([1.0, 2.0, 4.0]),
            contribution=0.0,
        )
        for i in range(60)
    ]
    projects = [
        ProjectShare(id=f"{i.slug}/p{k}", institution=i.slug, weight=rnd.choice([1.0, 2.0]))
        for i in insts
        for k in range(rnd.randint(2, 4))
    ]
    owners = insts[:50]  # ten institutions contribute no GPUs
    sites, gpus_left = [], 8000
    for s in range(1000):
        size = 8 if s < 999 else gpus_left
        size = min(size, gpus_left)
        gpus_left -= size
        inst = owners[s % len(owners)]
        models = [_model(rnd)] if rnd.random() < 0.8 or size < 8 else [_model(rnd), _model(rnd)]
        models = list(dict.fromkeys(models))
        split = [size] if len(models) == 1 else [size // 2, size - size // 2]
        pools = tuple(
            GpuPool(model=m, memory_mb=mem, total=n, free=n, largest_node=8)
            for (m, mem), n in zip(models, split, strict=True)
        )
        labels = (("fabric", "infiniband"),) if rnd.random() < 0.2 else ()
        sites.append(
            Site(
                name=f"site{s:04d}",
                institution=inst.slug,
                country=inst.country,
                connected=True,
                inventory=Inventory(gpus=pools, cpus=128.0),
                labels=labels,
            )
        )
    contrib = {}
    for site in sites:
        contrib[site.institution] = contrib.get(site.institution, 0.0) + site.inventory.total_gpus * 24 * 7
    insts = [
        InstitutionShare(slug=i.slug, country=i.country, weight=i.weight, contribution=contrib.get(i.slug, 0.0))
        for i in insts
    ]
    return insts, projects, sites


def live_runs(rnd: random.Random, sites: list[Site], projects: list[ProjectShare]) -> list[Run]:
    runs = []
    for site in sites:
        for pool in site.inventory.gpus:
            busy = pool.total // 2
            while busy > 0:
                n = min(busy, rnd.choice([1, 1, 2, 4]))
                busy -= n
                own = [p for p in projects if p.institution == site.institution]
                proj = rnd.choice(own) if rnd.random() < 0.7 else rnd.choice(projects)
                runs.append(
                    Run(
                        id=f"run{len(runs):06d}",
                        job_id=f"old{len(runs):06d}",
                        site=site.name,
                        epoch=1,
                        gpu_model=pool.model,
                        gpus=n,
                        cpus=4.0,
                        state=RunState.RUNNING,
                        institution=proj.institution,
                        project=proj.id,
                        started_at=NOW - rnd.uniform(0, 86400),
                    )
                )
    return runs


def pending(rnd: random.Random, n: int, projects: list[ProjectShare], order: str = "submit") -> list[Job]:
    """N pending jobs. With `order="submit"` they are built and listed in (submit time, id)
    order, as the store loads them (`RunsRepo.load_snapshot`); "random" keeps the draw order.
    The jobs are the same either way."""
    drawn = []
    names = [m for m, _, _ in MODELS]
    for j in range(n):
        proj = rnd.choice(projects)
        gpus = rnd.choices([1, 2, 4, 8], weights=[60, 15, 15, 10])[0]
        r = rnd.random()
        models = () if r < 0.7 else tuple(rnd.sample(names, 1 if r < 0.9 else 2))
        countries = () if rnd.random() < 0.85 else tuple(rnd.sample(COUNTRIES, rnd.choice([1, 2])))
        walltime = rnd.choice([0, 3600, 4 * 3600, 86400])
        data_country = rnd.choice(COUNTRIES) if rnd.random() < 0.5 else ""
        labels = (("fabric", "infiniband"),) if rnd.random() < 0.05 else ()
        drawn.append(
            (
                NOW - rnd.uniform(0, 7 * 86400),
                f"job{j:07d}",
                proj,
                gpus,
                models,
                countries,
                walltime,
                data_country,
                labels,
            )
        )
    if order == "submit":
        drawn.sort(key=lambda d: (d[0], d[1]))
    return [
        Job(
            id=jid,
            spec=JobSpec(
                entrypoint="python train.py",
                project=proj.id,
                resources=Resources(gpus=gpus, gpu_models=models, cpus=float(4 * gpus)),
                countries=countries,
                walltime_seconds=walltime,
                data_country=data_country,
                site_labels=labels,
            ),
            state=JobState.PENDING,
            owner="u",
            institution=proj.institution,
            submitted_at=submitted,
        )
        for submitted, jid, proj, gpus, models, countries, walltime, data_country, labels in drawn
    ]


def build(n: int, seed: int = 7, lend_caps: str = "", preemption: bool = True, order: str = "submit") -> Snapshot:
    """The synthetic snapshot; `lend_caps` ("", "site", "inst" or "both") adds the caps
    (see the module docstring) without changing anything else the random stream draws."""
    rnd = random.Random(seed)
    insts, projects, sites = federation(rnd)
    runs = live_runs(rnd, sites, projects)
    usage = tuple((p.id, rnd.uniform(0, 1e6)) for p in projects)
    lending: tuple[tuple[str, LendingPolicy], ...] = ()
    if lend_caps in ("site", "both"):
        lending = tuple((s.name, LendingPolicy(max_lent_gpus=4)) for s in sites[::5])
    if lend_caps in ("inst", "both"):
        insts = [replace(i, lending_limit=4) if k % 5 == 0 else i for k, i in enumerate(insts)]
    return Snapshot(
        sites=tuple(sites),
        live_runs=tuple(runs),
        pending=tuple(pending(rnd, n, projects, order)),
        institutions=tuple(insts),
        projects=tuple(projects),
        usage=usage,
        lending=lending,
        settings=ShareSettings() if preemption else ShareSettings(fair_share_preemption=False),
    )


def measure(n: int, reps: int, lend_caps: str = "", preemption: bool = True, order: str = "submit") -> dict[str, float]:
    snap = build(n, lend_caps=lend_caps, preemption=preemption, order=order)
    times, decisions = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        decisions = schedule(snap, NOW)
        times.append(time.perf_counter() - t0)
    times.sort()
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)]
    assert decisions is not None
    return dict(
        n=n,
        median=median,
        p99=p99,
        rate=n / median,
        placed=len(decisions.placements),
        preempted=len(decisions.preemptions),
        gpus=sum(p.gpus for p in decisions.placements),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument(
        "--lend-caps",
        choices=["", "site", "inst", "both"],
        default="",
        help="reach lending caps: site max_lent=4 on 200 sites, institution --lend 4 on 12, or both",
    )
    ap.add_argument(
        "--preemption",
        choices=["on", "off", "both"],
        default="both",
        help="fair-share preemption on, off, or both in turn (default)",
    )
    ap.add_argument(
        "--order",
        choices=["submit", "random"],
        default="submit",
        help="pending jobs in submit order, as the store loads them (default), or in random order",
    )
    args = ap.parse_args()
    caps = {
        "": "",
        "site": "; max_lent=4 on 200 sites",
        "inst": "; --lend 4 on 12 institutions",
        "both": "; max_lent=4 on 200 sites and --lend 4 on 12 institutions",
    }[args.lend_caps]
    print(
        "1,000 sites, 8,000 GPUs, 60 institutions in 19 countries, ~half the GPUs busy"
        f"{caps}; pending in {args.order} order; load average {os.getloadavg()[0]:.1f}"
    )
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.preemption]
    for preemption in modes:
        print(f"fair-share preemption {'on' if preemption else 'off'}")
        print(
            f"{'pending':>9} {'median ms':>10} {'p99 ms':>9} {'decisions/s':>12} {'placed':>7} {'GPUs':>6} "
            f"{'preempt':>8} {'growth':>7} {'n log n':>8}"
        )
        prev = None
        for n in (int(s) for s in args.sizes.split(",")):
            r = measure(
                n, args.reps if n < 1_000_000 else max(1, args.reps // 3), args.lend_caps, preemption, args.order
            )
            growth = nlogn = ""
            if prev:
                growth = f"{r['median'] / prev['median']:.1f}x"
                nlogn = f"{(n * math.log(n)) / (prev['n'] * math.log(prev['n'])):.1f}x"
            print(
                f"{n:>9,} {r['median'] * 1e3:>10.1f} {r['p99'] * 1e3:>9.1f} {r['rate']:>12,.0f} "
                f"{r['placed']:>7} {r['gpus']:>6} {r['preempted']:>8} {growth:>7} {nlogn:>8}"
            )
            prev = r


if __name__ == "__main__":
    main()
