"""Job webhooks end to end: a real broker (gRPC on port 0, a real SQLite file, a scripted
site) posts signed job.started / job.ended events to a real HTTP receiver on loopback;
retries follow the backoff on the broker's (injected) clock; a host off the allow-list is
never contacted; by default no webhook is allowed at all (docs/notifications.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from minga.common.clock import FakeClock
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.webhook_receiver import Post, Receiver


@dataclass
class Fed:
    broker: RunningBroker
    ana: Caller
    site: ScriptedSite
    clock: FakeClock
    receiver: Receiver
    secret: str


def set_hosts(broker: RunningBroker, *hosts: str) -> admin_pb2.Policy:
    a = broker.admin
    policy = admin_pb2.Policy(webhook_hosts=list(hosts), set_webhook_hosts=True)
    return a.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=policy), metadata=a.md)


def submit(ana: Caller, notify: str) -> common_pb2.Job:
    gpus = common_pb2.Resources(gpus=1)
    spec = common_pb2.JobSpec(entrypoint="true", name="train", resources=gpus, notify_url=notify)
    return ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md).job


def outcome(broker: RunningBroker, name: str) -> float:
    value = broker.broker.metrics.registry.get_sample_value("minga_webhook_deliveries_total", {"outcome": name})
    return value or 0.0


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Fed]:
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=86400)
    receiver = Receiver()
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    secret = ana.admin.CreateWebhookSecret(admin_pb2.CreateWebhookSecretRequest(), metadata=ana.md).secret
    yield Fed(broker, ana, site, clock, receiver, secret)
    site.close()
    broker.close()
    receiver.close()


def posts_when(receiver: Receiver, n: int) -> list[Post] | None:
    """The receiver's posts once there are `n`; None before."""
    posts = receiver.received()
    return posts if len(posts) >= n else None


def check_signature(post: Post, secret: str) -> dict[str, object]:
    """The receiver's check, written out as docs/notifications.md tells it; the event."""
    timestamp = post.headers["X-Minga-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + post.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post.headers["X-Minga-Signature"], f"sha256={expected}")
    event: dict[str, object] = json.loads(post.body)
    assert post.headers["X-Minga-Event"] == event["event"]
    assert post.headers["X-Minga-Delivery"].startswith("whd-")
    return event


def test_started_and_ended_events_arrive_signed_with_the_secret_shown_once(fed: Fed) -> None:
    set_hosts(fed.broker, "127.0.0.1")
    job = submit(fed.ana, fed.receiver.url())
    assert job.spec.notify_url == fed.receiver.url()
    run_id = fed.site.next("start").start.run_id
    fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    (started,) = eventually(fed.receiver.received, what="the job.started post")
    fed.site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    posts = eventually(lambda: posts_when(fed.receiver, 2), what="the job.ended post")
    events = [check_signature(p, fed.secret) for p in posts]
    assert [(e["event"], e["state"]) for e in events] == [("job.started", "RUNNING"), ("job.ended", "SUCCEEDED")]
    ended = events[1]
    assert {k: ended[k] for k in ("job_id", "name", "site", "country", "owner", "institution", "project")} == {
        "job_id": job.id,
        "name": "train",
        "site": "dcc",
        "country": "CL",
        "owner": "ana",
        "institution": "uchile",
        "project": "uchile/default",
    }
    assert posts[0].path == "/minga" and posts[0].headers["Content-Type"] == "application/json"
    assert posts[0].headers["X-Minga-Delivery"] != posts[1].headers["X-Minga-Delivery"]
    eventually(lambda: outcome(fed.broker, "delivered") == 2, what="both counted delivered")
    # A secret made afresh replaces the old one: the next event is signed with the new one.
    again = fed.ana.admin.CreateWebhookSecret(admin_pb2.CreateWebhookSecretRequest(), metadata=fed.ana.md)
    assert again.replaced and again.secret != fed.secret and again.user == "ana"


def test_a_failing_receiver_gets_the_event_again_after_the_backoff(fed: Fed) -> None:
    set_hosts(fed.broker, "127.0.0.1")
    fed.receiver.fail_first = 2
    job = submit(fed.ana, fed.receiver.url())
    run_id = fed.site.next("start").start.run_id
    fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    store = fed.broker.broker.core.store  # type: ignore[union-attr]
    (first,) = eventually(lambda: [d for d in store.webhooks.of_job(job.id) if d.attempts == 1], what="1st try")
    assert first.state == "PENDING" and first.next_at == fed.clock.now() + 1  # 1 s after the first failure
    assert len(fed.receiver.received()) == 1
    fed.clock.advance(1)
    (second,) = eventually(lambda: [d for d in store.webhooks.of_job(job.id) if d.attempts == 2], what="2nd try")
    assert second.state == "PENDING" and second.next_at == fed.clock.now() + 2  # then 2 s
    fed.clock.advance(2)
    eventually(lambda: [d for d in store.webhooks.of_job(job.id) if d.state == "DELIVERED"], what="delivered")
    posts = fed.receiver.received()
    assert [p.status for p in posts] == [500, 500, 204]
    assert len({p.headers["X-Minga-Delivery"] for p in posts}) == 1  # one delivery, three tries: dedupe on it
    for post in posts:
        check_signature(post, fed.secret)
    eventually(lambda: outcome(fed.broker, "delivered") == 1, what="counted delivered")
    assert outcome(fed.broker, "retried") == 2


def test_a_host_taken_off_the_allow_list_is_never_contacted(fed: Fed) -> None:
    set_hosts(fed.broker, "127.0.0.1")
    job = submit(fed.ana, fed.receiver.url())  # allowed when submitted
    set_hosts(fed.broker, "hooks.example.org")  # then the admin changes the list
    run_id = fed.site.next("start").start.run_id
    fed.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    store = fed.broker.broker.core.store  # type: ignore[union-attr]
    eventually(lambda: [d for d in store.webhooks.of_job(job.id) if d.state == "REFUSED"], what="the refusal")
    eventually(lambda: outcome(fed.broker, "refused") == 1, what="counted refused")
    assert fed.receiver.connections == 0
    assert outcome(fed.broker, "delivered") == 0


def test_submits_with_notify_are_refused_by_default_off_the_list_and_without_a_secret(fed: Fed) -> None:
    ana = fed.ana

    def refused(notify: str, who: Caller = ana) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as err:
            submit(who, notify)
        return err.value

    err = refused(fed.receiver.url())  # the default: an empty allow-list
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "spec.notify_url" in err.details() and "--webhook-hosts" in err.details()
    policy = set_hosts(fed.broker, "127.0.0.1")
    assert list(policy.webhook_hosts) == ["127.0.0.1"]
    err = refused(fed.receiver.url(host="localhost"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "'localhost' is not on" in err.details()
    err = refused(f"ftp://127.0.0.1:{fed.receiver.port}/")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.notify_url" in err.details()
    bob = fed.broker.researcher("bob", "uchile")  # no secret yet
    err = refused(fed.receiver.url(), bob)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "minga token webhook-secret" in err.details()
    listed = ana.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana.md).jobs
    assert list(listed) == []  # nothing was stored
    a = fed.broker.admin
    got = a.admin.GetPolicy(admin_pb2.GetPolicyRequest(), metadata=a.md)
    assert list(got.webhook_hosts) == ["127.0.0.1"]
    with pytest.raises(grpc.RpcError) as bad:
        set_hosts(fed.broker, "http://x/")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "policy.webhook_hosts" in bad.value.details()
    assert list(a.admin.GetPolicy(admin_pb2.GetPolicyRequest(), metadata=a.md).webhook_hosts) == ["127.0.0.1"]
    # A SetPolicy that does not say set_webhook_hosts keeps the list.
    a.admin.SetPolicy(admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(base_grant=2)), metadata=a.md)
    assert list(a.admin.GetPolicy(admin_pb2.GetPolicyRequest(), metadata=a.md).webhook_hosts) == ["127.0.0.1"]
    # Only an admin sets it; a researcher is refused.
    with pytest.raises(grpc.RpcError) as denied:
        policy_request = admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(set_webhook_hosts=True))
        ana.admin.SetPolicy(policy_request, metadata=ana.md)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_cancelling_an_array_s_pending_tasks_sends_their_ended_events(fed: Fed) -> None:
    set_hosts(fed.broker, "127.0.0.1")
    spec = common_pb2.JobSpec(
        entrypoint="true", resources=common_pb2.Resources(gpus=8), notify_url=fed.receiver.url()
    )  # 8 GPUs: no site fits, so the tasks stay PENDING
    answer = fed.ana.jobs.SubmitJob(
        job_pb2.SubmitJobRequest(spec=spec, array="0-2", allow_unknown=True), metadata=fed.ana.md
    )
    fed.ana.jobs.CancelJobArray(job_pb2.CancelJobRequest(job_id=answer.array.id), metadata=fed.ana.md)
    posts = eventually(lambda: posts_when(fed.receiver, 3), what="3 job.ended posts")
    events = [check_signature(p, fed.secret) for p in posts]
    assert sorted(str(e["job_id"]) for e in events) == [f"{answer.array.id}_{i}" for i in range(3)]
    assert {(e["event"], e["state"]) for e in events} == {("job.ended", "CANCELLED")}
