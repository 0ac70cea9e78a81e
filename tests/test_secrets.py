"""Secret env values reach the job's site and nothing else: not job status, not lists,
not the audit log, not the displayed spec in the store, not the broker's log, not an
error message, not a repr. Config and credential files: 0600, and a warning when not."""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from minga.agent.backend import RunRequest, runtime_env_for
from minga.agent.reconcile import run_request
from minga.cli import config
from minga.cli.main import app
from minga.common.domain import JobSpec, RuntimeEnv
from minga.scheduler.store.json_columns import spec_from_json, spec_to_json
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.fixtures_broker import RunningBroker, ScriptedSite, gpu_inventory

SECRET = "hunter2-s3cr3t-VALUE"


def _spec(**secrets: str) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        entrypoint="python train.py",
        resources=common_pb2.Resources(gpus=1),
        runtime_env=common_pb2.RuntimeEnv(env={"PLAIN": "visible"}),
        secret_env=secrets or {"API_KEY": SECRET},
    )


def _everything_in(db_file: Path) -> str:
    """Every text and blob of the store but the secrets' own column, as one string."""
    out = []
    with sqlite3.connect(db_file) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})") if c[1] != "secret_env_json"]
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                out.extend(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(out)


def test_a_secret_reaches_only_the_site_that_runs_the_job(
    broker: RunningBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker.institution("uchile", "CL")
    alice = broker.researcher("alice", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        submitted = alice.jobs.SubmitJob(
            job_pb2.SubmitJobRequest(spec=_spec(), idempotency_key="k1"), metadata=alice.md
        )
        assert dict(submitted.job.spec.secret_env) == {"API_KEY": "***"}
        start = site.next("start").start
        assert dict(start.spec.secret_env) == {"API_KEY": SECRET}  # the site gets the value
        assert run_request(start).secret_env == {"API_KEY": SECRET}
        # ...and nobody else: the owner, an admin, a list, a resubmit with the same key.
        job_id = submitted.job.id
        admin = broker.admin
        shown = [
            alice.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=alice.md),
            admin.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=admin.md),
            *alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md).jobs,
            alice.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=_spec(), idempotency_key="k1"), metadata=alice.md).job,
        ]
        for job in shown:
            assert dict(job.spec.secret_env) == {"API_KEY": "***"}
            assert dict(job.spec.runtime_env.env) == {"PLAIN": "visible"}
            assert SECRET not in str(job)
        audit = admin.admin.ListAudit(admin_pb2.ListAuditRequest(limit=1000), metadata=admin.md)
        assert audit.entries and SECRET not in str(audit)
        assert SECRET not in _everything_in(tmp_path / "broker.db")
        assert SECRET not in caplog.text
    finally:
        site.close()


def test_a_refused_secret_is_not_echoed(broker: RunningBroker) -> None:
    broker.institution("uchile", "CL")
    alice = broker.researcher("alice", "uchile")
    too_long = SECRET * 1000
    for spec, field in [
        (_spec(API_KEY=too_long), "spec.secret_env[API_KEY]"),
        (_spec(API_KEY=SECRET + "\0"), "spec.secret_env[API_KEY]"),
        (_spec(PLAIN=SECRET), "spec.secret_env key 'PLAIN'"),
    ]:
        with pytest.raises(grpc.RpcError) as exc:
            alice.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=alice.md)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in exc.value.details() and SECRET not in exc.value.details()
    audit = broker.admin.admin.ListAudit(admin_pb2.ListAuditRequest(limit=1000), metadata=broker.admin.md)
    assert SECRET not in str(audit)


def test_secrets_stay_out_of_reprs_and_the_stored_spec() -> None:
    spec = JobSpec("run", runtime_env=RuntimeEnv(env=(("PLAIN", "v"),)), secret_env=(("API_KEY", SECRET),))
    assert SECRET not in repr(spec)
    stored = spec_to_json(spec)
    assert SECRET not in stored and "API_KEY" in stored
    assert spec_from_json(stored).secret_env == (("API_KEY", "***"),)
    run = RunRequest(
        run_id="r", job_id="j", epoch=1, entrypoint="run", env={"PLAIN": "v"}, secret_env={"API_KEY": SECRET}
    )
    assert SECRET not in repr(run)
    env_vars = runtime_env_for(run)["env_vars"]
    assert {k: env_vars[k] for k in ("PLAIN", "API_KEY")} == {"PLAIN": "v", "API_KEY": SECRET}  # Ray gets both
    conn = config.Connection(broker="h:1", token="mgt_secret_token", ca_file=None)
    assert "mgt_secret_token" not in repr(conn)


def test_cli_secret_env_is_sent_and_never_printed(
    broker: RunningBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FROM_MY_SHELL", "shell-" + SECRET)
    for var in ("MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA"):
        monkeypatch.delenv(var, raising=False)
    broker.institution("uchile", "CL")
    alice = broker.researcher("alice", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        conn = ["--broker", broker.address, "--token", alice.token]
        out = CliRunner().invoke(
            app,
            [
                "job",
                "submit",
                *conn,
                "--gpus",
                "1",
                "--secret-env",
                f"API_KEY={SECRET}",
                "--secret-env",
                "FROM_MY_SHELL",
                "--output",
                "json",
                "--",
                "python",
                "x.py",
            ],
        )
        assert out.exit_code == 0, out.output
        assert SECRET not in out.output
        job = json.loads(out.stdout)
        assert job["spec"]["secret_env"] == {"API_KEY": "***", "FROM_MY_SHELL": "***"}
        status = CliRunner().invoke(app, ["job", "status", *conn, job["id"], "--output", "json"])
        assert status.exit_code == 0 and SECRET not in status.output and "API_KEY" in status.output
        start = site.next("start").start
        assert dict(start.spec.secret_env) == {"API_KEY": SECRET, "FROM_MY_SHELL": "shell-" + SECRET}
        bad = CliRunner().invoke(app, ["job", "submit", *conn, "--secret-env", "NOT_SET_ANYWHERE_X", "--", "x"])
        assert bad.exit_code == 2 and "NOT_SET_ANYWHERE_X is not set" in bad.output
    finally:
        site.close()


def test_files_holding_secrets_are_private_and_a_readable_one_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config.save_config({"broker": "h:1", "token": "mgt_x"}, tmp_path / "cfg" / "config.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.load_config(path)["token"] == "mgt_x"
    assert capsys.readouterr().err == ""
    path.chmod(0o644)
    assert config.load_config(path)["token"] == "mgt_x"  # a warning, not an error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "readable by others" in err and "chmod 600" in err and "mgt_x" not in err


def test_the_bootstrap_admin_token_file_is_private(broker: RunningBroker) -> None:
    assert stat.S_IMODE(broker.admin_token_file.stat().st_mode) == 0o600
