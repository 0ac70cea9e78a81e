"""Energy and emissions in the store (issue 16): the figures an admin set, and each ended
run's estimate (`minga.common.carbon`), written once as the run ends (`requeue.write_step`),
never in the per-cycle charging path. The metrics read the estimates incrementally
(`energy_since`): each row has a `seq` in the order it was written.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from minga.common import carbon
from minga.common.domain import NotFound
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import CarbonFigureRow, RunEnergyRow, RunRow, SiteRow

COUNTRY, SITE, SITE_PUE, GPU = "country", "site", "site_pue", "gpu"
ENERGY_LOCK_KEY = 0x656E6572  # "ener": writing energy rows vs. reading them past a watermark (PostgreSQL)


def energy_lock(s: Session, exclusive: bool) -> None:
    """On PostgreSQL a `seq` is drawn at insert and becomes visible at commit, so a later
    seq can commit first. Writers hold the lock shared until they commit; `energy_since`
    takes it exclusive, so it reads only when no written row is still uncommitted and
    never steps past one. SQLite's single writer commits rows in seq order already."""
    if s.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        s.execute(text(f"SELECT {fn}(:key)"), {"key": ENERGY_LOCK_KEY})


@dataclass(frozen=True)
class EnergySince:
    """The estimates written after a watermark: kWh and kgCO2e summed by country (every
    country a site is in is listed, 0 if it has none), and the newest row's seq read."""

    by_country: dict[str, tuple[float, float]]
    upto: int


def _figure(s: Session, kind: str, key: str) -> carbon.Figure | None:
    row = s.get(CarbonFigureRow, (kind, key))
    return None if row is None else carbon.Figure(row.value, "admin", 0, row.set_at)


def charge_energy(s: Session, run: RunRow, now: float) -> None:
    """Store the estimate of a run that just ended (one that never ran is not charged)."""
    if not run.running_since or not run.gpus or _energy_row(s, run.id) is not None:
        return
    energy_lock(s, exclusive=False)
    end = run.ended_at or now
    site = s.get(SiteRow, run.site)
    country = site.country if site is not None else ""
    intensity = carbon.resolve_intensity(country, _figure(s, SITE, run.site), _figure(s, COUNTRY, country))
    watts = carbon.resolve_watts(run.gpu_model, _figure(s, GPU, carbon.model_key(run.gpu_model)))
    pue = _figure(s, SITE_PUE, run.site)
    got = carbon.estimate(run.gpus, max(0.0, end - run.running_since), watts, pue.value if pue else carbon.DEFAULT_PUE,
                          intensity)  # fmt: skip
    s.add(
        RunEnergyRow(
            run_id=run.id, country=country, institution=run.institution, project=run.project, ended_at=end,
            kwh=got.kwh, kgco2e=got.kgco2e, intensity=got.intensity, watts=got.watts, pue=got.pue,
            intensity_source=got.intensity_source,
        )
    )  # fmt: skip


def _energy_row(s: Session, run_id: str) -> RunEnergyRow | None:
    return s.exec(select(RunEnergyRow).where(RunEnergyRow.run_id == run_id)).first()


class CarbonRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def show(self) -> carbon.CarbonFigures:
        """The defaults overlaid with what admins set; every country a site is in is listed."""
        with self.db.read() as s:
            rows = s.exec(select(CarbonFigureRow)).all()
            site_countries = {r for r in s.exec(select(SiteRow.country)).all()}
        admin = {(r.kind, r.key): carbon.Figure(r.value, "admin", 0, r.set_at) for r in rows}
        codes = (
            set(carbon.DEFAULT_INTENSITY) | {c for c in site_countries if c} | {k for (kd, k) in admin if kd == COUNTRY}
        )
        countries = {c: carbon.resolve_intensity(c, None, admin.get((COUNTRY, c))) for c in sorted(codes)}
        sites = {k: (admin.get((SITE, k)), admin.get((SITE_PUE, k))) for (kd, k) in admin if kd in (SITE, SITE_PUE)}
        models = set(carbon.DEFAULT_WATTS) | {k for (kd, k) in admin if kd == GPU}
        gpus = {m: carbon.resolve_watts(m, admin.get((GPU, m))) for m in sorted(models)}
        return carbon.CarbonFigures(countries, dict(sorted(sites.items())), gpus)

    def set(self, figures: list[tuple[str, str, float]], by: str, now: float) -> None:
        """Store checked figures (kind, key, value) in one transaction; a site must exist."""
        with self.db.tx() as s:
            for kind, key, value in figures:
                if kind in (SITE, SITE_PUE) and s.get(SiteRow, key) is None:
                    raise NotFound(f"site: no site {key!r}")
                row = s.get(CarbonFigureRow, (kind, key)) or CarbonFigureRow(kind=kind, key=key)
                row.value, row.set_at, row.set_by = value, now, by
                s.add(row)

    def intensity_figures(self) -> tuple[tuple[str, str, float], ...]:
        """The grid intensities admins set, (kind, key, value), kind "site" or "country"."""
        with self.db.read() as s:
            rows = s.exec(select(CarbonFigureRow).where(col(CarbonFigureRow.kind).in_((SITE, COUNTRY)))).all()
            return tuple((r.kind, r.key, r.value) for r in rows)

    def run_energy(self, run_id: str) -> RunEnergyRow | None:
        with self.db.read() as s:
            row = _energy_row(s, run_id)
            if row is not None:
                s.expunge(row)
            return row

    def energy_since(self, after: int = 0) -> EnergySince:
        """The estimates with seq > `after`, summed by country: `after=0` gives the sums over
        every ended run; a caller that adds each result to what it has and passes the
        returned `upto` next time reads each row exactly once (the rows never change)."""
        with self.db.read() as s:
            energy_lock(s, exclusive=True)
            by_country = {c: (0.0, 0.0) for c in s.exec(select(SiteRow.country)).all() if c}
            rows = s.exec(
                select(
                    RunEnergyRow.country,
                    func.sum(RunEnergyRow.kwh),
                    func.sum(RunEnergyRow.kgco2e),
                    func.max(RunEnergyRow.seq),
                )
                .where(col(RunEnergyRow.seq) > after)
                .group_by(RunEnergyRow.country)
            ).all()
        by_country.update({c: (float(k or 0.0), float(g or 0.0)) for c, k, g, _ in rows})
        return EnergySince(by_country, max([after, *(int(m) for *_, m in rows if m is not None)]))
