"""A preemption on the record, through a real broker on port 0 and a scripted site: the
preempted job keeps why and for whom (`minga job status`, table and JSON) after its
waiting reason replaces the "preempted: ..." one, and the audit log holds a line of the
scheduler's, which the job's institution-admins see and other institutions' do not."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner, Result

from minga.cli.main import app
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory


def minga(broker: RunningBroker, token: str, *args: str) -> Result:
    env = {"MINGA_BROKER": broker.address, "MINGA_TOKEN": token, "MINGA_CONFIG_DIR": "/nonexistent-minga"}
    return CliRunner().invoke(app, list(args), env=env)


def submit(who: Caller, gpus: int) -> str:
    spec = common_pb2.JobSpec(
        entrypoint="python train.py", resources=common_pb2.Resources(gpus=gpus, gpu_models=["A100"])
    )
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


def get(who: Caller, job_id: str) -> common_pb2.Job:
    return who.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=who.md)


def audit(who: Caller) -> list[admin_pb2.AuditEntry]:
    return list(who.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=who.md).entries)


def institution_admin(broker: RunningBroker, name: str, institution: str) -> Caller:
    a = broker.admin
    r = a.admin.AddUser(
        admin_pb2.AddUserRequest(name=name, institution=institution, role=common_pb2.ROLE_INSTITUTION_ADMIN),
        metadata=a.md,
    )
    return broker.caller(r.token)


def test_a_reclaimed_job_says_why_and_the_audit_log_has_it(broker: RunningBroker) -> None:
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    admin = broker.admin
    admin.admin.SetPolicy(
        admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(preemption_grace_seconds=0.001)), metadata=admin.md
    )  # no grace: reclaim at once
    ana, bia = broker.researcher("ana", "uchile"), broker.researcher("bia", "usp")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4), heartbeat_seconds=1)
    try:
        site.next("welcome")
        before = time.time()
        borrowed = submit(bia, 4)  # usp has no GPUs: it borrows uchile's idle ones
        start = site.next("start").start
        assert start.job_id == borrowed and start.notice_seconds == 60
        site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
        eventually(lambda: get(bia, borrowed).state == common_pb2.JOB_STATE_RUNNING)
        owned = submit(ana, 4)  # the owner wants them back
        stop = site.next("stop").stop
        assert stop.run_id == start.run_id and "reclaim" in stop.reason
        site.report(start.run_id, common_pb2.RUN_STATE_STOPPED)
        # Its waiting reason replaces "preempted: ...", but the preemption stays on the job.
        eventually(lambda: not get(bia, borrowed).reason.startswith("preempted"))
        job = get(bia, borrowed)
        assert job.state in (common_pb2.JOB_STATE_PENDING, common_pb2.JOB_STATE_LEASED)
        last = job.last_preemption
        assert (last.kind, last.beneficiary) == ("reclaim", "uchile")
        assert last.reason.startswith("reclaim: uchile is below its A100 guarantee") and owned in last.reason
        assert before <= last.at <= time.time()  # recorded when it happened

        # minga job status, as a table and as JSON
        table = minga(broker, bia.token, "job", "status", borrowed)
        assert table.exit_code == 0, table.output
        assert "(for uchile, reclaim): reclaim: uchile is below" in " ".join(table.stdout.split())
        shown = minga(broker, bia.token, "job", "status", borrowed, "--output", "json")
        assert shown.exit_code == 0, shown.output
        data = json.loads(shown.stdout)["last_preemption"]
        assert (data["kind"], data["beneficiary"], data["reason"]) == ("reclaim", "uchile", last.reason)
        assert get(ana, owned).HasField("last_preemption") is False

        # The audit log: the scheduler's line, in the same transaction as the preemption.
        [line] = [e for e in audit(admin) if e.method == "Scheduler/Preempt"]
        assert (line.who, line.role, line.outcome) == ("scheduler", "broker", "OK")
        assert line.target == f"{borrowed} {start.run_id}"
        assert line.detail.startswith("reclaim for uchile on dcc: reclaim: uchile is below")
        listed = minga(broker, admin.token, "admin", "audit", "--who", "scheduler", "--output", "json")
        assert listed.exit_code == 0, listed.output
        assert [(e["who"], e["method"], e["target"]) for e in json.loads(listed.stdout)] == [
            ("scheduler", "Scheduler/Preempt", line.target)
        ]
        # The preempted job's institution-admins see it; other institutions' do not.
        assert [
            e.target for e in audit(institution_admin(broker, "usp-boss", "usp")) if e.method == "Scheduler/Preempt"
        ] == [line.target]
        assert not [e for e in audit(institution_admin(broker, "uchile-boss", "uchile")) if e.who == "scheduler"]
    finally:
        site.close()
