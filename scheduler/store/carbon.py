"""Energy and emissions in the store (issue 16): the figures an admin set, and each ended
run's estimate (`minga.common.carbon`), written once as the run ends (`requeue.write_step`),
never in the per-cycle charging path.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from minga.common import carbon
from minga.common.domain import NotFound
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import CarbonFigureRow, RunEnergyRow, RunRow, SiteRow

COUNTRY, SITE, SITE_PUE, GPU = "country", "site", "site_pue", "gpu"


def _figure(s: Session, kind: str, key: str) -> carbon.Figure | None:
    row = s.get(CarbonFigureRow, (kind, key))
    return None if row is None else carbon.Figure(row.value, "admin", 0, row.set_at)


def charge_energy(s: Session, run: RunRow, now: float) -> None:
    """Store the estimate of a run that just ended (one that never ran is not charged)."""
    if not run.running_since or not run.gpus or s.get(RunEnergyRow, run.id) is not None:
        return
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
            row = s.get(RunEnergyRow, run_id)
            if row is not None:
                s.expunge(row)
            return row

    def totals_by_country(self) -> dict[str, tuple[float, float]]:
        """country -> (kWh, kgCO2e) over every ended run: the metrics' counters (0 for a
        country with a site and no ended run yet, so its series exist from the start)."""
        with self.db.read() as s:
            totals = {c: (0.0, 0.0) for c in s.exec(select(SiteRow.country)).all() if c}
            rows = s.exec(
                select(RunEnergyRow.country, func.sum(RunEnergyRow.kwh), func.sum(RunEnergyRow.kgco2e)).group_by(
                    RunEnergyRow.country
                )
            ).all()
        totals.update({c: (float(k or 0.0), float(g or 0.0)) for c, k, g in rows})
        return totals
