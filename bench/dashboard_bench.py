"""What each dashboard page costs at federation scale, against the gRPC call that shows the same data.

An in-process broker (product defaults: 2 s tick, 60 s start-estimate refresh) on a real
SQLite file in a temp dir, serving the dashboard on a loopback port. The federation: 20
institutions in 8 countries, 100 sites of 8 A100s (800 GPUs), each a scripted agent on
the real SiteService stream (tests/fixtures_broker.ScriptedSite) that heartbeats and
reports what it is told to start. Through the real gRPC API: `--history` one-GPU jobs
that run and succeed (each with a 4 KiB log), so /shares and /usage have data (their runs
last milliseconds: the figures are about rows, not hours); one 8-GPU job per site that
stays RUNNING, so the federation is full; then `--pending` jobs of 1 to 4 GPUs from 8
threads, which stay pending. After a whole scheduling pass, each page is fetched over
HTTP (httpx, a real socket, signed in) as the admin and as a researcher of inst00: one
warm-up, then `--reps` requests, median and max in ms, and the body's size. The first
/queue after a cycle may pay the start-estimate forecast (scheduler/estimates.py): its
warm-up is shown apart, with whether it computed one.

Baseline, in the same run: the gRPC call (`minga` CLI's) that shows the same data, timed
the same way over its own channel: ListJobs(state=PENDING) for /queue, ListJobs(all) for
/jobs, ShowQuotas for / and /shares, ListSites, UsageReport, ListAudit, GetJob+GetJobLogs.

    .venv/bin/python bench/dashboard_bench.py [--pending 10000] [--reps 5] [--history 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import harness  # noqa: F401 - puts the checkout on sys.path for `tests.`
import httpx

from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import admin_pb2, common_pb2, job_pb2, job_pb2_grpc
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory

COUNTRIES = ("CL", "BR", "AR", "MX", "CO", "PE", "UY", "EC")
INSTITUTIONS = 20
SITES = 100
GPUS_PER_SITE = 8
SUBMIT_THREADS = 8
LOG = b"".join(b"step %04d loss 0.%04d\n" % (i, 9999 - i) for i in range(4096 // 22 + 1))[:4096]


def institution(i: int) -> str:
    return f"inst{i:02d}"


class Agents:
    """The scripted sites, and one thread that answers every start: history runs go
    RUNNING then SUCCEEDED (with a log), the others only RUNNING."""

    def __init__(self, broker: RunningBroker, tokens: list[str]) -> None:
        self.sites = [
            ScriptedSite(broker.address, t, gpu_inventory("A100", GPUS_PER_SITE, cpus=64), heartbeat_seconds=5)
            for t in tokens
        ]
        self.finish = True  # runs started now end at once
        self.started = 0
        self.succeeded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        while not self._stop.is_set():
            quiet = True
            for site in self.sites:
                while not site.inbox.empty():
                    msg = site.inbox.get_nowait()
                    if msg.WhichOneof("body") != "start":
                        continue
                    quiet = False
                    run_id = msg.start.run_id
                    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
                    self.started += 1
                    if self.finish:
                        site.log(run_id, 0, LOG)
                        site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
                        self.succeeded += 1
            if quiet:
                self._stop.wait(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for site in self.sites:
            site.close()


def wait_for(what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.1)


def submit(
    address: str, callers: list[Caller], count: int, spec_of: Callable[[int], common_pb2.JobSpec], threads: int
) -> None:
    """`count` jobs, job i from callers[i % len(callers)], over `threads` threads (each its own channel)."""

    def worker(k: int) -> None:
        stubs = {}
        for i in range(k, count, threads):
            caller = callers[i % len(callers)]
            if caller.token not in stubs:
                stubs[caller.token] = job_pb2_grpc.JobServiceStub(channels[k])
            stubs[caller.token].SubmitJob(job_pb2.SubmitJobRequest(spec=spec_of(i)), metadata=caller.md, timeout=60)

    channels = [grpc.insecure_channel(address) for _ in range(threads)]
    try:
        pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        for ch in channels:
            ch.close()


def spec(name: str, gpus: int, project: str = "") -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        entrypoint=f"python train.py --run {name}", name=name, resources=common_pb2.Resources(gpus=gpus),
        project=project,
    )  # fmt: skip


@dataclass
class Timing:
    first: float  # the warm-up, ms
    median: float
    max: float
    size: int  # bytes of the last answer
    forecasts: int = 0  # start-estimate forecasts computed during the warm-up


def timed(call: Callable[[], int], reps: int, forecasts: Callable[[], int] | None = None) -> Timing:
    """One warm-up, then `reps` calls of `call` (which returns the answer's size)."""
    before = forecasts() if forecasts else 0
    t0 = time.perf_counter()
    call()
    first = (time.perf_counter() - t0) * 1e3
    during = (forecasts() - before) if forecasts else 0
    times, size = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        size = call()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(first, statistics.median(times), max(times), size, during)


def page(client: httpx.Client, path: str) -> Callable[[], int]:
    def get() -> int:
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[-300:]}")
        return len(response.content)

    return get


def rpc(*calls: Callable[[], object]) -> Callable[[], int]:
    def call() -> int:
        size = 0
        for c in calls:
            out = c()
            if isinstance(out, list):  # a stream's messages
                size += sum(m.ByteSize() for m in out)
            else:
                size += out.ByteSize()  # type: ignore[attr-defined]
        return size

    return call


def sign_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=120)
    response = client.post("/login", data={"token": token, "next": "/"})
    if response.status_code != 303:
        raise SystemExit(f"sign-in refused: {response.status_code} {response.text[-300:]}")
    return client


def build(tmp: Path, args: argparse.Namespace) -> tuple[RunningBroker, Agents, dict[str, Caller], str]:
    """The federation, its history, full sites and the pending jobs; the researcher's job to show."""
    token_file = tmp / "admin-token"
    db_url = f"sqlite:///{tmp / 'broker.db'}"
    broker = Broker(
        BrokerConfig(listen="127.0.0.1:0", db_url=db_url, admin_token_file=token_file, web_listen="127.0.0.1:0")
    )
    broker.start()
    running = RunningBroker(broker, db_url, token_file)
    for i in range(INSTITUTIONS):
        running.institution(institution(i), COUNTRIES[i % len(COUNTRIES)])
    researchers = [running.researcher(f"user{i:02d}", institution(i)) for i in range(INSTITUTIONS)]
    tokens = [
        running.join(institution(s % INSTITUTIONS), f"site{s:03d}", COUNTRIES[s % INSTITUTIONS % len(COUNTRIES)])
        for s in range(SITES)
    ]
    agents = Agents(running, tokens)
    admin = running.admin
    who = {"admin": admin, "researcher": researchers[0]}

    def ready() -> int:
        listed = admin.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=admin.md).sites
        return sum(s.state == common_pb2.SITE_STATE_READY for s in listed)

    wait_for("every site ready", lambda: ready() == SITES)

    t0 = time.perf_counter()
    submit(running.address, researchers, args.history, lambda i: spec(f"history-{i}", 1), SUBMIT_THREADS)
    wait_for(f"{args.history} history runs to succeed", lambda: agents.succeeded >= args.history)
    agents.finish = False
    history_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    submit(running.address, researchers, SITES, lambda i: spec(f"full-{i}", GPUS_PER_SITE), SUBMIT_THREADS)
    wait_for("every site full", lambda: agents.started >= args.history + SITES)
    submit(running.address, researchers, args.pending, lambda i: spec(f"sweep-{i}", 1 + i % 4), SUBMIT_THREADS)
    pending_s = time.perf_counter() - t0
    running.full_pass()
    mine = job_pb2.ListJobsRequest(all=True, state=common_pb2.JOB_STATE_SUCCEEDED)
    job_id = researchers[0].jobs.ListJobs(mine, metadata=researchers[0].md).jobs[0].id
    print(
        f"set up: {args.history} history runs in {history_s:.1f} s; {SITES} full sites and "
        f"{args.pending:,} pending jobs submitted in {pending_s:.1f} s ({args.pending / pending_s:.0f}/s)"
    )
    return running, agents, who, job_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5, help="timed requests per page, after one warm-up")
    ap.add_argument("--history", type=int, default=300, help="jobs that run and succeed first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="minga-dashboard-bench-") as tmp:
        running, agents, who, job_id = build(Path(tmp), args)
        try:
            measure(running, who, job_id, args)
        finally:
            agents.close()
            running.close()


def measure(running: RunningBroker, who: dict[str, Caller], job_id: str, args: argparse.Namespace) -> None:
    core = running.broker.core
    assert core is not None
    estimates = core.cycle.estimates
    url = running.broker.web_url
    now = core.clock.now()
    month = admin_pb2.UsageReportRequest(since_seconds=30 * 86400, by="country")
    week = admin_pb2.ListAuditRequest(since=now - 7 * 86400, limit=500)
    pending_jobs = job_pb2.ListJobsRequest(state=common_pb2.JOB_STATE_PENDING)
    every_job = job_pb2.ListJobsRequest(all=True)
    baselines: list[tuple[str, Callable[[Caller], list[Callable[[], object]]]]] = [
        ("/queue", lambda c: [lambda: c.jobs.ListJobs(pending_jobs, metadata=c.md)]),
        ("/", lambda c: [lambda: c.admin.ShowQuotas(admin_pb2.ShowQuotasRequest(), metadata=c.md)]),
        ("/shares", lambda c: [lambda: c.admin.ShowQuotas(admin_pb2.ShowQuotasRequest(tree=True), metadata=c.md)]),
        ("/sites", lambda c: [lambda: c.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=c.md)]),
        ("/jobs", lambda c: [lambda: c.jobs.ListJobs(every_job, metadata=c.md)]),
        ("/jobs?q=sweep-1", lambda c: [lambda: c.jobs.ListJobs(every_job, metadata=c.md)]),
        (
            f"/jobs/{job_id}",
            lambda c: [
                lambda: c.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=c.md),
                lambda: list(c.jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=job_id), metadata=c.md)),
            ],
        ),
        ("/usage?by=country&since=30d", lambda c: [lambda: c.admin.UsageReport(month, metadata=c.md)]),
        ("/usage.csv?by=country&since=30d", lambda c: [lambda: c.admin.UsageReport(month, metadata=c.md)]),
        ("/audit", lambda c: [lambda: c.admin.ListAudit(week, metadata=c.md)]),
    ]
    pending = len(core.cycle.state.pending_jobs())
    load = os.getloadavg()
    print(
        f"\n{INSTITUTIONS} institutions in {len(COUNTRIES)} countries, {SITES} sites ({SITES * GPUS_PER_SITE} GPUs, "
        f"all busy), {pending:,} pending, {args.history} finished runs; SQLite; {args.reps} requests after one "
        f"warm-up; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'page':<34}{'as':<11}{'first ms':>9}{'median ms':>10}{'max ms':>8}{'bytes':>10}"
        f"{'gRPC med':>10}{'gRPC max':>9}{'gRPC B':>9}{'x gRPC':>8}"
    )
    for role, caller in who.items():
        client = sign_in(url, caller.token)
        try:
            for path, baseline in baselines:
                if path == "/audit" and role != "admin":
                    continue
                web = timed(page(client, path), args.reps, lambda: estimates.forecasts)
                grpc_t = timed(rpc(*baseline(caller)), args.reps)
                note = f"  (warm-up computed {web.forecasts} forecast)" if web.forecasts else ""
                shown = "/jobs/{id}" if path.startswith("/jobs/j-") else path
                print(
                    f"{shown:<34}{role:<11}{web.first:>9.1f}{web.median:>10.1f}{web.max:>8.1f}{web.size:>10,}"
                    f"{grpc_t.median:>10.1f}{grpc_t.max:>9.1f}{grpc_t.size:>9,}"
                    f"{web.median / max(grpc_t.median, 1e-3):>8.1f}{note}"
                )
        finally:
            client.close()


if __name__ == "__main__":
    main()
