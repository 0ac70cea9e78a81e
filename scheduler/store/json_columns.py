"""The JSON text the store keeps in its columns for job specs (secrets apart) and site
inventories, and the domain values read back from it."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass, replace
from functools import cache, lru_cache
from typing import Any

from minga.common.domain import REDACTED, GpuPool, Inventory, JobSpec, Resources, RuntimeEnv


def spec_to_json(spec: JobSpec) -> str:
    """The spec as the jobs table shows it: secret env values are left out (only their
    keys are kept), so nothing that decodes this text can ever display one."""
    d = {name: _plain(getattr(spec, name)) for name in _SPEC_FIELDS}
    if spec.secret_env:
        d["secret_keys"] = [k for k, _ in spec.secret_env]
    return json.dumps(d, sort_keys=True)


_SPEC_FIELDS = tuple(f.name for f in fields(JobSpec) if f.name != "secret_env")


def _plain(value: object) -> object:
    """A nested dataclass as a dict (tuples stay tuples: JSON writes them as lists); what
    `dataclasses.asdict` gives for a spec, without its deep copy, which costs a submit."""
    kind: type = type(value)  # plain `type`: mypy takes type[object] for unhashable
    names = _field_names(kind)
    if names is None:
        return value
    return {name: _plain(getattr(value, name)) for name in names}


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, None for any other type (asked once per type)."""
    return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None


def secrets_to_json(spec: JobSpec) -> str:
    """The secret env values, for their own column ("" when there are none)."""
    return json.dumps(dict(spec.secret_env), sort_keys=True) if spec.secret_env else ""


def with_secrets(spec: JobSpec, secrets_json: str) -> JobSpec:
    """The spec a site gets to run: its redacted secret values replaced by the real ones."""
    if not secrets_json:
        return spec
    values: dict[str, str] = json.loads(secrets_json)
    return replace(spec, secret_env=tuple(sorted(values.items())))


@lru_cache(maxsize=250_000)
def spec_from_json(text: str) -> JobSpec:
    """Parsed once per distinct spec: specs never change after submit and JobSpec is
    frozen, so sharing the result is safe; it was 40% of a snapshot load."""
    d: dict[str, Any] = json.loads(text)
    rt = d.get("runtime_env", {})
    res = d.get("resources", {})
    return JobSpec(
        entrypoint=d["entrypoint"],
        name=d.get("name", ""),
        runtime_env=RuntimeEnv(
            working_dir_digest=rt.get("working_dir_digest", ""),
            pip=tuple(rt.get("pip", ())),
            env=tuple((k, v) for k, v in rt.get("env", ())),
        ),
        resources=Resources(
            gpus=res.get("gpus", 0),
            gpu_models=tuple(res.get("gpu_models", ())),
            min_gpu_memory_mb=res.get("min_gpu_memory_mb", 0),
            cpus=res.get("cpus", 1.0),
            memory_mb=res.get("memory_mb", 0),
        ),
        countries=tuple(d.get("countries", ())),
        walltime_seconds=d.get("walltime_seconds", 0),
        priority=d.get("priority", 0),
        max_attempts=d.get("max_attempts", 1),
        project=d.get("project", ""),
        data_country=d.get("data_country", ""),
        preemptible=d.get("preemptible", True),
        site_labels=tuple((k, v) for k, v in d.get("site_labels", ())),
        retry_failed=d.get("retry_failed", False),
        secret_env=tuple((k, REDACTED) for k in d.get("secret_keys", ())),
        notify_url=d.get("notify_url", ""),
        after=tuple(d.get("after", ())),
        low_carbon=d.get("low_carbon", False),
        low_carbon_first=d.get("low_carbon_first", False),
    )


def inventory_to_json(inv: Inventory) -> str:
    return json.dumps(asdict(inv), sort_keys=True)


def inventory_from_json(text: str) -> Inventory:
    d: dict[str, Any] = json.loads(text or "{}")
    return Inventory(
        gpus=tuple(GpuPool(**p) for p in d.get("gpus", ())),
        cpus=d.get("cpus", 0.0),
        memory_mb=d.get("memory_mb", 0),
        nodes=d.get("nodes", 0),
    )
