"""What a committed transaction changed, as domain values, for write-through observers.

Every write transaction collects the rows it flushed (SQLAlchemy's `after_flush`) and what
its bulk statements declare with `note_*`; after the commit, in commit order, `Database`
hands them to its observers as one `Changes`. Only the tables the scheduling state mirrors
are collected. See docs/architecture.md, "The federation in memory".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import event
from sqlmodel import Session

from minga.common.domain import Job, Run, Site
from minga.scheduler.accounting import Ledger, Uptime
from minga.scheduler.store.models import (
    AccountLimitRow,
    CarbonFigureRow,
    ContributionRow,
    CountryRow,
    GuaranteeRow,
    InstitutionRow,
    JobRow,
    LendingRow,
    MetaRow,
    ProjectRow,
    RunRow,
    SiteRow,
    SiteUptimeRow,
    UsageRow,
    UserUsageRow,
    UserWeightRow,
)

SETTINGS_META_KEY = "share_settings"  # the MetaRow of the fair-share settings (store.shares)
_ACCOUNT_TABLES = (
    InstitutionRow,
    ProjectRow,
    CountryRow,
    GuaranteeRow,
    LendingRow,
    UserWeightRow,
    AccountLimitRow,
    CarbonFigureRow,  # grid intensities: low-carbon placement reads them with the tree
)
_KEY = "minga.changes"


@dataclass
class Changes:
    """Domain values as committed; a later value for one key replaces an earlier one."""

    jobs: dict[str, Job] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    contributed_until: dict[str, float] = field(default_factory=dict)  # site -> contribution charged up to
    uptime: dict[str, Uptime] = field(default_factory=dict)  # site -> its newest segment
    usage: dict[str, Ledger] = field(default_factory=dict)
    user_usage: dict[str, Ledger] = field(default_factory=dict)  # user leaf -> its usage ledger
    contributions: dict[str, Ledger] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # job id -> waiting reason (bulk update)
    accounts: bool = False  # the account tree or a lending policy changed: reload it

    def __bool__(self) -> bool:
        return bool(
            self.jobs
            or self.runs
            or self.sites
            or self.contributed_until
            or self.uptime
            or self.usage
            or self.user_usage
            or self.contributions
            or self.reasons
            or self.accounts
        )


class Observer(Protocol):
    def committed(self, changes: Changes) -> None: ...


class _Collected:
    """The ORM objects one session flushed, kept until its commit, and the tables written."""

    def __init__(self) -> None:
        self.rows: dict[tuple[type, object], object] = {}
        self.noted = Changes()
        self.tables: set[str] = set()


def collect(session: Session) -> None:
    """Start collecting what `session` writes (called on every write session)."""
    session.info[_KEY] = _Collected()
    event.listen(session, "after_flush", _after_flush)


def _after_flush(session: Session, _context: object) -> None:
    collected: _Collected = session.info[_KEY]
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(obj, "__table__", None)
        if table is not None:
            collected.tables.add(table.name)
        if isinstance(
            obj,
            (
                JobRow,
                RunRow,
                SiteRow,
                UsageRow,
                UserUsageRow,
                ContributionRow,
                SiteUptimeRow,
                MetaRow,
                *_ACCOUNT_TABLES,
            ),
        ):
            collected.rows[(type(obj), id(obj))] = obj


def note_jobs(session: Session, jobs: list[Job]) -> None:
    """Jobs a bulk statement wrote (no ORM object saw them)."""
    collected: _Collected | None = session.info.get(_KEY)
    if collected is not None:
        collected.noted.jobs.update((j.id, j) for j in jobs)
        collected.tables.add(JobRow.__tablename__)


def note(session: Session, changes: Changes) -> None:
    """Values a bulk statement wrote, as the caller computed them."""
    collected: _Collected | None = session.info.get(_KEY)
    if collected is None:
        return
    collected.tables.update(
        table
        for table, values in (
            (JobRow.__tablename__, changes.jobs or changes.reasons),
            (RunRow.__tablename__, changes.runs),
            (UsageRow.__tablename__, changes.usage),
            (UserUsageRow.__tablename__, changes.user_usage),
            (ContributionRow.__tablename__, changes.contributions),
            (SiteRow.__tablename__, changes.contributed_until),
            (SiteUptimeRow.__tablename__, changes.uptime),
        )
        if values
    )
    n = collected.noted
    n.jobs.update(changes.jobs)
    n.runs.update(changes.runs)
    n.usage.update(changes.usage)
    n.user_usage.update(changes.user_usage)
    n.contributions.update(changes.contributions)
    n.contributed_until.update(changes.contributed_until)
    n.uptime.update(changes.uptime)
    n.reasons.update(changes.reasons)


def touched_tables(session: Session) -> set[str]:
    """The tables `session` wrote (the generations of store.generations count them)."""
    collected: _Collected | None = session.info.get(_KEY)
    return collected.tables if collected is not None else set()


def committed_changes(session: Session) -> Changes:
    """Everything `session` wrote, as domain values read from the committed rows."""
    from minga.scheduler.store.base import job_from_row, run_from_row, site_from_row  # base imports this module

    collected: _Collected | None = session.info.get(_KEY)
    if collected is None:
        return Changes()
    out = collected.noted
    for row in collected.rows.values():
        if isinstance(row, JobRow):
            out.jobs[row.id] = job_from_row(row)
            out.reasons.pop(row.id, None)
        elif isinstance(row, RunRow):
            out.runs[row.id] = run_from_row(row)
        elif isinstance(row, SiteRow):
            out.sites[row.name] = site_from_row(row)
            out.contributed_until[row.name] = row.contributed_until
        elif isinstance(row, UsageRow):
            out.usage[row.project] = Ledger(row.value, row.as_of)
        elif isinstance(row, UserUsageRow):
            out.user_usage[row.user] = Ledger(row.value, row.as_of)
        elif isinstance(row, ContributionRow):
            out.contributions[row.institution] = Ledger(row.value, row.as_of)
        elif isinstance(row, MetaRow):
            out.accounts = out.accounts or row.key == SETTINGS_META_KEY
        elif isinstance(row, SiteUptimeRow):
            if row.id is not None:
                out.uptime[row.site] = Uptime(row.id, row.end, row.gpus, row.normalized_gpus)
        else:
            out.accounts = True
    return out
