"""What the load benchmarks share: a real `minga broker serve` subprocess, a fresh
store for it (a temp SQLite file, or a PostgreSQL database created and dropped),
the admin calls that set up researchers and sites, and the CPU time of a process.

The broker runs as a subprocess, as in production: its CPU is then its own (read
from /proc), and the clients' Python threads do not share its GIL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from minga.agent.ports import free_ports
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, site_pb2, site_pb2_grpc

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
# Benches run as scripts (sys.path[0] is bench/) and some use the test fakes (tests/fakes).
sys.path.insert(1, str(ROOT))
STORES = ("sqlite", "postgres")
# `minga broker serve` from this checkout (the venv's `minga` script may point at another one).
MINGA = [sys.executable, "-c", "from cli.main import app; app()"]


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - no server, no driver
        return False


@contextlib.contextmanager
def store_url(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file under `workdir`, or a PostgreSQL database
    `minga_bench_<random>` on 127.0.0.1:5432, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'broker.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown store {kind!r}: sqlite or postgres")
    import psycopg

    name = f"minga_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BrokerProcess:
    """`minga broker serve` on a free loopback port, on `db_url`, per-caller rate limit
    off (a benchmark's clients would hit it at once), until `stop()`."""

    def __init__(self, db_url: str, workdir: Path, lease_ttl: float = 30.0, rate_limit: float = 0.0) -> None:
        (port,) = free_ports(1)
        self.address = f"127.0.0.1:{port}"
        self.token_file = workdir / "admin-token"
        self.log_path = workdir / "broker.log"
        env = dict(
            os.environ,
            MINGA_DATA_DIR=str(workdir / "data"),
            MINGA_CONFIG_DIR=str(workdir / "config"),
            PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "proto"), os.environ.get("PYTHONPATH", "")]),
        )
        self.proc = subprocess.Popen(
            [
                *MINGA,
                "broker",
                "serve",
                "--listen",
                self.address,
                "--db",
                db_url,
                "--admin-token-file",
                str(self.token_file),
                "--rate-limit",
                f"{rate_limit:g}",
                "--lease-ttl",
                f"{lease_ttl:g}s",
            ],
            env=env,
            cwd=workdir,
            stdout=open(self.log_path, "wb"),  # noqa: SIM115 - the child holds it; closed when it exits
            stderr=subprocess.STDOUT,
        )
        self.channel = grpc.insecure_channel(self.address)
        self.admin_token = self._wait_ready()
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.admin_md = bearer(self.admin_token)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"the broker exited ({self.proc.returncode}); see {self.log_path}:\n"
                    + self.log_path.read_text()[-2000:]
                )
            if self.token_file.exists() and self.token_file.read_text().strip():
                grpc.channel_ready_future(self.channel).result(timeout=max(1.0, deadline - time.monotonic()))
                return self.token_file.read_text().strip()
            time.sleep(0.1)
        raise SystemExit(f"the broker was not ready in {timeout:.0f} s; see {self.log_path}")

    def institution(self, slug: str, country: str = "CL") -> None:
        self.admin.AddInstitution(
            admin_pb2.AddInstitutionRequest(
                institution=admin_pb2.Institution(slug=slug, name=slug.upper(), country=country)
            ),
            metadata=self.admin_md,
        )

    def researcher(self, name: str, institution: str) -> str:
        """A researcher's bearer token."""
        return self.admin.AddUser(
            admin_pb2.AddUserRequest(name=name, institution=institution, role=common_pb2.ROLE_RESEARCHER),
            metadata=self.admin_md,
        ).token

    def join_site(self, institution: str, site: str) -> str:
        """Join `site` through the real flow (admin join token, then Join); its site token."""
        join = self.admin.CreateSiteToken(
            admin_pb2.CreateSiteTokenRequest(institution=institution, site=site), metadata=self.admin_md
        ).token
        return site_pb2_grpc.SiteServiceStub(self.channel).Join(site_pb2.JoinRequest(join_token=join)).site_token

    def sites(self, timeout: float = 10.0) -> list[admin_pb2.Site]:
        return list(self.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=self.admin_md, timeout=timeout).sites)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def broker(kind: str, lease_ttl: float = 30.0) -> Iterator[BrokerProcess]:
    """A broker subprocess on a fresh store of `kind`, cleaned up afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"minga-bench-{kind}-"))
    try:
        with store_url(kind, workdir) as url:
            proc = BrokerProcess(url, workdir, lease_ttl)
            try:
                yield proc
            finally:
                proc.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
