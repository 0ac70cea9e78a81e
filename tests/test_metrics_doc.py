"""docs/metrics.md lists exactly the metrics a leading broker and an agent expose, each with
its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from minga.agent.metrics import AgentMetrics
from minga.v1 import common_pb2, job_pb2
from tests.fixtures_broker import ScriptedSite, gpu_inventory, start_broker

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(minga_\w+)` \| (\w+) \|([^|]*)\|", re.M)

Listed = dict[str, tuple[str, frozenset[str]]]


def documented(section: str) -> Listed:
    """name -> (type, labels) from the table under `## {section}`."""
    text = DOC.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for name, kind, labels in ROW.findall(text):
        words = (part.strip() for part in re.sub(r"\(.*?\)", "", labels).split(","))  # "state (`A`, `B`)": state
        rows[name] = (kind, frozenset(w for w in words if w))
    return rows


def exposed(registry: CollectorRegistry) -> Listed:
    """name -> (type, labels), with counters under their exposed `_total` name."""
    out = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, frozenset(labels))
    return out


def test_the_broker_table_matches_what_a_leading_broker_exposes(tmp_path: Path) -> None:
    broker = start_broker(tmp_path)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        for gpus in (2, 4):  # one runs, one waits
            spec = common_pb2.JobSpec(entrypoint="true", resources=common_pb2.Resources(gpus=gpus))
            ana.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=ana.md)
        site.next("start")
        broker.full_pass()
        metrics = broker.broker.metrics
        # Series appear with their first event; make one of each so every label shows.
        metrics.rpcs.labels("/minga.v1.JobService/SubmitJob", "OK").inc(0)
        metrics.rpc_seconds.labels("/minga.v1.JobService/SubmitJob")
        metrics.wait_seconds.labels("uchile")
        metrics.placements.labels("uchile")
        metrics.preemptions.labels("reclaim")
        metrics.preempted_gpu_seconds.labels("reclaim")
        metrics.jobs_finished.labels("FAILED", "uchile")
        got = exposed(metrics.registry)
    finally:
        site.close()
        broker.close()
    doc = documented("The broker")
    assert set(doc) == set(got)
    assert {n: doc[n] for n in got} == got


def test_the_agent_table_matches_what_an_agent_exposes() -> None:
    metrics = AgentMetrics()
    metrics.watch(lambda: {}, lambda: True)
    assert documented("An agent") == exposed(metrics.registry)
