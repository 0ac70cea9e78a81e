"""Durable submits per second through gRPC, before and after group commit (issue 12).

Each broker runs in a process of its own (rate limit off, its source tree on the
path): the tree under test, and the one before the change (`--before REV`, exported
with `git archive`). Each serves a fresh SQLite file, then a fresh schema of the local
PostgreSQL (127.0.0.1:5432, database `test`) when it is reachable. 1, 4 and 16
client threads, each with its own persistent channel, submit for `--seconds`, every
submit with its own idempotency key; a submit counts once the broker answered it
(committed). The baseline, in the same run: a bare grpcio server, with the same
128-thread pool, that answers SubmitJob with a canned reply: the ceiling Python
gRPC itself sets here. A last row per store runs the tree under test with its
event-triggered cycles held off, to show what the submit path costs alone. Target: at
least 1,000/s with 16 clients on both stores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from array_submit import drop_schema, pg_schema_url  # noqa: E402 - a sibling script

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = (1, 4, 16)
TARGET = 1000.0
SPEC = common_pb2.JobSpec(entrypoint="python sweep.py", name="sweep", resources=common_pb2.Resources(gpus=0))

BROKER = """
import sys
from pathlib import Path
from scheduler.server import Broker, BrokerConfig
broker = Broker(BrokerConfig(listen="127.0.0.1:0", db_url=sys.argv[1], rate_limit=0,
                             admin_token_file=Path(sys.argv[2]) / "admin-token"))
broker.start()
print(broker.address, broker.bootstrap_token, flush=True)
sys.stdin.read()
broker.stop()
"""

BARE = """
import sys
from concurrent import futures
import grpc
from minga.v1 import common_pb2, job_pb2, job_pb2_grpc

class Canned(job_pb2_grpc.JobServiceServicer):
    def SubmitJob(self, request, context):
        return job_pb2.SubmitJobResponse(job=common_pb2.Job(id="j-canned", spec=request.spec), created=True)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=128))
job_pb2_grpc.add_JobServiceServicer_to_server(Canned(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"127.0.0.1:{port}", "-", flush=True)
sys.stdin.read()
server.stop(0)
"""


def serve(tree: Path, script: str, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """Run `script` with `tree` on the path; (process, address, admin token)."""
    env = dict(os.environ, PYTHONPATH=f"{tree}:{tree / 'proto'}", MINGA_DATA_DIR=tempfile.mkdtemp())
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=tree)
    assert proc.stdout is not None
    address, token = proc.stdout.readline().split()
    return proc, address, token


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def researcher_token(address: str, admin_token: str) -> str:
    with grpc.insecure_channel(address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        md = [("authorization", f"Bearer {admin_token}")]
        admin.AddInstitution(admin_pb2.AddInstitutionRequest(institution=admin_pb2.Institution(
            slug="uchile", name="U. de Chile", country="CL")), metadata=md)
        return admin.AddUser(admin_pb2.AddUserRequest(name="ana", institution="uchile",
                                                      role=common_pb2.ROLE_RESEARCHER), metadata=md).token


def rate(address: str, token: str, clients: int, seconds: float) -> float:
    """Submits answered per second, `clients` threads each on its own channel."""
    md = [("authorization", f"Bearer {token}")]
    channels = [grpc.insecure_channel(address) for _ in range(clients)]
    stubs = [job_pb2_grpc.JobServiceStub(ch) for ch in channels]
    for stub in stubs:   # connected and warm before the clock starts
        stub.SubmitJob(job_pb2.SubmitJobRequest(spec=SPEC, idempotency_key=uuid.uuid4().hex), metadata=md)
    done = [0] * clients
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(i: int) -> None:
        start_line.wait()
        while time.monotonic() < deadline[0]:
            stubs[i].SubmitJob(job_pb2.SubmitJobRequest(spec=SPEC, idempotency_key=uuid.uuid4().hex), metadata=md)
            done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    t0 = time.monotonic()
    start_line.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for ch in channels:
        ch.close()
    return sum(done) / elapsed


# The tree under test once more, with event-triggered cycles held off for the run: what
# the submit path costs alone, without today's cycle competing for the write lock.
NO_CYCLES = BROKER.replace("rate_limit=0,", "rate_limit=0, tick_seconds=600, cycle_min_interval=600,")


def measure(tree: Path, db_url: str, seconds: float, script: str = BROKER) -> list[float]:
    work = tempfile.mkdtemp(prefix="minga-bench-")
    proc, address, admin = serve(tree, script, db_url, work)
    try:
        token = researcher_token(address, admin)
        return [rate(address, token, n, seconds) for n in CLIENTS]
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def export(rev: str) -> Path:
    """The tree at `rev`, in a temporary directory."""
    target = Path(tempfile.mkdtemp(prefix="minga-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="bf0b89d", help="the revision before the change (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    before = export(args.before)
    rows: list[tuple[str, list[float]]] = []
    try:
        proc, address, _ = serve(ROOT, BARE)
        try:
            rows.append(("bare grpcio server (ceiling)", [rate(address, "-", n, args.seconds) for n in CLIENTS]))
        finally:
            stop(proc)
        stores = [("SQLite", lambda: (f"sqlite:///{tempfile.mkdtemp()}/broker.db", None))]
        probe = pg_schema_url()
        if probe is not None:
            drop_schema(probe[1])
            stores.append(("PostgreSQL", pg_schema_url))
        for store, fresh in stores:
            for label, tree, script in ((f"before ({args.before})", before, BROKER), ("after", ROOT, BROKER),
                                        ("after, no cycle in the run", ROOT, NO_CYCLES)):
                url, schema = fresh()
                try:
                    rows.append((f"{store} {label}", measure(tree, url, args.seconds, script)))
                finally:
                    if schema:
                        drop_schema(schema)
                print(f"  {rows[-1][0]}: done", file=sys.stderr)
    finally:
        shutil.rmtree(before, ignore_errors=True)
    print(f"\ndurable submits/s through gRPC, {args.seconds:.0f} s each, rate limit off")
    print(f"{'':40s}" + "".join(f"{n:>4d} client{'s' if n > 1 else ' '}" for n in CLIENTS))
    for label, rates in rows:
        print(f"{label:40s}" + "".join(f"{r:12.0f}" for r in rates))
    for label, rates in rows[1:]:
        if label.endswith("after"):
            verdict = "meets" if rates[-1] >= TARGET else "MISSES"
            print(f"{label}: {rates[-1]:.0f}/s with 16 clients {verdict} the target of {TARGET:.0f}/s")


if __name__ == "__main__":
    main()
