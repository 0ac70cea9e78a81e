"""Limits per user and per project in the store (`minga.common.limits`).

One row per limited account; setting every limit of an account back to unlimited
deletes its row. The limits are read into the account tree (`shares.read_accounts`),
so the leader's memory picks a change up as it does any other admin change.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from minga.common.domain import JobState, NotFound
from minga.common.limits import PROJECT, AccountLimit
from minga.scheduler.store.base import Database
from minga.scheduler.store.generations import Cached
from minga.scheduler.store.models import AccountLimitRow, JobRow, ProjectRow

LIMITS_TTL = 5.0  # another broker's change is seen within this


def limit_from_row(row: AccountLimitRow) -> AccountLimit:
    return AccountLimit(row.kind, row.key, row.max_gpus, row.max_pending, row.max_walltime_seconds)


def read_limits(s: Session) -> tuple[AccountLimit, ...]:
    rows = s.exec(select(AccountLimitRow).order_by(AccountLimitRow.kind, AccountLimitRow.key)).all()
    return tuple(limit_from_row(r) for r in rows)


class LimitsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._all: Cached[tuple[AccountLimit, ...]] = Cached(
            db.generations, (AccountLimitRow.__tablename__,), LIMITS_TTL
        )

    def all(self, now: float) -> tuple[AccountLimit, ...]:
        """Every limit, cached: each submit asks, and most federations set none."""
        return self._all.get("all", now, self._read)

    def _read(self) -> tuple[AccountLimit, ...]:
        with self.db.read() as s:
            return read_limits(s)

    def set(self, limit: AccountLimit, by: str, now: float) -> AccountLimit:
        """Store `limit` (already checked) for its account; its project must exist."""
        with self.db.tx() as s:
            project = s.get(ProjectRow, limit.project)
            if project is None:
                raise NotFound(f"no project {limit.project!r}")
            row = s.get(AccountLimitRow, (limit.kind, limit.key))
            if limit.empty:
                if row is not None:
                    s.delete(row)
                return limit
            row = row or AccountLimitRow(kind=limit.kind, key=limit.key)
            row.max_gpus, row.max_pending = limit.max_gpus, limit.max_pending
            row.max_walltime_seconds = limit.max_walltime_seconds
            row.updated_at, row.updated_by = now, by
            s.add(row)
            return limit

    def get(self, kind: str, key: str) -> AccountLimit:
        """The account's limits (all None when it has none)."""
        with self.db.read() as s:
            row = s.get(AccountLimitRow, (kind, key))
            return AccountLimit(kind, key) if row is None else limit_from_row(row)

    def pending_count(self, limit: AccountLimit) -> int:
        """The jobs of the account (a project, or one user's in it) pending now."""
        with self.db.read() as s:
            query = select(func.count()).where(JobRow.state == JobState.PENDING.value, JobRow.project == limit.project)
            if limit.kind != PROJECT:
                query = query.where(col(JobRow.owner) == limit.user)
            return int(s.exec(query).one())
