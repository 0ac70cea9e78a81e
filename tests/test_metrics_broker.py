"""The broker's /metrics, scraped over HTTP from a real broker on port 0 and parsed with
prometheus_client's own parser: the figures move as jobs run, are preempted and fail; the
series stay bounded by institutions and sites, not jobs; a bad --metrics-listen is refused."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from minga.cli.main import app
from minga.common.clock import FakeClock
from minga.common.domain import InvalidArgument
from minga.scheduler.metrics.federation import REASONS
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def scrape(broker: RunningBroker) -> Samples:
    """Every sample, keyed by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(scrape_text(broker.broker.metrics_url)):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def scrape_until(broker: RunningBroker, ready: Callable[[Samples], bool]) -> Samples:
    """The first scrape `ready` accepts."""
    return eventually(lambda: next((s for s in [scrape(broker)] if ready(s)), None), what="a scrape")


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series not (yet) exposed."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` carrying at least `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, key), v in samples.items() if n == name and wanted <= key)


def submit(who: Caller, gpus: int, max_attempts: int = 3) -> str:
    spec = common_pb2.JobSpec(
        entrypoint="python train.py",
        resources=common_pb2.Resources(gpus=gpus, gpu_models=["A100"]),
        max_attempts=max_attempts,
    )
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


def state(who: Caller, job_id: str) -> int:
    return who.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=who.md).state


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[RunningBroker, FakeClock]]:
    clock = FakeClock()
    # The fake clock moves by hand: a lease TTL of a month keeps the site.
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400, metrics_listen="127.0.0.1:0")
    yield broker, clock
    broker.close()


def test_figures_move_as_jobs_run_are_preempted_and_fail(metered) -> None:
    broker, clock = metered
    assert broker.broker.metrics_url.startswith("http://127.0.0.1:")
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    admin = broker.admin
    admin.admin.SetPolicy(
        admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(preemption_grace_seconds=0.001)), metadata=admin.md
    )  # no grace: the owner reclaims at once
    ana, bia = broker.researcher("ana", "uchile"), broker.researcher("bia", "usp")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        before = scrape_until(broker, lambda s: value(s, "minga_sites", state="READY") == 1)
        assert value(before, "minga_leader") == 1
        assert value(before, "minga_site_gpus", site="dcc", gpu_model="A100", state="free") == 4

        # usp borrows uchile's idle GPUs.
        borrowed = submit(bia, 4)
        start = site.next("start").start
        site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
        eventually(lambda: state(bia, borrowed) == common_pb2.JOB_STATE_RUNNING)
        running = scrape(broker)
        assert value(running, "minga_running_jobs", institution="usp", site="dcc") == 1
        assert value(running, "minga_running_gpus", institution="usp", site="dcc") == 4
        assert value(running, "minga_site_gpus", site="dcc", gpu_model="A100", state="used") == 4
        assert value(running, "minga_institution_held_gpus", institution="usp") == 4
        assert value(running, "minga_institution_borrowed_gpus", institution="usp", gpu_model="A100") == 4
        assert value(running, "minga_institution_lent_gpus", institution="uchile", gpu_model="A100") == 4
        assert value(running, "minga_institution_guaranteed_gpus", institution="uchile", gpu_model="A100") == 4
        assert value(running, "minga_job_wait_seconds_count", institution="usp") == 1
        assert value(running, "minga_rpcs_total", method="/minga.v1.JobService/SubmitJob", code="OK") == 1

        # The owner wants them back: 100 s of usp's running work is lost to the reclaim.
        clock.advance(100)
        owned = submit(ana, 4, max_attempts=1)
        pending = scrape(broker)
        assert total(pending, "minga_pending_jobs", institution="uchile") == 1
        assert total(pending, "minga_pending_gpus", institution="uchile") == 4
        assert value(pending, "minga_fairness_error_ratio") == 1.0  # uchile is owed all 4, holds none
        stop = site.next("stop").stop
        assert stop.run_id == start.run_id
        preempted = scrape(broker)
        assert value(preempted, "minga_preemptions_total", cause="reclaim") == 1
        assert value(preempted, "minga_preemption_lost_gpu_seconds_total", cause="reclaim") == pytest.approx(400)
        site.report(start.run_id, common_pb2.RUN_STATE_STOPPED)

        # uchile's job runs, and fails: it has one attempt.
        again = site.next("start").start
        assert again.job_id == owned
        site.report(again.run_id, common_pb2.RUN_STATE_RUNNING)
        eventually(lambda: state(ana, owned) == common_pb2.JOB_STATE_RUNNING)
        # usp's preempted job waits meanwhile, with a reason from the bounded set.
        requeued = scrape(broker)
        assert total(requeued, "minga_pending_jobs", institution="usp") == 1
        reasons = {dict(key)["reason"] for (n, key), v in requeued.items() if n == "minga_pending_jobs" and v}
        assert reasons and reasons <= REASONS | {"new"}
        assert value(requeued, "minga_fairness_error_ratio") == 0.0  # usp is owed nothing of uchile's own
        site.report(again.run_id, common_pb2.RUN_STATE_FAILED, "exit code 1")
        eventually(lambda: state(ana, owned) == common_pb2.JOB_STATE_FAILED)
        after = scrape_until(broker, lambda s: value(s, "minga_placements_total", institution="usp") == 2)
        assert value(after, "minga_jobs_finished_total", state="FAILED", institution="uchile") == 1
        assert value(after, "minga_running_gpus", institution="uchile", site="dcc") == 0
        assert value(after, "minga_job_wait_seconds_count", institution="usp") == 2
        assert value(after, "minga_cycles_total", outcome="ok") > 0
        assert value(after, "minga_cycle_phase_duration_seconds_count", phase="decide") > 0

        # A refused call is counted with its code.
        with pytest.raises(grpc.RpcError):
            ana.jobs.GetJob(job_pb2.GetJobRequest(job_id="j-0000000000"), metadata=ana.md)
        refused = scrape(broker)
        assert value(refused, "minga_rpcs_total", method="/minga.v1.JobService/GetJob", code="NOT_FOUND") == 1
    finally:
        site.close()


def test_series_are_bounded_by_institutions_and_sites_not_by_jobs(metered) -> None:
    broker, _ = metered
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 2))
    try:
        site.next("welcome")
        ids = [submit(ana, 1) for _ in range(5)]
        broker.full_pass()
        few = scrape(broker)
        ids += [submit(ana, 1) for _ in range(60)]
        broker.full_pass()
        many = scrape(broker)
        assert total(many, "minga_pending_jobs") == total(few, "minga_pending_jobs") + 60  # the figures moved
        assert set(many) == set(few)  # the series did not
        assert all(name.startswith("minga_") for name, _ in many)  # its own registry, not the global one
        text = scrape_text(broker.broker.metrics_url)
        assert not any(job_id in text for job_id in ids) and "ana" not in text
    finally:
        site.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("listen", ["9464", "localhost:http", ":9464", "127.0.0.1:99999"])
def test_a_malformed_metrics_listen_is_refused_in_one_line(tmp_path: Path, listen: str) -> None:
    env = {"MINGA_DATA_DIR": str(tmp_path), "MINGA_CONFIG_DIR": str(tmp_path / "config")}
    result = CliRunner().invoke(
        app, ["broker", "serve", "--listen", "127.0.0.1:0", "--metrics-listen", listen], env=env
    )
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert "--metrics-listen" in line and "HOST:PORT" in line


def test_a_taken_metrics_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidArgument, match=f"--metrics-listen 127.0.0.1:{port}: cannot listen there"):
            start_broker(tmp_path, metrics_listen=f"127.0.0.1:{port}")
