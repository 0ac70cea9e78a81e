"""Time to submit a 10,000-task job array through gRPC (issue 12 target: under 2 s).

A real broker (in process, gRPC on a free port) on a fresh SQLite file, and on
PostgreSQL (127.0.0.1:5432, database `test`) when it is reachable, each in a fresh
schema. Each round submits one array of `--tasks` tasks and times the call until the
broker's reply (durably committed). The baseline, in the same run, is single submits
of the same job from one client over one channel: `--singles` of them, extrapolated
to `--tasks` when fewer (the output says so).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_S = 2.0


def pg_schema_url() -> tuple[str, str] | None:
    """A fresh schema on the local PostgreSQL, or None if it is not there."""
    try:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{PG_URL}?options=-csearch_path%3D{schema}", schema
    except Exception:  # noqa: BLE001 - no server, no driver: SQLite only
        return None


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def researcher(address: str, token_file: Path) -> tuple[job_pb2_grpc.JobServiceStub, list, grpc.Channel]:
    channel = grpc.insecure_channel(address)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    md = [("authorization", f"Bearer {token_file.read_text().strip()}")]
    admin.AddInstitution(
        admin_pb2.AddInstitutionRequest(
            institution=admin_pb2.Institution(slug="uchile", name="U. de Chile", country="CL")
        ),
        metadata=md,
    )
    user = admin.AddUser(
        admin_pb2.AddUserRequest(name="ana", institution="uchile", role=common_pb2.ROLE_RESEARCHER), metadata=md
    )
    return job_pb2_grpc.JobServiceStub(channel), [("authorization", f"Bearer {user.token}")], channel


SPEC = common_pb2.JobSpec(
    entrypoint="python sweep.py", name="sweep", resources=common_pb2.Resources(gpus=1, gpu_models=["A100"])
)


def measure(db_url: str, workdir: Path, tasks: int, rounds: int, singles: int) -> tuple[list[float], float]:
    token_file = workdir / "admin-token"
    broker = Broker(
        BrokerConfig(listen="127.0.0.1:0", db_url=db_url, admin_token_file=token_file, tick_seconds=2.0, rate_limit=0)
    )
    broker.start()
    try:
        jobs, md, channel = researcher(broker.address, token_file)
        spec_text = f"0-{tasks - 1}"
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            reply = jobs.SubmitJob(
                job_pb2.SubmitJobRequest(
                    spec=SPEC, array=spec_text, idempotency_key=uuid.uuid4().hex, allow_unknown=True
                ),
                metadata=md,
            )
            times.append(time.perf_counter() - t0)
            assert reply.created and reply.array.tasks == tasks
        t0 = time.perf_counter()
        for _ in range(singles):
            jobs.SubmitJob(
                job_pb2.SubmitJobRequest(spec=SPEC, idempotency_key=uuid.uuid4().hex, allow_unknown=True), metadata=md
            )
        single = (time.perf_counter() - t0) / max(singles, 1)
        channel.close()
        return times, single
    finally:
        broker.stop()


def report(store: str, times: list[float], single: float, tasks: int, singles: int) -> None:
    med = statistics.median(times)
    base = single * tasks
    how = "measured" if singles >= tasks else f"extrapolated from {singles:,}"
    print(
        f"{store:<10} array of {tasks:,}: median {med:.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
        f"{len(times)} rounds) -> {'OK' if med < TARGET_S else 'MISSED'} (target < {TARGET_S:.0f} s)"
    )
    print(
        f"{'':<10} {tasks:,} single submits, one client: {base:.1f} s ({how}; {1 / single:.0f}/s); "
        f"the array is {base / med:.0f}x faster"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--singles", type=int, default=1_000, help="single submits for the baseline")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="minga-array-bench-"))
    try:
        (tmp / "sqlite").mkdir()
        times, single = measure(
            f"sqlite:///{tmp / 'sqlite' / 'broker.db'}", tmp / "sqlite", args.tasks, args.rounds, args.singles
        )
        report("SQLite", times, single, args.tasks, args.singles)
        pg = pg_schema_url()
        if pg is None:
            print(f"PostgreSQL at {PG_URL} unreachable: skipped")
            return
        url, schema = pg
        (tmp / "pg").mkdir()
        try:
            times, single = measure(url, tmp / "pg", args.tasks, args.rounds, args.singles)
            report("PostgreSQL", times, single, args.tasks, args.singles)
        finally:
            drop_schema(schema)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
