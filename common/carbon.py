"""Energy and emissions estimates of GPU runs (issue 16, parts 1 and 3).

Pure: default tables, the formulas and the resolution order; no IO, no clock.
The estimate follows the Green Algorithms method (Lannelongue et al., 2021):
energy = GPUs x board power x hours x PUE; emissions = energy x grid intensity.
See docs/carbon.md for the sources and what the estimate leaves out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

INTENSITY_SOURCE = (
    "Ember (2026 release), via Our World in Data's energy-data (carbon_intensity_elec, "
    "lifecycle carbon intensity of electricity generation)"
)
INTENSITY_YEAR = 2023

# Lifecycle gCO2e/kWh in 2023, rounded: the 19 countries of the example federation. Read
# from owid/energy-data's owid-energy-data.csv at commit e7897aed (Ember data up to 2025).
DEFAULT_INTENSITY: dict[str, float] = {
    "AR": 351.0,
    "BO": 501.0,
    "BR": 96.0,
    "CL": 304.0,
    "CO": 258.0,
    "CR": 25.0,
    "CU": 644.0,
    "DO": 579.0,
    "EC": 195.0,
    "GT": 310.0,
    "HN": 328.0,
    "MX": 489.0,
    "NI": 301.0,
    "PA": 266.0,
    "PE": 292.0,
    "PY": 25.0,
    "SV": 135.0,
    "UY": 113.0,
    "VE": 92.0,
}

# A country with no default: the world's figure for the same year, from the same source.
FALLBACK_INTENSITY = 483.0
FALLBACK_SOURCE = "fallback: the world's figure, " + INTENSITY_SOURCE

WATTS_SOURCE = "vendor data sheet (board power)"
# Board power (TDP) in watts by the model names the project uses (common/shares.py weights):
# "A100" is the SXM 400 W part, "A100-PCIE" the 300 W card; "H100"/"H200" are the SXM parts.
DEFAULT_WATTS: dict[str, float] = {
    "H100": 700.0,
    "H200": 700.0,
    "A100": 400.0,
    "A100-SXM": 400.0,
    "A100-PCIE": 300.0,
    "L40S": 350.0,
    "L4": 72.0,
    "A10": 150.0,
    "T4": 70.0,
    "V100": 300.0,
    "A40": 300.0,
    "RTX4090": 450.0,
}
FALLBACK_WATTS = 300.0
FALLBACK_WATTS_SOURCE = "fallback: unknown model"

DEFAULT_PUE = 1.5
MAX_INTENSITY = 2000.0  # gCO2e/kWh; the dirtiest grids are about 1000
MAX_WATTS = 5000.0
MAX_PUE = 5.0

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Figure:
    """One value with where it came from (source, and the year or the time an admin set it)."""

    value: float
    source: str
    year: int = 0
    set_at: float = 0.0


@dataclass(frozen=True)
class Estimate:
    """A run's charge: energy and emissions with the figures used."""

    kwh: float
    kgco2e: float
    intensity: float
    watts: float
    pue: float
    intensity_source: str


@dataclass(frozen=True)
class CarbonFigures:
    """What `minga admin carbon show` lists: every figure in force, with its source."""

    countries: dict[str, Figure]
    sites: dict[str, tuple[Figure | None, Figure | None]]  # site -> (intensity, PUE) set
    gpus: dict[str, Figure]


def model_key(model: str) -> str:
    """The table key of a GPU model name: upper case, no spaces ("rtx 4090" -> "RTX4090")."""
    return model.strip().upper().replace(" ", "").replace("_", "-")


def check_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code, or ValueError naming the field."""
    if not _COUNTRY.match(code):
        raise ValueError(f"country: {code!r} is not a two-letter ISO code (e.g. CL)")
    return code


def check_range(field: str, value: float, low: float, high: float) -> float:
    """`value` within [low, high] (NaN refused), or ValueError naming the field."""
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is outside [{low:g}, {high:g}]")
    return value


def default_intensity(country: str) -> Figure:
    """The shipped figure for `country`, or the documented fallback."""
    if country in DEFAULT_INTENSITY:
        return Figure(DEFAULT_INTENSITY[country], INTENSITY_SOURCE, INTENSITY_YEAR)
    return Figure(FALLBACK_INTENSITY, FALLBACK_SOURCE, INTENSITY_YEAR)


def default_watts(model: str) -> Figure:
    key = model_key(model)
    if key in DEFAULT_WATTS:
        return Figure(DEFAULT_WATTS[key], WATTS_SOURCE)
    return Figure(FALLBACK_WATTS, FALLBACK_WATTS_SOURCE)


def resolve_intensity(country: str, site: Figure | None, admin: Figure | None) -> Figure:
    """Site override > country set by an admin > country default > fallback."""
    return site or admin or default_intensity(country)


def site_intensities(
    sites: Iterable[tuple[str, str]], admin: Iterable[tuple[str, str, float]]
) -> tuple[tuple[str, float], ...]:
    """(site, gCO2e/kWh) for each (site, country), by `resolve_intensity`; `admin` holds the
    figures admins set as (kind, key, value), kind "site" or "country" (others ignored)."""
    given = {(kind, key): Figure(value, "admin") for kind, key, value in admin}
    return tuple(
        (name, resolve_intensity(country, given.get(("site", name)), given.get(("country", country))).value)
        for name, country in sites
    )


def resolve_watts(model: str, admin: Figure | None) -> Figure:
    return admin or default_watts(model)


def run_energy_kwh(gpus: int, watts: float, seconds: float, pue: float) -> float:
    """GPUs x watts x hours x PUE, in kWh."""
    return gpus * watts * seconds * pue / 3_600_000.0


def emissions_kg(kwh: float, intensity: float) -> float:
    """kWh x gCO2e/kWh, in kg."""
    return kwh * intensity / 1000.0


def estimate(gpus: int, seconds: float, watts: Figure, pue: float, intensity: Figure) -> Estimate:
    kwh = run_energy_kwh(gpus, watts.value, seconds, pue)
    return Estimate(kwh, emissions_kg(kwh, intensity.value), intensity.value, watts.value, pue, intensity.source)
