"""The broker through real gRPC on port 0, with a scripted site on the stream."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from minga.common.domain import InvalidArgument
from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, site_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker


def spec(gpus: int = 1, **kw: Any) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        entrypoint="python -c 'print(1)'",
        resources=common_pb2.Resources(gpus=gpus, gpu_models=kw.pop("models", [])),
        **kw,
    )


@pytest.fixture
def federation(broker: RunningBroker) -> Iterator[tuple[RunningBroker, Caller, ScriptedSite]]:
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    yield broker, ana, site
    site.close()


def test_bootstrap_token_is_owner_only_and_created_once(tmp_path):
    running = start_broker(tmp_path)
    try:
        mode = stat.S_IMODE(running.admin_token_file.stat().st_mode)
        assert mode == 0o600
        token = running.admin_token_file.read_text().strip()
        assert running.broker.bootstrap_token == token
        me = running.admin.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=running.admin.md)
        assert me.role == common_pb2.ROLE_ADMIN
    finally:
        running.close()
    again = start_broker(tmp_path)
    try:
        assert again.broker.bootstrap_token is None
        assert again.admin_token_file.read_text().strip() == token
    finally:
        again.close()


def test_refuses_public_listen_without_tls(tmp_path):
    broker = Broker(
        BrokerConfig(listen="0.0.0.0:0", db_url=f"sqlite:///{tmp_path}/b.db", admin_token_file=tmp_path / "t")
    )
    with pytest.raises(InvalidArgument, match="without TLS"):
        broker.start()


def test_every_rpc_needs_a_valid_token(broker: RunningBroker):
    stranger = broker.caller("mgu_not-a-real-token")
    with pytest.raises(grpc.RpcError) as err:
        stranger.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=stranger.md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stranger.jobs.ListJobs(job_pb2.ListJobsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in err.value.details()


def test_researcher_cannot_call_admin_rpcs(broker: RunningBroker):
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    with pytest.raises(grpc.RpcError) as err:
        ana.admin.AddUser(admin_pb2.AddUserRequest(name="eve", institution="uchile"), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_site_token_cannot_submit(broker: RunningBroker):
    broker.institution("uchile", "CL")
    site = broker.caller(broker.join("uchile", "dcc"))
    with pytest.raises(grpc.RpcError) as err:
        site.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=site.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_join_token_works_exactly_once(broker: RunningBroker):
    broker.institution("uchile", "CL")
    token = broker.join_token("uchile", "dcc")
    anon = broker.caller("")
    first = anon.sites.Join(site_pb2.JoinRequest(join_token=token))
    assert (first.site, first.institution, first.country) == ("dcc", "uchile", "CL")
    with pytest.raises(grpc.RpcError) as err:
        anon.sites.Join(site_pb2.JoinRequest(join_token=token))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_start_reaches_connected_site_at_once(federation):
    """With an hour-long tick, only the submit's own wakeup can start the job in time."""
    broker, ana, site = federation
    wakeups = broker.broker.core.cycle.wakeups
    wakeups.pacing = replace(wakeups.pacing, tick_seconds=3600.0)
    broker.full_pass()  # the pass already due under the old tick is behind us
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(2)), metadata=ana.md).job
    start = site.next("start", timeout=5).start
    assert start.job_id == job.id and start.spec.resources.gpus == 2 and start.gpu_model == "A100"
    got = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)
    assert got.state == common_pb2.JOB_STATE_LEASED and got.site == "dcc" and got.country == "CL"


def test_job_lifecycle_with_logs(federation):
    broker, ana, site = federation
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    site.log(run_id, 0, b"hello ")
    site.log(run_id, 0, b"hello ")  # a resend after reconnect is dropped
    site.log(run_id, 6, b"world\n")
    site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    done = eventually(
        lambda: (
            (j := ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)).state
            == common_pb2.JOB_STATE_SUCCEEDED
            and j
        )
    )
    assert done.attempts == 1 and done.finished_at >= done.started_at > 0
    logs = b"".join(c.data for c in ana.jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=job.id), metadata=ana.md))
    assert logs == b"hello world\n"


def test_follow_logs_until_the_job_ends(federation):
    broker, ana, site = federation
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(
        lambda: (
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md).state == common_pb2.JOB_STATE_RUNNING
        )
    )
    stream = ana.jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=job.id, follow=True), metadata=ana.md)
    site.log(run_id, 0, b"line 1\n")
    assert next(stream).data == b"line 1\n"
    site.log(run_id, 7, b"line 2\n")
    site.report(run_id, common_pb2.RUN_STATE_FAILED, "exit code 3")
    assert b"".join(c.data for c in stream) == b"line 2\n"  # the stream ends with the job
    failed = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)
    assert failed.state == common_pb2.JOB_STATE_FAILED and "exit code 3" in failed.reason


def test_cancel_running_job_stops_it_on_the_site(federation):
    broker, ana, site = federation
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(
        lambda: (
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md).state == common_pb2.JOB_STATE_RUNNING
        )
    )
    cancelling = ana.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job.id), metadata=ana.md)
    assert cancelling.state == common_pb2.JOB_STATE_CANCELLING
    assert site.next("stop").stop.run_id == run_id
    site.report(run_id, common_pb2.RUN_STATE_STOPPED)
    eventually(
        lambda: (
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md).state
            == common_pb2.JOB_STATE_CANCELLED
        )
    )


def test_idempotent_submit_returns_the_same_job(federation):
    broker, ana, site = federation
    req = job_pb2.SubmitJobRequest(spec=spec(), idempotency_key="retry-me")
    first = ana.jobs.SubmitJob(req, metadata=ana.md)
    second = ana.jobs.SubmitJob(req, metadata=ana.md)
    assert first.created and not second.created and first.job.id == second.job.id
    jobs = ana.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana.md).jobs
    assert [j.id for j in jobs] == [first.job.id]


def test_too_big_for_any_site_is_rejected_and_unknown_model_explained(federation):
    broker, ana, site = federation
    with pytest.raises(grpc.RpcError) as err:
        ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(8)), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "largest site has 4" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # no site has it: refused unless asked to queue it anyway
        ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(1, models=["H100"])), metadata=ana.md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "H100" in err.value.details()
    job = ana.jobs.SubmitJob(
        job_pb2.SubmitJobRequest(spec=spec(1, models=["H100"]), allow_unknown=True), metadata=ana.md
    ).job
    waiting = eventually(
        lambda: (
            (j := ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)).reason.startswith("model")
            and j
        )
    )
    assert "H100" in waiting.reason and waiting.state == common_pb2.JOB_STATE_PENDING


def test_researchers_see_only_their_institution(federation):
    broker, ana, site = federation
    bia = broker.researcher("bia", "usp")
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    with pytest.raises(grpc.RpcError) as err:
        bia.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=bia.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        bia.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job.id), metadata=bia.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert bia.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=bia.md).jobs == []
    assert len(broker.admin.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=broker.admin.md).jobs) == 1


def test_a_site_cannot_report_on_another_sites_run(federation):
    broker, ana, site = federation
    other = ScriptedSite(broker.address, broker.join("usp", "ime"), gpu_inventory("T4", 2))
    try:
        other.next("welcome")
        job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(1, models=["A100"])), metadata=ana.md).job
        run_id = site.next("start").start.run_id
        other.report(run_id, common_pb2.RUN_STATE_FAILED, "forged")
        other.report(run_id, common_pb2.RUN_STATE_RUNNING)
        assert other.next("stop").stop.run_id == run_id  # told to stop what is not its own
        got = ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)
        assert got.state == common_pb2.JOB_STATE_LEASED
    finally:
        other.close()


def test_first_message_must_be_hello(broker: RunningBroker):
    broker.institution("uchile", "CL")
    token = broker.join("uchile", "dcc")
    caller = broker.caller(token)
    bad = iter([site_pb2.AgentMessage(heartbeat=site_pb2.Heartbeat())])
    with pytest.raises(grpc.RpcError) as err:
        list(caller.sites.Connect(bad, metadata=caller.md))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hello" in err.value.details()


def test_quota_view_counts_held_and_pending(federation):
    broker, ana, site = federation
    ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(3)), metadata=ana.md)
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(2, models=["A100"])), metadata=ana.md)

    def uchile_row() -> admin_pb2.QuotaRow | None:
        rows = ana.admin.ShowQuotas(admin_pb2.ShowQuotasRequest(), metadata=ana.md).rows
        row = next(r for r in rows if r.institution == "uchile" and r.gpu_model == "A100")
        return row if row.in_use == 3 else None

    row = eventually(uchile_row)
    assert (row.owned, row.in_use, row.held, row.pending) == (4, 3, 3, 2)


def test_broker_restart_keeps_jobs_and_resends_lost_leases(tmp_path):
    first = start_broker(tmp_path)
    first.institution("uchile", "CL")
    ana_token = first.researcher("ana", "uchile").token
    site_token = first.join("uchile", "dcc")
    site = ScriptedSite(first.address, site_token, gpu_inventory("A100", 4))
    site.next("welcome")
    ana = first.caller(ana_token)
    running = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    run_a = site.next("start").start.run_id
    site.report(run_a, common_pb2.RUN_STATE_RUNNING)
    eventually(
        lambda: (
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=running.id), metadata=ana.md).state
            == common_pb2.JOB_STATE_RUNNING
        )
    )
    site.close()
    leased = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec()), metadata=ana.md).job
    eventually(
        lambda: (
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=leased.id), metadata=ana.md).state
            == common_pb2.JOB_STATE_PENDING
        )
    )  # no site connected: it waits
    first.close()

    second = start_broker(tmp_path)
    try:
        ana = second.caller(ana_token)
        back = ScriptedSite(
            second.address,
            site_token,
            gpu_inventory("A100", 4),
            runs=[site_pb2.RunReport(run_id=run_a, state=common_pb2.RUN_STATE_RUNNING)],
        )
        back.next("welcome")
        start = back.next("start").start
        assert start.job_id == leased.id and start.run_id != run_a  # the running one is not restarted
        back.report(run_a, common_pb2.RUN_STATE_SUCCEEDED)
        done = eventually(
            lambda: (
                (j := ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=running.id), metadata=ana.md)).state
                == common_pb2.JOB_STATE_SUCCEEDED
                and j
            )
        )
        assert done.attempts == 1
        back.close()
    finally:
        second.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A CA-less self-signed server certificate for 127.0.0.1 (it is its own root)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minga-test-broker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_tls_broker_serves_only_tls_clients(tmp_path):
    cert, key = _self_signed(tmp_path)
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path}/b.db",
            admin_token_file=tmp_path / "admin-token",
            tls_cert=cert,
            tls_key=key,
        )
    )
    broker.start()
    md = [("authorization", f"Bearer {broker.bootstrap_token}")]
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(broker.address, creds) as channel:
            me = admin_pb2_grpc.AdminServiceStub(channel).WhoAmI(admin_pb2.WhoAmIRequest(), metadata=md, timeout=10)
            assert me.name == "admin"
        with grpc.insecure_channel(broker.address) as plain:
            with pytest.raises(grpc.RpcError) as err:
                admin_pb2_grpc.AdminServiceStub(plain).WhoAmI(admin_pb2.WhoAmIRequest(), metadata=md, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        broker.stop(grace=0.5)


def test_tls_needs_both_files(tmp_path):
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path}/b.db",
            admin_token_file=tmp_path / "t",
            tls_cert=tmp_path / "cert.pem",
        )
    )
    with pytest.raises(InvalidArgument, match="both --tls-cert and --tls-key"):
        broker.start()


def test_a_store_from_an_older_schema_is_refused_clearly(tmp_path):
    import sqlite3

    from minga.common.domain import FailedPrecondition
    from minga.scheduler.store import Store

    db = tmp_path / "old.db"
    Store(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:  # what an older minga made: no `project` on jobs
        conn.execute("DROP INDEX ix_jobs_project")
        conn.execute("ALTER TABLE jobs DROP COLUMN project")
    with pytest.raises(FailedPrecondition, match="older minga and lacks jobs.project"):
        Store(f"sqlite:///{db}")
