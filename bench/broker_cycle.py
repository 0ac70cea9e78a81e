"""One broker scheduling cycle end to end on SQLite, by phase: charge, load snapshot,
schedule (the pure policy), persist. Complements bench/cycle_bench.py, which times the
policy alone: this shows what the store adds around it."""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from scheduler.clock import FakeClock
from scheduler.cycle import SchedulingCycle
from scheduler.leases import SiteLeases
from scheduler.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources
from scheduler.sessions import SessionRegistry
from scheduler.store import Store
from scheduler.store.accounts import Institution


def populate(store: Store, pending: int, sites: int, now: float) -> None:
    for i in range(20):
        store.accounts.add_institution(Institution(f"inst{i}", f"Institution {i}", "CL" if i % 2 else "BR"), now)
    for s in range(sites):
        store.accounts.add_join_token(f"h{s}", f"inst{s % 20}", f"site{s}", "CL" if s % 2 else "BR", now, now + 60)
        store.accounts.redeem_join_token(f"h{s}", f"t{s}", now)
        store.sites.connected(f"site{s}", Inventory(gpus=(GpuPool("A100", 40960, 8, 8, 8),), cpus=64), now)
    for j in range(pending):
        spec = JobSpec(entrypoint="true", resources=Resources(gpus=1 + j % 4), project=f"inst{j % 20}/default")
        store.jobs.submit(Job(id=f"j-{j:07d}", spec=spec, state=JobState.PENDING, owner="bench",
                              institution=f"inst{j % 20}", submitted_at=now + j * 1e-3), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, nargs="+", default=[10_000])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    for pending in args.pending:
        clock = FakeClock()
        store = Store(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
        populate(store, pending, args.sites, clock.now())
        cycle = SchedulingCycle(store, SessionRegistry(), clock, SiteLeases(clock))
        phases: dict[str, list[float]] = {"charge": [], "load": [], "schedule": [], "persist": [], "total": []}
        for _ in range(args.cycles):
            clock.advance(2.0)
            t0 = time.perf_counter()
            cycle.charge()
            t1 = time.perf_counter()
            snapshot = cycle.load_snapshot()
            t2 = time.perf_counter()
            decisions = cycle.decide(snapshot)
            t3 = time.perf_counter()
            cycle.persist(decisions)
            t4 = time.perf_counter()
            for name, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                phases[name].append(value)
        cells = "  ".join(f"{k} {statistics.median(v) * 1e3:7.0f} ms" for k, v in phases.items())
        print(f"{pending:>8d} pending, {args.sites} sites ({args.sites * 8} GPUs), median of {args.cycles}: {cells}")
        store.close()


if __name__ == "__main__":
    main()
