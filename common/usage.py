"""The reciprocity report: GPU-hours consumed against GPU-hours contributed in a window,
raw and normalized by the model weights (`minga usage report`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsageLine:
    key: str  # the country, institution or project
    country: str = ""
    consumed_gpu_hours: float = 0.0
    consumed_normalized: float = 0.0
    contributed_gpu_hours: float = 0.0  # 0 for projects: sites belong to institutions
    contributed_normalized: float = 0.0


@dataclass(frozen=True)
class UsageReport:
    since: float  # unix seconds
    until: float
    by: str  # "country", "institution" or "project"
    lines: tuple[UsageLine, ...] = ()
