"""The audit log: appended by the API layer after every state-changing call."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from collections.abc import Collection

from sqlalchemy import and_, or_
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

    def list(self, since: float = 0.0, who: str = "", limit: int = 1000,
             callers: tuple[Collection[str], Collection[str]] | None = None) -> list[AuditEntry]:
        """Newest last; at most `limit` entries, the most recent ones. `callers`, if given,
        is (user names, site names): only their calls (an institution's own log)."""
        query = select(AuditRow).where(AuditRow.at >= since)
        if who:
            query = query.where(AuditRow.who == who)
        if callers is not None:
            users, sites = callers
            query = query.where(or_(and_(AuditRow.role != "site", col(AuditRow.who).in_(list(users))),
                                    and_(AuditRow.role == "site", col(AuditRow.who).in_(list(sites)))))
        with self.db.read() as s:
            rows = s.exec(query.order_by(col(AuditRow.at).desc(), col(AuditRow.id).desc()).limit(limit)).all()
            return [AuditEntry(r.at, r.who, r.role, r.method, r.target, r.peer, r.outcome, r.detail)
                    for r in reversed(rows)]
