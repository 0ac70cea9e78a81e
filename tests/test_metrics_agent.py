"""An agent's /metrics, scraped over HTTP from a real agent between a fake broker (real
gRPC) and a fake Ray backend: Ray reachability, runs by state, and start times move as runs
start, run and fail and as Ray goes down; a bad --metrics-listen is refused in one line."""

from __future__ import annotations

import dataclasses
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from minga.agent.session import Agent
from minga.cli.main import app
from minga.common.domain import RunState
from minga.v1 import common_pb2
from tests.eventually import eventually
from tests.fakes.fake_backend import FakeBackend
from tests.fakes.fake_broker import FakeBroker, make_start_run
from tests.test_agent_session import INVENTORY, fast_config


def scrape(agent: Agent) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(agent.metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(agent: Agent, name: str, **labels: str) -> float:
    return scrape(agent).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Agent, FakeBroker, FakeBackend]]:
    broker, backend = FakeBroker().start(), FakeBackend()
    config = dataclasses.replace(fast_config(broker, tmp_path), health_seconds=0.05, metrics_listen="127.0.0.1:0")
    running = Agent(config, backend=backend, inventory_source=lambda: INVENTORY).start()
    yield running, broker, backend
    running.stop()
    broker.stop()


def test_runs_ray_and_start_times_move(agent) -> None:
    agent, broker, backend = agent
    assert agent.metrics_url.startswith("http://127.0.0.1:")
    eventually(lambda: sample(agent, "minga_agent_connected") == 1, what="the agent welcomed")
    eventually(lambda: sample(agent, "minga_agent_ray_reachable") == 1, what="a probe that answered")
    assert sample(agent, "minga_agent_runs", state="RUNNING") == 0

    broker.start_run(make_start_run("minga-j-1-a1", "j-1", epoch=1, gpus=1, gpu_model="A100"))
    assert broker.wait_for(lambda: common_pb2.RUN_STATE_STARTING in broker.states("minga-j-1-a1"))
    assert sample(agent, "minga_agent_ray_submit_duration_seconds_count") == 1
    assert sample(agent, "minga_agent_runs", state="STARTING") == 1
    assert sample(agent, "minga_agent_run_start_duration_seconds_count") == 0

    backend.set_state("minga-j-1-a1", RunState.RUNNING)
    assert broker.wait_for(lambda: common_pb2.RUN_STATE_RUNNING in broker.states("minga-j-1-a1"))
    assert sample(agent, "minga_agent_runs", state="RUNNING") == 1
    assert sample(agent, "minga_agent_run_start_duration_seconds_count") == 1

    backend.set_state("minga-j-1-a1", RunState.FAILED, "exit code 1")
    assert broker.wait_for(lambda: common_pb2.RUN_STATE_FAILED in broker.states("minga-j-1-a1"))
    eventually(lambda: sample(agent, "minga_agent_runs", state="RUNNING") == 0, what="the run no longer running")

    backend.down = True
    eventually(lambda: sample(agent, "minga_agent_ray_reachable") == 0, what="a probe that failed")
    # Its own registry: nothing of the process-wide default one (python_gc_*, process_*).
    assert all(name.startswith("minga_agent_") for name, _ in scrape(agent))


@pytest.mark.parametrize("listen", ["9464", "127.0.0.1:http"])
def test_a_malformed_agent_metrics_listen_is_refused_in_one_line(tmp_path: Path, listen: str) -> None:
    env = {"MINGA_DATA_DIR": str(tmp_path), "MINGA_CONFIG_DIR": str(tmp_path / "config")}
    result = CliRunner().invoke(
        app, ["agent", "run", "--ray-address", "http://127.0.0.1:8265", "--metrics-listen", listen], env=env
    )
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert "--metrics-listen" in line and "HOST:PORT" in line
