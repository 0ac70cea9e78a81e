"""The audit log: appended by the API layer after every state-changing call, and by the
scheduling cycle for every preemption it commits (`SCHEDULER`, in the same transaction)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypedDict

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from minga.common.audit import AuditEntry
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import AuditRow

MAX_DETAIL = 500
SCHEDULER = "scheduler"  # `who` of the lines the scheduling cycle writes ...
SCHEDULER_ROLE = "broker"  # ... and their role: no user or site has it


class AuditRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, entry: AuditEntry, institution: str = "") -> None:
        with self.db.tx() as s:
            add_entry(s, entry, institution)

    def list(
        self,
        since: float = 0.0,
        who: str = "",
        limit: int = 1000,
        callers: tuple[Collection[str], Collection[str]] | None = None,
        institution: str = "",
    ) -> list[AuditEntry]:
        """Newest last; at most `limit` entries, the most recent ones. `callers`, if given,
        is (user names, site names): only their calls, and the lines about `institution`'s
        jobs (an institution's own log)."""
        query = select(AuditRow).where(AuditRow.at >= since)
        if who:
            query = query.where(AuditRow.who == who)
        if callers is not None:
            users, sites = callers
            by_user = and_(col(AuditRow.role).not_in(["site", SCHEDULER_ROLE]), col(AuditRow.who).in_(list(users)))
            by_site = and_(col(AuditRow.role) == "site", col(AuditRow.who).in_(list(sites)))
            about = and_(col(AuditRow.institution) != "", col(AuditRow.institution) == institution)
            query = query.where(or_(by_user, by_site, about))
        with self.db.read() as s:
            rows = s.exec(query.order_by(col(AuditRow.at).desc(), col(AuditRow.id).desc()).limit(limit)).all()
            return [
                AuditEntry(r.at, r.who, r.role, r.method, r.target, r.peer, r.outcome, r.detail) for r in reversed(rows)
            ]


def add_entry(s: Session, entry: AuditEntry, institution: str = "") -> None:
    """Append one line in the caller's transaction; `institution`: whose job it is about,
    when its caller is none of that institution's users or sites."""
    s.add(AuditRow(**audit_values(entry, institution)))


class AuditColumns(TypedDict):
    """The columns of one audit line (its id aside)."""

    at: float
    who: str
    role: str
    method: str
    target: str
    peer: str
    outcome: str
    detail: str
    institution: str


def audit_values(entry: AuditEntry, institution: str = "") -> AuditColumns:
    """The columns of one audit line, for `add_entry` or a bulk insert."""
    return {
        "at": entry.at,
        "who": entry.who,
        "role": entry.role,
        "method": entry.method,
        "target": entry.target,
        "peer": entry.peer,
        "outcome": entry.outcome,
        "detail": entry.detail[:MAX_DETAIL],
        "institution": institution,
    }
