"""The agent against real local Ray heads: the job API adapter, GPU assignment,
idempotent submits, stop, recovery from Ray's metadata, and one whole run from a
StartRun (with a working-dir package) to SUCCEEDED with its log."""

from __future__ import annotations

import io
import shlex
import sys
import zipfile
from pathlib import Path

import pytest

from minga.agent import backend as backend_mod
from minga.agent.backend import JobSubmissionBackend, RunRequest
from minga.agent.inventory import collect_inventory
from minga.agent.local_ray import LocalRayHead
from minga.agent.session import Agent, AgentConfig
from minga.common.domain import RunState
from minga.v1 import common_pb2
from tests.eventually import eventually
from tests.fakes.fake_broker import FakeBroker, make_start_run

pytestmark = pytest.mark.ray

PY = shlex.quote(sys.executable)


def test_job_gets_its_gpus_env_and_working_dir_and_is_submitted_once(ray_head: LocalRayHead, tmp_path: Path) -> None:
    (tmp_path / "show.py").write_text(
        "import os\n"
        "print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', ''))\n"
        "print('FLAVOUR=' + os.environ.get('FLAVOUR', ''))\n"
    )
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    run = RunRequest(
        run_id="minga-j-gpu-a1",
        job_id="j-gpu",
        epoch=7,
        entrypoint=f"{PY} show.py",
        gpus=2,
        cpus=1,
        memory_mb=64,
        gpu_model="A100",
        working_dir=str(tmp_path),
        env={"FLAVOUR": "quinoa"},
    )
    assert ray.reachable()
    assert ray.submit(run) is True
    assert ray.submit(run) is False  # already known: not submitted again
    eventually(lambda: (ray.status(run.run_id) or RunState.STARTING).terminal, timeout=60)
    assert ray.status(run.run_id) is RunState.SUCCEEDED, ray.logs(run.run_id)
    logs = ray.logs(run.run_id)
    cvd = next(line for line in logs.splitlines() if line.startswith("CVD="))[4:]
    assert len(cvd.split(",")) == 2, logs
    assert "FLAVOUR=quinoa" in logs
    recovered = {r.run_id: r for r in ray.list_runs()}[run.run_id]
    assert (recovered.job_id, recovered.epoch, recovered.state) == ("j-gpu", 7, RunState.SUCCEEDED)
    assert ray.status("minga-never-submitted") is None
    assert ray.logs("minga-never-submitted") == ""
    assert ray.stop("minga-never-submitted") is False


def test_stop_ends_a_running_job_and_frees_its_gpus(ray_head: LocalRayHead) -> None:
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    run = RunRequest(run_id="minga-j-sleep-a1", job_id="j-sleep", epoch=1, entrypoint="sleep 120", gpus=3)

    def free_gpus() -> int:
        return collect_inventory(ray_head.dashboard_url, nvml_probe=lambda: []).gpus[0].free

    assert ray.submit(run)
    eventually(lambda: ray.status(run.run_id) is RunState.RUNNING, timeout=60)
    eventually(lambda: free_gpus() == 1, timeout=30)  # Ray reports usage with a lag
    assert ray.stop(run.run_id) is True
    eventually(lambda: ray.status(run.run_id) is RunState.STOPPED, timeout=30)
    eventually(lambda: free_gpus() == 4, timeout=30)


def test_model_pinning_only_when_the_cluster_mixes_models(
    ray_head: LocalRayHead, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    assert ray._accelerator_resources("A100") == {}  # one model: nothing to pin
    monkeypatch.setattr("minga.agent.inventory.cluster_gpu_models", lambda _url: {"A100", "T4"})
    assert ray._accelerator_resources("A100") == {}  # the model list is cached
    ray = JobSubmissionBackend(ray_head.dashboard_url)  # a fresh backend reads it again
    assert ray._accelerator_resources("A100") == {"accelerator_type:A100": backend_mod.ACCELERATOR_SHARE}
    assert ray._accelerator_resources("H100") == {}  # not in the cluster


def test_agent_runs_a_job_from_start_run_to_success_with_its_log(ray_head: LocalRayHead, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train.py", "import os, ray\nprint('gpus', os.environ['CUDA_VISIBLE_DEVICES'])\nprint('bye')\n")
    broker = FakeBroker().start()
    digest = broker.add_package(buf.getvalue())
    config = AgentConfig(
        broker=broker.address,
        token=broker.token,
        ray_dashboard_url=ray_head.dashboard_url,
        heartbeat_seconds=1,
        inventory_seconds=2,
        cache_dir=tmp_path / "cache",
    )
    agent = Agent(config).start()
    try:
        assert broker.wait_for(lambda: broker.connected() and len(broker.hellos) == 1, timeout=30)
        pools = {p.model: p.total for p in broker.hellos[0].inventory.gpus}
        assert pools == {"A100": 4}
        broker.start_run(
            make_start_run(
                "minga-j-e2e-a1",
                "j-e2e",
                epoch=2,
                entrypoint="python train.py",
                gpus=1,
                gpu_model="A100",
                working_dir_digest=digest,
            )
        )
        assert broker.wait_for(lambda: common_pb2.RUN_STATE_SUCCEEDED in broker.states("minga-j-e2e-a1"), timeout=90), (
            broker.reports("minga-j-e2e-a1")
        )
        log = broker.log("minga-j-e2e-a1").decode()
        assert "gpus " in log and "bye" in log
        assert broker.states("minga-j-e2e-a1")[0] == common_pb2.RUN_STATE_STARTING
    finally:
        agent.stop()
        broker.stop()


def test_two_sites_side_by_side(ray_head: LocalRayHead, ray_head_b: LocalRayHead) -> None:
    assert ray_head.dashboard_url != ray_head_b.dashboard_url
    a = collect_inventory(ray_head.dashboard_url, nvml_probe=lambda: [])
    b = collect_inventory(ray_head_b.dashboard_url, nvml_probe=lambda: [])
    assert [(p.model, p.total) for p in a.gpus] == [("A100", 4)]
    assert [(p.model, p.total, p.memory_mb) for p in b.gpus] == [("T4", 2, 15360)]
