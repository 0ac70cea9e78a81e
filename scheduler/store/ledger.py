"""The usage and contribution ledgers, updated incrementally.

Each row holds a decayed value and the time it is valid at; adding a charge first
decays the old value to `now` (exponential decay with the policy's half-life, as
Slurm's PriorityDecayHalfLife). Nothing ever re-reads the whole history.
"""
from __future__ import annotations

from sqlmodel import Session, select

from scheduler.domain import RunState, SiteState
from scheduler.shares_domain import ShareSettings, model_weight
from scheduler.store.codec import inventory_from_json
from scheduler.store.models import ContributionRow, RunRow, SiteRow, SiteUptimeRow, UsageRow


def decayed(value: float, as_of: float, now: float, half_life: float) -> float:
    """`value` measured at `as_of`, decayed to `now`."""
    if half_life <= 0 or now <= as_of:
        return value
    return value * 0.5 ** ((now - as_of) / half_life)


def charge_run(s: Session, run: RunRow, now: float, settings: ShareSettings) -> None:
    """Charge a running run's normalized GPU-seconds since it was last charged."""
    if not run.charged_until or now <= run.charged_until or not run.gpus:
        return
    seconds = now - run.charged_until
    run.charged_until = now
    s.add(run)
    _add(s, UsageRow, run.project, run.gpus * model_weight(settings, run.gpu_model) * seconds, now, settings)


def charge_all(s: Session, now: float, settings: ShareSettings) -> None:
    """One incremental step: usage of every running run, contribution of every serving site."""
    running = s.exec(select(RunRow).where(RunRow.live == True,  # noqa: E712
                                          RunRow.state == RunState.RUNNING.value)).all()
    for run in running:
        charge_run(s, run, now, settings)
    for site in s.exec(select(SiteRow).where(SiteRow.connected == True)).all():  # noqa: E712
        since = site.contributed_until or now
        site.contributed_until = now
        s.add(site)
        if site.state != SiteState.READY.value or now <= since:
            continue
        inventory = inventory_from_json(site.inventory_json)
        weighted = sum(p.total * model_weight(settings, p.model) for p in inventory.gpus)
        _add(s, ContributionRow, site.institution, weighted * (now - since), now, settings)
        _extend_uptime(s, site, since, now, inventory.total_gpus, weighted)


def _extend_uptime(s: Session, site: SiteRow, since: float, now: float, gpus: int, weighted: float) -> None:
    """Extend the site's last uptime segment if it is contiguous and alike, else open one."""
    last = s.exec(select(SiteUptimeRow).where(SiteUptimeRow.site == site.name)
                  .order_by(SiteUptimeRow.end.desc()).limit(1)).first()  # type: ignore[union-attr]
    if last is not None and last.end == since and last.gpus == gpus and last.normalized_gpus == weighted:
        last.end = now
        s.add(last)
        return
    s.add(SiteUptimeRow(site=site.name, institution=site.institution, country=site.country,
                        start=since, end=now, gpus=gpus, normalized_gpus=weighted))


def _add(s: Session, table: type[UsageRow] | type[ContributionRow], key: str, amount: float,
         now: float, settings: ShareSettings) -> None:
    row = s.get(table, key)
    if row is None:
        row = table(**{"project" if table is UsageRow else "institution": key}, value=0.0, as_of=now)
    row.value = decayed(row.value, row.as_of, now, settings.half_life_seconds) + amount
    row.as_of = now
    s.add(row)
