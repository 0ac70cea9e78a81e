"""What a start estimate costs: one forecast (`scheduler/sim/forecast.py`) at queue depth,
against one ordinary policy cycle on the same snapshot, measured in the same run.

The snapshot is cycle_bench.py's synthetic federation (1,000 sites, 8,000 GPUs, 60
institutions, about half the GPUs busy with runs started within the last day and no
walltime, so they end at the forecast's default), with N pending jobs. The broker computes
one forecast per cycle at most, on the first `job status` of a pending job after that
cycle (`scheduler/estimates.py`); this is what that first question costs.

    .venv/bin/python bench/estimate_bench.py [--sizes 1000,10000] [--reps 3] [--max-cycles 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from cycle_bench import NOW, build

from minga.scheduler.policy import schedule
from minga.scheduler.sim.forecast import Limits, forecast


def _median(reps: int, fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-cycles", type=int, default=Limits().max_cycles)
    args = ap.parse_args()
    limits = Limits(max_cycles=args.max_cycles)
    print(
        "1,000 sites, 8,000 GPUs, 60 institutions, ~half the GPUs busy; forecast bounded by "
        f"{limits.max_cycles} cycles and {limits.horizon / 86400:g} days; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'pending':>8} {'cycle ms':>9} {'estimate ms':>12} {'x cycle':>8} {'started':>8} {'later':>6} "
        f"{'none':>5} {'reached':>8}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        snap = build(n)
        cycle, _ = _median(args.reps, lambda snap=snap: schedule(snap, NOW))
        cost, out = _median(args.reps, lambda snap=snap: forecast(snap, NOW, schedule, limits))
        estimates = dict(out)  # type: ignore[call-overload]
        started = [e.at for e in estimates.values() if e.at]
        later = [e.later_than for e in estimates.values() if not e.at and e.later_than]
        reached = (max(later) if later else max(started, default=NOW)) - NOW
        print(
            f"{n:>8,} {cycle * 1000:>9.0f} {cost * 1000:>12.0f} {cost / cycle:>8.1f} {len(started):>8,} "
            f"{len(later):>6,} {len(estimates) - len(started) - len(later):>5,} {reached / 3600:>7.1f}h"
        )


if __name__ == "__main__":
    main()
