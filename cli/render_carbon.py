"""Tables and JSON of `minga admin carbon show` (docs/carbon.md)."""

from __future__ import annotations

from typing import Any

from minga.cli.render import _table, iso_time
from minga.common.carbon import DEFAULT_PUE, CarbonFigures, Figure


def _figure(key: str, f: Figure) -> dict[str, Any]:
    return {
        "key": key,
        "value": f.value,
        "source": f.source,
        "year": f.year or None,
        "set_at": iso_time(f.set_at) if f.set_at else None,
        "fallback": f.source.startswith("fallback"),
    }


def carbon_to_dict(f: CarbonFigures) -> dict[str, Any]:
    return {
        "countries": [_figure(k, v) for k, v in f.countries.items()],
        "gpus": [_figure(k, v) for k, v in f.gpus.items()],
        "sites": [
            {"site": name, "intensity": i.value if i else None, "pue": p.value if p else None}
            for name, (i, p) in f.sites.items()
        ],
        "default_pue": DEFAULT_PUE,
    }


def _origin(row: dict[str, Any]) -> str:
    if row["fallback"]:
        return f"FALLBACK ({row['source']})"
    return (
        f"admin, {row['set_at']}"
        if row["source"] == "admin"
        else f"{row['source']}" + (f", {row['year']}" if row["year"] else "")
    )


def carbon_tables(data: dict[str, Any]) -> None:
    _table(
        "Grid intensity (gCO2e/kWh)",
        ["CC", "VALUE", "SOURCE"],
        [[r["key"], f"{r['value']:g}", _origin(r)] for r in data["countries"]],
        width=140,
    )
    _table(
        "GPU board power (W)",
        ["MODEL", "WATTS", "SOURCE"],
        [[r["key"], f"{r['value']:g}", _origin(r)] for r in data["gpus"]],
        width=140,
    )
    sites = [
        [
            s["site"],
            "-" if s["intensity"] is None else f"{s['intensity']:g}",
            "-" if s["pue"] is None else f"{s['pue']:g}",
        ]
        for s in data["sites"]
    ]
    _table(f"Sites' own figures (PUE otherwise {data['default_pue']:g})", ["SITE", "gCO2e/kWh", "PUE"], sites)
