"""Real NVIDIA GPUs: NVML discovery and a CUDA job through a site agent.

Skipped where NVML finds no GPU (CI, the 2-core dev machine). On a GPU host these
prove what logical GPUs cannot: the agent names the site's pool from the physical
devices (model and memory from NVML, count from Ray's own detection), and a job
placed by the broker runs CUDA work on the GPU Ray hands it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from minga.agent.local_ray import LocalRayHead
from minga.agent.nvml import probe_nvml
from minga.v1 import admin_pb2, common_pb2
from tests.fixtures_broker import start_broker
from tests.test_integration_ray import TERMINAL, logs, running_agent, submit, wait_state

PHYSICAL = probe_nvml()

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not PHYSICAL, reason="no NVIDIA GPU visible to NVML on this host"),
]

# Runs on the site with the interpreter of the test; prints what a user would check.
CUDA_JOB = (
    "import os, torch; "
    "x = torch.randn(4096, 4096, device='cuda'); "
    "y = (x @ x).sum().item(); "
    "torch.cuda.synchronize(); "
    "print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', ''), flush=True); "
    "print('DEVICE=' + torch.cuda.get_device_name(0), flush=True); "
    "print('MATMUL_FINITE=' + str(y == y), flush=True)"
)


def test_nvml_names_every_physical_gpu() -> None:
    for gpu in PHYSICAL:
        assert gpu.name.startswith("NVIDIA") or gpu.name.startswith("Tesla"), gpu.name
        assert gpu.memory_mb > 1024, gpu
        assert gpu.model and " " not in gpu.model, gpu.model


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the CUDA job needs torch")
def test_cuda_job_through_a_site_agent(tmp_path: Path) -> None:
    model = PHYSICAL[0].model
    broker = start_broker(tmp_path)
    try:
        broker.institution("unam", "MX")
        ana = broker.researcher("ana", "unam")
        token = broker.join("unam", "gpu-host")
        # gpus=None: Ray detects the GPUs itself; the agent is told no model or memory.
        with (
            LocalRayHead(gpus=None, object_store_memory=500 * 1024 * 1024) as head,
            running_agent(broker, token, head, model=None),
        ):
            admin = broker.admin
            site = next(
                s
                for s in admin.admin.ListSites(admin_pb2.ListSitesRequest(), metadata=admin.md).sites
                if s.name == "gpu-host"
            )
            pools = {p.model: p for p in site.inventory.gpus}
            assert set(pools) == {model}, pools
            assert pools[model].total == len(PHYSICAL)
            assert pools[model].memory_mb == min(g.memory_mb for g in PHYSICAL)

            job_id = submit(ana, f'{sys.executable} -c "{CUDA_JOB}"', gpus=1)
            done = wait_state(ana, job_id, TERMINAL, timeout=300)
            out = logs(ana, job_id)
        print(out)
        assert done.state == common_pb2.JOB_STATE_SUCCEEDED, (done.reason, out)
        assert done.gpu_model == model
        lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        assert len(lines["CVD"].split(",")) == 1
        assert model in lines["DEVICE"].replace(" ", "-"), lines["DEVICE"]
        assert lines["MATMUL_FINITE"] == "True"
    finally:
        broker.close()
