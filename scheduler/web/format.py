"""Jinja2 filters: times in UTC, durations, percentages and GPU counts, as the CLI writes them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from minga.common.lending import LendingPolicy, format_duration, windows_text
from minga.common.usage import UsageReport


def when(ts: float) -> str:
    """A unix time as '2026-12-04 18:30 UTC'; '—' for none."""
    if not ts:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ts: float) -> str:
    """For <time datetime=...>: machine-readable."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else ""


def duration(seconds: float) -> str:
    """'45s', '12m', '3h 5m', '2d 4h'."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def ago(ts: float, now: float) -> str:
    """'5m ago', 'in 3m', or '—'."""
    if not ts:
        return "—"
    return f"{duration(now - ts)} ago" if now >= ts else f"in {duration(ts - now)}"


def pct(ratio: float, digits: int = 1) -> str:
    return f"{100 * ratio:.{digits}f}%"


def num(x: float, digits: int = 1) -> str:
    """A count or share: whole numbers without decimals, others with `digits`."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.{digits}f}"


def lending_text(policy: LendingPolicy) -> str:
    """A site's lending policy in one line: who may borrow, how much, when, and what runtime."""
    parts = []
    if policy.allow_countries or policy.allow_institutions:
        parts.append("only to " + ", ".join(policy.allow_countries + policy.allow_institutions))
    if policy.deny_countries or policy.deny_institutions:
        parts.append("never to " + ", ".join(policy.deny_countries + policy.deny_institutions))
    if policy.max_lent_gpus is not None:
        parts.append(f"at most {policy.max_lent_gpus} GPUs lent at once")
    if policy.guest_max_walltime_seconds:
        parts.append(f"guest walltime at most {format_duration(policy.guest_max_walltime_seconds)}")
    if policy.has_windows:
        parts.append(windows_text(policy))
    if policy.limits_runtime:
        parts.append("runtime limited (environment or pip)")
    return "; ".join(parts) or "to anyone, any time"


def usage_csv(report: UsageReport) -> str:
    """The reciprocity report as CSV, one line per country, institution or project."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.by, "country", "consumed_gpu_hours", "consumed_normalized",
                     "contributed_gpu_hours", "contributed_normalized", "balance_normalized",
                     "energy_kwh", "emissions_kgco2e"])  # fmt: skip
    for line in report.lines:
        balance = line.contributed_normalized - line.consumed_normalized
        figures = (line.consumed_gpu_hours, line.consumed_normalized, line.contributed_gpu_hours,
                   line.contributed_normalized, balance, line.energy_kwh, line.emissions_kgco2e)  # fmt: skip
        writer.writerow([_cell(line.key), _cell(line.country), *(f"{x:.3f}" for x in figures)])
    return out.getvalue()


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP's CSV injection advice)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "ago": ago,
    "pct": pct,
    "num": num,
    "lending_text": lending_text,
}
