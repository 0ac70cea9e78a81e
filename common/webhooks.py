"""Job notifications by webhook: the pure rules (URL and allow-list checks, signing, the
retry schedule, which job transitions are events). No IO, no clock.

Signing follows Stripe's and GitHub's webhooks: an HMAC-SHA256 over "<timestamp>.<body>",
keyed with a per-user secret, sent as `X-Minga-Signature: sha256=<hex>` with the timestamp
in `X-Minga-Timestamp`; the receiver recomputes it, compares in constant time and refuses
old timestamps (replays). See docs/notifications.md.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from minga.common.domain import InvalidArgument, JobState

EVENT_STARTED = "job.started"
EVENT_ENDED = "job.ended"
MAX_URL_LENGTH = 2048
MAX_HOSTS = 100
SIGNATURE_HEADER = "X-Minga-Signature"
TIMESTAMP_HEADER = "X-Minga-Timestamp"
EVENT_HEADER = "X-Minga-Event"
DELIVERY_HEADER = "X-Minga-Delivery"
SIGNATURE_PREFIX = "sha256="
# Retries: exponential backoff, BASE x 2^(n-1) after the n-th failed attempt, capped; a
# delivery gives up after MAX_ATTEMPTS posts (1+2+...+64 s: about two minutes in all).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
MAX_ATTEMPTS = 8
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$")


def event_for(before: str, after: str) -> str | None:
    """The event a job's move from state `before` to `after` sends, if any: job.started on
    entering RUNNING, job.ended on entering a terminal state."""
    if before == after:
        return None
    if after == JobState.RUNNING.value:
        return EVENT_STARTED
    if after in _TERMINAL:
        return EVENT_ENDED
    return None


_TERMINAL = frozenset(s.value for s in JobState if s.terminal)


def url_host(url: str, field: str = "spec.notify_url") -> str:
    """The host of a webhook URL (lower case), or InvalidArgument naming `field`: it must be
    http or https, have a host, carry no credentials and be at most MAX_URL_LENGTH long."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"{field} is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidArgument(f"{field} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"{field} {url[:100]!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"{field} must be an http:// or https:// URL, not {url[:100]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(f"{field} must not carry a user name or password")
    host = (parts.hostname or "").lower()
    if not host or (port is not None and not 0 < port < 65536):
        raise InvalidArgument(f"{field} {url[:100]!r} has no host")
    return host


def normalize_hosts(hosts: Iterable[str], field: str = "policy.webhook_hosts") -> tuple[str, ...]:
    """The admin's allow-list, checked and normalized (lower case, sorted, no duplicates).
    An entry is a host name, an IP address, or `*.domain` for every host under domain."""
    out: set[str] = set()
    for raw in hosts:
        host = raw.strip().lower()
        if not host:
            continue
        if not (_is_ip(host) or (len(host) <= 253 and _HOST_RE.match(host))):
            raise InvalidArgument(
                f"{field} entry {raw[:100]!r} is not a host name, an IP address or *.domain (e.g. hooks.example.org)"
            )
        out.add(host)
    if len(out) > MAX_HOSTS:
        raise InvalidArgument(f"{field} has {len(out)} hosts; the limit is {MAX_HOSTS}")
    return tuple(sorted(out))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether `host` is on the allow-list: named exactly, or under a `*.domain` entry (not
    domain itself). An empty list allows nothing."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


def backoff_seconds(attempts: int, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """How long after its `attempts`-th failed post a delivery is tried again."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Minga-Signature value: "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """A receiver's check: the signature matches and the timestamp is within `tolerance`
    seconds of `now` (refuses replays of old deliveries)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))
