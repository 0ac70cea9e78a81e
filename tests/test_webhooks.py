"""Job webhooks, unit level: signing and its verification, the retry schedule, the allow-list
and URL checks (common.webhooks), and the outbox written in the job's own transaction, with
the secrets encrypted at rest (store.webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import pytest

from minga.common.domain import InvalidArgument, Job, JobSpec, JobState
from minga.common.webhooks import (
    EVENT_ENDED,
    EVENT_STARTED,
    MAX_URL_LENGTH,
    backoff_seconds,
    event_for,
    host_allowed,
    normalize_hosts,
    sign,
    url_host,
    verify,
)
from minga.scheduler.store import Store
from minga.scheduler.store.models import JobRow

SECRET = "whsec_test"
NOW = 1_700_000_000


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event": "job.started"}'
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, body) == f"sha256={expected}"


def test_verify_accepts_the_genuine_post_and_refuses_tampering_other_keys_and_replays() -> None:
    body = b'{"job_id": "j-1"}'
    headers = {"X-Minga-Signature": sign(SECRET, NOW, body), "X-Minga-Timestamp": str(NOW)}
    assert verify(SECRET, headers, body, now=NOW + 10)
    assert verify(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=NOW)  # header case
    assert not verify(SECRET, headers, b'{"job_id": "j-2"}', now=NOW)  # body changed
    assert not verify("whsec_other", headers, body, now=NOW)  # another secret
    assert not verify(SECRET, {**headers, "X-Minga-Timestamp": str(NOW + 1)}, body, now=NOW)  # timestamp changed
    assert not verify(SECRET, headers, body, now=NOW + 301)  # too old: a replay
    assert not verify(SECRET, {"X-Minga-Signature": headers["X-Minga-Signature"]}, body, now=NOW)


def test_backoff_doubles_from_one_second_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_seconds(3, base=0.5, cap=1.5) == 1.5


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("hooks.example.org", ("hooks.example.org",), True),
        ("HOOKS.example.org", ("hooks.example.org",), True),
        ("hooks.example.org.", ("hooks.example.org",), True),
        ("evil.example.org", ("hooks.example.org",), False),
        ("a.example.org", ("*.example.org",), True),
        ("a.b.example.org", ("*.example.org",), True),
        ("example.org", ("*.example.org",), False),  # the domain itself is not under it
        ("evilexample.org", ("*.example.org",), False),
        ("10.0.0.5", ("10.0.0.5",), True),
        ("10.0.0.50", ("10.0.0.5",), False),
        ("hooks.example.org", (), False),  # empty: nothing
    ],
)
def test_host_allowed(host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


def test_the_allow_list_is_normalized_and_bad_entries_name_the_field() -> None:
    assert normalize_hosts([" Hooks.Example.org", "10.0.0.5", "", "hooks.example.org", "*.ex.org", "::1"]) == (
        "*.ex.org",
        "10.0.0.5",
        "::1",
        "hooks.example.org",
    )
    for bad in ("http://hooks.example.org", "hooks.example.org/x", "a b", "*", "ex*.org", "x" * 300):
        with pytest.raises(InvalidArgument, match="policy.webhook_hosts"):
            normalize_hosts([bad])


def test_url_checks_name_spec_notify_url() -> None:
    assert url_host("https://Hooks.Example.org:8443/minga?x=1") == "hooks.example.org"
    assert url_host("http://[::1]:9000/") == "::1"
    for bad in (
        "ftp://hooks.example.org/",
        "hooks.example.org/x",
        "http:///nohost",
        "https://user:pw@hooks.example.org/",
        "http://hooks.example.org:99999/",
        "http://hooks.example.org/a b",
        "http://hooks.example.org/" + "x" * MAX_URL_LENGTH,
    ):
        with pytest.raises(InvalidArgument, match="spec.notify_url"):
            url_host(bad)


def test_events_are_entering_running_and_entering_an_end_state() -> None:
    assert event_for("LEASED", "RUNNING") == EVENT_STARTED
    assert event_for("RUNNING", "RUNNING") is None
    for end in ("SUCCEEDED", "FAILED", "CANCELLED"):
        assert event_for("RUNNING", end) == EVENT_ENDED
    assert event_for("PENDING", "CANCELLED") == EVENT_ENDED
    assert event_for("RUNNING", "PENDING") is None  # requeued: no event
    assert event_for("PENDING", "LEASED") is None
    assert event_for("RUNNING", "CANCELLING") is None


# -- the store ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'broker.db'}")
    s.webhooks.use_key(b"k" * 32)
    return s


def _job(job_id: str, notify: str) -> Job:
    spec = JobSpec(entrypoint="true", name="train", notify_url=notify)
    return Job(id=job_id, spec=spec, state=JobState.PENDING, owner="ana", institution="uchile", submitted_at=NOW)


def _move(store: Store, job_id: str, state: JobState, fail: bool = False, at: float = NOW + 5) -> None:
    with store.db.tx() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        row.state, row.updated_at, row.site, row.project = state.value, at, "dcc", "uchile/default"
        s.add(row)
        if fail:
            s.flush()
            raise RuntimeError("rolled back")


def test_a_delivery_is_written_in_the_job_transition_s_transaction(store: Store) -> None:
    store.jobs.submit(_job("j-hook", "http://127.0.0.1:9/h"), None)
    store.jobs.submit(_job("j-none", ""), None)
    with pytest.raises(RuntimeError):
        _move(store, "j-hook", JobState.RUNNING, fail=True)
    assert store.webhooks.of_job("j-hook") == []  # rolled back with the move
    _move(store, "j-hook", JobState.RUNNING)
    _move(store, "j-none", JobState.RUNNING)
    (delivery,) = store.webhooks.of_job("j-hook")
    assert store.webhooks.of_job("j-none") == []  # no notify_url: nothing written
    assert (delivery.event, delivery.url, delivery.state, delivery.attempts) == (
        EVENT_STARTED,
        "http://127.0.0.1:9/h",
        "PENDING",
        0,
    )
    assert json.loads(delivery.body) == {
        "event": "job.started",
        "job_id": "j-hook",
        "name": "train",
        "state": "RUNNING",
        "reason": "",
        "site": "dcc",
        "country": "",
        "owner": "ana",
        "institution": "uchile",
        "project": "uchile/default",
        "at": NOW + 5,
    }
    assert store.webhooks.due(NOW + 4) == [] and store.webhooks.due(NOW + 5) == [delivery]
    _move(store, "j-hook", JobState.SUCCEEDED, at=NOW + 10)
    assert [d.event for d in store.webhooks.of_job("j-hook")] == [EVENT_STARTED, EVENT_ENDED]
    store.webhooks.update(delivery.id, "DELIVERED", 1, NOW + 5)
    assert store.webhooks.prune(NOW + 5) == 0  # not before NOW + 5
    assert store.webhooks.prune(NOW + 6) == 1  # the delivered one; the pending one stays
    assert [d.event for d in store.webhooks.of_job("j-hook")] == [EVENT_ENDED]


def test_secrets_are_encrypted_at_rest(store: Store, tmp_path: Path) -> None:
    assert store.webhooks.secret_of("ana") is None
    assert store.webhooks.set_secret("ana", "whsec_plain_value", NOW) is False
    assert store.webhooks.set_secret("ana", "whsec_second_value", NOW) is True  # replaced
    assert store.webhooks.secret_of("ana") == "whsec_second_value"
    store.close()
    raw = (tmp_path / "broker.db").read_bytes()
    assert b"whsec_second_value" not in raw and b"whsec_plain_value" not in raw
    other = Store(f"sqlite:///{tmp_path / 'broker.db'}")
    other.webhooks.use_key(b"another key".ljust(32, b"!"))
    with pytest.raises(Exception):  # noqa: B017 - Fernet's InvalidToken: another key reads nothing
        other.webhooks.secret_of("ana")
    other.close()


def test_a_replace_of_the_spec_keeps_notify_url_through_the_store(store: Store) -> None:
    job = _job("j-x", "https://hooks.example.org/a")
    store.jobs.submit(replace(job, spec=replace(job.spec, name="n")), None)
    assert store.jobs.get("j-x").spec.notify_url == "https://hooks.example.org/a"
