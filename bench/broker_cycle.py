"""One broker scheduling cycle by phase, on SQLite and PostgreSQL, with churn between
cycles (issue 12 target: ≤ 250 ms median at 100k pending on 1,000 sites).

Complements bench/cycle_bench.py, which times the policy alone: this shows what the
store adds around it. Per store and pending size: 1,000 sites of 8 A100s (8,000 GPUs)
over 20 institutions, the pending jobs bulk-inserted (1 to 4 GPUs each). A first
cycle places the initial fill and is shown apart. Between the measured cycles, as a
busy federation would: every site heartbeats, `--churn` of the live runs end
(reported RUNNING then SUCCEEDED, through the store as the site servicer does) and as
many new jobs are submitted (one by one, as SubmitJob does), and the clock moves on
by the tick. Each phase of `SchedulingCycle.run_once` is timed through its public
methods (`timed_cycle`); prints each phase's median and p90.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import harness
from sqlalchemy import insert

from minga.common.clock import FakeClock
from minga.common.domain import GpuPool, Inventory, Job, JobSpec, JobState, Resources, RunState
from minga.common.site_messages import Command, RunReport, StartRunCommand, StopRunCommand
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.leases import SiteLeases
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store
from minga.scheduler.store.accounts import Institution
from minga.scheduler.store.json_columns import secrets_to_json, spec_to_json
from minga.scheduler.store.models import JobRow

TARGET_MS = 250.0
TARGET_PENDING = 100_000
INSTITUTIONS = 20
TICK_SECONDS = 2.0
PHASES = ("expire", "charge", "load snapshot", "schedule", "persist", "publish")


def timed_cycle(cycle: SchedulingCycle) -> tuple[list[float], list[Command]]:
    """One `run_once`, phase by phase: each phase's seconds (in PHASES order) and the
    commands it persisted. Keep in step with SchedulingCycle.run_once."""
    marks = [time.perf_counter()]
    now = cycle.clock.now()
    stops = cycle.expire(now)
    marks.append(time.perf_counter())
    cycle.charge(now)
    marks.append(time.perf_counter())
    snapshot = cycle.load_snapshot(now)
    marks.append(time.perf_counter())
    decisions = cycle.decide(snapshot, now)
    marks.append(time.perf_counter())
    commands = cycle.persist(decisions, now)
    marks.append(time.perf_counter())
    cycle.publish(stops + commands)
    marks.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(marks)], stops + commands


def job_spec(j: int) -> JobSpec:
    return JobSpec(entrypoint="true", resources=Resources(gpus=1 + j % 4), project=f"inst{j % INSTITUTIONS}/default")


def add_sites(store: Store, sites: int, now: float) -> list[str]:
    for i in range(INSTITUTIONS):
        store.accounts.add_institution(Institution(f"inst{i}", f"Institution {i}", "CL" if i % 2 else "BR"), now)
    names = [f"site{s:04d}" for s in range(sites)]
    for s, name in enumerate(names):
        store.accounts.add_join_token(f"h{s}", f"inst{s % INSTITUTIONS}", name, "CL" if s % 2 else "BR", now, now + 60)
        store.accounts.redeem_join_token(f"h{s}", f"t{s}", now)
        store.sites.connected(name, Inventory(gpus=(GpuPool("A100", 40960, 8, 8, 8),), cpus=64), now)
    return names


def bulk_pending(store: Store, pending: int, now: float, chunk: int = 20_000) -> None:
    """`pending` PENDING jobs in a few multi-row INSERTs: the rows SubmitJob would write."""
    kinds = INSTITUTIONS * 4  # institution x GPU count
    templates = []
    for j in range(kinds):
        spec = job_spec(j)
        templates.append(
            JobRow(
                id="",
                owner="bench",
                institution=f"inst{j % INSTITUTIONS}",
                spec_json=spec_to_json(spec),
                secret_env_json=secrets_to_json(spec),
                state=JobState.PENDING.value,
                project=spec.project,
            ).model_dump()
        )
    for start in range(0, pending, chunk):
        rows = [
            dict(templates[j % kinds], id=f"j-{j:07d}", submitted_at=now + j * 1e-3, updated_at=now)
            for j in range(start, min(pending, start + chunk))
        ]
        with store.db.tx() as s:
            s.execute(insert(JobRow), rows)


class Churn:
    """What changes between two cycles: heartbeats, ended runs, new submits, time."""

    def __init__(
        self, store: Store, clock: FakeClock, leases: SiteLeases, sites: list[str], fraction: float, first_id: int
    ) -> None:
        self.store, self.clock, self.leases, self.sites = store, clock, leases, sites
        self.fraction = fraction
        self.live: dict[str, str] = {}  # run id -> site
        self.next_id = first_id

    def saw(self, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, StartRunCommand):
                self.live[cmd.run.id] = cmd.site
            elif isinstance(cmd, StopRunCommand):
                self.live.pop(cmd.run_id, None)

    def step(self) -> int:
        """Apply one round of churn; how many runs ended (and jobs were submitted)."""
        self.clock.advance(TICK_SECONDS)
        now = self.clock.now()
        for site in self.sites:
            self.leases.renew(site)
        ending = list(itertools.islice(self.live.items(), max(1, round(len(self.live) * self.fraction))))
        for run_id, site in ending:
            for state in (RunState.RUNNING, RunState.SUCCEEDED):
                self.store.runs.apply_report(site, RunReport(run_id, state), now)
            del self.live[run_id]
        for _ in ending:
            j, self.next_id = self.next_id, self.next_id + 1
            self.store.jobs.submit(
                Job(
                    id=f"j-{j:07d}",
                    spec=job_spec(j),
                    state=JobState.PENDING,
                    owner="bench",
                    institution=f"inst{j % INSTITUTIONS}",
                    submitted_at=now,
                ),
                None,
            )
        return len(ending)


def bench_one(url: str, pending: int, sites: int, cycles: int, churn: float) -> None:
    clock = FakeClock()
    store = Store(url)
    try:
        t0 = time.perf_counter()
        names = add_sites(store, sites, clock.now())
        bulk_pending(store, pending, clock.now())
        populated = time.perf_counter() - t0
        leases = SiteLeases(clock)
        cycle = SchedulingCycle(store, SessionRegistry(), clock, leases, TICK_SECONDS, freeze_gc=True)  # as the broker
        changes = Churn(store, clock, leases, names, churn, pending)
        t0 = time.perf_counter()
        cycle.attach()  # the leader builds the federation in memory once, as it takes the lead
        setup = (populated, time.perf_counter() - t0)
        fill, commands = timed_cycle(cycle)
        changes.saw(commands)
        timings, ended = [], []
        for _ in range(cycles):
            ended.append(changes.step())
            phases, commands = timed_cycle(cycle)
            changes.saw(commands)
            timings.append(phases)
        report(pending, sites, setup, fill, timings, statistics.median(ended), len(changes.live))
    finally:
        store.close()


def report(
    pending: int,
    sites: int,
    setup: tuple[float, float],
    fill: list[float],
    timings: list[list[float]],
    ended: float,
    live: int,
) -> None:
    totals = [sum(t) for t in timings]
    print(
        f"  {pending:,} pending, {sites:,} sites ({sites * 8:,} GPUs); set up in {setup[0]:.1f} s; "
        f"federation loaded into memory in {setup[1] * 1e3:.0f} ms; "
        f"first cycle (places the fill) {sum(fill) * 1e3:.0f} ms; then {len(timings)} cycles with "
        f"~{ended:.0f} runs ended and as many jobs submitted before each ({live:,} live runs):"
    )
    print(f"    {'':6}" + "".join(f"{name:>15}" for name in (*PHASES, "total")))
    for label, q in (("median", 0.5), ("p90", 0.9)):
        cells = [harness.percentile([t[i] for t in timings], q) for i in range(len(PHASES))]
        cells.append(harness.percentile(totals, q))
        print(f"    {label:<6}" + "".join(f"{c * 1e3:>12.0f} ms" for c in cells))
    if pending == TARGET_PENDING:
        med = statistics.median(totals) * 1e3
        verdict = "OK" if med <= TARGET_MS else f"MISSED by {med / TARGET_MS:.1f}x"
        print(
            f"    median total {med:.0f} ms -> {verdict} (target ≤ {TARGET_MS:.0f} ms at "
            f"{TARGET_PENDING:,} pending on 1,000 sites)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", nargs="+", choices=harness.STORES, default=list(harness.STORES))
    ap.add_argument("--pending", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--million", action="store_true", help="also 1,000,000 pending (minutes to populate)")
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=5, help="measured cycles after the first")
    ap.add_argument("--churn", type=float, default=0.01, help="fraction of live runs that end before each cycle")
    args = ap.parse_args()
    sizes = args.pending + ([1_000_000] if args.million else [])
    for kind in args.store:
        if kind == "postgres" and not harness.pg_available():
            print(f"PostgreSQL at {harness.PG_ADMIN_URL} unreachable: skipped")
            continue
        print(f"{kind}:")
        for pending in sizes:
            with (
                tempfile.TemporaryDirectory(prefix="minga-cycle-bench-") as tmp,
                harness.store_url(kind, Path(tmp)) as url,
            ):
                bench_one(url, pending, args.sites, args.cycles, args.churn)


if __name__ == "__main__":
    main()
