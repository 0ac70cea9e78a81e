"""Job notifications by webhook: the caller's signing secret, the admin's allow-list of
hosts, and the submit-time check of a job's notify_url (docs/notifications.md)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from minga.common.domain import FailedPrecondition, PermissionDenied, Principal, Role
from minga.common.webhooks import host_allowed, normalize_hosts, url_host
from minga.scheduler.core import Core

SECRET_PREFIX = "whsec_"


def create_secret(core: Core, caller: Principal) -> tuple[str, bool]:
    """A new signing secret for the caller (a user), replacing any earlier one at once;
    returned this once, kept encrypted. Second: whether one was replaced."""
    if caller.role is Role.SITE:
        raise PermissionDenied("sites submit no jobs, so they have no webhook secret")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    replaced = core.store.webhooks.set_secret(caller.name, secret, core.clock.now())
    return secret, replaced


def check_notify(core: Core, caller: Principal, url: str) -> None:
    """Refuse a submit whose notify_url is malformed, whose host the admin does not allow,
    or whose owner has no secret to sign with; nothing is stored then."""
    host = url_host(url)
    allowed = core.store.webhooks.hosts()
    if not allowed:
        raise FailedPrecondition(
            "spec.notify_url: webhooks are off on this federation (the admin's allow-list is empty; "
            "an admin enables hosts with `minga admin policy set --webhook-hosts`)"
        )
    if not host_allowed(host, allowed):
        raise FailedPrecondition(
            f"spec.notify_url: host {host!r} is not on the webhook allow-list ({', '.join(allowed)}); "
            "ask an admin to add it (`minga admin policy set --webhook-hosts`)"
        )
    if not core.store.webhooks.has_secret(caller.name):
        raise FailedPrecondition(
            "spec.notify_url: you have no webhook secret to sign notifications with; "
            "run `minga token webhook-secret` first (it is shown once)"
        )


def webhook_hosts(core: Core) -> tuple[str, ...]:
    return core.store.webhooks.hosts()


def set_webhook_hosts(core: Core, hosts: Iterable[str]) -> tuple[str, ...]:
    """Replace the allow-list; an empty list turns webhooks off (pending deliveries to hosts
    no longer listed are dropped when their turn comes)."""
    return core.store.webhooks.set_hosts(normalize_hosts(hosts))
