"""Sustained durable submits per second through gRPC (issue 12 target: ≥ 1,000/s with 16 clients).

A real `minga broker serve` subprocess (its CPU apart from the clients', as in
production; per-caller rate limit off with `--rate-limit 0`) on a fresh SQLite file
and on a fresh PostgreSQL database. 1, 4 and 16 clients, each with its own persistent
channel, submit trivial jobs (no working dir) back to back as a researcher for
`--seconds`, after `--warmup` seconds. Every acknowledged submit is committed. The
clients are asyncio tasks over grpc.aio in `--client-procs` processes (1): on this
2-core machine they share the CPU with the broker, and that is the lightest Python
client (a bare server takes ~4,700/s from them, against ~3,300/s from 16 threads in 4
processes).

Baseline, in the same run: a bare grpcio server (the broker's thread-pool size)
whose SubmitJob answers at once, driven by the same clients. The baseline's figure
is the harness's own ceiling: a broker figure well under it is the broker's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
import uuid
from concurrent import futures
from dataclasses import dataclass

import grpc
import harness

from minga.agent.ports import free_ports
from minga.v1 import common_pb2, job_pb2, job_pb2_grpc

TARGET_PER_S = 1000.0
TARGET_CLIENTS = 16
BROKER_RPC_THREADS = 128  # scheduler.server._grpc_server's pool
SPEC = common_pb2.JobSpec(entrypoint="true", name="bench", resources=common_pb2.Resources(gpus=1))


@dataclass(frozen=True)
class Window:
    """What the clients did within the measured window."""

    submits: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.submits / self.seconds


# -- the client harness --------------------------------------------------------------------


async def _client(address: str, token: str, start_at: float, window: tuple[float, float], out: list[float]) -> None:
    """One client: one persistent channel, submits back to back; the latencies of the
    calls that ended inside the window go to `out`."""
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = job_pb2_grpc.JobServiceStub(channel)
        md = harness.bearer(token)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begin, end = window
        while True:
            t0 = time.time()
            if t0 >= end:
                return
            await stub.SubmitJob(
                job_pb2.SubmitJobRequest(spec=SPEC, idempotency_key=uuid.uuid4().hex, allow_unknown=True), metadata=md
            )
            t1 = time.time()
            if begin <= t1 < end:
                out.append(t1 - t0)


def _client_process(
    address: str,
    token: str,
    clients: int,
    start_at: float,
    warmup: float,
    seconds: float,
    results: mp.Queue[list[float]],
) -> None:
    """`clients` clients in one process, asyncio tasks over grpc.aio (the lightest Python
    client: the clients share the machine with the broker), measured over one window."""
    window = (start_at + warmup, start_at + warmup + seconds)
    outs: list[list[float]] = [[] for _ in range(clients)]

    async def all_clients() -> None:
        await asyncio.gather(*(_client(address, token, start_at, window, out) for out in outs))

    asyncio.run(all_clients())
    results.put([lat for out in outs for lat in out])


def drive(address: str, token: str, clients: int, procs: int, warmup: float, seconds: float) -> Window:
    """Run `clients` submitting clients over `procs` processes; what they did in the window."""
    ctx = mp.get_context("spawn")
    results: mp.Queue[list[float]] = ctx.Queue()
    procs = min(procs, clients)
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    start_at = time.time() + 3.0  # the spawned processes import grpc and connect first
    workers = [
        ctx.Process(target=_client_process, args=(address, token, n, start_at, warmup, seconds, results))
        for n in shares
    ]
    for w in workers:
        w.start()
    latencies = [lat for _ in workers for lat in results.get(timeout=start_at - time.time() + warmup + seconds + 120)]
    for w in workers:
        w.join()
    return Window(len(latencies), seconds, latencies)


# -- the baseline: a bare grpcio server ------------------------------------------------------


class _BareJobs(job_pb2_grpc.JobServiceServicer):
    def SubmitJob(  # noqa: N802 - the RPC's name, which grpc calls
        self, request: job_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> job_pb2.SubmitJobResponse:
        return job_pb2.SubmitJobResponse(job=common_pb2.Job(id="j-bare", spec=request.spec), created=True)


def _bare_server(port: int, ready: mp.Event, stop: mp.Event) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=BROKER_RPC_THREADS))
    job_pb2_grpc.add_JobServiceServicer_to_server(_BareJobs(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    stop.wait()
    server.stop(0.5).wait()


def baseline(clients: list[int], procs: int, warmup: float, seconds: float) -> dict[int, Window]:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    (port,) = free_ports(1)
    server = ctx.Process(target=_bare_server, args=(port, ready, stop))
    server.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the bare grpcio server did not start")
        return {n: drive(f"127.0.0.1:{port}", "bare", n, procs, warmup, seconds) for n in clients}
    finally:
        stop.set()
        server.join(10)


# -- the broker ------------------------------------------------------------------------------


def measure_broker(kind: str, clients: list[int], procs: int, warmup: float, seconds: float) -> dict[int, Window]:
    with harness.broker(kind) as broker:
        broker.institution("uchile")
        token = broker.researcher("ana", "uchile")
        return {n: drive(broker.address, token, n, procs, warmup, seconds) for n in clients}


def report(kind: str, figures: dict[int, Window], bare: dict[int, Window], judged: bool = True) -> None:
    for n, w in figures.items():
        lat = w.latencies or [float("nan")]
        base = bare[n].rate
        verdict = ""
        if judged and n == TARGET_CLIENTS:
            verdict = "OK" if w.rate >= TARGET_PER_S else f"MISSED by {TARGET_PER_S / max(w.rate, 1e-9):.1f}x"
        print(
            f"{kind:<10}{n:>8d}{w.rate:>12.0f}{statistics.median(lat) * 1e3:>10.1f}"
            f"{harness.percentile(lat, 0.99) * 1e3:>10.1f}{base:>12.0f}{w.rate / base:>8.2f}  {verdict}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", nargs="+", choices=harness.STORES, default=list(harness.STORES))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--client-procs", type=int, default=1, help="processes the clients are spread over")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured window per point")
    ap.add_argument("--warmup", type=float, default=1.0)
    args = ap.parse_args()
    bare = baseline(args.clients, args.client_procs, args.warmup, args.seconds)
    rows = {}
    for kind in args.stores:
        if kind == "postgres" and not harness.pg_available():
            print(f"PostgreSQL at {harness.PG_ADMIN_URL} unreachable: skipped")
            continue
        rows[kind] = measure_broker(kind, args.clients, args.client_procs, args.warmup, args.seconds)
    print(
        f"\ndurable submits through gRPC, {args.seconds:g} s windows, clients over up to "
        f"{args.client_procs} processes; target ≥ {TARGET_PER_S:,.0f}/s with {TARGET_CLIENTS} clients"
    )
    print(f"{'store':<10}{'clients':>8}{'submits/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'bare grpc/s':>12}{'ratio':>8}")
    report("bare grpc", bare, bare, judged=False)
    for kind, figures in rows.items():
        report(kind, figures, bare)


if __name__ == "__main__":
    main()
