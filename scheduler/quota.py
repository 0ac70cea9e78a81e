"""The quota view: per institution and GPU model, what it owns, uses, holds and asks for.

Pure: computed from domain values, so the fair-share extension can grow it in place.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from scheduler.domain import Job, JobState, Site

ANY_MODEL = "any"


@dataclass(frozen=True)
class QuotaRow:
    institution: str
    country: str
    gpu_model: str
    owned: int = 0
    in_use: int = 0
    held: int = 0
    pending: int = 0


def quota_rows(institutions: Iterable[tuple[str, str]], sites: Iterable[Site],
               jobs: Iterable[Job]) -> list[QuotaRow]:
    """One row per (institution, model) with anything to show; institutions with nothing get one row."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for site in sites:
        for pool in site.inventory.gpus:
            counts[(site.institution, pool.model)]["owned"] += pool.total
    for job in jobs:
        gpus = job.spec.resources.gpus
        if not gpus:
            continue
        if job.state is JobState.PENDING:
            models = job.spec.resources.gpu_models
            model = models[0] if len(models) == 1 else ANY_MODEL
            counts[(job.institution, model)]["pending"] += gpus
        elif job.state.live:
            counts[(job.institution, job.gpu_model)]["held"] += gpus
            if job.state is JobState.RUNNING:
                counts[(job.institution, job.gpu_model)]["in_use"] += gpus
    rows = []
    for slug, country in sorted(institutions):
        models = sorted(m for (inst, m) in counts if inst == slug)
        for model in models or [""]:
            c = counts.get((slug, model), {})
            rows.append(QuotaRow(slug, country, model, c.get("owned", 0), c.get("in_use", 0),
                                 c.get("held", 0), c.get("pending", 0)))
    return rows
