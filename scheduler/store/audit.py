"""The audit log: appended by the API layer after every state-changing call."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlmodel import col, select

from scheduler.store.base import Database
from scheduler.store.models import AuditRow

MAX_DETAIL = 500


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str
    role: str
    method: str
    target: str
    peer: str
    outcome: str
    detail: str = ""


class AuditRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, entry: AuditEntry) -> None:
        with self.db.tx() as s:
            s.add(AuditRow(**{**asdict(entry), "detail": entry.detail[:MAX_DETAIL]}))

    def list(self, since: float = 0.0, who: str = "", limit: int = 1000) -> list[AuditEntry]:
        """Newest last; at most `limit` entries, the most recent ones."""
        query = select(AuditRow).where(AuditRow.at >= since)
        if who:
            query = query.where(AuditRow.who == who)
        with self.db.read() as s:
            rows = s.exec(query.order_by(col(AuditRow.at).desc(), col(AuditRow.id).desc()).limit(limit)).all()
            return [AuditEntry(r.at, r.who, r.role, r.method, r.target, r.peer, r.outcome, r.detail)
                    for r in reversed(rows)]
