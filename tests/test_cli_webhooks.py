"""The webhook commands through the real `minga` CLI against a real broker: `token
webhook-secret` (shown once), `admin policy set --webhook-hosts` / `show`, and
`job submit --notify` (and the `notify` key of a spec file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from minga.cli import errors
from minga.cli.client import BrokerClient
from minga.cli.main import app
from tests.fixtures_broker import RunningBroker, start_broker

HOOK = "https://hooks.example.org/minga"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[RunningBroker, str]]:
    running = start_broker(tmp_path)
    running.institution("uchile", "CL")
    yield running, running.researcher("ana", "uchile").token
    running.close()


def minga(address: str, token: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--broker", address, "--token", token, *args])


def test_the_secret_is_shown_once_and_replaced_on_demand(broker: tuple[RunningBroker, str]) -> None:
    running, ana = broker
    first = minga(running.address, ana, "token", "webhook-secret")
    assert first.exit_code == 0, first.output
    secret = first.stdout.strip()
    assert secret.startswith("whsec_") and "shown only once" in first.stderr
    again = minga(running.address, ana, "token", "webhook-secret", "--output", "json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["replaced"] is True and data["secret"] != secret
    store = running.broker.core.store  # type: ignore[union-attr]
    assert store.webhooks.secret_of("ana") == data["secret"]


def test_admin_sets_and_shows_the_allow_list(broker: tuple[RunningBroker, str]) -> None:
    running, ana = broker
    admin = running.admin_token_file.read_text().strip()
    shown = minga(running.address, admin, "admin", "policy", "show")
    assert shown.exit_code == 0, shown.output
    assert "none (webhooks off)" in shown.stdout
    done = minga(running.address, admin, "admin", "policy", "set", "--webhook-hosts", "Hooks.example.org, 10.0.0.5")
    assert done.exit_code == 0, done.output
    assert "10.0.0.5, hooks.example.org" in done.stdout
    as_json = json.loads(minga(running.address, admin, "admin", "policy", "show", "--output", "json").stdout)
    assert as_json["webhook_hosts"] == ["10.0.0.5", "hooks.example.org"]
    bad = minga(running.address, admin, "admin", "policy", "set", "--webhook-hosts", "http://x/")
    assert bad.exit_code != 0 and "policy.webhook_hosts" in bad.stderr
    denied = minga(running.address, ana, "admin", "policy", "set", "--webhook-hosts", "evil.example.org")
    assert denied.exit_code == errors.EXIT_AUTH
    cleared = minga(running.address, admin, "admin", "policy", "set", "--webhook-hosts", "", "--output", "json")
    assert json.loads(cleared.stdout)["webhook_hosts"] == []


def test_submit_with_notify(broker: tuple[RunningBroker, str], tmp_path: Path) -> None:
    running, ana = broker
    admin = running.admin_token_file.read_text().strip()
    off = minga(running.address, ana, "job", "submit", "--notify", HOOK, "--", "true")
    assert off.exit_code == 1 and "spec.notify_url" in off.stderr and "webhooks are off" in off.stderr
    minga(running.address, admin, "admin", "policy", "set", "--webhook-hosts", "hooks.example.org")
    no_secret = minga(running.address, ana, "job", "submit", "--notify", HOOK, "--", "true")
    assert no_secret.exit_code == 1 and "minga token webhook-secret" in no_secret.stderr
    assert minga(running.address, ana, "token", "webhook-secret").exit_code == 0
    other_host = minga(running.address, ana, "job", "submit", "--notify", "https://evil.example.org/", "--", "true")
    assert other_host.exit_code == 1 and "'evil.example.org' is not on the webhook allow-list" in other_host.stderr
    with BrokerClient(running.address, ana) as c:
        assert c.list_jobs(include_finished=True) == []  # every refusal stored nothing
    ok = minga(running.address, ana, "job", "submit", "--notify", HOOK, "--", "true")
    assert ok.exit_code == 0, ok.output
    spec_file = tmp_path / "job.toml"
    spec_file.write_text(f'run = "true"\nnotify = "{HOOK}?from=file"\n')
    from_file = minga(running.address, ana, "job", "submit", "-f", str(spec_file))
    assert from_file.exit_code == 0, from_file.output
    with BrokerClient(running.address, ana) as c:
        assert c.get_job(ok.stdout.strip()).spec.notify_url == HOOK
        assert c.get_job(from_file.stdout.strip()).spec.notify_url == f"{HOOK}?from=file"
    status = minga(running.address, ana, "job", "status", ok.stdout.strip(), "--output", "json")
    assert json.loads(status.stdout)["spec"]["notify_url"] == HOOK
