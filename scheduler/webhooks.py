"""The webhook sender: one background thread of the leading broker that posts the due
deliveries of the outbox (`store.webhooks`), started and stopped with the scheduling cycle.

It never holds up the cycle: the cycle only writes outbox rows in its own transactions, and
the posts (urllib, TIMEOUT_SECONDS each) happen here. Each post is checked against the
allow-list as it is now (the admin may have changed it since the submit): a refused host is
never contacted; the delivery is dropped and counted. A failed post (no 2xx, or no answer)
is tried again after an exponential backoff on the broker's clock, up to MAX_ATTEMPTS
posts (common.webhooks). Delivery is at least once: receivers dedupe on X-Minga-Delivery.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from minga.common.clock import Clock
from minga.common.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_seconds,
    host_allowed,
    sign,
    url_host,
)
from minga.scheduler.metrics import BrokerMetrics
from minga.scheduler.store import Store
from minga.scheduler.store.webhook_outbox import PENDING
from minga.scheduler.store.webhooks import DELIVERED, FAILED, REFUSED, Delivery

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.5  # real time between looks at the outbox when nothing woke the sender
KEEP_SECONDS = 7 * 86400.0  # finished deliveries are kept this long (the broker's clock), then pruned
PRUNE_EVERY_SECONDS = 3600.0
STOP_JOIN_SECONDS = 2.0

Backoff = Callable[[int], float]


class WebhookSender:
    """`start`/`stop` with the cycle; `wake` after a commit that may have added deliveries;
    `send_due` (the thread's step, or a test's) posts what is due now."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: BrokerMetrics,
        backoff: Backoff = backoff_seconds,
        max_attempts: int = MAX_ATTEMPTS,
        timeout: float = TIMEOUT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._pruned_at: float | None = None  # the broker's clock at the last prune

    def start(self) -> None:
        stop = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self._run, args=(stop,), name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_SECONDS)  # one post in flight ends on its own timeout
        self._thread = self._stop = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.send_due(stop)
            except Exception:  # logged: the sender outlives a bad pass (a store outage, say)
                log.exception("webhook sender pass failed; trying again shortly")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def send_due(self, stop: threading.Event | None = None) -> int:
        """Post every delivery due now; returns how many were handled. Once an hour, forget
        the deliveries finished over KEEP_SECONDS ago."""
        now = self.clock.now()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self.store.webhooks.prune(now - KEEP_SECONDS)
            self._pruned_at = now
        due = self.store.webhooks.due(now)
        if not due:
            return 0
        allowed = self.store.webhooks.hosts()
        for delivery in due:
            if stop is not None and stop.is_set():
                break
            self._send(delivery, allowed)
        return len(due)

    def _send(self, d: Delivery, allowed: tuple[str, ...]) -> None:
        try:
            permitted = host_allowed(url_host(d.url), allowed)
        except Exception:  # noqa: BLE001 - an URL that no longer parses is refused like a host
            permitted = False
        if not permitted:
            self.store.webhooks.update(d.id, REFUSED, d.attempts, d.next_at, "host not on the allow-list")
            self.metrics.webhook_deliveries.labels("refused").inc()
            log.warning("webhook %s of job %s dropped: its host is not on the allow-list", d.id, d.job_id)
            return
        secret = self.store.webhooks.secret_of(d.owner)
        if secret is None:
            self.store.webhooks.update(d.id, FAILED, d.attempts, d.next_at, "the owner has no webhook secret")
            self.metrics.webhook_deliveries.labels("failed").inc()
            return
        error = self._post(d, secret)
        attempts = d.attempts + 1
        if error is None:
            self.store.webhooks.update(d.id, DELIVERED, attempts, d.next_at)
            self.metrics.webhook_deliveries.labels("delivered").inc()
        elif attempts >= self.max_attempts:
            self.store.webhooks.update(d.id, FAILED, attempts, d.next_at, error)
            self.metrics.webhook_deliveries.labels("failed").inc()
            log.warning("webhook %s of job %s failed after %d attempts: %s", d.id, d.job_id, attempts, error)
        else:
            next_at = self.clock.now() + self.backoff(attempts)
            self.store.webhooks.update(d.id, PENDING, attempts, next_at, error)
            self.metrics.webhook_deliveries.labels("retried").inc()

    def _post(self, d: Delivery, secret: str) -> str | None:
        """One signed POST; None if the receiver answered 2xx, else what went wrong."""
        body = d.body.encode()
        timestamp = int(self.clock.now())
        request = urllib.request.Request(
            d.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "minga-webhooks/1",
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                TIMESTAMP_HEADER: str(timestamp),
                EVENT_HEADER: d.event,
                DELIVERY_HEADER: d.id,
            },
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except Exception as exc:  # noqa: BLE001 - any failure to post is retried
            return f"{type(exc).__name__}: {exc}"[:500]
        return None if 200 <= status < 300 else f"HTTP {status}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to a host off the allow-list: it counts as a failure instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxies from the environment either: the allow-list names the host actually contacted.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
