"""Energy and emissions in the simulator (issue 16, part 4; docs/carbon.md "In the simulator").

A federation file may carry a `[carbon]` table: `pue`, `[carbon.intensity]` (country ->
gCO2e/kWh) and `[carbon.gpu_watts]` (model -> W). What it leaves out comes from the tables
the broker ships (`common/carbon.py`), so a run is charged exactly as the broker charges
it: GPUs x W x hours x PUE, times the intensity of its site's country.

`opt_in` marks a share of the jobs as low-carbon, the same jobs for the same share on the
same trace, so a run where they opt in compares with one where nobody does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from minga.common.carbon import (
    DEFAULT_PUE,
    MAX_INTENSITY,
    MAX_PUE,
    MAX_WATTS,
    check_range,
    default_intensity,
    default_watts,
    emissions_kg,
    run_energy_kwh,
)
from minga.scheduler.sim.workload import SimJob, name_fraction

CARBON_KEYS = {"pue", "intensity", "gpu_watts"}


class CarbonTableError(ValueError):
    """A `[carbon]` table that is not what the simulator reads."""


@dataclass(frozen=True)
class SimCarbon:
    """The figures a simulation charges runs with: set in the file, else the shipped ones."""

    intensity: Mapping[str, float] = field(default_factory=dict)  # country -> gCO2e/kWh
    gpu_watts: Mapping[str, float] = field(default_factory=dict)  # model -> W
    pue: float = DEFAULT_PUE

    def country_intensity(self, country: str) -> float:
        return self.intensity.get(country, default_intensity(country).value)

    def watts(self, model: str) -> float:
        return self.gpu_watts.get(model, default_watts(model).value)

    def charge(self, gpus: int, model: str, seconds: float, country: str) -> tuple[float, float]:
        """(kWh, kgCO2e) of `gpus` GPUs of `model` held `seconds` in `country`."""
        kwh = run_energy_kwh(gpus, self.watts(model), seconds, self.pue)
        return kwh, emissions_kg(kwh, self.country_intensity(country))


def from_doc(doc: Mapping[str, Any]) -> SimCarbon:
    """The `[carbon]` table of a federation document; CarbonTableError names what is wrong."""
    table = doc.get("carbon", {})
    if not isinstance(table, Mapping):
        raise CarbonTableError("[carbon] must be a table")
    unknown = sorted(set(table) - CARBON_KEYS)
    if unknown:
        raise CarbonTableError(f"[carbon]: unknown key {unknown[0]!r}; known: {', '.join(sorted(CARBON_KEYS))}")
    try:
        pue = check_range("[carbon] pue", float(table.get("pue", DEFAULT_PUE)), 1.0, MAX_PUE)
        intensity = _figures(table, "intensity", MAX_INTENSITY)
        watts = _figures(table, "gpu_watts", MAX_WATTS)
    except (TypeError, ValueError) as exc:
        raise CarbonTableError(str(exc)) from exc
    return SimCarbon(intensity=intensity, gpu_watts=watts, pue=pue)


def _figures(table: Mapping[str, Any], key: str, high: float) -> dict[str, float]:
    given = table.get(key, {})
    if not isinstance(given, Mapping):
        raise CarbonTableError(f"[carbon.{key}] must be a table")
    return {str(k): check_range(f"[carbon.{key}] {k}", float(v), 0.0, high) for k, v in given.items()}


def opt_in(jobs: Sequence[SimJob], share: float, first: bool = False, draw: int = 0) -> list[SimJob]:
    """The jobs, with those `opts_in` picks opting in to low-carbon placement (`first`: with
    `--low-carbon-first`); the others unchanged."""
    return [replace(j, low_carbon=True, low_carbon_first=first) if opts_in(j, share, draw) else j for j in jobs]


def opts_in(job: SimJob, share: float, draw: int = 0) -> bool:
    """Whether `job` is among the `share` of jobs that opt in: a hash of its id (and of the
    `draw`, for another sample of the same share), so the same jobs opt in on every run of
    the same trace, and a larger share keeps the smaller's jobs."""
    return name_fraction(f"low-carbon:{draw}:{job.id}") < share
