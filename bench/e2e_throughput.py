"""End-to-end throughput of trivial jobs, submit to SUCCEEDED (issue 12 target: ≥ 300 jobs/s).

A real `minga broker serve` subprocess (per-caller rate limit off) on a fresh store,
`--sites` sites of 8 A100s each, joined through the admin API, each served by the
real agent (agent/session.py, default 50 ms Ray poll) in one emulator process over a
fake Ray where every run succeeds as soon as it is submitted. `--clients` threads,
each with its own channel, submit `--jobs` one-GPU jobs as fast as they can; a
ListJobs poll (live jobs) every `--poll` seconds watches them, and each is read
once with GetJob at the end. The figure is jobs / (the last
job's finished_at − the first submit), both on this machine's clock.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import grpc
import harness
from emulated_agents import Emulators

from minga.v1 import common_pb2, job_pb2, job_pb2_grpc

TARGET_PER_S = 300.0
SPEC = common_pb2.JobSpec(entrypoint="true", name="e2e", resources=common_pb2.Resources(gpus=1))
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)


def submit_all(address: str, token: str, jobs: int, clients: int) -> tuple[list[str], float]:
    """Submit `jobs` jobs from `clients` threads: their ids, and the wall time the last submit returned."""
    ids: list[str] = []

    def client(count: int) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = job_pb2_grpc.JobServiceStub(channel)
            for _ in range(count):
                ids.append(
                    stub.SubmitJob(
                        job_pb2.SubmitJobRequest(spec=SPEC, idempotency_key=uuid.uuid4().hex),
                        metadata=harness.bearer(token),
                    ).job.id
                )

    threads = [threading.Thread(target=client, args=(jobs // clients + (i < jobs % clients),)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, time.time()


def watch(
    stub: job_pb2_grpc.JobServiceStub, token: str, ids: list[str], poll: float, deadline: float
) -> list[common_pb2.Job]:
    """Poll ListJobs (live jobs only: it returns at most 1,000) until none is left or
    `deadline` (wall clock) passes; then every job, read once with GetJob."""
    md = harness.bearer(token)
    while time.time() < deadline:
        if not stub.ListJobs(job_pb2.ListJobsRequest(), metadata=md, timeout=30).jobs:
            break
        time.sleep(poll)
    return [stub.GetJob(job_pb2.GetJobRequest(job_id=i), metadata=md, timeout=30) for i in ids]


def measure(kind: str, args: argparse.Namespace) -> None:
    with harness.broker(kind) as broker:
        broker.institution("uchile")
        token = broker.researcher("ana", "uchile")
        sites = [broker.join_site("uchile", f"site{s:02d}") for s in range(args.sites)]
        emulators = Emulators(broker.address, [sites], poll=0.05, instant=True)
        try:
            welcomed, _ = emulators.wait_welcomed(args.sites, 60)
            if welcomed < args.sites:
                raise SystemExit(f"only {welcomed} of {args.sites} agents were welcomed")
            time.sleep(2.0)  # their inventories are in before the first submit
            stub = job_pb2_grpc.JobServiceStub(broker.channel)
            first = time.time()
            ids, submitted = submit_all(broker.address, token, args.jobs, args.clients)
            jobs = watch(stub, token, ids, args.poll, first + args.timeout)
            done = [j for j in jobs if j.state in TERMINAL]
        finally:
            emulators.close()
    report(kind, args, first, submitted, done)


def report(kind: str, args: argparse.Namespace, first: float, submitted: float, done: list[common_pb2.Job]) -> None:
    succeeded = [j for j in done if j.state == common_pb2.JOB_STATE_SUCCEEDED]
    if not succeeded:
        print(f"{kind:<10} no job succeeded within {args.timeout:g} s -> MISSED")
        return
    last = max(j.finished_at for j in succeeded)
    rate = len(succeeded) / (last - first)
    complete = (
        "" if len(succeeded) == args.jobs else f" (only {len(succeeded)} of {args.jobs} within {args.timeout:g} s)"
    )
    verdict = "OK" if rate >= TARGET_PER_S and not complete else f"MISSED by {TARGET_PER_S / rate:.1f}x"
    print(
        f"{kind:<10} {len(succeeded)} jobs SUCCEEDED in {last - first:.1f} s: {rate:.0f} jobs/s{complete} "
        f"(submits took {submitted - first:.1f} s: {args.jobs / (submitted - first):.0f}/s; "
        f"{len(done) - len(succeeded)} ended otherwise) -> {verdict} (target ≥ {TARGET_PER_S:g} jobs/s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", nargs="+", choices=harness.STORES, default=["sqlite"])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--poll", type=float, default=2.0, help="seconds between ListJobs polls")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up this long after the first submit")
    args = ap.parse_args()
    for kind in args.stores:
        if kind == "postgres" and not harness.pg_available():
            print(f"PostgreSQL at {harness.PG_ADMIN_URL} unreachable: skipped")
            continue
        measure(kind, args)


if __name__ == "__main__":
    main()
