"""The reciprocity report: GPU-hours consumed against GPU-hours contributed in a window.

Exact without an interval table: a run holds a fixed number of GPUs from its first
RUNNING report to its end, and a site's uptime is kept as contiguous segments of
fixed capacity, so each contributes its overlap with the window. The share history
(`share_history`) splits the same overlaps over equal buckets of the window.
"""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import col, or_, select

from minga.common.shares import model_weight
from minga.common.usage import ShareHistory, UsageLine
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import InstitutionRow, RunEnergyRow, RunRow, SiteUptimeRow
from minga.scheduler.store.shares import read_settings

GROUPINGS = ("country", "institution", "project")


def _overlap(start: float, end: float, lo: float, hi: float) -> float:
    return max(0.0, min(end, hi) - max(start, lo))


def _spread(into: list[float], start: float, end: float, gpus: float, edges: list[float]) -> None:
    """Add `gpus` times the overlap of [start, end) with each bucket (`edges`, one more
    than the buckets) to `into`, visiting only the buckets the interval touches."""
    width = edges[1] - edges[0]
    first = max(0, min(len(into) - 1, int((start - edges[0]) // width) - 1))  # - 1: rounding at an edge
    for i in range(first, len(into)):
        if edges[i] >= end:
            break
        into[i] += gpus * _overlap(start, end, edges[i], edges[i + 1])


class ReportsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def usage(self, since: float, until: float, by: str) -> list[UsageLine]:
        """One line per country, institution or project (projects have no contribution)."""
        lines: dict[str, UsageLine] = {}
        with self.db.read() as s:
            settings = read_settings(s)
            country_of = {r.slug: r.country for r in s.exec(select(InstitutionRow)).all()}

            def add(institution: str, project: str = "", **hours: float) -> None:
                """Adds `hours` (UsageLine's fields) to the line `institution` or `project` counts in."""
                key = {"country": country_of.get(institution, ""), "institution": institution, "project": project}[by]
                entry = lines.get(key) or UsageLine(key, country_of.get(institution, ""))
                lines[key] = replace(entry, **{name: getattr(entry, name) + h for name, h in hours.items()})

            runs = s.exec(
                select(RunRow).where(
                    RunRow.running_since > 0,
                    RunRow.running_since < until,
                    or_(RunRow.ended_at == 0, RunRow.ended_at > since),
                )
            ).all()
            for run in runs:
                seconds = _overlap(run.running_since, run.ended_at or until, since, until)
                if seconds and run.gpus:
                    add(
                        run.institution,
                        run.project,
                        consumed_gpu_hours=run.gpus * seconds / 3600,
                        consumed_normalized=run.gpus * model_weight(settings, run.gpu_model) * seconds / 3600,
                    )
            ended = s.exec(
                select(RunEnergyRow).where(RunEnergyRow.ended_at > since, RunEnergyRow.ended_at <= until)
            ).all()
            for energy in ended:  # charged whole to the window it ended in
                add(energy.institution, energy.project, energy_kwh=energy.kwh, emissions_kgco2e=energy.kgco2e)
            if by != "project":
                segments = s.exec(
                    select(SiteUptimeRow)
                    .where(SiteUptimeRow.end > since, SiteUptimeRow.start < until)
                    .order_by(col(SiteUptimeRow.start))
                ).all()
                for seg in segments:
                    hours = _overlap(seg.start, seg.end, since, until) / 3600
                    add(
                        seg.institution,
                        contributed_gpu_hours=seg.gpus * hours,
                        contributed_normalized=seg.normalized_gpus * hours,
                    )
        return sorted(lines.values(), key=lambda entry: entry.key)

    def share_history(self, since: float, until: float, buckets: int) -> ShareHistory:
        """Each country's mean GPUs held, and the federation's mean GPUs up, in `buckets`
        equal buckets of [since, until); exact, from the runs and the uptime segments.

        Two queries, as `usage`: the runs that overlap the window (with their institution's
        country, joined), and the uptime segments that do. A run not ended yet holds its
        GPUs up to `until`.
        """
        if buckets < 1 or not until > since:
            raise ValueError("share_history needs at least one bucket and until after since")
        width = (until - since) / buckets
        edges = [since + i * width for i in range(buckets)] + [until]
        held: dict[str, list[float]] = {}
        capacity = [0.0] * buckets
        with self.db.read() as s:
            runs = s.exec(
                select(RunRow.running_since, RunRow.ended_at, RunRow.gpus, InstitutionRow.country)
                .outerjoin(InstitutionRow, col(InstitutionRow.slug) == RunRow.institution)
                .where(
                    RunRow.running_since > 0,
                    RunRow.running_since < until,
                    RunRow.gpus > 0,
                    or_(RunRow.ended_at == 0, RunRow.ended_at > since),
                )
            ).all()
            segments = s.exec(
                select(SiteUptimeRow.start, SiteUptimeRow.end, SiteUptimeRow.gpus).where(
                    SiteUptimeRow.end > since, SiteUptimeRow.start < until, SiteUptimeRow.gpus > 0
                )
            ).all()
        for running_since, ended_at, gpus, country in runs:
            _spread(held.setdefault(country or "", [0.0] * buckets), running_since, ended_at or until, gpus, edges)
        for start, end, gpus in segments:
            _spread(capacity, start, end, gpus, edges)
        countries = tuple(sorted(c for c, seconds in held.items() if any(seconds)))
        return ShareHistory(
            since=since,
            until=until,
            bucket_seconds=width,
            countries=countries,
            held={c: tuple(v / width for v in held[c]) for c in countries},
            capacity=tuple(v / width for v in capacity),
        )
