"""Named scenarios: a small federation and a workload of job groups in one TOML file.

The federation uses the keys of a federation file (`[settings]`, `[countries]`,
`[country_weights]`, `[[institutions]]`, `[[sites]]`, see `federation.py`); the workload
is a list of job groups, replayed with the arrival times as given (no load scaling):

    [[jobs]]
    institution = "a"      # a slug of [[institutions]]
    count = 64             # jobs in the group (>= 1)
    gpus = 1               # GPUs per job, all on one site (>= 1)
    duration = 3600        # seconds each job runs (> 0); its walltime too
    arrival = 0            # seconds, the group's first arrival (default 0)
    every = 60             # seconds between the group's arrivals (default 0: all at once)
    models = ["X"]         # allowed GPU models (default: any)
    name = "gang"          # optional label for the jobs' names

Every table is checked: an unknown key, a missing field, a wrong type, a negative or zero
count, an unknown institution or model, or a job no site could ever hold is a
`ScenarioError` naming the file and the entry. Job ids follow the file order
(`g<group>-<k>`), so jobs that arrive together are submitted in file order.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minga.scheduler.sim import carbon as sim_carbon
from minga.scheduler.sim.federation import INSTITUTION_KEYS, SETTINGS_KEYS, SITE_KEYS, Federation, from_doc
from minga.scheduler.sim.workload import SimJob

TOP_KEYS = {"settings", "countries", "country_weights", "carbon", "institutions", "sites", "jobs"}
JOB_KEYS = {"institution", "count", "gpus", "duration", "arrival", "every", "models", "name", "low_carbon"}
SHARE_POLICIES = ("static", "contribution")


class ScenarioError(ValueError):
    """A scenario file that cannot be replayed; the message says where and why."""


@dataclass(frozen=True)
class Scenario:
    name: str
    federation: Federation
    jobs: tuple[SimJob, ...]


# ---- reading ------------------------------------------------------------------------------


def resolve(arg: str | Path, directory: Path) -> Path:
    """A path to a scenario file, or the name of one in `directory` (`NAME` -> NAME.toml)."""
    path = Path(arg)
    if path.is_file():
        return path
    named = directory / f"{arg}.toml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in directory.glob("*.toml"))) or "none"
    raise ScenarioError(f"no scenario file {arg!s} and no scenario named {arg!s} in {directory} (known: {known})")


def read_doc(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document, or a `ScenarioError` for a missing or malformed file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc


def load(path: str | Path) -> Scenario:
    path = Path(path)
    return parse(read_doc(path), name=path.stem, where=str(path))


def parse(doc: Mapping[str, Any], name: str = "scenario", where: str | None = None) -> Scenario:
    """Validate a scenario document and build its federation and jobs."""
    where = where or name
    try:
        _check(doc)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    fed = from_doc(dict(doc))
    return Scenario(name=name, federation=fed, jobs=tuple(expand(doc["jobs"])))


def expand(groups: list[Mapping[str, Any]]) -> list[SimJob]:
    """The job groups as jobs: group g's k-th job arrives at arrival + k * every."""
    jobs: list[SimJob] = []
    for g, group in enumerate(groups):
        label = str(group.get("name") or group["institution"])
        start, every = float(group.get("arrival", 0.0)), float(group.get("every", 0.0))
        models = tuple(sorted(set(group.get("models", ()))))
        for k in range(int(group["count"])):
            jobs.append(
                SimJob(
                    id=f"g{g:03d}-{k:06d}",
                    institution=str(group["institution"]),
                    arrival=round(start + k * every, 3),
                    duration=float(group["duration"]),
                    gpus=int(group["gpus"]),
                    models=models,
                    name=f"{label}-{k}",
                    low_carbon=bool(group.get("low_carbon", False)),
                )
            )
    return jobs


# ---- validation ---------------------------------------------------------------------------


def _check(doc: Mapping[str, Any]) -> None:
    _keys("the file", doc, TOP_KEYS, required=("institutions", "sites", "jobs"))
    settings = _table("[settings]", doc.get("settings", {}))
    _check_settings(settings)
    try:
        sim_carbon.from_doc(doc)
    except sim_carbon.CarbonTableError as exc:
        raise ScenarioError(str(exc)) from None
    for key in ("countries", "country_weights"):
        table = _table(f"[{key}]", doc.get(key, {}))
        if key == "country_weights":
            for c, w in table.items():
                _number(f"[country_weights] {c}", w, minimum=0.0)
    institutions = _list("[[institutions]]", doc["institutions"])
    slugs: set[str] = set()
    for k, inst in enumerate(institutions):
        where = f"institutions[{k}]"
        _keys(where, inst, INSTITUTION_KEYS, required=("slug", "country"))
        slug = _string(f"{where}.slug", inst["slug"])
        _string(f"{where}.country", inst["country"])
        if slug in slugs:
            raise ScenarioError(f"{where}: institution {slug!r} listed twice")
        slugs.add(slug)
        if "weight" in inst:
            _number(f"{where}.weight", inst["weight"], minimum=0.0)
        for m, n in _table(f"{where}.guarantee", inst.get("guarantee", {})).items():
            _integer(f"{where}.guarantee.{m}", n, minimum=0)
        for key in ("borrowing_limit", "lending_limit"):
            if key in inst:
                _integer(f"{where}.{key}", inst[key], minimum=0)
    sites = _list("[[sites]]", doc["sites"])
    names: set[str] = set()
    largest: dict[str, int] = {}  # model -> most GPUs one node of a site holds
    for k, site in enumerate(sites):
        where = f"sites[{k}]"
        _keys(where, site, SITE_KEYS, required=("name", "institution", "country", "model", "gpus"))
        name = _string(f"{where}.name", site["name"])
        if name in names:
            raise ScenarioError(f"{where}: site {name!r} listed twice")
        names.add(name)
        _known(f"{where}.institution", site["institution"], slugs)
        _string(f"{where}.country", site["country"])
        model = _string(f"{where}.model", site["model"])
        gpus = _integer(f"{where}.gpus", site["gpus"], minimum=1)
        node = _integer(f"{where}.largest_node", site.get("largest_node", gpus), minimum=1)
        if node > gpus:
            raise ScenarioError(f"{where}: largest_node {node} is more than the site's {gpus} GPUs")
        for key in ("memory_mb", "nodes"):
            if key in site:
                _integer(f"{where}.{key}", site[key], minimum=0)
        if "cpus" in site:
            _number(f"{where}.cpus", site["cpus"], minimum=0.0)
        largest[model] = max(largest.get(model, 0), node)
    groups = _list("[[jobs]]", doc["jobs"])
    for k, group in enumerate(groups):
        _check_group(f"jobs[{k}]", group, slugs, largest)


def _check_settings(settings: Mapping[str, Any]) -> None:
    _keys("[settings]", settings, set(SETTINGS_KEYS), required=())
    for key, kind in SETTINGS_KEYS.items():
        if key not in settings:
            continue
        value, where = settings[key], f"[settings] {key}"
        if key == "policy":
            if value not in SHARE_POLICIES:
                raise ScenarioError(f"{where}: {value!r} is not one of {', '.join(SHARE_POLICIES)}")
        elif key == "model_weights":
            for m, w in _table(where, value).items():
                _number(f"{where}.{m}", w, minimum=0.0)
        elif kind is bool:
            if not isinstance(value, bool):
                raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        else:
            _number(where, value, minimum=0.0)
    if "cycle_seconds" in settings and settings["cycle_seconds"] <= 0:
        raise ScenarioError("[settings] cycle_seconds: must be more than 0")


def _check_group(where: str, group: Any, slugs: set[str], largest: Mapping[str, int]) -> None:
    _keys(where, group, JOB_KEYS, required=("institution", "count", "gpus", "duration"))
    _known(f"{where}.institution", group["institution"], slugs)
    _integer(f"{where}.count", group["count"], minimum=1)
    gpus = _integer(f"{where}.gpus", group["gpus"], minimum=1)
    duration = _number(f"{where}.duration", group["duration"], minimum=0.0)
    if duration <= 0:
        raise ScenarioError(f"{where}.duration: must be more than 0 seconds")
    _number(f"{where}.arrival", group.get("arrival", 0), minimum=0.0)
    _number(f"{where}.every", group.get("every", 0), minimum=0.0)
    if "name" in group:
        _string(f"{where}.name", group["name"])
    if not isinstance(group.get("low_carbon", False), bool):
        raise ScenarioError(f"{where}.low_carbon: expected true or false, got {group['low_carbon']!r}")
    models = group.get("models", [])
    if not isinstance(models, list) or not models and "models" in group:
        raise ScenarioError(f"{where}.models: expected a non-empty list of GPU models, got {models!r}")
    for m in models:
        _known(f"{where}.models", m, set(largest), what="GPU model")
    allowed = models or list(largest)
    if max((largest[m] for m in allowed), default=0) < gpus:
        raise ScenarioError(f"{where}: no site can hold {gpus} GPUs of {' or '.join(sorted(allowed))} on one node")


def _keys(where: str, table: Any, known: set[str], required: tuple[str, ...]) -> None:
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where}: expected a table, got {table!r}")
    unknown = sorted(set(table) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})")
    missing = [k for k in required if k not in table]
    if missing:
        raise ScenarioError(f"{where}: missing {', '.join(map(repr, missing))}")


def _table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected a table, got {value!r}")
    return value


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{where}: expected at least one entry")
    return value


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _number(where: str, value: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where}: expected a number, got {value!r}")
    if value < minimum:
        raise ScenarioError(f"{where}: must be at least {minimum:g}, got {value!r}")
    return float(value)


def _integer(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ScenarioError(f"{where}: must be at least {minimum}, got {value!r}")
    return value


def _known(where: str, value: Any, known: set[str], what: str = "institution") -> str:
    if not isinstance(value, str) or value not in known:
        raise ScenarioError(f"{where}: unknown {what} {value!r} (known: {', '.join(sorted(known))})")
    return value
