"""Line charts as inline SVG, rendered on the server: no script, no chart library.

Pure functions of their data (no web framework), so a page embeds the string as is
(mark it safe: every text in it is escaped here). Colours come from the Okabe-Ito
palette, which stays distinct under the common colour-vision deficiencies; past its
eight colours the lines repeat them dashed. Text and axes draw in `currentColor`, so
the chart follows the page's colour scheme.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from html import escape

# Okabe & Ito (2008), "Color Universal Design"; yellow and black last: yellow is faint
# on white, black is the axes' colour.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")  # one per round through the palette

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 60, 16, 30, 40  # the bottom: time ticks
LEGEND_ROW, LEGEND_ITEM, LEGEND_CHARS = 18, 120, 14
MIN_PLOT_HEIGHT = 40
TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
MAX_TIME_TICKS = 6


def palette_colour(i: int) -> str:
    """The `i`th series' colour (Okabe-Ito, repeating after eight)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def _dash(i: int) -> str:
    return DASHES[(i // len(OKABE_ITO)) % len(DASHES)]


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _y_ticks(y_max: float) -> list[float]:
    if y_max == 1.0:
        return [0.0, 0.25, 0.5, 0.75, 1.0]
    step = _nice_step(y_max)
    return [i * step for i in range(int(y_max / step + 1e-9) + 1)]


def _format_value(v: float, percent: bool) -> str:
    return f"{v * 100:.0f}%" if percent else f"{v:.3g}"


def _time_ticks(t0: float, t1: float) -> tuple[list[float], str]:
    """Round UTC times in [t0, t1], at most MAX_TIME_TICKS, and their strftime format."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in TIME_STEPS if span / s <= MAX_TIME_TICKS), TIME_STEPS[-1])
    while span / step > MAX_TIME_TICKS:
        step *= 2
    first = float(math.ceil(t0 / step) * step)
    ticks = [first + i * step for i in range(int((t1 - first) // step) + 1)] if first <= t1 else []
    return ticks, "%m-%d" if step >= 86400 else "%H:%M"


def _auto_max(values: Sequence[float]) -> float:
    top = max((v for v in values if math.isfinite(v)), default=0.0)
    if top <= 0:
        return 1.0
    step = _nice_step(top)
    return math.ceil(top / step - 1e-9) * step


def line_chart_svg(
    times: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    y_label: str,
    y_max: float | None = None,
    width: int = 720,
    height: int = 260,
    chart_id: str | None = None,
) -> str:
    """An inline `<svg>` line chart: one line per series over `times` (unix seconds, drawn
    as HH:MM UTC), its y axis from 0 to `y_max` (as percentages when `y_max` is 1.0; by
    default rounded up from the data), a legend below, and a `<title>` and `<desc>` (each
    series' last value) for screen readers.

    Each series has one value per time. Values are clamped into the axis; non-finite ones
    are left out of their line. `width` and `height` are the whole image's; `chart_id`
    (default: from the title) prefixes the ids `aria-labelledby` names, unique per page.
    The image grows taller than `height` only when the legend would leave no room to plot.
    """
    for name, values in series.items():
        if len(values) != len(times):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(times)} times")
    ident = escape(chart_id or "chart-" + hashlib.sha1(f"{title}\0{y_label}".encode()).hexdigest()[:10])
    percent = y_max == 1.0
    per_row = max(1, (width - MARGIN_LEFT) // LEGEND_ITEM)
    rows = math.ceil(len(series) / per_row) if times else 0
    height = max(height, MARGIN_TOP + MIN_PLOT_HEIGHT + MARGIN_BOTTOM + rows * LEGEND_ROW)  # room for the legend
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" font-family="sans-serif" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(_describe(times, series, y_label, percent))}</desc>',
        f'<text x="{width / 2:g}" y="18" text-anchor="middle" font-size="14" fill="currentColor">'
        f"{escape(title)}</text>",
    ]
    if not times or not series:
        parts.append(
            f'<text x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle" font-size="13" fill="currentColor" '
            f'opacity="0.7">no data</text>'
        )
        return "\n".join(parts + ["</svg>"])

    left, right, top = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP
    bottom = height - MARGIN_BOTTOM - rows * LEGEND_ROW
    top_value = y_max if y_max is not None and y_max > 0 else _auto_max([v for s in series.values() for v in s])
    t0, t1 = min(times), max(times)

    def x_of(t: float) -> float:
        return (left + right) / 2 if t1 == t0 else left + (t - t0) / (t1 - t0) * (right - left)

    def y_of(v: float) -> float:
        return bottom - min(max(v, 0.0), top_value) / top_value * (bottom - top)

    parts.append('<g class="axes" stroke="currentColor" stroke-opacity="0.35" font-size="11">')
    for tick in _y_ticks(top_value):
        y = _num(y_of(tick))
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke-dasharray="2 3"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" fill="currentColor" '
            f'stroke="none">{escape(_format_value(tick, percent))}</text>'
        )
    ticks, fmt = _time_ticks(t0, t1)
    for tick in ticks:
        x = _num(x_of(tick))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 4}"/>')
        label = time.strftime(fmt, time.gmtime(tick))
        parts.append(
            f'<text x="{x}" y="{bottom + 16}" text-anchor="middle" fill="currentColor" stroke="none">{label}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke-opacity="0.8"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke-opacity="0.8"/>')
    parts.append(f'<text x="{right}" y="{bottom + 28}" text-anchor="end" fill="currentColor" stroke="none">UTC</text>')
    middle = (top + bottom) / 2
    parts.append(
        f'<text x="14" y="{_num(middle)}" text-anchor="middle" fill="currentColor" stroke="none" '
        f'transform="rotate(-90 14 {_num(middle)})">{escape(y_label)}</text>'
    )
    parts.append("</g>")

    for i, (name, values) in enumerate(series.items()):
        points = " ".join(
            f"{_num(x_of(t))},{_num(y_of(v))}" for t, v in zip(times, values, strict=True) if math.isfinite(v)
        )
        dash = f' stroke-dasharray="{_dash(i)}"' if _dash(i) else ""
        parts.append(
            f'<polyline data-series="{escape(name)}" fill="none" stroke="{palette_colour(i)}" stroke-width="2" '
            f'stroke-linejoin="round"{dash} points="{points}"><title>{escape(name)}</title></polyline>'
        )
    parts.append(_legend(list(series), left, bottom + MARGIN_BOTTOM, per_row))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(names: list[str], left: int, y0: float, per_row: int) -> str:
    items = ['<g class="legend" font-size="12">']
    for i, name in enumerate(names):
        x, y = left + (i % per_row) * LEGEND_ITEM, y0 + (i // per_row) * LEGEND_ROW
        shown = name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "\u2026"
        dash = f' stroke-dasharray="{_dash(i)}"' if _dash(i) else ""
        items.append(
            f'<g><title>{escape(name)}</title><line x1="{x}" x2="{x + 18}" y1="{_num(y)}" y2="{_num(y)}" '
            f'stroke="{palette_colour(i)}" stroke-width="3"{dash}/>'
            f'<text x="{x + 24}" y="{_num(y)}" dominant-baseline="middle" fill="currentColor">'
            f"{escape(shown)}</text></g>"
        )
    items.append("</g>")
    return "".join(items)


def _describe(times: Sequence[float], series: Mapping[str, Sequence[float]], y_label: str, percent: bool) -> str:
    """The `<desc>`: each series' last value, in words."""
    if not times or not series:
        return "No data."
    last = {name: next((v for v in reversed(values) if math.isfinite(v)), None) for name, values in series.items()}
    when = time.strftime("%H:%M UTC", time.gmtime(max(times)))
    said = "; ".join(f"{name}: {'no value' if v is None else _format_value(v, percent)}" for name, v in last.items())
    return f"{y_label}, last values at {when}: {said}."
