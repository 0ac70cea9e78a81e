"""The agent's record of submitted runs is bounded and still exact: a run it submitted
is never submitted again, however many runs it has run since (within its bound)."""

from __future__ import annotations

import pytest

from minga.agent.submitted import SubmittedRuns
from minga.common.domain import RunState
from tests.fakes.fake_backend import FakeBackend
from tests.fakes.fake_broker import make_start_run
from tests.test_infra_hiccups import agent


def test_ended_runs_are_remembered_per_job_by_their_newest_epoch() -> None:
    runs = SubmittedRuns(max_jobs=2)
    runs.add("minga-j-1-a1")
    assert runs.seen("minga-j-1-a1", "j-1", 1) and not runs.seen("minga-j-1-a2", "j-1", 2)
    runs.ended("minga-j-1-a1", "j-1", 1)
    runs.add("minga-j-1-a3")
    runs.ended("minga-j-1-a3", "j-1", 3)
    assert len(runs) == 1  # one entry for the job, not one per run
    assert runs.seen("minga-j-1-a2", "j-1", 2)  # older than an ended epoch: stale
    assert not runs.seen("minga-j-1-a4", "j-1", 4)  # a newer attempt runs
    for job in ("j-2", "j-3"):
        runs.add(f"minga-{job}-a1")
        runs.ended(f"minga-{job}-a1", job, 1)
    assert len(runs) == 2 and not runs.seen("minga-j-1-a3", "j-1", 3)  # the bound: j-1 ended longest ago
    assert runs.seen("minga-j-2-a1", "j-2", 1) and runs.seen("minga-j-3-a1", "j-3", 1)
    runs.ended("minga-j-9-a1", "j-9", 1)  # never submitted: nothing to remember
    assert not runs.seen("minga-j-9-a1", "j-9", 1)
    with pytest.raises(ValueError):
        SubmittedRuns(max_jobs=0)


def test_an_agent_that_ran_many_jobs_holds_a_bounded_record_and_refuses_every_recent_resend() -> None:
    backend = FakeBackend()
    rec, out, _ = agent(backend)
    rec._submitted = SubmittedRuns(max_jobs=10)
    for i in range(50):
        rec.start_run(make_start_run(f"minga-j-{i}-a1", f"j-{i}"))
        backend.set_state(f"minga-j-{i}-a1", RunState.SUCCEEDED)
        rec.tick()
    for msg in list(out.messages):
        rec.on_delivered(msg)  # the broker has every end: the agent forgets the runs
    assert len(rec._submitted) == 10 and rec._runs == {}
    backend.forget_all()  # and the head restarted
    for i in range(40, 50):  # an old broker resends the recent ones
        rec.start_run(make_start_run(f"minga-j-{i}-a1", f"j-{i}"))
        assert out.states(f"minga-j-{i}-a1")[-1] is RunState.UNKNOWN
    assert len(backend.submissions) == 50  # once each, ever
