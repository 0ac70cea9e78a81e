"""Fair share down to each researcher, through a real broker on port 0 (real SQLite, a
scripted site, the injected clock) and the `minga` CLI: a researcher's 1,000-task sweep
does not hold back a colleague's single job in the same project; usage is charged per
user; `admin weight set user`; the quota tree's user level, as each role sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import select

from minga.common.clock import FakeClock
from minga.scheduler.store.models import UserUsageRow, UserWeightRow
from minga.v1 import common_pb2, job_pb2, site_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_cli_shares import minga

HOUR = 3600.0


@dataclass
class Federation:
    broker: RunningBroker
    clock: FakeClock
    site: ScriptedSite
    admin: str
    alice: Caller
    bob: Caller
    probes: int = 0

    def cycle(self) -> None:
        self.broker.broker.core.cycle.run_once()

    def starts(self) -> list[site_pb2.StartRun]:
        """Every start the broker has sent the site so far (a probe proves none is still on its way)."""
        self.probes += 1
        probe = f"minga-probe-{self.probes}"
        self.site.report(probe, common_pb2.RUN_STATE_RUNNING)
        got: list[site_pb2.StartRun] = []
        while True:
            msg = self.site.inbox.get(timeout=10)
            kind = msg.WhichOneof("body")
            if kind == "stop" and msg.stop.run_id == probe:
                return got
            if kind == "start":
                got.append(msg.start)


def state(caller: Caller, job_id: str) -> int:
    return caller.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=caller.md).state


def submit(caller: Caller, project: str = "nlp", array: str = "") -> job_pb2.SubmitJobResponse:
    spec = common_pb2.JobSpec(entrypoint="python sweep.py", project=project, resources=common_pb2.Resources(gpus=1))
    return caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec, array=array), metadata=caller.md)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400)
    broker.broker.core.cycle.stop()  # the test runs each cycle itself
    broker.institution("uchile", "CL")
    broker.institution("puc", "CL")
    admin = broker.admin_token_file.read_text().strip()
    assert minga(broker, admin, "admin", "project", "add", "nlp", "--institution", "uchile").exit_code == 0
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 2))
    try:
        site.next("welcome")
        yield Federation(
            broker, clock, site, admin, broker.researcher("alice", "uchile"), broker.researcher("bob", "uchile")
        )
    finally:
        site.close()
        broker.close()


def test_the_single_job_goes_before_the_sweep_and_usage_is_charged_per_user(fed: Federation) -> None:
    sweep = submit(fed.alice, array="0-999")
    assert sweep.array.tasks == 1000
    fed.cycle()
    first = fed.starts()
    assert len(first) == 2 and all(s.job_id.startswith(sweep.array.id) for s in first)  # both GPUs: alice's
    for s in first:
        fed.site.report(s.run_id, common_pb2.RUN_STATE_RUNNING)
    eventually(lambda: all(state(fed.alice, s.job_id) == common_pb2.JOB_STATE_RUNNING for s in first))
    fed.clock.advance(HOUR)
    fed.cycle()  # charges alice's hour

    single = submit(fed.bob).job.id  # submitted last, after 998 of alice's tasks
    fed.site.report(first[0].run_id, common_pb2.RUN_STATE_SUCCEEDED)  # one GPU opens up
    eventually(lambda: state(fed.alice, first[0].job_id) == common_pb2.JOB_STATE_SUCCEEDED)
    fed.cycle()
    [start] = fed.starts()
    assert start.job_id == single

    store = fed.broker.broker.core.store
    with store.db.read() as s:
        usage = {r.user: r.value for r in s.exec(select(UserUsageRow))}
    assert usage.get("uchile/nlp/alice", 0.0) > 0.9 * 2 * HOUR * 0.5  # two GPUs for an hour (A100 weight)
    assert "uchile/nlp/bob" not in usage

    tree = json.loads(minga(fed.broker, fed.admin, "quota", "show", "--tree", "-o", "json").stdout)["tree"]
    users = {n["id"]: n for n in tree if n["level"] == "user"}
    assert set(users) == {"uchile/nlp/alice", "uchile/nlp/bob"}
    assert users["uchile/nlp/alice"]["parent"] == "uchile/nlp"
    assert users["uchile/nlp/alice"]["usage_pct"] == pytest.approx(100.0)
    assert (users["uchile/nlp/alice"]["held"], users["uchile/nlp/bob"]["held"]) == (1, 1)
    assert users["uchile/nlp/bob"]["fairshare"] > users["uchile/nlp/alice"]["fairshare"]


def test_weight_set_user_through_the_cli(fed: Federation) -> None:
    b = fed.broker
    out = minga(b, fed.admin, "admin", "weight", "set", "user", "uchile/nlp/bob", "3", "-o", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"kind": "user", "id": "uchile/nlp/bob", "weight": 3.0}
    inst_admin = b.user("ines", "uchile", common_pb2.ROLE_INSTITUTION_ADMIN)
    assert minga(b, inst_admin, "admin", "weight", "set", "user", "uchile/nlp/alice", "2").exit_code == 0
    with b.broker.core.store.db.read() as s:
        weights = {r.user: r.weight for r in s.exec(select(UserWeightRow))}
    assert weights == {"uchile/nlp/bob": 3.0, "uchile/nlp/alice": 2.0}

    other_admin = b.user("pablo", "puc", common_pb2.ROLE_INSTITUTION_ADMIN)
    denied = minga(b, other_admin, "admin", "weight", "set", "user", "uchile/nlp/alice", "9")
    assert denied.exit_code != 0 and "uchile/nlp" in denied.output
    denied = minga(b, fed.alice.token, "admin", "weight", "set", "user", "uchile/nlp/alice", "9")
    assert denied.exit_code != 0 and "researcher" in denied.output
    for bad, says in (
        ("uchile/alice", "<institution>/<project>/<user>"),
        ("uchile/nlp/Alice!", "user name"),
        ("uchile/none/alice", "no project 'uchile/none'"),
        ("uchile/nlp/nobody", "no user 'nobody'"),
    ):
        out = minga(b, fed.admin, "admin", "weight", "set", "user", bad, "2")
        assert out.exit_code != 0 and says in out.output, out.output
    with b.broker.core.store.db.read() as s:
        assert len(s.exec(select(UserWeightRow)).all()) == 2  # nothing changed


def test_the_user_level_of_the_quota_tree_by_role(fed: Federation) -> None:
    b = fed.broker
    submit(fed.alice), submit(fed.bob)
    pia = b.researcher("pia", "puc")
    submit(pia, project="")
    inst_admin = b.user("ines", "uchile", common_pb2.ROLE_INSTITUTION_ADMIN)

    def users(token: str) -> set[str]:
        out = minga(b, token, "quota", "show", "--tree", "-o", "json")
        assert out.exit_code == 0, out.output
        return {n["id"] for n in json.loads(out.stdout)["tree"] if n["level"] == "user"}

    assert users(fed.admin) == {"uchile/nlp/alice", "uchile/nlp/bob", "puc/default/pia"}
    assert users(inst_admin) == {"uchile/nlp/alice", "uchile/nlp/bob"}
    assert users(fed.alice.token) == {"uchile/nlp/alice"}
    assert users(pia.token) == {"puc/default/pia"}
    table = minga(b, fed.admin, "quota", "show", "--tree")
    assert table.exit_code == 0, table.stdout
    rows = [line.split()[0] for line in table.stdout.splitlines() if line.strip()]
    assert rows.index("alice") == rows.index("uchile/nlp") + 1, table.stdout  # a user row under its project
