"""Reading the federation whole, to build the leader's in-memory state (`minga.scheduler.state`).

Done when a broker takes the lead (and after a failure to apply a commit); from then
on the state follows the commits (`store.changes`), and no cycle reads these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select

from minga.common.domain import LIVE_JOB_STATES, Job, JobState, Run, Site
from minga.scheduler.accounting import Ledger, Uptime
from minga.scheduler.store.base import Database, job_from_row, run_from_row, site_from_row
from minga.scheduler.store.models import (
    ContributionRow,
    JobRow,
    RunRow,
    SiteRow,
    SiteUptimeRow,
    UsageRow,
    UserUsageRow,
    table_of,
)
from minga.scheduler.store.shares import AccountTree, read_accounts


@dataclass(frozen=True)
class FederationRows:
    """Everything the scheduling state holds, as read in one transaction."""

    pending: tuple[Job, ...]
    live_capped: tuple[tuple[str, str], ...]  # (job id, array id) of each live task of a capped array
    live_runs: tuple[Run, ...]
    sites: tuple[Site, ...]
    contributed_until: tuple[tuple[str, float], ...]
    uptime: tuple[tuple[str, Uptime], ...]  # each site's newest uptime segment
    usage: tuple[tuple[str, Ledger], ...]
    user_usage: tuple[tuple[str, Ledger], ...]
    contributions: tuple[tuple[str, Ledger], ...]


def load_rows(db: Database) -> FederationRows:
    with db.read() as s:
        pending = tuple(
            job_from_row(r)  # type: ignore[arg-type]  # a plain Row has every JobRow attribute it reads
            for r in s.connection().execute(
                select(*table_of(JobRow).columns).where(
                    JobRow.state == JobState.PENDING.value, JobRow.after_unmet == 0
                )  # a job held by its dependencies stays out until they release it
            )
        )
        live_capped = tuple(
            s.exec(
                select(JobRow.id, JobRow.array_id).where(
                    JobRow.array_id != "",
                    JobRow.array_limit > 0,
                    col(JobRow.state).in_([st.value for st in LIVE_JOB_STATES]),
                )
            ).all()
        )
        runs = tuple(run_from_row(r) for r in s.exec(select(RunRow).where(col(RunRow.live))))
        site_rows = s.exec(select(SiteRow)).all()
        newest = select(func.max(SiteUptimeRow.id)).group_by(SiteUptimeRow.site)
        uptime = tuple(
            (u.site, Uptime(u.id or 0, u.end, u.gpus, u.normalized_gpus))
            for u in s.exec(select(SiteUptimeRow).where(col(SiteUptimeRow.id).in_(newest)))
        )
        usage = tuple((u.project, Ledger(u.value, u.as_of)) for u in s.exec(select(UsageRow)))
        user_usage = tuple((u.user, Ledger(u.value, u.as_of)) for u in s.exec(select(UserUsageRow)))
        contributions = tuple((c.institution, Ledger(c.value, c.as_of)) for c in s.exec(select(ContributionRow)))
        return FederationRows(
            pending=pending,
            live_capped=live_capped,
            live_runs=runs,
            sites=tuple(site_from_row(r) for r in site_rows),
            contributed_until=tuple((r.name, r.contributed_until) for r in site_rows),
            uptime=uptime,
            usage=usage,
            user_usage=user_usage,
            contributions=contributions,
        )


def load_accounts(db: Database) -> AccountTree:
    with db.read() as s:
        return read_accounts(s)
