"""The site inventory, read from the site's own Ray cluster: GPU pools by model,
CPUs, memory and node count of the alive nodes.

Ray is asked through its dashboard (the state API and the cluster-status
endpoint), so no Ray driver is connected. A node's GPU model is its
`accelerator_type:<model>` resource, as Ray sets it. NVML, where present, adds the
model and memory of this host's physical GPUs. On a CPU-only machine with logical
GPUs, the operator names them (`--gpu-model`, `--gpu-memory`).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from minga.agent.nvml import PhysicalGpu, probe_nvml
from minga.v1 import common_pb2

log = logging.getLogger(__name__)

ACCELERATOR_PREFIX = "accelerator_type:"
UNKNOWN_MODEL = "GPU"
MIB = 1024 * 1024

# Per-GPU memory (MB) of well-known models, for when neither NVML nor the operator
# says. Where a model comes in several sizes the smaller is listed (A100: 40 GB,
# not 80 GB; V100: 16 GB, not 32 GB), so a job's minimum memory is never promised
# by a guess; NVML or --gpu-memory give the real figure.
KNOWN_GPU_MEMORY_MB: dict[str, int] = {
    "H200": 143771,
    "H100": 81920,
    "A100": 40960,
    "A100-40G": 40960,
    "A100-80G": 81920,
    "V100": 16384,
    "T4": 15360,
    "L4": 23034,
    "A10": 23028,
    "A10G": 23028,
}


@dataclass(frozen=True)
class NodeResources:
    """One alive Ray node, as far as the inventory cares."""

    node_id: str
    gpus: int
    gpus_free: int
    cpus: float
    memory_mb: int
    models: tuple[str, ...] = ()  # from its accelerator_type:* resources


def _nodes_from_ray(dashboard_url: str) -> list[dict]:
    from ray.util.state import list_nodes

    nodes = list_nodes(address=dashboard_url, detail=True, limit=10_000, raise_on_missing_output=False)
    return [{"node_id": n.node_id, "state": n.state, "resources_total": dict(n.resources_total or {})} for n in nodes]


def _gpu_usage_by_node(dashboard_url: str, timeout: float = 5.0) -> dict[str, float]:
    """GPUs in use per node id, from the autoscaler's load report ({} if absent)."""
    try:
        with urllib.request.urlopen(f"{dashboard_url}/api/cluster_status", timeout=timeout) as resp:
            body = json.loads(resp.read())
        usage = body["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"] or {}
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.debug("no GPU usage from %s: %s", dashboard_url, err)
        return {}
    return {node: float(res.get("GPU", [0.0])[0]) for node, res in usage.items()}


def fetch_nodes(dashboard_url: str) -> list[NodeResources]:
    """The alive nodes of the Ray cluster behind `dashboard_url`."""
    dashboard_url = dashboard_url.rstrip("/")
    used = _gpu_usage_by_node(dashboard_url)
    nodes = []
    for raw in _nodes_from_ray(dashboard_url):
        if raw["state"] != "ALIVE":
            continue
        res = raw["resources_total"]
        gpus = int(res.get("GPU", 0))
        models = tuple(sorted(k[len(ACCELERATOR_PREFIX) :] for k in res if k.startswith(ACCELERATOR_PREFIX)))
        nodes.append(
            NodeResources(
                node_id=raw["node_id"],
                gpus=gpus,
                gpus_free=max(0, gpus - int(round(used.get(raw["node_id"], 0.0)))),
                cpus=float(res.get("CPU", 0.0)),
                memory_mb=int(res.get("memory", 0) // MIB),
                models=models,
            )
        )
    return nodes


def cluster_gpu_models(dashboard_url: str) -> set[str]:
    """The GPU models (accelerator types) of the alive nodes that have GPUs."""
    return {m for n in fetch_nodes(dashboard_url) if n.gpus > 0 for m in n.models}


def _node_model(node: NodeResources, gpu_model: str | None, nvml_model: str | None) -> str:
    """Who names a node's GPUs: the operator, then Ray, then NVML, else "GPU"."""
    if gpu_model:
        return gpu_model
    if node.models:
        # Ray may add size variants next to the family ("A100", "A100-80G"); the
        # shortest name is the family, which is what jobs ask for.
        return min(node.models, key=lambda m: (len(m), m))
    return nvml_model or UNKNOWN_MODEL


def _model_memory(model: str, gpu_memory_mb: int | None, physical: Iterable[PhysicalGpu]) -> int:
    """Per-GPU memory of `model`: the operator's figure, NVML's, a known one, else 0."""
    if gpu_memory_mb:
        return gpu_memory_mb
    sizes = [g.memory_mb for g in physical if g.model == model]
    if sizes:
        return min(sizes)
    return KNOWN_GPU_MEMORY_MB.get(model, 0)


def build_inventory(
    nodes: list[NodeResources],
    gpu_model: str | None = None,
    gpu_memory_mb: int | None = None,
    physical: list[PhysicalGpu] | None = None,
) -> common_pb2.Inventory:
    """The wire inventory of `nodes` (pure: no IO, so tests feed it directly).

    NVML only sees this host, so its model names GPUs without an accelerator type
    only on a single-node cluster, where this host is the node.
    """
    physical = physical or []
    nvml_model = physical[0].model if physical and len(nodes) == 1 else None
    pools: dict[str, dict[str, int]] = {}
    for node in nodes:
        if node.gpus <= 0:
            continue
        model = _node_model(node, gpu_model, nvml_model)
        pool = pools.setdefault(model, {"total": 0, "free": 0, "largest_node": 0})
        pool["total"] += node.gpus
        pool["free"] += node.gpus_free
        pool["largest_node"] = max(pool["largest_node"], node.gpus)
    inventory = common_pb2.Inventory(
        cpus=sum(n.cpus for n in nodes),
        memory_mb=sum(n.memory_mb for n in nodes),
        nodes=len(nodes),
    )
    for model in sorted(pools):
        inventory.gpus.append(
            common_pb2.GpuPool(
                model=model,
                memory_mb=_model_memory(model, gpu_memory_mb, physical),
                **pools[model],
            )
        )
    return inventory


def collect_inventory(
    dashboard_url: str,
    gpu_model: str | None = None,
    gpu_memory_mb: int | None = None,
    nvml_probe: Callable[[], list[PhysicalGpu]] = probe_nvml,
) -> common_pb2.Inventory:
    """The inventory of the Ray cluster behind `dashboard_url`, as the broker gets it."""
    return build_inventory(fetch_nodes(dashboard_url), gpu_model, gpu_memory_mb, nvml_probe())
