"""Run every policy on one workload, and render the results (table, JSON, CSV, PNG)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from minga.scheduler.sim.baselines import POLICIES
from minga.scheduler.sim.carbon import opt_in
from minga.scheduler.sim.engine import Engine
from minga.scheduler.sim.federation import Federation
from minga.scheduler.sim.metrics import Recorder
from minga.scheduler.sim.workload import SimJob, mean_demand

HEADLINE = (
    "utilization",
    "share_deviation",
    "jain",
    "time_to_fair_share_p50_s",
    "time_to_fair_share_max_s",
    "time_to_fair_share_never",
    "wait_p50_s",
    "wait_p95_s",
    "wait_max_s",
    "preemptions",
    "gpu_hours_lost",
    "lost_fraction",
    "owner_reclaim_max_s",
    "energy_kwh",
    "emissions_kgco2e",
    "intensity_g_per_kwh",
)
LOW_CARBON = "minga-low-carbon"  # the variant where a share of the jobs opts in (`--low-carbon-share`)
# Which way each metric is better, and what it means: printed with the table, so the table
# reads without docs/simulator.md. A metric missing here is context, not a score.
HIGHER, LOWER = "higher", "lower"
DIRECTION = {
    "utilization": HIGHER,
    "utilization_capacity": HIGHER,
    "jain": HIGHER,
    "jobs_started": HIGHER,
    "share_deviation": LOWER,
    "share_deviation_flat": LOWER,
    "time_to_fair_share_p50_s": LOWER,
    "time_to_fair_share_max_s": LOWER,
    "time_to_fair_share_never": LOWER,
    "wait_p50_s": LOWER,
    "wait_p95_s": LOWER,
    "wait_max_s": LOWER,
    "preemptions": LOWER,
    "gpu_hours_lost": LOWER,
    "lost_fraction": LOWER,
    "owner_reclaim_max_s": LOWER,
    "jobs_stuck": LOWER,
    "energy_kwh": LOWER,
    "emissions_kgco2e": LOWER,
    "intensity_g_per_kwh": LOWER,
    "cohort_emissions_kgco2e": LOWER,
    "cohort_intensity_g_per_kwh": LOWER,
}
LEGEND = (
    "better: which way a metric is better; blank: context, not a score.",
    "utilization: busy GPU-time / GPU-time some job wanted; 1.0: no GPU sat idle",
    "  while work waited. utilization_capacity: busy GPU-time / (all GPUs x time from",
    "  first arrival to last end); low when the workload is small, whatever policy.",
    "share_deviation: share of GPUs held by the wrong institution vs the fair share",
    "  now (_flat: vs plain weighted shares, no country level or guarantees).",
    "jain: fairness index of held / fair GPU-time; 1.0 is perfectly fair.",
    "time_to_fair_share_*: seconds until an institution holds 90% of its fair share;",
    "  _never: episodes that never got there; _episodes: how many were measured.",
    "wait_*: seconds from submit to first start ([n GPU]: jobs of that size).",
    "gpu_hours_lost, lost_fraction: work lost to preemptions (GPU-hours; of busy).",
    "owner_reclaim_max_s: longest wait of a job within its institution's guarantee.",
    "held_mean_gpus, fair_mean_gpus: mean GPUs an institution held; its fair share.",
    "energy_kwh, emissions_kgco2e: GPUs x W x hours x PUE, x the site country's grid",
    "  intensity (docs/carbon.md); intensity_g_per_kwh: emissions / energy.",
    "cohort_*: the same for the jobs that opt in to low-carbon placement in",
    f"  {LOW_CARBON}, measured on every run.",
)
PER_INSTITUTION_ROWS = 10  # the table lists each institution's holding when there are at most this many


def federation_info(fed: Federation) -> dict[str, Any]:
    """Sizes, and under `contribution` the entitlement floor: the base grant in effect and the
    smallest institution entitlement, as a percentage of the federation."""
    out: dict[str, Any] = {
        "sites": len(fed.sites),
        "gpus": fed.capacity,
        "institutions": len(fed.institutions),
        "share_policy": fed.settings.policy,
    }
    if fed.settings.policy != "static" and fed.institutions:
        ent = fed.entitlement_fractions()
        slug = min(sorted(ent), key=lambda k: ent[k])
        out |= {
            "base_grant": round(fed.base_grant(), 3),
            "base_grant_fraction": fed.settings.base_grant_fraction,
            "min_entitlement_pct": round(100 * ent[slug], 3),
            "min_entitlement_institution": slug,
        }
    return out


def compare(
    fed: Federation,
    jobs: Sequence[SimJob],
    policies: Sequence[str] = tuple(POLICIES),
    sample_seconds: float = 60.0,
    periodic: bool = False,
    low_carbon: LowCarbonVariant | None = None,
) -> dict[str, Any]:
    """One JSON-able object: the workload, and per policy its metrics and share series.
    With `low_carbon`, also minga's run with that share of the jobs opting in
    (`LOW_CARBON`), every run's figures for those jobs (`cohort_*`), and the comparison."""
    out: dict[str, Any] = {
        "federation": federation_info(fed),
        "workload": {
            "jobs": len(jobs),
            "gpus_requested": sum(j.gpus for j in jobs),
            "arrival_span_s": max((j.arrival for j in jobs), default=0.0),
            "offered_load": round(mean_demand(jobs, 1.0) / fed.capacity, 3)
            if jobs and max(j.arrival for j in jobs) > 0
            else None,
        },
        "policies": {},
        "institutions": {},
        "series": {},
    }
    cohort: frozenset[str] | None = None
    runs = [(name, POLICIES[name], jobs) for name in policies]
    if low_carbon is not None:
        if "minga" not in policies:
            raise ValueError("a low-carbon share compares with minga's run: include the minga policy")
        opted = opt_in(jobs, low_carbon.share, low_carbon.first, low_carbon.draw)
        cohort = frozenset(j.id for j in opted if j.low_carbon)
        runs.append((LOW_CARBON, POLICIES["minga"], opted))
    for name, policy, work in runs:
        t0 = time.perf_counter()
        rec = Recorder(fed, sample_seconds=sample_seconds, cohort=cohort)
        engine = Engine(fed, work, policy, periodic=periodic, recorder=rec)
        engine.run()
        m = rec.summary()
        m["cycles"] = engine.cycles
        m["wall_s"] = round(time.perf_counter() - t0, 2)
        out["policies"][name] = m
        out["institutions"][name] = rec.institution_shares()
        out["series"][name] = rec.series
    if low_carbon is not None:
        out["low_carbon"] = low_carbon_comparison(out["policies"]["minga"], out["policies"][LOW_CARBON], low_carbon)
        out["low_carbon"]["jobs"] = len(cohort or ())
    return out


@dataclass(frozen=True)
class LowCarbonVariant:
    """`share` of the jobs opt in to low-carbon placement (`first`: `--low-carbon-first`)."""

    share: float
    first: bool = False
    draw: int = 0  # which sample of `share` of the jobs (`carbon.opts_in`)


def low_carbon_comparison(none: Mapping[str, Any], some: Mapping[str, Any], v: LowCarbonVariant) -> dict[str, Any]:
    """The opt-in run against the one where nobody opts in (issue 16's targets): the opting
    jobs' emissions, utilization, share deviation and time to fair share, before and after."""
    before, after = none["cohort_emissions_kgco2e"], some["cohort_emissions_kgco2e"]
    keys = ("utilization", "share_deviation", "time_to_fair_share_p50_s", "time_to_fair_share_max_s")
    return {
        "share": v.share,
        "first": v.first,
        "cohort_emissions_kgco2e": [before, after],
        "cohort_emissions_cut": round(1 - after / before, 4) if before else 0.0,
        "emissions_kgco2e": [none["emissions_kgco2e"], some["emissions_kgco2e"]],
        "utilization_loss": round(1 - some["utilization"] / none["utilization"], 4) if none["utilization"] else 0.0,
        **{k: [none[k], some[k]] for k in keys},
    }


def low_carbon_lines(c: Mapping[str, Any]) -> list[str]:
    """The comparison, as the table prints it."""
    flag = "--low-carbon-first" if c["first"] else "--low-carbon"
    b, a = c["cohort_emissions_kgco2e"]
    lines = [
        f"low carbon: {c['jobs']} jobs ({c['share']:.0%}) opt in with {flag}; minga vs {LOW_CARBON}:",
        f"  their emissions           {b:,.1f} -> {a:,.1f} kgCO2e ({-c['cohort_emissions_cut']:+.1%})",
        "  all jobs' emissions       {:,.1f} -> {:,.1f} kgCO2e".format(*c["emissions_kgco2e"]),
        f"  utilization               {c['utilization'][0]:.4f} -> {c['utilization'][1]:.4f}"
        f" ({-c['utilization_loss']:+.2%})",
        "  share_deviation           {:.4f} -> {:.4f}".format(*c["share_deviation"]),
    ]
    for k in ("time_to_fair_share_p50_s", "time_to_fair_share_max_s"):
        lines.append(f"  {k:<25} {c[k][0]:.1f} -> {c[k][1]:.1f}")
    return lines


def table(result: dict[str, Any]) -> str:
    """The metrics, one row each, with which way is better, then a legend of what they mean."""
    names = list(result["policies"])
    rows = [["metric", "better", *names]]
    cohort = ("cohort_emissions_kgco2e", "cohort_intensity_g_per_kwh") if "low_carbon" in result else ()
    for key in (
        HEADLINE
        + cohort
        + (
            "time_to_fair_share_episodes",
            "share_deviation_flat",
            "utilization_capacity",
            "jobs_started",
            "jobs_stuck",
            "cycles",
            "wall_s",
        )
    ):
        rows.append(
            [key, DIRECTION.get(key, ""), *[_fmt(result["policies"][n].get(key), key in RATIOS) for n in names]]
        )
    for size in ("1", "2-4", "8+"):
        for stat in ("p95_s", "max_s"):
            rows.append(
                [
                    f"wait_{stat}[{size} GPU]",
                    LOWER,
                    *[_fmt(result["policies"][n]["wait_by_size"].get(size, {}).get(stat)) for n in names],
                ]
            )
    insts = sorted({i for n in names for i in result.get("institutions", {}).get(n, {})})
    if len(insts) <= PER_INSTITUTION_ROWS:
        for i in insts:
            for key in ("held_mean_gpus", "fair_mean_gpus"):
                rows.append(
                    [f"{key}[{i}]", "", *[f"{result['institutions'][n].get(i, {}).get(key, 0.0):.2f}" for n in names]]
                )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    w = result["workload"]
    head = (
        f"federation: {result['federation']['sites']} sites, {result['federation']['gpus']} GPUs, "
        f"{result['federation']['institutions']} institutions\nworkload: {w['jobs']} jobs, "
        f"{w['gpus_requested']} GPUs, offered load {w['offered_load']}"
    )
    fed = result["federation"]
    if "base_grant" in fed:
        head += (
            f"\nentitlement floor: base grant {fed['base_grant']:g} (fraction {fed['base_grant_fraction']:g}); "
            f"smallest entitlement {fed['min_entitlement_pct']:.2f}% ({fed['min_entitlement_institution']})"
        )
    if result.get("scenario"):
        head = f"scenario: {result['scenario']}\n" + head
    lines = [head] + [
        "  ".join(c.rjust(widths[i]) if i > 1 else c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows
    ]
    if "low_carbon" in result:
        lines += ["", *low_carbon_lines(result["low_carbon"])]
    return "\n".join([*lines, "", *LEGEND])


RATIOS = {"utilization", "utilization_capacity", "share_deviation", "share_deviation_flat", "jain", "lost_fraction"}


def _fmt(v: object, ratio: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if ratio else f"{v:.1f}"
    return str(v)


def to_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cohort = ["cohort_energy_kwh", "cohort_emissions_kgco2e"] if "low_carbon" in result else []
    w.writerow(["policy", *HEADLINE, *cohort, "jobs_started", "jobs_stuck"])
    for name, m in result["policies"].items():
        w.writerow([name, *[m[k] for k in HEADLINE + tuple(cohort)], m["jobs_started"], m["jobs_stuck"]])
    return buf.getvalue()


HATCHES = ("", "//", "..", "xx")  # beyond the palette's colours, the same colours again, hatched


def country_styles(codes: Sequence[str]) -> dict[str, tuple[tuple[float, ...], str]]:
    """A distinct (colour, hatch) pair per country code, in the order given.

    matplotlib's tab20 gives 20 colours: its ten strong ones first, then their light
    partners hatched, so neighbours in the stack never share a hue family and a light
    colour is told from its strong partner by the hatch as well; past 20 the colours
    repeat with other hatches (distinct pairs for up to 40 countries). The 19 countries
    of the example federation all get different colours."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    listed = cast(ListedColormap, matplotlib.colormaps["tab20"])  # tab20 is a list of 20 colours
    tab20 = cast("Sequence[tuple[float, float, float]]", listed.colors)  # as RGB triples
    palette = [*tab20[0::2], *tab20[1::2]]
    styles = {}
    for i, code in enumerate(codes):
        styles[code] = (tuple(palette[i % len(palette)]), HATCHES[(i // 10) % len(HATCHES)])
    return styles


def plot(result: dict[str, Any], path: str | Path, countries: dict[str, str]) -> None:
    """PNG: each country's share of the federation's GPUs over time, stacked, one panel per
    policy (matplotlib, Agg), one colour and hatch per country (`country_styles`) and one
    legend beside the panels. The time axis stops where the busiest policy's last sample
    above 5% of capacity is, so the long tail of a few long jobs does not squash the rest."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib, which is not installed: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["series"])
    cap = max(result["federation"]["gpus"], 1)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 3 * len(names)), sharex=True, squeeze=False)
    codes = sorted({c for n in names for _, d in result["series"][n] for c in d})
    styles = country_styles(codes)
    busy_until = max((t for n in names for t, d in result["series"][n] if sum(d.values()) > 0.05 * cap), default=0.0)
    for ax, name in zip(axes[:, 0], names, strict=True):
        series = [(t, d) for t, d in result["series"][name] if t <= busy_until] or result["series"][name]
        xs = [t / 3600 for t, _ in series]
        layers = ax.stackplot(
            xs,
            *[[d.get(c, 0) / cap for _, d in series] for c in codes],
            labels=[f"{c} {countries.get(c, '')}".strip() for c in codes],
            colors=[styles[c][0] for c in codes],
            step="post",
        )
        for layer, code in zip(layers, codes, strict=True):
            layer.set_hatch(styles[code][1])
            layer.set_edgecolor("white")  # the hatch's colour
            layer.set_linewidth(0)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: share of all GPUs held by each country's institutions (stacked)")
        ax.set_ylabel("share of GPUs")
    axes[-1, 0].set_xlabel("simulated hours")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="center right", fontsize=7, title="country (top first)")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
