"""JSON encoding of the domain values the store keeps in text columns."""
from __future__ import annotations

import json
from functools import lru_cache
from dataclasses import asdict
from typing import Any

from scheduler.domain import GpuPool, Inventory, JobSpec, Resources, RuntimeEnv


def spec_to_json(spec: JobSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


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
