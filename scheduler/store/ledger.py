"""The usage and contribution ledgers, updated incrementally.

Each row holds a decayed value and the time it is valid at; adding a charge first
decays the old value to `now` (exponential decay with the policy's half-life, as
Slurm's PriorityDecayHalfLife). Nothing ever re-reads the whole history. The leader
computes each charging step from memory (`minga.scheduler.accounting`) and `write_charges`
writes it; `charge_run` charges a run's last interval as it ends.
"""

from __future__ import annotations

from sqlalchemy import ARRAY, any_, bindparam, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from minga.common.shares import ShareSettings, model_weight
from minga.scheduler.accounting import ChargeBatch, Ledger, decayed, user_leaf
from minga.scheduler.store.changes import Changes, note
from minga.scheduler.store.models import (
    ContributionRow,
    RunRow,
    SiteRow,
    SiteUptimeRow,
    UsageRow,
    UserUsageRow,
    table_of,
)

LEDGER_LOCK_KEY = 0x6C656467  # "ledg": charging a run's last interval vs. the cycle's batch (PostgreSQL)


def ledger_lock(s: Session, exclusive: bool) -> None:
    """On PostgreSQL, the cycle's batched charge (exclusive) and a run's last charge as it
    ends (shared) take turns, so a run is never charged twice for one interval. SQLite's
    single writer already serializes them."""
    if s.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        s.execute(text(f"SELECT {fn}(:key)"), {"key": LEDGER_LOCK_KEY})


def charge_run(s: Session, run: RunRow, now: float, settings: ShareSettings) -> None:
    """Charge a running run's normalized GPU-seconds since it was last charged."""
    if not run.charged_until or now <= run.charged_until or not run.gpus:
        return
    ledger_lock(s, exclusive=False)
    seconds = now - run.charged_until
    run.charged_until = now
    s.add(run)
    amount = run.gpus * model_weight(settings, run.gpu_model) * seconds
    _add_usage(s, run.project, amount, now, settings)
    _add_user_usage(s, user_leaf(run.project, run.owner), amount, now, settings)


def _add_usage(s: Session, project: str, amount: float, now: float, settings: ShareSettings) -> None:
    row = s.get(UsageRow, project) or UsageRow(project=project, value=0.0, as_of=now)
    row.value = decayed(row.value, row.as_of, now, settings.half_life_seconds) + amount
    row.as_of = now
    s.add(row)


def _add_user_usage(s: Session, leaf: str, amount: float, now: float, settings: ShareSettings) -> None:
    row = s.get(UserUsageRow, leaf) or UserUsageRow(user=leaf, value=0.0, as_of=now)
    row.value = decayed(row.value, row.as_of, now, settings.half_life_seconds) + amount
    row.as_of = now
    s.add(row)


def write_charges(s: Session, batch: ChargeBatch) -> None:
    """Write one charging step (`minga.scheduler.accounting.charge`) in a few batched statements,
    and tell the write-through observers what it wrote."""
    runs, sites, uptime = table_of(RunRow), table_of(SiteRow), table_of(SiteUptimeRow)
    conn = s.connection()
    # Every row of one step is charged up to the same `now`: one UPDATE per table, not a
    # round trip per row. PostgreSQL takes the keys as one array (`= ANY`); SQLite as
    # `IN` lists, in chunks (a bound parameter each).
    postgres = conn.dialect.name == "postgresql"
    for table, key, ids, column in (
        (runs, runs.c.id, [r.id for r in batch.runs], "charged_until"),
        (sites, sites.c.name, batch.sites, "contributed_until"),
        (uptime, uptime.c.id, [u.id for u in batch.extended.values()], "end"),
    ):
        chunk = max(len(ids), 1) if postgres else _CHUNK
        for i in range(0, len(ids), chunk):
            keys = ids[i : i + chunk]
            where = key == any_(bindparam("keys", keys, type_=ARRAY(key.type))) if postgres else key.in_(keys)
            conn.execute(update(table).where(where).values({column: batch.now}))
    _upsert(s, UsageRow, "project", batch.usage)
    _upsert(s, UserUsageRow, "user", batch.user_usage)
    _upsert(s, ContributionRow, "institution", batch.contributions)
    s.add_all(
        [
            SiteUptimeRow(
                site=u.site,
                institution=u.institution,
                country=u.country,
                start=u.start,
                end=u.end,
                gpus=u.gpus,
                normalized_gpus=u.normalized_gpus,
            )
            for u in batch.opened
        ]
    )
    note(
        s,
        Changes(
            runs={r.id: r for r in batch.runs},
            usage=batch.usage,
            user_usage=batch.user_usage,
            contributions=batch.contributions,
            contributed_until=dict.fromkeys(batch.sites, batch.now),
            uptime=batch.extended,
        ),
    )


_CHUNK = 5_000


def _upsert(
    s: Session, table: type[UsageRow] | type[UserUsageRow] | type[ContributionRow], key: str, ledgers: dict[str, Ledger]
) -> None:
    if not ledgers:
        return
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table_of(table))
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={"value": stmt.excluded.value, "as_of": stmt.excluded.as_of}
    )
    s.connection().execute(stmt, [{key: k, "value": v.value, "as_of": v.as_of} for k, v in ledgers.items()])
