"""Fair-share preemption through a real broker on port 0, a scripted site and the injected
clock: an institution below its fair share now gets it back, at most `preemption_cap` of
the federation's GPUs per cycle, each stop sent with the start of the job it makes room
for in the same cycle; the preempted jobs say why and for whom (`job status`), the audit
log has the scheduler's lines, and once the shares are even nothing more is preempted.
With `--no-fair-share-preemption`, nothing is.

The test runs every cycle itself (`run_once`), so "a cycle ran" is a returned value, and
"nothing happened" is asserted only after one has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minga.common.clock import FakeClock
from minga.scheduler.cycle import CycleResult
from minga.v1 import common_pb2, site_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_preemption_record import audit, get, minga, submit

GPUS = 8
GRACE = 600.0  # the default preemption grace (`policy set --preemption-grace`)


@dataclass
class Federation:
    broker: RunningBroker
    clock: FakeClock
    site: ScriptedSite
    admin: Caller
    a: Caller
    b: Caller
    probes: int = 0

    def cycle(self) -> CycleResult:
        return self.broker.broker.core.cycle.run_once()

    def sent(self) -> list[site_pb2.BrokerMessage]:
        """Every start and stop the broker has sent the site so far. A probe proves none is
        still on its way: the broker answers a report about a run it does not know with a
        stop, on the same ordered stream, after what it published before."""
        self.probes += 1
        probe = f"minga-probe-{self.probes}"
        self.site.report(probe, common_pb2.RUN_STATE_RUNNING)
        got: list[site_pb2.BrokerMessage] = []
        while True:
            msg = self.site.inbox.get(timeout=10)
            kind = msg.WhichOneof("body")
            if kind == "stop" and msg.stop.run_id == probe:
                return got
            if kind in ("start", "stop"):
                got.append(msg)

    def running(self, starts: list[site_pb2.StartRun]) -> None:
        """The site runs what it was told to, and the broker has heard it."""
        for start in starts:
            self.site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
        eventually(lambda: all(get(self.admin, s.job_id).state == common_pb2.JOB_STATE_RUNNING for s in starts))

    def stopped(self, stops: list[site_pb2.StopRun]) -> None:
        for stop in stops:
            self.site.report(stop.run_id, common_pb2.RUN_STATE_STOPPED)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    clock = FakeClock()
    # Minutes pass on the fake clock between heartbeats: a long lease TTL keeps the site.
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400)
    broker.broker.core.cycle.stop()  # the test runs each cycle itself
    for slug, country in (("host", "CL"), ("a", "AR"), ("b", "BR")):
        broker.institution(slug, country)
    admin = broker.admin
    out = minga(broker, admin.token, "admin", "policy", "set", "--policy", "static", "-o", "json")
    assert out.exit_code == 0, out.output
    policy = json.loads(out.stdout)  # the defaults the numbers below follow from
    assert (policy["preemption_grace_seconds"], policy["preemption_threshold"], policy["preemption_cap"]) == (
        GRACE,
        0.1,
        0.25,
    )
    site = ScriptedSite(broker.address, broker.join("host", "big"), gpu_inventory("A100", GPUS))
    try:
        site.next("welcome")
        yield Federation(broker, clock, site, admin, broker.researcher("ana", "a"), broker.researcher("bia", "b"))
    finally:
        site.close()
        broker.close()


def fill_with_a(fed: Federation) -> dict[str, str]:
    """a takes all 8 GPUs (the host submits nothing), and they run past the grace.
    Returns a's run ids by job id."""
    jobs = [submit(fed.a, 1) for _ in range(GPUS)]
    assert fed.cycle().placed == GPUS
    starts = [m.start for m in fed.sent()]
    assert sorted(s.job_id for s in starts) == sorted(jobs)
    fed.running(starts)
    fed.clock.advance(GRACE + 60)
    # The site keeps reporting them as running, minutes later; the broker has nothing to say.
    fed.site.heartbeat()
    for start in starts:
        fed.site.report(start.run_id, common_pb2.RUN_STATE_RUNNING)
    assert fed.sent() == []
    return {s.job_id: s.run_id for s in starts}


def test_b_gets_its_fair_share_back_two_gpus_a_cycle(fed: Federation) -> None:
    a_runs = fill_with_a(fed)
    b_jobs = [submit(fed.b, 1) for _ in range(4)]
    # b's fair share now is 4 of the 8 (equal weights, both with demand of at least 4). The
    # cap frees at most 0.25 x 8 = 2 GPUs a cycle: two cycles of two preemptions each.
    preempted: dict[str, site_pb2.StopRun] = {}
    when = fed.clock.now()
    started: list[str] = []
    for turn in range(2):
        result = fed.cycle()
        assert (result.preempted, result.placed) == (2, 2), f"cycle {turn + 1}: {result}"
        msgs = fed.sent()
        stops = [m.stop for m in msgs if m.WhichOneof("body") == "stop"]
        starts = [m.start for m in msgs if m.WhichOneof("body") == "start"]
        # Each stop goes with the start of the job of b's it made room for, published by the
        # same cycle, the stops first.
        assert [m.WhichOneof("body") for m in msgs] == ["stop", "stop", "start", "start"], msgs
        assert sorted(s.reason.rsplit(" ", 1)[-1] for s in stops) == sorted(s.job_id for s in starts)
        assert {s.run_id for s in stops} <= set(a_runs.values())
        assert all(s.reason.startswith("preempted: fair share: b holds") for s in stops), stops
        assert {s.job_id for s in starts} <= set(b_jobs) and not {s.job_id for s in starts} & set(started)
        preempted.update({job: stop for job, run in a_runs.items() for stop in stops if stop.run_id == run})
        started += [s.job_id for s in starts]
        fed.stopped(stops)
        fed.running(starts)

    assert len(preempted) == 4 and sorted(started) == sorted(b_jobs)
    held = {"a": 0, "b": 0}
    for job_id in [*a_runs, *b_jobs]:
        job = get(fed.admin, job_id)
        if job.state == common_pb2.JOB_STATE_RUNNING:
            held["a" if job_id in a_runs else "b"] += 1
    assert held == {"a": 4, "b": 4}

    # b holds its share: however long it goes on, nothing more is preempted.
    for _ in range(3):
        fed.clock.advance(GRACE + 60)  # b's runs are past the grace too
        result = fed.cycle()  # a cycle ran: the positive signal
        assert (result.preempted, result.placed, result.published) == (0, 0, 0), result
        assert result.waiting == 4  # a's four preempted jobs
    assert fed.sent() == []

    # a's preempted jobs wait again for GPUs, and still say why and for whom.
    for job_id in preempted:
        job = get(fed.a, job_id)
        assert job.state == common_pb2.JOB_STATE_PENDING and not job.reason.startswith("preempted")
        last = job.last_preemption
        assert (last.kind, last.beneficiary) == ("fair-share", "b")
        assert last.reason.startswith("fair share: b holds") and "below its fair share of 4.0" in last.reason
        assert last.reason.rsplit(" ", 1)[-1] in b_jobs  # "... preempted for <b's job>"
        assert last.at == pytest.approx(when)
    job_id = next(iter(preempted))
    table = minga(fed.broker, fed.a.token, "job", "status", job_id)
    assert table.exit_code == 0, table.output
    assert "(for b, fair-share): fair share: b holds" in " ".join(table.stdout.split()), table.stdout
    shown = json.loads(minga(fed.broker, fed.a.token, "job", "status", job_id, "-o", "json").stdout)
    assert (shown["last_preemption"]["kind"], shown["last_preemption"]["beneficiary"]) == ("fair-share", "b")

    # The audit log: one line of the scheduler's per preemption.
    lines = [e for e in audit(fed.admin) if e.method == "Scheduler/Preempt"]
    assert sorted(e.target for e in lines) == sorted(f"{j} {s.run_id}" for j, s in preempted.items())
    assert all((e.who, e.role, e.outcome) == ("scheduler", "broker", "OK") for e in lines)
    assert all(e.detail.startswith("fair-share for b on big: fair share: b holds") for e in lines)
    assert sorted(e.detail.split(" holds ")[1].split()[0] for e in lines) == ["0", "1", "2", "3"]  # b, each time
    listed = minga(fed.broker, fed.admin.token, "admin", "audit", "--who", "scheduler", "-o", "json")
    assert listed.exit_code == 0, listed.output
    assert sorted(e["target"] for e in json.loads(listed.stdout)) == sorted(e.target for e in lines)


def test_nothing_is_preempted_with_fair_share_preemption_off(fed: Federation) -> None:
    out = minga(fed.broker, fed.admin.token, "admin", "policy", "set", "--no-fair-share-preemption")
    assert out.exit_code == 0, out.output
    a_runs = fill_with_a(fed)
    b_jobs = [submit(fed.b, 1) for _ in range(4)]
    for _ in range(3):
        result = fed.cycle()
        assert (result.preempted, result.placed, result.published) == (0, 0, 0), result
        assert result.waiting == 4
        fed.clock.advance(GRACE)
    for job_id in b_jobs:
        job = get(fed.b, job_id)
        assert job.state == common_pb2.JOB_STATE_PENDING and not job.HasField("last_preemption")
    assert all(get(fed.a, j).state == common_pb2.JOB_STATE_RUNNING for j in a_runs)
    assert not [e for e in audit(fed.admin) if e.method == "Scheduler/Preempt"]
    assert fed.sent() == []
