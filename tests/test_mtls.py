"""Sites enroll with certificates: `minga broker init`, a join that sends a CSR, the
site port's mutual TLS, identity from the verified certificate, renewal, revocation,
and the attacks on each (a wrong CA, an expired or revoked certificate, a replayed
join token, a site's certificate used on another site's runs, a site token on a
broker that has a CA). Real brokers on port 0, real TLS handshakes, SQLite files.
"""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from typer.testing import CliRunner

from minga.agent.credentials import SiteCredential, join_site, load_credential, save_credential
from minga.agent.renewal import renew_if_due, renewal_due
from minga.agent.session import Agent, AgentConfig
from minga.cli.main import app
from minga.common import pki
from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc, site_pb2, site_pb2_grpc
from tests.eventually import eventually
from tests.fakes.fake_backend import FakeBackend
from tests.fixtures_broker import ScriptedSite, gpu_inventory

SANS = ["localhost", "127.0.0.1"]


@dataclass
class SecureBroker:
    """A broker with a federation CA, and TLS clients for it."""

    broker: Broker
    pki_dir: Path
    tmp: Path

    @property
    def ca_pem(self) -> bytes:
        return (self.pki_dir / pki.CA_CERT).read_bytes()

    @property
    def ca_file(self) -> str:
        return str(self.pki_dir / pki.CA_CERT)

    def channel(self, bundle: bytes | None = None, root: bytes | None = None, site_port: bool = False) -> grpc.Channel:
        key = cert = None
        if bundle is not None:
            key, cert = pki.split_bundle(bundle)
        address = self.broker.site_address if site_port else self.broker.address
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root or self.ca_pem, key, cert))

    @property
    def admin_md(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.broker.bootstrap_token}")]

    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel())

    def join_token(self, institution: str, site: str) -> str:
        return (
            self.admin()
            .CreateSiteToken(
                admin_pb2.CreateSiteTokenRequest(institution=institution, site=site), metadata=self.admin_md
            )
            .token
        )

    def join(self, institution: str, site: str) -> SiteCredential:
        """The real join flow (a key made here, a CSR, a certificate back), saved to disk."""
        path = self.tmp / "sites" / f"{site}.json"
        cred = join_site(
            self.broker.address, self.join_token(institution, site), self.ca_file, path.with_suffix(".pem")
        )
        save_credential(path, cred)
        return cred


def start_secure(tmp_path: Path, lifetime: dt.timedelta = dt.timedelta(days=30)) -> SecureBroker:
    pki_dir = tmp_path / "pki"
    if not pki.has_broker_pki(pki_dir):
        pki.init_broker_pki(pki_dir, SANS)
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path / 'broker.db'}",
            admin_token_file=tmp_path / "admin-token",
            tick_seconds=0.3,
            pki_dir=pki_dir,
            site_listen="127.0.0.1:0",
            site_cert_lifetime=lifetime,
        )
    )
    broker.start()
    secure = SecureBroker(broker, pki_dir, tmp_path)
    for slug, country in (("uchile", "CL"), ("usp", "BR")):
        secure.admin().AddInstitution(
            admin_pb2.AddInstitutionRequest(
                institution=admin_pb2.Institution(slug=slug, name=slug.upper(), country=country)
            ),
            metadata=secure.admin_md,
        )
    return secure


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    running = start_secure(tmp_path)
    yield running
    running.broker.stop(grace=0.5)


def site_stream(secure: SecureBroker, cred: SiteCredential, inventory: common_pb2.Inventory) -> ScriptedSite:
    channel = secure.channel(Path(cred.certificate_file or "").read_bytes(), site_port=True)
    return ScriptedSite("", "", inventory, channel=channel)


def list_sites(secure: SecureBroker) -> dict[str, admin_pb2.Site]:
    return {s.name: s for s in secure.admin().ListSites(admin_pb2.ListSitesRequest(), metadata=secure.admin_md).sites}


def fetch(secure: SecureBroker, bundle: bytes, digest: str = "sha256:" + "ab" * 32) -> grpc.StatusCode:
    """What FetchPackage answers a caller presenting `bundle` on the site port."""
    with secure.channel(bundle, site_port=True) as channel:
        try:
            site_pb2_grpc.SiteServiceStub(channel).FetchPackage(site_pb2.FetchPackageRequest(digest=digest), timeout=10)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


# -- minga broker init --------------------------------------------------------------


def test_broker_init_makes_an_owner_only_ca_that_serve_uses_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MINGA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    result = runner.invoke(app, ["broker", "init", "--san", "broker.example.org", "--san", "10.0.0.5"])
    assert result.exit_code == 0, result.output
    pki_dir = tmp_path / "data" / "pki"
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    for secret in (pki.CA_KEY, pki.SERVER_KEY):
        assert stat.S_IMODE((pki_dir / secret).stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate((pki_dir / pki.SERVER_CERT).read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    server.verify_directly_issued_by(x509.load_pem_x509_certificate((pki_dir / pki.CA_CERT).read_bytes()))

    again = runner.invoke(app, ["broker", "init", "--san", "other"])
    assert again.exit_code == 2 and "--force" in again.output  # the CA every site hangs on is kept
    assert x509.load_pem_x509_certificate((pki_dir / pki.SERVER_CERT).read_bytes()) == server
    bad = runner.invoke(app, ["broker", "init", "--san", "not a host/..", "--pki-dir", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a host name or IP address" in bad.output

    # `broker serve` (no flags) picks the CA up: TLS for users, a mutual-TLS site port.
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path / 'b.db'}",
            admin_token_file=tmp_path / "admin-token",
            site_listen="127.0.0.1:0",
        )
    )
    broker.start()
    try:
        assert broker.site_address and broker.core is not None and broker.core.enrollment is not None
    finally:
        broker.stop(grace=0.5)


# -- enrollment and the site port ---------------------------------------------------


def test_a_site_joins_with_a_csr_and_its_agent_runs_over_mutual_tls(secure: SecureBroker):
    cred = secure.join("uchile", "dcc")
    assert cred.token == "" and cred.broker == secure.broker.site_address
    bundle = Path(cred.certificate_file or "")
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    key, cert = pki.load_key_and_cert(bundle.read_bytes())
    assert pki.site_identity(cert, secure.broker.core.enrollment.ca.cert) == pki.SiteIdentity("dcc", "uchile")
    lasts = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=30) <= lasts <= dt.timedelta(days=30, minutes=6)
    assert load_credential(secure.tmp / "sites" / "dcc.json") == cred

    backend = FakeBackend()
    agent = Agent(
        AgentConfig(
            broker=cred.broker,
            token=cred.token,
            ca_file=cred.ca_file,
            certificate_file=cred.certificate_file,
            gpu_model="A100",
            cache_dir=secure.tmp / "cache",
        ),
        backend=backend,
        inventory_source=lambda: gpu_inventory("A100", 2),
    )
    with agent:
        eventually(lambda: list_sites(secure).get("dcc") and list_sites(secure)["dcc"].connected)
        ana = (
            secure.admin()
            .AddUser(
                admin_pb2.AddUserRequest(name="ana", institution="uchile", role=common_pb2.ROLE_RESEARCHER),
                metadata=secure.admin_md,
            )
            .token
        )
        jobs = job_pb2_grpc.JobServiceStub(secure.channel())
        md = [("authorization", f"Bearer {ana}")]
        job = jobs.SubmitJob(
            job_pb2.SubmitJobRequest(
                spec=common_pb2.JobSpec(entrypoint="echo hi", resources=common_pb2.Resources(gpus=1))
            ),
            metadata=md,
        ).job
        eventually(lambda: backend.submissions)
        got = jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=md)
        assert got.site == "dcc"


def test_the_site_port_refuses_no_certificate_another_ca_and_an_expired_certificate(secure: SecureBroker):
    cred = secure.join("uchile", "dcc")
    good = Path(cred.certificate_file or "").read_bytes()
    assert fetch(secure, good) == grpc.StatusCode.NOT_FOUND  # authenticated; no such package for it

    assert fetch_without_certificate(secure) == grpc.StatusCode.UNAVAILABLE  # the handshake fails

    rogue = pki.create_ca("rogue CA")  # a certificate naming the same site, from another CA
    key = pki.new_key()
    forged = pki.sign_site_csr(rogue, pki.site_csr(key, "dcc"), pki.SiteIdentity("dcc", "uchile"))
    assert fetch(secure, pki.key_pem(key) + pki.pem(forged)) == grpc.StatusCode.UNAVAILABLE

    ca = secure.broker.core.enrollment.ca  # our CA, but long expired
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    expired = pki.sign_site_csr(ca, pki.site_csr(key, "dcc"), pki.SiteIdentity("dcc", "uchile"), now=old)
    assert fetch(secure, pki.key_pem(key) + pki.pem(expired)) == grpc.StatusCode.UNAVAILABLE

    # Signed by our CA and in date, but never issued to a site (no credential row): refused.
    unissued = pki.sign_site_csr(ca, pki.site_csr(key, "dcc"), pki.SiteIdentity("dcc", "uchile"))
    assert fetch(secure, pki.key_pem(key) + pki.pem(unissued)) == grpc.StatusCode.UNAUTHENTICATED
    assert fetch(secure, good) == grpc.StatusCode.NOT_FOUND  # and the broker keeps serving


def fetch_without_certificate(secure: SecureBroker) -> grpc.StatusCode:
    with secure.channel(site_port=True) as channel:
        try:
            site_pb2_grpc.SiteServiceStub(channel).FetchPackage(
                site_pb2.FetchPackageRequest(digest="sha256:" + "ab" * 32), timeout=10
            )
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_a_replayed_join_token_is_refused_and_changes_nothing(secure: SecureBroker):
    token = secure.join_token("uchile", "dcc")
    first = join_site(secure.broker.address, token, secure.ca_file, secure.tmp / "a.pem")
    with pytest.raises(grpc.RpcError) as err:
        join_site(secure.broker.address, token, secure.ca_file, secure.tmp / "b.pem")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already used" in err.value.details()
    assert not (secure.tmp / "b.pem").exists()
    assert fetch(secure, Path(first.certificate_file or "").read_bytes()) == grpc.StatusCode.NOT_FOUND


def test_a_broken_csr_does_not_burn_the_join_token(secure: SecureBroker):
    token = secure.join_token("uchile", "dcc")
    with secure.channel() as channel:
        with pytest.raises(grpc.RpcError) as err:
            site_pb2_grpc.SiteServiceStub(channel).Join(site_pb2.JoinRequest(join_token=token, csr=b"garbage"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "csr" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            site_pb2_grpc.SiteServiceStub(channel).Join(site_pb2.JoinRequest(join_token=token))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "needs a CSR" in err.value.details()
    assert join_site(secure.broker.address, token, secure.ca_file, secure.tmp / "ok.pem").site == "dcc"


def test_site_tokens_and_user_ports_do_not_stand_in_for_a_certificate(secure: SecureBroker):
    cred = secure.join("uchile", "dcc")
    # The user port carries no site calls: a user token is not a site, and the site's
    # calls there have no certificate to name it.
    stub = site_pb2_grpc.SiteServiceStub(secure.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.FetchPackage(site_pb2.FetchPackageRequest(digest="sha256:" + "ab" * 32), metadata=secure.admin_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The site port serves a site's calls only: no admin call there, even with a good certificate.
    with secure.channel(Path(cred.certificate_file or "").read_bytes(), site_port=True) as channel:
        with pytest.raises(grpc.RpcError) as err:
            admin_pb2_grpc.AdminServiceStub(channel).WhoAmI(admin_pb2.WhoAmIRequest(), metadata=secure.admin_md)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_sites_certificate_cannot_touch_another_sites_runs(secure: SecureBroker):
    dcc, ime = secure.join("uchile", "dcc"), secure.join("usp", "ime")
    owner = site_stream(secure, dcc, gpu_inventory("A100", 4))
    intruder = site_stream(secure, ime, gpu_inventory("T4", 2))
    try:
        owner.next("welcome")
        intruder.next("welcome")
        ana = (
            secure.admin()
            .AddUser(
                admin_pb2.AddUserRequest(name="ana", institution="uchile", role=common_pb2.ROLE_RESEARCHER),
                metadata=secure.admin_md,
            )
            .token
        )
        md = [("authorization", f"Bearer {ana}")]
        jobs = job_pb2_grpc.JobServiceStub(secure.channel())
        job = jobs.SubmitJob(
            job_pb2.SubmitJobRequest(
                spec=common_pb2.JobSpec(
                    entrypoint="echo hi", resources=common_pb2.Resources(gpus=1, gpu_models=["A100"])
                )
            ),
            metadata=md,
        ).job
        start = owner.next("start").start
        intruder.report(start.run_id, common_pb2.RUN_STATE_FAILED, "forged")
        intruder.log(start.run_id, 0, b"forged log")
        intruder.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
        assert intruder.next("stop").stop.run_id == start.run_id  # told to stop what is not its own
        got = jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=md)
        assert got.state == common_pb2.JOB_STATE_LEASED and got.failures == 0
        logs = b"".join(c.data for c in jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=job.id), metadata=md))
        assert b"forged" not in logs
    finally:
        owner.close()
        intruder.close()


def test_revoking_a_site_cuts_its_stream_and_its_certificate_at_once(secure: SecureBroker):
    cred = secure.join("uchile", "dcc")
    bundle = Path(cred.certificate_file or "").read_bytes()
    stream = site_stream(secure, cred, gpu_inventory("A100", 2))
    try:
        stream.next("welcome")
        secure.admin().RevokeSite(admin_pb2.RevokeRequest(name="dcc"), metadata=secure.admin_md)
        assert stream.ended.wait(10)
        assert fetch(secure, bundle) == grpc.StatusCode.UNAUTHENTICATED  # in date, signed by us: still refused
        again = site_stream(secure, cred, gpu_inventory("A100", 2))
        assert again.ended.wait(10) and again.error is not None
        assert again.error.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in again.error.details()
        again.close()
    finally:
        stream.close()
    # A new join gives a new certificate; the one from before the revocation stays dead.
    fresh = secure.join("uchile", "dcc")
    assert fetch(secure, Path(fresh.certificate_file or "").read_bytes()) == grpc.StatusCode.NOT_FOUND
    assert fetch(secure, bundle) == grpc.StatusCode.UNAUTHENTICATED


def test_the_agent_renews_its_certificate_before_it_expires(tmp_path):
    secure = start_secure(tmp_path, lifetime=dt.timedelta(seconds=30))
    try:
        cred = secure.join("uchile", "dcc")
        path = Path(cred.certificate_file or "")
        first = path.read_bytes()
        now = dt.datetime.now(dt.UTC)
        assert not renewal_due(first, now)
        assert renewal_due(first, now + dt.timedelta(seconds=21))  # a third of 30 s left
        assert renew_if_due(cred.broker, cred.ca_file or "", str(path), now + dt.timedelta(seconds=21))
        renewed = path.read_bytes()
        _, old_cert = pki.load_key_and_cert(first)
        new_key, new_cert = pki.load_key_and_cert(renewed)
        assert new_cert.serial_number != old_cert.serial_number
        assert pki.key_pem(new_key) != pki.key_pem(pki.load_key_and_cert(first)[0])  # a new key, too
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert fetch(secure, renewed) == grpc.StatusCode.NOT_FOUND
        assert fetch(secure, first) == grpc.StatusCode.NOT_FOUND  # the old one lives until it expires

        # The agent does it by itself, and keeps its session through it.
        agent = Agent(
            AgentConfig(
                broker=cred.broker,
                token="",
                ca_file=cred.ca_file,
                certificate_file=str(path),
                gpu_model="A100",
                cache_dir=tmp_path / "cache",
                renew_check_seconds=0.5,
            ),
            backend=FakeBackend(),
            inventory_source=lambda: gpu_inventory("A100", 2),
        )
        with agent:
            eventually(lambda: list_sites(secure).get("dcc") and list_sites(secure)["dcc"].connected)
            eventually(lambda: path.read_bytes() != renewed, timeout=25)
        assert fetch(secure, path.read_bytes()) == grpc.StatusCode.NOT_FOUND
    finally:
        secure.broker.stop(grace=0.5)


def test_a_broker_without_a_ca_keeps_bearer_tokens_and_ignores_the_csr(broker):
    broker.institution("uchile", "CL")
    cred = join_site(broker.address, broker.join_token("uchile", "dcc"), None, broker.admin_token_file.parent / "k.pem")
    assert cred.token.startswith("mgs_") and cred.certificate_file is None
    assert not (broker.admin_token_file.parent / "k.pem").exists()


def test_agent_run_with_an_expired_certificate_says_to_join_again(tmp_path):
    ca = pki.create_ca()
    key = pki.new_key()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    cert = pki.sign_site_csr(ca, pki.site_csr(key, "dcc"), pki.SiteIdentity("dcc", "uchile"), now=old)
    bundle = tmp_path / "site.pem"
    pki.write_private(bundle, pki.key_pem(key) + pki.pem(cert))
    credential = save_credential(
        tmp_path / "site.json",
        SiteCredential(
            broker="127.0.0.1:1",
            site="dcc",
            institution="uchile",
            country="CL",
            token="",
            ca_file=str(tmp_path / "ca.crt"),
            certificate_file=str(bundle),
        ),
    )
    result = CliRunner().invoke(
        app, ["agent", "run", "--ray-address", "http://127.0.0.1:1", "--credential", str(credential)]
    )
    assert result.exit_code == 2, result.output
    assert "expired on" in result.output and "site join" in result.output
