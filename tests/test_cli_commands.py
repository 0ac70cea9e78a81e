"""The commands against a fake broker served over real gRPC on port 0.

The fake only records what it is asked and answers canned messages; it checks
the CLI's wiring (flags -> requests, responses -> JSON/tables, errors -> one
line), not the broker's rules, which the broker's own tests cover.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from minga.cli import errors
from minga.cli.client import BrokerClient
from minga.cli.main import app
from minga.common.domain import JobSpec
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc

ADMIN, ANA = "tok-admin", "tok-ana"
PRINCIPALS = {ADMIN: ("root", common_pb2.ROLE_ADMIN, ""), ANA: ("ana", common_pb2.ROLE_RESEARCHER, "uchile")}


def _caller(context: grpc.ServicerContext) -> tuple[str, int, str]:
    auth = dict(context.invocation_metadata()).get("authorization", "")
    who = PRINCIPALS.get(auth.removeprefix("Bearer "))
    if who is None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
    return who


class FakeJobs(job_pb2_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.jobs: dict[str, common_pb2.Job] = {}
        self.keys: dict[str, str] = {}
        self.submits: list[job_pb2.SubmitJobRequest] = []
        self.packages: dict[str, bytes] = {}
        self.uploads = 0
        self.fail_submits = 0  # answer this many SubmitJob calls with UNAVAILABLE (after storing the job)
        self.log = b"hello \xff raw bytes\nline 2\n"
        self.break_log_once = False

    def SubmitJob(self, request, context):
        owner, _, inst = _caller(context)
        self.submits.append(request)
        created = request.idempotency_key not in self.keys
        if created:
            job_id = f"j-{len(self.jobs) + 1}"
            self.keys[request.idempotency_key] = job_id
            self.jobs[job_id] = common_pb2.Job(
                id=job_id,
                spec=request.spec,
                state=common_pb2.JOB_STATE_PENDING,
                owner=owner,
                institution=inst,
                submitted_at=1_700_000_000.0,
                reason="waiting for a site with 1 free GPU",
            )
        if self.fail_submits:
            self.fail_submits -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")  # the job exists; the reply got lost
        return job_pb2.SubmitJobResponse(job=self.jobs[self.keys[request.idempotency_key]], created=created)

    def _job(self, job_id: str, context: grpc.ServicerContext) -> common_pb2.Job:
        _caller(context)
        if job_id not in self.jobs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found")
        return self.jobs[job_id]

    def GetJob(self, request, context):
        return self._job(request.job_id, context)

    def ListJobs(self, request, context):
        _caller(context)
        jobs = [j for j in self.jobs.values() if not request.state or j.state == request.state]
        return job_pb2.ListJobsResponse(jobs=jobs)

    def CancelJob(self, request, context):
        job = self._job(request.job_id, context)
        job.state = common_pb2.JOB_STATE_CANCELLED
        return job

    def GetJobLogs(self, request, context):
        self._job(request.job_id, context)
        data = self.log[request.offset :]
        for i in range(0, len(data), 5):
            if self.break_log_once and request.offset == 0 and i >= 10:
                self.break_log_once = False
                context.abort(grpc.StatusCode.UNAVAILABLE, "broker restarting")
            yield common_pb2.LogChunk(run_id="r-1", offset=request.offset + i, data=data[i : i + 5])

    def HasPackage(self, request, context):
        _caller(context)
        return job_pb2.HasPackageResponse(present=request.digest in self.packages)

    def UploadPackage(self, request, context):
        _caller(context)
        self.uploads += 1
        self.packages[request.digest] = request.data
        return job_pb2.UploadPackageResponse(digest=request.digest)

    def UploadPackageStream(self, request_iterator, context):
        _caller(context)
        chunks = list(request_iterator)
        self.uploads += 1
        self.packages[chunks[0].digest] = b"".join(c.data for c in chunks)
        return job_pb2.UploadPackageResponse(digest=chunks[0].digest)

    def GetPackageLimits(self, request, context):
        _caller(context)
        return job_pb2.PackageLimits(
            max_package_bytes=64 * 1024 * 1024, chunk_bytes=1024 * 1024, setting="set by its operator"
        )


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self) -> None:
        self.institutions: dict[str, admin_pb2.Institution] = {}

    def WhoAmI(self, request, context):
        name, role, inst = _caller(context)
        return admin_pb2.WhoAmIResponse(name=name, role=role, institution=inst)

    def AddInstitution(self, request, context):
        if _caller(context)[1] != common_pb2.ROLE_ADMIN:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "only admins may add institutions")
        if request.institution.slug in self.institutions:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"institution {request.institution.slug} already exists")
        self.institutions[request.institution.slug] = request.institution
        return request.institution

    def ListInstitutions(self, request, context):
        _caller(context)
        return admin_pb2.ListInstitutionsResponse(institutions=list(self.institutions.values()))

    def AddUser(self, request, context):
        _caller(context)
        if request.institution not in self.institutions:
            context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        user = admin_pb2.User(name=request.name, institution=request.institution, role=request.role)
        return admin_pb2.AddUserResponse(user=user, token="tok-new-secret")

    def CreateSiteToken(self, request, context):
        _caller(context)
        return admin_pb2.CreateSiteTokenResponse(
            site=request.site, token=f"join-{request.ttl_seconds}", expires_at=1_700_000_000.0 + request.ttl_seconds
        )

    def ListSites(self, request, context):
        _caller(context)
        pool = common_pb2.GpuPool(model="A100", total=4, free=3)
        site = admin_pb2.Site(
            name="uchile-dcc",
            institution="uchile",
            country="CL",
            connected=True,
            state=common_pb2.SITE_STATE_READY,
            gpus_in_use={"A100": 1},
            inventory=common_pb2.Inventory(gpus=[pool]),
        )
        return admin_pb2.ListSitesResponse(sites=[site])

    def CordonSite(self, request, context):
        _caller(context)
        if request.name != "uchile-dcc":
            context.abort(grpc.StatusCode.NOT_FOUND, "site not found")
        return admin_pb2.Site(name=request.name, state=common_pb2.SITE_STATE_CORDONED)

    def ShowQuotas(self, request, context):
        _caller(context)
        return admin_pb2.ShowQuotasResponse(
            rows=[admin_pb2.QuotaRow(institution="uchile", country="CL", gpu_model="A100", owned=4, in_use=1)]
        )


class Fake:
    def __init__(self) -> None:
        self.jobs, self.admin = FakeJobs(), FakeAdmin()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        job_pb2_grpc.add_JobServiceServicer_to_server(self.jobs, self.server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(self.admin, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Fake]:
    for var in ("MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA", "MINGA_MAX_PACKAGE_BYTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    broker = Fake()
    yield broker
    broker.server.stop(None)


def minga(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def as_admin(fake: Fake) -> list[str]:
    return ["--broker", fake.address, "--token", ADMIN]


def as_ana(fake: Fake) -> list[str]:
    return ["--broker", fake.address, "--token", ANA]


# -- login and settings ---------------------------------------------------------------
def test_login_checks_token_and_writes_private_config(fake: Fake, tmp_path: Path) -> None:
    result = minga("login", "--broker", fake.address, "--token", ANA, "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "ana" and data["role"] == "researcher" and data["institution"] == "uchile"
    path = tmp_path / "config" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"broker": fake.address, "token": ANA}
    # Later commands need no flags.
    assert minga("job", "list").exit_code == 0


def test_login_takes_the_broker_from_the_environment(fake: Fake, tmp_path: Path) -> None:
    """The README's flow: export MINGA_BROKER=...; minga login --token ..."""
    result = minga("login", "--token", ADMIN, env={"MINGA_BROKER": fake.address})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"logged in to {fake.address} as root (admin)")
    assert json.loads((tmp_path / "config" / "config.json").read_text())["broker"] == fake.address
    assert minga("login").exit_code == 0  # re-checks the saved login
    (tmp_path / "config" / "config.json").unlink()
    assert minga("login", env={"MINGA_BROKER": fake.address}).stderr.startswith("error: no token")


def test_login_with_bad_token_writes_nothing(fake: Fake, tmp_path: Path) -> None:
    result = minga("login", "--broker", fake.address, "--token", "wrong")
    assert result.exit_code == errors.EXIT_AUTH
    assert result.stderr.strip() == (
        f"error: broker at {fake.address} rejected the token: check it, or ask your admin for a new one"
    )
    assert not (tmp_path / "config" / "config.json").exists()


def test_precedence_flag_over_env_over_config(fake: Fake) -> None:
    assert minga("login", "--broker", "127.0.0.1:1", "--token", ANA, "--broker", fake.address).exit_code == 0
    # env beats config: a wrong token in env is used (and rejected)
    result = minga("job", "list", env={"MINGA_TOKEN": "wrong"})
    assert result.exit_code == errors.EXIT_AUTH and "rejected the token" in result.stderr
    # flag beats env
    assert minga("job", "list", "--token", ANA, env={"MINGA_TOKEN": "wrong"}).exit_code == 0
    # root flag works too, and the command's own flag beats it
    assert minga("--token", "wrong", "job", "list", "--token", ANA).exit_code == 0
    assert minga("--token", "wrong", "job", "list").exit_code == errors.EXIT_AUTH


# -- admin -------------------------------------------------------------------------------
def test_institution_add_and_list(fake: Fake) -> None:
    result = minga(
        "admin",
        "institution",
        "add",
        "uchile",
        "--name",
        "Universidad de Chile",
        "--country",
        "cl",
        *as_admin(fake),
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "slug": "uchile",
        "name": "Universidad de Chile",
        "country": "CL",
        "weight": 1.0,
    }
    again = minga("admin", "institution", "add", "uchile", "--name", "x", "--country", "CL", *as_admin(fake))
    assert again.exit_code == errors.EXIT_REFUSED
    assert again.stderr == "error: institution uchile already exists\n"
    listed = minga("admin", "institution", "list", *as_admin(fake))
    assert "Universidad de Chile" in listed.stdout
    denied = minga("admin", "institution", "add", "usp", "--name", "USP", "--country", "BR", *as_ana(fake))
    assert denied.exit_code == errors.EXIT_AUTH
    assert denied.stderr == "error: permission denied: only admins may add institutions\n"


def test_user_add_prints_token_once(fake: Fake) -> None:
    minga("admin", "institution", "add", "uchile", "--name", "U", "--country", "CL", *as_admin(fake))
    result = minga("admin", "user", "add", "bea", "--institution", "uchile", *as_admin(fake), "-o", "json")
    data = json.loads(result.stdout)
    assert data["token"] == "tok-new-secret" and data["role"] == "researcher"
    plain = minga("admin", "user", "add", "bea", "--institution", "uchile", "--role", "admin", *as_admin(fake))
    assert plain.stdout == "tok-new-secret\n"  # stdout holds only the token: TOKEN=$(minga admin user add ...)
    assert "shown only once" in plain.stderr
    missing = minga("admin", "user", "add", "bea", "--institution", "nope", *as_admin(fake))
    assert missing.exit_code == errors.EXIT_NOT_FOUND and missing.stderr == "error: no institution nope\n"


def test_site_token_ttl_is_parsed(fake: Fake) -> None:
    result = minga(
        "admin",
        "site-token",
        "create",
        "--institution",
        "uchile",
        "--site",
        "dcc",
        "--ttl",
        "30m",
        *as_admin(fake),
        "-o",
        "json",
    )
    assert json.loads(result.stdout)["token"] == "join-1800"
    bad = minga("admin", "site-token", "create", "--institution", "u", "--site", "s", "--ttl", "soon", *as_admin(fake))
    assert bad.exit_code == errors.EXIT_USAGE and "bad duration 'soon'" in bad.stderr


def test_site_list_cordon_quota(fake: Fake) -> None:
    sites = json.loads(minga("site", "list", *as_admin(fake), "-o", "json").stdout)
    assert sites[0]["gpus"][0]["in_use"] == 1
    table = minga("site", "list", *as_admin(fake)).stdout
    assert "A100 1/4" in table
    cordon = minga("admin", "site", "cordon", "uchile-dcc", *as_admin(fake))
    assert cordon.stdout == "site uchile-dcc is now CORDONED\n"
    missing = minga("admin", "site", "cordon", "nowhere", *as_admin(fake))
    assert missing.exit_code == errors.EXIT_NOT_FOUND and missing.stderr == "error: no site nowhere\n"
    quotas = json.loads(minga("quota", "show", *as_admin(fake), "-o", "json").stdout)["rows"]
    assert quotas == [
        {
            "institution": "uchile",
            "country": "CL",
            "gpu_model": "A100",
            "owned": 4,
            "in_use": 1,
            "held": 0,
            "pending": 0,
            "weight": 0.0,
            "entitlement_pct": 0.0,
            "usage_pct": 0.0,
            "fairshare": 0.0,
            "guarantee": 0,
            "borrowed": 0,
            "lent": 0,
        }
    ]


# -- jobs --------------------------------------------------------------------------------
def test_submit_builds_the_spec(fake: Fake) -> None:
    result = minga(
        "job",
        "submit",
        "--name",
        "t",
        "--gpus",
        "2",
        "--gpu-model",
        "A100",
        "--gpu-model",
        "H100",
        "--min-gpu-memory",
        "40",
        "--country",
        "cl",
        "--cpus",
        "4",
        "--memory",
        "4GiB",
        "--walltime",
        "2h",
        "--env",
        "A=1",
        "--pip",
        "numpy",
        "--max-attempts",
        "3",
        "--idempotency-key",
        "k1",
        *as_ana(fake),
        "-o",
        "json",
        "--",
        "python",
        "-c",
        "print(1)",
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["id"] == "j-1" and job["state"] == "PENDING" and job["created"] is True
    request = fake.jobs.submits[0]
    assert request.idempotency_key == "k1"
    spec = request.spec
    assert spec.entrypoint == "python -c 'print(1)'"
    assert list(spec.resources.gpu_models) == ["A100", "H100"]
    assert spec.resources.min_gpu_memory_mb == 40000 and spec.resources.memory_mb == 4096
    assert spec.resources.cpus == 4 and list(spec.countries) == ["CL"]
    assert spec.walltime_seconds == 7200 and spec.max_attempts == 3
    assert dict(spec.runtime_env.env) == {"A": "1"} and list(spec.runtime_env.pip) == ["numpy"]
    # same key again: the same job, and the CLI says so
    again = minga("job", "submit", "--idempotency-key", "k1", *as_ana(fake), "--", "true")
    assert again.stdout == "j-1\n" and "already submitted" in again.stderr


def test_submit_generates_a_key_when_none_given(fake: Fake) -> None:
    minga("job", "submit", *as_ana(fake), "--", "true")
    minga("job", "submit", *as_ana(fake), "--", "true")
    keys = [r.idempotency_key for r in fake.jobs.submits]
    assert all(keys) and keys[0] != keys[1]


def test_submit_working_dir_is_uploaded_once(fake: Fake, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")
    first = minga("job", "submit", "--working-dir", str(project), *as_ana(fake), "--", "python train.py")
    assert first.exit_code == 0, first.output
    assert "uploaded" in first.stderr
    second = minga("job", "submit", "--working-dir", str(project), *as_ana(fake), "--", "python train.py")
    assert "not re-sent" in second.stderr
    assert fake.jobs.uploads == 1
    digests = {r.spec.runtime_env.working_dir_digest for r in fake.jobs.submits}
    assert len(digests) == 1 and next(iter(digests)).startswith("sha256:")


def test_submit_working_dir_too_big(fake: Fake, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 4000)
    result = minga(
        "job",
        "submit",
        "--working-dir",
        str(tmp_path),
        *as_ana(fake),
        "--",
        "true",
        env={"MINGA_MAX_PACKAGE_BYTES": "1000"},
    )
    assert result.exit_code == errors.EXIT_USAGE
    assert "over the 1000 B limit" in result.stderr and len(result.stderr.splitlines()) == 1
    assert fake.jobs.submits == []


def test_list_status_logs_cancel(fake: Fake) -> None:
    minga("job", "submit", "--gpus", "1", *as_ana(fake), "--", "true")
    jobs = json.loads(minga("job", "list", *as_ana(fake), "-o", "json").stdout)
    assert [j["id"] for j in jobs] == ["j-1"]
    status = minga("job", "status", "j-1", *as_ana(fake))
    assert "waiting for a site with 1 free GPU" in status.stdout
    logs = minga("job", "logs", "j-1", *as_ana(fake))
    assert logs.stdout_bytes == fake.jobs.log  # raw bytes, not re-encoded
    cancelled = json.loads(minga("job", "cancel", "j-1", *as_ana(fake), "-o", "json").stdout)
    assert cancelled["state"] == "CANCELLED"
    assert json.loads(minga("job", "list", "--state", "pending", *as_ana(fake), "-o", "json").stdout) == []


@pytest.mark.parametrize("command", [["status"], ["logs"], ["cancel"]])
def test_unknown_job(fake: Fake, command: list[str]) -> None:
    result = minga("job", *command, "j-123", *as_ana(fake))
    assert result.exit_code == errors.EXIT_NOT_FOUND
    assert result.stderr == "error: no job j-123\n"


# -- client retry rules -----------------------------------------------------------------
def test_submit_retries_with_the_same_key_and_creates_one_job(fake: Fake) -> None:
    fake.jobs.fail_submits = 2
    sleeps: list[float] = []
    with BrokerClient(fake.address, ANA, sleep=sleeps.append) as client:
        submitted = client.submit_job(JobSpec(entrypoint="true"))
    assert len(fake.jobs.submits) == 3
    assert len({r.idempotency_key for r in fake.jobs.submits}) == 1
    assert len(fake.jobs.jobs) == 1 and submitted.what.id == "j-1"
    assert sleeps == [0.5, 1.0]


def test_submit_gives_up_after_attempts(fake: Fake) -> None:
    fake.jobs.fail_submits = 10
    with BrokerClient(fake.address, ANA, sleep=lambda _: None) as client, pytest.raises(grpc.RpcError) as info:
        client.submit_job(JobSpec(entrypoint="true"), attempts=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(fake.jobs.submits) == 3 and len(fake.jobs.jobs) == 1


def test_followed_logs_resume_at_the_last_byte(fake: Fake) -> None:
    minga("job", "submit", *as_ana(fake), "--", "true")
    fake.jobs.break_log_once = True
    with BrokerClient(fake.address, ANA, sleep=lambda _: None) as client:
        data = b"".join(client.job_logs("j-1", follow=True))
    assert data == fake.jobs.log


# -- TLS ------------------------------------------------------------------------------
def _ca_and_server_cert(tmp_path: Path, name: str) -> tuple[Path, bytes, bytes]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    x509 = pytest.importorskip("cryptography.x509")
    from datetime import datetime, timedelta
    from ipaddress import ip_address

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    now = datetime.now(UTC)
    ca_key, server_key = key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = tmp_path / f"{name}-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca_file, key_pem, server.public_bytes(serialization.Encoding.PEM)


def test_tls_with_the_right_ca_and_one_line_without(fake: Fake, tmp_path: Path) -> None:
    ca_file, key_pem, cert_pem = _ca_and_server_cert(tmp_path, "good")
    other_ca, _, _ = _ca_and_server_cert(tmp_path, "other")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    admin_pb2_grpc.add_AdminServiceServicer_to_server(fake.admin, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    address = f"127.0.0.1:{port}"
    try:
        ok = minga("login", "--broker", address, "--token", ADMIN, "--ca", str(ca_file), "-o", "json")
        assert ok.exit_code == 0, ok.output
        saved = json.loads((tmp_path / "config" / "config.json").read_text())
        assert saved["ca_file"] == str(ca_file.resolve())
        assert minga("site", "list").exit_code == 0  # the saved CA is used
        wrong = minga("site", "list", "--ca", str(other_ca))
        assert wrong.exit_code == errors.EXIT_UNREACHABLE
        assert wrong.stderr.startswith(f"error: TLS handshake with broker at {address} failed: check --ca")
        plain = minga(
            "site", "list", "--broker", address, "--token", ADMIN, env={"MINGA_CONFIG_DIR": str(tmp_path / "no-config")}
        )
        assert plain.exit_code == errors.EXIT_UNREACHABLE
        assert plain.stderr == (
            f"error: broker at {address} closed the connection: if it serves TLS, pass --ca "
            "or set MINGA_CA (the broker's CA certificate)\n"
        )
    finally:
        server.stop(None)
