"""Inventory: GPU pools by model from Ray's nodes, with NVML and operator overrides."""

from __future__ import annotations

import sys

import pytest
from ray.job_submission import JobStatus

from minga.agent import inventory as inv
from minga.agent.inventory import NodeResources, build_inventory, collect_inventory
from minga.agent.local_ray import LocalRayHead
from minga.agent.nvml import PhysicalGpu, model_from_name
from minga.agent.states import RAY_TO_RUN_STATE
from minga.v1 import common_pb2


def node(node_id: str, gpus: int, models: tuple[str, ...] = (), free: int | None = None) -> NodeResources:
    return NodeResources(node_id, gpus, gpus if free is None else free, cpus=8, memory_mb=1000, models=models)


def pools(inventory: common_pb2.Inventory) -> dict[str, tuple[int, int, int, int]]:
    return {p.model: (p.memory_mb, p.total, p.free, p.largest_node) for p in inventory.gpus}


def test_pools_by_model_with_largest_node() -> None:
    got = build_inventory(
        [
            node("a", 4, ("A100",), free=1),
            node("b", 2, ("A100",)),
            node("c", 8, ("H100",)),
            node("d", 0),
        ]
    )
    assert pools(got) == {"A100": (40960, 6, 3, 4), "H100": (81920, 8, 8, 8)}
    assert (got.cpus, got.memory_mb, got.nodes) == (32, 4000, 4)


def test_operator_names_logical_gpus() -> None:
    got = build_inventory([node("a", 2)], gpu_model="L4", gpu_memory_mb=1234)
    assert pools(got) == {"L4": (1234, 2, 2, 2)}


def test_unknown_model_and_memory() -> None:
    assert pools(build_inventory([node("a", 2)])) == {"GPU": (0, 2, 2, 2)}
    assert pools(build_inventory([node("a", 2, ("XPU9",))])) == {"XPU9": (0, 2, 2, 2)}


def test_nvml_names_and_sizes_this_hosts_gpus() -> None:
    physical = [PhysicalGpu("NVIDIA A100-SXM4-80GB", 81920)] * 2
    # Ray said A100; NVML knows it is the 80 GB kind.
    assert pools(build_inventory([node("a", 2, ("A100",))], physical=physical)) == {"A100": (81920, 2, 2, 2)}
    # No accelerator type on the single node: NVML names it.
    assert pools(build_inventory([node("a", 2)], physical=physical)) == {"A100": (81920, 2, 2, 2)}


def test_size_variant_resources_fold_into_the_family() -> None:
    assert pools(build_inventory([node("a", 2, ("A100", "A100-80G"))])) == {"A100": (40960, 2, 2, 2)}


@pytest.mark.parametrize(
    "name,model",
    [
        ("NVIDIA H200", "H200"),
        ("Tesla T4", "T4"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA GeForce RTX 4090", "GeForce-RTX-4090"),
    ],
)
def test_nvml_names_follow_rays_accelerator_types(name: str, model: str) -> None:
    assert model_from_name(name) == model


def test_dead_nodes_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = [
        {"node_id": "n1", "state": "ALIVE", "resources_total": {"GPU": 2.0, "CPU": 4.0, "accelerator_type:T4": 1.0}},
        {"node_id": "n2", "state": "DEAD", "resources_total": {"GPU": 8.0, "CPU": 4.0, "accelerator_type:T4": 1.0}},
    ]
    monkeypatch.setattr(inv, "_nodes_from_ray", lambda _url: raw)
    monkeypatch.setattr(inv, "_gpu_usage_by_node", lambda _url: {"n1": 1.0})
    got = collect_inventory("http://unused", nvml_probe=lambda: [])
    assert pools(got) == {"T4": (15360, 2, 1, 2)}
    assert got.nodes == 1


def test_state_table_covers_every_ray_status() -> None:
    assert set(RAY_TO_RUN_STATE) == set(JobStatus)


@pytest.mark.ray
def test_inventory_of_a_real_ray_head(ray_head: LocalRayHead) -> None:
    got = collect_inventory(ray_head.dashboard_url, nvml_probe=lambda: [])
    assert pools(got) == {"A100": (40960, 4, 4, 4)}
    assert got.nodes == 1
    assert got.cpus == ray_head.cpus
    assert got.memory_mb > 0


class FakeNvml:
    """Just enough of pynvml for probe_nvml."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[tuple[bytes | str, int]] | None, fail_init: bool = False) -> None:
        self.gpus = gpus or []
        self.fail_init = fail_init
        self.shutdown = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes | str:
        return self.gpus[handle][0]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> object:
        return type("Memory", (), {"total": self.gpus[handle][1]})()


def test_probe_nvml_reads_names_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from minga.agent.nvml import probe_nvml

    fake = FakeNvml([(b"NVIDIA H200", 143771 * 1024 * 1024), ("Tesla T4", 15360 * 1024 * 1024)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus = probe_nvml()
    assert [(g.model, g.memory_mb) for g in gpus] == [("H200", 143771), ("T4", 15360)]
    assert fake.shutdown


def test_probe_nvml_tolerates_no_library_and_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    from minga.agent.nvml import probe_nvml

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(None, fail_init=True))
    assert probe_nvml() == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert probe_nvml() == []
