"""Workloads for the simulator: the Alibaba openb task trace, and a seeded synthetic generator.

Trace rules (stated once, here and in docs/simulator.md):

- Only GPU tasks: a task with `num_gpu == 0` is CPU-only and skipped (fair share here is
  about GPUs). A fractional task (`gpu_milli < 1000`) is rounded up to one whole GPU.
- `--jobs N` keeps the LAST N GPU tasks in `creation_time` order (ties by `name`): the
  trace is what a cluster held over its final weeks, so its early months hold only the
  few long-lived survivors, while its end is the dense, representative stream.
- Arrival = `creation_time`, shifted so the first kept task arrives at 0.
- Duration = `deletion_time - creation_time`, at least 1 s and at most `max_duration`
  (default 2 days: the federation's longest walltime; longer tasks were mostly still
  running when the trace was cut). Walltime = duration.
- Allowed models = the distinct names in `gpu_spec` split on `|` (empty: any model).
- Institution: u = first 8 bytes of sha256(name) as a fraction of 2^64; the task goes to the
  institution whose interval of the cumulative weights (file order) holds u * total weight.
- Load: the trace is far lighter than any federation (about 0.3% of the nodes it came
  from), so arrival times are multiplied by one factor f chosen so that the offered load
  (the mean GPUs the jobs would hold with unlimited capacity over the arrival window,
  divided by the federation's GPUs) equals `load` (default 1.5). Order, the proportions
  of the gaps, sizes and durations are kept.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

DEFAULT_MAX_DURATION = 2 * 86400.0
DEFAULT_LOAD = 1.5


@dataclass(frozen=True)
class SimJob:
    id: str
    institution: str
    arrival: float
    duration: float
    gpus: int
    models: tuple[str, ...] = ()
    name: str = ""
    low_carbon: bool = False  # opts in to low-carbon placement (`sim/carbon.py`)
    low_carbon_first: bool = False


def name_fraction(name: str) -> float:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2.0**64


class InstitutionPicker:
    """Maps a fraction in [0, 1) to an institution, with probability proportional to weight."""

    def __init__(self, weights: Sequence[tuple[str, float]]):
        self.slugs = [s for s, _ in weights]
        self.bounds = list(accumulate(w for _, w in weights))
        self.total = self.bounds[-1]

    def pick(self, u: float) -> str:
        return self.slugs[min(bisect_right(self.bounds, u * self.total), len(self.slugs) - 1)]


def read_trace(
    path: str | Path,
    weights: Sequence[tuple[str, float]],
    jobs: int | None = None,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> list[SimJob]:
    """The trace's GPU tasks as jobs with raw arrival times (no load scaling yet)."""
    picker = InstitutionPicker(weights)
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (int(r["creation_time"]), r["name"]))
    out: list[SimJob] = []
    for r in rows:
        gpus = int(r["num_gpu"])
        if gpus <= 0:
            continue
        if int(r["gpu_milli"]) < 1000:
            gpus = max(gpus, 1)
        created = float(r["creation_time"])
        duration = min(max(float(r["deletion_time"]) - created, 1.0), max_duration)
        models = tuple(sorted({m for m in r["gpu_spec"].split("|") if m}))
        out.append(
            SimJob(
                id="",
                institution=picker.pick(name_fraction(r["name"])),
                arrival=created,
                duration=duration,
                gpus=gpus,
                models=models,
                name=r["name"],
            )
        )
    if jobs is not None:
        out = out[-jobs:] if jobs > 0 else []
    t0 = out[0].arrival if out else 0.0
    return [replace(j, id=f"j{k:07d}", arrival=j.arrival - t0) for k, j in enumerate(out)]


def mean_demand(jobs: Sequence[SimJob], f: float) -> float:
    """Time-average of the GPUs that jobs would hold with unlimited capacity, over the
    arrival window, once arrivals are multiplied by f."""
    span = max(j.arrival for j in jobs) * f
    events = sorted([(j.arrival * f, j.gpus) for j in jobs] + [(j.arrival * f + j.duration, -j.gpus) for j in jobs])
    area, held, last = 0.0, 0, 0.0
    for t, delta in events:
        if t > span:
            break
        area += held * (t - last)
        held, last = held + delta, t
    area += held * (span - last)
    return area / span if span > 0 else 0.0


def scale_to_load(jobs: list[SimJob], capacity: int, load: float = DEFAULT_LOAD) -> tuple[list[SimJob], float]:
    """Multiply arrivals by the one factor f that makes the offered load (the mean GPUs the
    jobs would hold with unlimited capacity, over the arrival window, over `capacity`) equal
    `load`; found by bisection on log f in [1e-4, 1e3] (a slice too small to reach `load`
    gets f = 1e-4: its arrivals squeezed 10,000-fold). Returns the jobs and f."""
    if not jobs or capacity <= 0 or load <= 0 or max(j.arrival for j in jobs) <= 0:
        return jobs, 1.0
    lo, hi = 1e-4, 1e3  # demand falls as f grows: arrivals spread out
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if mean_demand(jobs, mid) > load * capacity:
            lo = mid
        else:
            hi = mid
    f = math.sqrt(lo * hi)
    return [replace(j, arrival=round(j.arrival * f, 3)) for j in jobs], f


SIZE_MIX = ((1, 0.88), (2, 0.04), (4, 0.04), (8, 0.04))


def synthetic(
    n: int,
    weights: Sequence[tuple[str, float]],
    models: Mapping[str, int] | Sequence[str],
    capacity: int,
    seed: int = 0,
    load: float = DEFAULT_LOAD,
    constrained: float = 0.33,
    median_duration: float = 900.0,
    sigma: float = 1.2,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> list[SimJob]:
    """n jobs: Poisson arrivals at the rate giving `load`, sizes from SIZE_MIX (like the
    trace's 1/2/4/8 mix, gangs a little more common), log-normal durations, a third of the
    jobs constrained to one model (drawn in proportion to the federation's GPUs of that model
    when `models` maps model -> GPUs), institutions by weight. Same seed, same jobs."""
    rng = random.Random(seed)
    picker = InstitutionPicker(weights)
    sizes, probs = [s for s, _ in SIZE_MIX], [p for _, p in SIZE_MIX]
    mean_gpus = sum(s * p for s, p in SIZE_MIX)
    mean_dur = median_duration * math.exp(sigma * sigma / 2)
    rate = load * capacity / (mean_gpus * mean_dur)
    counts = dict(models) if isinstance(models, Mapping) else dict.fromkeys(models, 1)
    pool = sorted(counts)
    pool_w = [counts[m] for m in pool]
    t = 0.0
    out = []
    for k in range(n):
        t += rng.expovariate(rate)
        gpus = rng.choices(sizes, probs)[0]
        dur = min(max(1.0, rng.lognormvariate(math.log(median_duration), sigma)), max_duration)
        allowed = (rng.choices(pool, pool_w)[0],) if pool and rng.random() < constrained else ()
        out.append(
            SimJob(
                id=f"j{k:07d}",
                institution=picker.pick(rng.random()),
                arrival=round(t, 3),
                duration=round(dur, 3),
                gpus=gpus,
                models=allowed,
            )
        )
    return out
