"""The webhook outbox's write side: a job event becomes a delivery row in the very
transaction that moves the job (so an event is never lost nor sent for a rolled-back move).

Every write transaction watches its flushes (`watch`): a job row whose state changes to
RUNNING or to a terminal state, and whose spec has a notify_url, gets one row. Code that
moves jobs with bulk statements (which the ORM does not see) calls `record` itself. Jobs
without a notify_url cost one cached spec lookup per state change, and write nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from sqlalchemy import event, inspect
from sqlmodel import Session

from minga.common.webhooks import event_for
from minga.scheduler.store.json_columns import spec_from_json
from minga.scheduler.store.models import JobRow, WebhookDeliveryRow

PENDING = "PENDING"
_WATCHED = "minga.webhooks.watched"


def record(session: Session, events: Iterable[tuple[JobRow, str]]) -> int:
    """Add one delivery per (job row, event) whose job asked for notifications; returns how
    many. The body is fixed now (the job as this transaction leaves it); it is signed when sent."""
    added = 0
    for row, name in events:
        url = spec_from_json(row.spec_json).notify_url
        if not url:
            continue
        at = row.updated_at or row.finished_at or row.started_at
        session.add(
            WebhookDeliveryRow(
                id=f"whd-{secrets.token_hex(12)}",
                job_id=row.id,
                owner=row.owner,
                event=name,
                url=url,
                body=event_body(row, name, at),
                next_at=at,
                state=PENDING,
                created_at=at,
            )
        )
        added += 1
    return added


def event_body(row: JobRow, name: str, at: float) -> str:
    """The JSON a receiver gets (docs/notifications.md, "Event format")."""
    spec = spec_from_json(row.spec_json)
    return json.dumps(
        {
            "event": name,
            "job_id": row.id,
            "name": spec.name,
            "state": row.state,
            "reason": row.reason,
            "site": row.site,
            "country": row.country,
            "owner": row.owner,
            "institution": row.institution,
            "project": row.project,
            "at": at,
        },
        sort_keys=True,
    )


def watch(session: Session) -> None:
    """Record the job events of every flush of `session` (once per session)."""
    if session.info.get(_WATCHED):
        return
    session.info[_WATCHED] = True
    event.listen(session, "before_flush", _before_flush)


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    moved = []
    for obj in session.dirty:
        if not isinstance(obj, JobRow):
            continue
        history = inspect(obj).attrs.state.history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else ""
        name = event_for(str(before), obj.state)
        if name is not None:
            moved.append((obj, name))
    if moved:
        record(session, moved)
