"""The audit log through a real broker: every state-changing call is recorded with
who, what, when, from where and how it ended; reads are not; no secret is stored;
and `minga admin audit` filters by time and caller."""

from __future__ import annotations

import json
import sqlite3

import grpc
import pytest
from typer.testing import CliRunner

from minga.cli import errors
from minga.cli.main import app
from minga.scheduler.api.audit import AUDITED
from minga.scheduler.api.authz import RPC_ROLES
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.fixtures_broker import start_broker


def test_state_changing_calls_are_audited_with_who_what_where_and_outcome(tmp_path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana = broker.researcher("ana", "uchile")
        join = broker.join_token("uchile", "dcc")
        broker.caller("").sites.Join(site_pb2.JoinRequest(join_token=join))
        with pytest.raises(grpc.RpcError):  # a replayed join token
            broker.caller("").sites.Join(site_pb2.JoinRequest(join_token=join))
        with pytest.raises(grpc.RpcError):  # a researcher on an admin call
            ana.admin.AddUser(admin_pb2.AddUserRequest(name="eve", institution="uchile"), metadata=ana.md)
        with pytest.raises(grpc.RpcError):  # no token at all
            broker.caller("").jobs.CancelJob(job_pb2.CancelJobRequest(job_id="j-1"))
        spec = common_pb2.JobSpec(
            entrypoint="python train.py",
            resources=common_pb2.Resources(gpus=0),
            runtime_env=common_pb2.RuntimeEnv(env={"API_KEY": "s3cr3t-value"}),
        )
        job_id = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job.id
        ana.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=ana.md)  # a read: not audited

        admin = ["--broker", broker.address, "--token", broker.admin.token]
        result = CliRunner().invoke(app, ["admin", "audit", "-o", "json", *admin])
        assert result.exit_code == 0, result.output
        log = [(e["who"], e["method"], e["target"], e["outcome"]) for e in json.loads(result.stdout)]
        assert log == [
            ("admin", "AdminService/AddInstitution", "uchile", "OK"),
            ("admin", "AdminService/AddUser", "ana", "OK"),
            ("admin", "AdminService/CreateSiteToken", "uchile/dcc", "OK"),
            (None, "SiteService/Join", "dcc", "OK"),
            (None, "SiteService/Join", "", "FAILED_PRECONDITION"),
            ("ana", "AdminService/AddUser", "eve", "PERMISSION_DENIED"),
            (None, "JobService/CancelJob", "j-1", "UNAUTHENTICATED"),
            ("ana", "JobService/SubmitJob", job_id, "OK"),
        ]
        entries = json.loads(result.stdout)
        assert all(e["peer"].startswith(("ipv4:127.0.0.1", "ipv6:")) and e["at"] for e in entries)
        assert "may not call AddUser" in entries[5]["detail"]

        only_ana = CliRunner().invoke(app, ["admin", "audit", "--who", "ana", "-o", "json", *admin])
        assert [e["method"] for e in json.loads(only_ana.stdout)] == ["AdminService/AddUser", "JobService/SubmitJob"]
        recent = CliRunner().invoke(app, ["admin", "audit", "--since", "1h", "-o", "json", *admin])
        assert len(json.loads(recent.stdout)) == len(log)
        table = CliRunner().invoke(app, ["admin", "audit", "--since", "1h", *admin], env={"COLUMNS": "250"})
        assert table.exit_code == 0 and "PERMISSION_DENIED: role researcher may not call AddUser" in table.stdout
        as_ana = CliRunner().invoke(app, ["admin", "audit", "--broker", broker.address, "--token", ana.token])
        assert as_ana.exit_code == errors.EXIT_AUTH  # only admins read the log

        with sqlite3.connect(tmp_path / "broker.db") as db:  # no secret anywhere in the log
            dumped = "\n".join(str(row) for row in db.execute("SELECT * FROM audit"))
        for secret in (join, ana.token, broker.admin.token, "s3cr3t-value", "python train.py"):
            assert secret not in dumped
    finally:
        broker.close()


def test_every_audited_call_is_a_served_rpc() -> None:
    assert set(AUDITED) <= set(RPC_ROLES)
