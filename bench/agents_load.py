"""1,000 emulated agents on one broker: its CPU share and LOST detection time
(issue 12 targets: under 25% of one core; LOST within the lease TTL + 1 s).

A real `minga broker serve` subprocess (SQLite by default). Every site joins through
the admin API (join token, then Join). Each emulated agent (bench/emulated_agents.py)
has its own channel and Connect stream, says Hello with 8 A100s and no runs, then
heartbeats every 5 s (the broker's Welcome says min(5 s, TTL/3), hence a default TTL
of 15 s). By default they are light ones, the agent's protocol over grpc.aio: 1,000
real `Agent` objects (four threads each, waking every 100-200 ms) drove this 2-core
machine to a load of 400 before the broker had welcomed 130. `--real` uses the real
agent with the fake Ray backend instead (Ray polled every `--poll` s), for small runs.
The agents are spread over `--procs` processes, plus one process holding a single
"victim" agent, started first.

Figures:
- how many agents the broker welcomed (counted by the agents themselves);
- the broker's CPU (utime+stime from /proc/<pid>/stat) over a steady `--window`,
  as a % of one core, and the emulators' own, for context;
- LOST detection: the victim's process is killed (SIGKILL), then ListSites is polled
  every 0.25 s until the broker shows its site LOST; then the same for a whole
  emulator process's agents (`--kill-process`). Both next to the lease TTL.
"""

from __future__ import annotations

import argparse
import time
from concurrent import futures

import grpc
import harness
from emulated_agents import Emulators

from minga.v1 import common_pb2

TARGET_CPU_PCT = 25.0
TARGET_SLACK_S = 1.0
POLL_LOST_S = 0.25


def join_sites(broker: harness.BrokerProcess, count: int) -> list[str]:
    """`count` sites over 20 institutions, joined in parallel; their site tokens in order."""
    for i in range(20):
        broker.institution(f"inst{i}", "CL" if i % 2 else "BR")
    with futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda s: broker.join_site(f"inst{s % 20}", f"site{s:04d}"), range(count)))


def time_until_lost(broker: harness.BrokerProcess, sites: set[str], timeout: float) -> float | None:
    """Seconds from now until ListSites shows all of `sites` LOST; None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            lost = {s.name for s in broker.sites(timeout=5.0) if s.state == common_pb2.SITE_STATE_LOST}
        except grpc.RpcError:
            lost = set()
        if sites <= lost:
            return time.monotonic() - t0
        time.sleep(POLL_LOST_S)
    return None


def steady_cpu(broker: harness.BrokerProcess, emulators: Emulators, window: float) -> tuple[float, float]:
    """(broker, emulators) CPU over `window` seconds, as % of one core."""
    b0, e0, t0 = broker.cpu_seconds(), emulators.cpu_seconds(), time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - t0
    return (broker.cpu_seconds() - b0) / elapsed * 100, (emulators.cpu_seconds() - e0) / elapsed * 100


def lost_line(what: str, seconds: float | None, ttl: float) -> str:
    if seconds is None:
        return f"{what}: not shown LOST within {ttl * 3:.0f} s (ListSites unanswered or too slow) -> MISSED"
    limit = ttl + TARGET_SLACK_S
    verdict = "OK" if seconds <= limit else f"MISSED by {seconds - limit:.1f} s"
    return f"{what}: LOST after {seconds:.1f} s (TTL {ttl:g} s; target ≤ {limit:g} s) -> {verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=4, help="emulator processes (plus the victim's)")
    ap.add_argument("--store", choices=harness.STORES, default="sqlite")
    ap.add_argument("--lease-ttl", type=float, default=15.0)
    ap.add_argument("--real", action="store_true", help="real agents (agent.session.Agent), not light ones")
    ap.add_argument("--poll", type=float, default=1.0, help="the real agents' Ray poll, in seconds")
    ap.add_argument("--window", type=float, default=30.0, help="the steady CPU window, in seconds")
    ap.add_argument("--connect-timeout", type=float, default=90.0)
    ap.add_argument(
        "--no-kill-process",
        dest="kill_process",
        action="store_false",
        help="skip timing LOST for a whole emulator process's agents",
    )
    args = ap.parse_args()
    with harness.broker(args.store, lease_ttl=args.lease_ttl) as broker:
        t0 = time.monotonic()
        tokens = join_sites(broker, args.agents)
        print(f"{args.agents} sites joined in {time.monotonic() - t0:.1f} s")
        rest = tokens[1:]
        groups = [tokens[:1]] + [rest[i :: args.procs] for i in range(args.procs)]
        names = [[f"site{s:04d}" for s in range(args.agents)][1:][i :: args.procs] for i in range(args.procs)]
        emulators = Emulators(broker.address, groups, light=not args.real, poll=args.poll)
        try:
            welcomed, took = emulators.wait_welcomed(args.agents, args.connect_timeout)
            print(f"{welcomed} of {args.agents} agents welcomed after {took:.1f} s")
            time.sleep(5.0)  # the connect burst's cycles settle
            cpu, emu_cpu = steady_cpu(broker, emulators, args.window)
            connected = emulators.update()
            verdict = "OK" if cpu < TARGET_CPU_PCT else f"MISSED by {cpu / TARGET_CPU_PCT:.1f}x"
            if connected < args.agents:
                verdict = f"not judged: only {connected} of {args.agents} agents connected"
            results = [
                f"broker CPU over {args.window:g} s with {connected} agents connected: "
                f"{cpu:.1f}% of one core (target < {TARGET_CPU_PCT:g}%) -> {verdict}; "
                f"the emulators used {emu_cpu:.0f}%"
            ]
            emulators.kill(0)
            results.append(
                lost_line(
                    "one agent killed (SIGKILL of its process)",
                    time_until_lost(broker, {"site0000"}, args.lease_ttl * 3),
                    args.lease_ttl,
                )
            )
            if args.kill_process and args.procs > 1:
                emulators.kill(1)
                results.append(
                    lost_line(
                        f"one emulator process killed ({len(names[0])} agents)",
                        time_until_lost(broker, set(names[0]), args.lease_ttl * 3),
                        args.lease_ttl,
                    )
                )
        finally:
            emulators.close()
    print("\n" + "\n".join(results))


if __name__ == "__main__":
    main()
