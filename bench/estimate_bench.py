"""What a start estimate costs: one forecast (`scheduler/sim/forecast.py`) at queue depth,
against one ordinary policy cycle on the same snapshot, measured in the same run; and what
a question and a cycle cost while the estimates' worker forecasts beside them.

The snapshot is cycle_bench.py's synthetic federation (1,000 sites, 8,000 GPUs, 60
institutions, about half the GPUs busy with runs started within the last day and no
walltime, so they end at the forecast's default), with N pending jobs. The broker computes
one forecast per cycle and per minute at most, only when someone asked since the last one,
in a background worker thread (`scheduler/estimates.py`): `estimate ms` is what that
worker spends per forecast. No question waits for it: `100 asks ms` is a queue page's 100
lookups timed while the worker forecasts, and `cycle ms busy` one policy cycle timed while
it does, which shares the interpreter (the GIL) with it. Both are timed with a previous
forecast in place, as in a running broker.

    .venv/bin/python bench/estimate_bench.py [--sizes 1000,10000] [--reps 3] [--max-cycles 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from cycle_bench import NOW, build

from minga.common.domain import StartEstimate
from minga.common.snapshot import Snapshot
from minga.scheduler.estimates import StartEstimates
from minga.scheduler.policy import schedule
from minga.scheduler.sim.forecast import Limits, forecast


def _median(reps: int, fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _beside_a_forecast(snap: Snapshot, limits: Limits, reps: int) -> tuple[float, float, bool]:
    """The median of `reps` rounds of 100 `for_job` lookups, and of `reps` policy cycles,
    timed while the worker forecasts; and whether the forecast was still running when the
    last was timed (else the figures are partly those of an idle worker)."""
    started = threading.Event()

    def compute(s: Snapshot, now: float) -> dict[str, StartEstimate]:
        started.set()
        return forecast(s, now, schedule, limits)

    estimates = StartEstimates(limits, refresh_seconds=0, compute=compute, first_wait=0)
    ids = [j.id for j in snap.pending[:100]]
    estimates.observe(snap, NOW)
    estimates.for_job(ids[0])
    estimates.refresh_now()  # the previous forecast, computed here
    started.clear()
    estimates.start()
    try:
        estimates.observe(snap, NOW + 1)  # a new cycle; the next question wants its forecast
        estimates.for_job(ids[0])
        started.wait()
        asks, _ = _median(reps, lambda: [estimates.for_job(i) for i in ids])
        busy, _ = _median(reps, lambda: schedule(snap, NOW))
        during = estimates.forecasts == 1
        while estimates.forecasts + estimates.failures < 2:  # let it finish before the next size
            time.sleep(0.05)
    finally:
        estimates.stop()
    return asks, busy, during


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
        f"{'none':>5} {'reached':>8} {'100 asks ms':>12} {'cycle ms busy':>14}"
    )
    partial = False
    for n in (int(s) for s in args.sizes.split(",")):
        snap = build(n)
        cycle, _ = _median(args.reps, lambda snap=snap: schedule(snap, NOW))
        cost, out = _median(args.reps, lambda snap=snap: forecast(snap, NOW, schedule, limits))
        estimates = dict(out)  # type: ignore[call-overload]
        started = [e.at for e in estimates.values() if e.at]
        later = [e.later_than for e in estimates.values() if not e.at and e.later_than]
        reached = (max(later) if later else max(started, default=NOW)) - NOW
        asks, busy, during = _beside_a_forecast(snap, limits, args.reps)
        partial |= not during
        mark = "" if during else "*"
        print(
            f"{n:>8,} {cycle * 1000:>9.0f} {cost * 1000:>12.0f} {cost / cycle:>8.1f} {len(started):>8,} "
            f"{len(later):>6,} {len(estimates) - len(started) - len(later):>5,} {reached / 3600:>7.1f}h "
            f"{asks * 1000:>12.2f} {busy * 1000:>{14 - len(mark)}.0f}{mark}"
        )
    if partial:
        print("* the forecast ended before the last timing: partly timed beside an idle worker")


if __name__ == "__main__":
    main()
