"""The webhook store: per-user signing secrets (Fernet-encrypted at rest), the admin's
allow-list of hosts, and the delivery outbox the broker's sender drains.

The secret's encryption key is derived from the broker's token key (`scheduler.auth`), which
every broker on one store already shares: a database dump alone reveals no secret. See
docs/notifications.md and docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlmodel import col, select

from minga.common.domain import FailedPrecondition
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import MetaRow, WebhookDeliveryRow, WebhookSecretRow, table_of
from minga.scheduler.store.webhook_outbox import PENDING, record

__all__ = ["Delivery", "WebhooksRepo", "record"]

HOSTS_META_KEY = "webhook_hosts"
DELIVERED, FAILED, REFUSED = "DELIVERED", "FAILED", "REFUSED"
_KEY_CONTEXT = b"minga webhook secrets (Fernet)"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row, as the sender reads it."""

    id: str
    job_id: str
    owner: str
    event: str
    url: str
    body: str
    attempts: int
    next_at: float
    state: str
    last_error: str = ""


class WebhooksRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._fernet: object | None = None  # cryptography.fernet.Fernet, once use_key is called

    def use_key(self, token_key: bytes) -> None:
        """Encrypt secrets with a Fernet key derived (HMAC-SHA256) from the broker's token key."""
        from cryptography.fernet import Fernet  # lazy: the broker extra's

        derived = hmac.new(token_key, _KEY_CONTEXT, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def _cipher(self) -> object:
        if self._fernet is None:
            raise FailedPrecondition("this broker has no key to keep webhook secrets with")
        return self._fernet

    # -- secrets ------------------------------------------------------------------
    def set_secret(self, user: str, secret: str, now: float) -> bool:
        """Store `user`'s secret, replacing any earlier one; True if one was replaced."""
        token = self._cipher().encrypt(secret.encode()).decode()  # type: ignore[attr-defined]
        with self.db.tx() as s:
            row = s.get(WebhookSecretRow, user)
            replaced = row is not None
            row = row or WebhookSecretRow(user=user, secret_enc=token)
            row.secret_enc, row.created_at = token, now
            s.add(row)
        return replaced

    def has_secret(self, user: str) -> bool:
        with self.db.read() as s:
            return s.get(WebhookSecretRow, user) is not None

    def secret_of(self, user: str) -> str | None:
        with self.db.read() as s:
            row = s.get(WebhookSecretRow, user)
        if row is None:
            return None
        plain: bytes = self._cipher().decrypt(row.secret_enc.encode())  # type: ignore[attr-defined]
        return plain.decode()

    # -- the allow-list --------------------------------------------------------------
    def hosts(self) -> tuple[str, ...]:
        with self.db.read() as s:
            row = s.get(MetaRow, HOSTS_META_KEY)
        return tuple(json.loads(row.value)) if row and row.value else ()

    def set_hosts(self, hosts: Iterable[str]) -> tuple[str, ...]:
        """Replace the allow-list (already normalized by the caller)."""
        value = tuple(hosts)
        with self.db.tx() as s:
            row = s.get(MetaRow, HOSTS_META_KEY) or MetaRow(key=HOSTS_META_KEY)
            row.value = json.dumps(list(value))
            s.add(row)
        return value

    # -- the outbox ------------------------------------------------------------------
    def due(self, now: float, limit: int = 100) -> list[Delivery]:
        """PENDING deliveries whose time has come, oldest first."""
        q = (
            select(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.state == PENDING, col(WebhookDeliveryRow.next_at) <= now)
            .order_by(col(WebhookDeliveryRow.next_at), col(WebhookDeliveryRow.id))
            .limit(limit)
        )
        with self.db.read() as s:
            return [_delivery(r) for r in s.exec(q).all()]

    def next_due(self) -> float | None:
        """When the earliest PENDING delivery is due; None when there is none."""
        with self.db.read() as s:
            value = s.exec(
                select(func.min(WebhookDeliveryRow.next_at)).where(WebhookDeliveryRow.state == PENDING)
            ).one()
        return None if value is None else float(value)

    def update(self, delivery_id: str, state: str, attempts: int, next_at: float, error: str = "") -> None:
        with self.db.tx() as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                return
            row.state, row.attempts, row.next_at, row.last_error = state, attempts, next_at, error[:500]
            s.add(row)

    def prune(self, before: float) -> int:
        """Forget finished deliveries (delivered, failed, refused) due before `before`; returns
        how many. Pending ones stay, however old."""
        with self.db.tx() as s:
            result = s.connection().execute(
                delete(table_of(WebhookDeliveryRow)).where(
                    col(WebhookDeliveryRow.state) != PENDING, col(WebhookDeliveryRow.next_at) < before
                )
            )
        return int(result.rowcount or 0)

    def of_job(self, job_id: str) -> list[Delivery]:
        q = select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == job_id)
        with self.db.read() as s:
            return sorted((_delivery(r) for r in s.exec(q).all()), key=lambda d: (d.next_at, d.id))


def _delivery(r: WebhookDeliveryRow) -> Delivery:
    return Delivery(r.id, r.job_id, r.owner, r.event, r.url, r.body, r.attempts, r.next_at, r.state, r.last_error)
