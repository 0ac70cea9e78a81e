"""Lending policies end to end: `minga admin site policy set|show|clear` against a real broker
on port 0, with a scripted site on the stream. A guest's job waits with the policy's reason,
the owner's own job is placed, and clearing the policy lets the guest in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory
from tests.test_broker_grpc import spec
from tests.test_cli_shares import minga


@pytest.fixture
def fed(broker: RunningBroker) -> Iterator[tuple[RunningBroker, str, Caller, Caller, ScriptedSite]]:
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")  # the site's owner
    bia = broker.researcher("bia", "usp")  # a guest
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    admin = broker.admin_token_file.read_text().strip()
    yield broker, admin, ana, bia, site
    site.close()


def _reason(caller: Caller, job_id: str) -> str:
    return caller.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=caller.md).reason


def test_a_guest_waits_for_the_policy_and_the_owner_is_placed(fed):
    broker, admin, ana, bia, site = fed
    out = minga(
        broker,
        admin,
        "admin",
        "site",
        "policy",
        "set",
        "dcc",
        "--allow-country",
        "AR",
        "--max-lent",
        "2",
        "--guest-walltime",
        "4h",
        "--closed-window",
        "Mon-Fri 08:00-20:00",
        "--timezone",
        "America/Belem",
        "--env-allow",
        "HF_HOME",
        "--pip-allow",
        "torch",
    )
    assert out.exit_code == 0, out.output
    assert "only institutions in AR" in out.stdout and "Mon-Fri 08:00-20:00 America/Belem" in out.stdout
    assert "at most 2 GPUs" in out.stdout and "at most 4h" in out.stdout and "HF_HOME (every job)" in out.stdout

    guest = bia.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(1, walltime_seconds=3600)), metadata=bia.md).job
    eventually(lambda: _reason(bia, guest.id).startswith("lending: site dcc lends only to institutions in AR"))
    own = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(2)), metadata=ana.md).job
    assert site.next("start", timeout=5).start.job_id == own.id

    shown = json.loads(minga(broker, ana.token, "admin", "site", "policy", "show", "dcc", "-o", "json").stdout)
    assert shown["institution"] == "uchile" and shown["policy"]["allow_countries"] == ["AR"]
    assert shown["policy"]["max_lent_gpus"] == 2 and shown["policy"]["closed_windows"] == ["Mon-Fri 08:00-20:00"]

    cleared = minga(broker, admin, "admin", "site", "policy", "clear", "dcc")
    assert cleared.exit_code == 0 and "no lending policy" in cleared.stdout
    assert site.next("start", timeout=5).start.job_id == guest.id


def test_env_rules_reach_the_owner_too(fed):
    broker, admin, ana, bia, site = fed
    assert minga(broker, admin, "admin", "site", "policy", "set", "dcc", "--no-env").exit_code == 0
    env_spec = spec(1, runtime_env=common_pb2.RuntimeEnv(env={"AWS_SECRET": "x"}))
    job = ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=env_spec), metadata=ana.md).job
    eventually(
        lambda: _reason(ana, job.id) == "runtime: site dcc accepts no environment variables (this job sets AWS_SECRET)"
    )


def test_only_admins_set_policies_and_bad_input_is_refused(fed):
    broker, admin, ana, bia, site = fed
    with pytest.raises(grpc.RpcError) as err:
        bia.admin.SetLendingPolicy(admin_pb2.SetLendingPolicyRequest(site="dcc", clear=True), metadata=bia.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    a = broker.admin
    with pytest.raises(grpc.RpcError) as err:
        a.admin.SetLendingPolicy(
            admin_pb2.SetLendingPolicyRequest(
                site="dcc",
                policy=admin_pb2.LendingPolicy(
                    max_lent_gpus=-1, closed_windows=["Mon-Fri 8-20"], timezone="America/Belem"
                ),
            ),
            metadata=a.md,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "closed_windows" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        a.admin.GetLendingPolicy(admin_pb2.GetLendingPolicyRequest(site="nope"), metadata=a.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    bad = minga(broker, admin, "admin", "site", "policy", "set", "dcc", "--no-env", "--env-allow", "X")
    assert bad.exit_code != 0 and "--no-env" in bad.output
    bad = minga(
        broker,
        admin,
        "admin",
        "site",
        "policy",
        "set",
        "dcc",
        "--timezone",
        "Mars/Base",
        "--lend-window",
        "22:00-06:00",
    )
    assert bad.exit_code != 0 and "--timezone" in bad.output and "unknown time zone" in bad.output


def test_setting_a_policy_is_audited(fed):
    broker, admin, ana, bia, site = fed
    assert minga(broker, admin, "admin", "site", "policy", "set", "dcc", "--max-lent", "0").exit_code == 0
    a = broker.admin
    entries = a.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=a.md).entries
    assert any(e.method == "AdminService/SetLendingPolicy" and e.target == "dcc" and e.outcome == "OK" for e in entries)
