"""Infrastructure hiccups against a real local Ray (issue 12, point 5): while the site's
Ray head restarts, a start meets a refused connection and is retried until the new head
takes it; a run the old head had is reported UNKNOWN and never submitted to the new head
under its old run id. The agent's reconciler runs on the real job submission API; only
the retry waits run on an injected clock, so nothing sleeps for them."""

from __future__ import annotations

import random

import pytest

from minga.agent.backend import JobSubmissionBackend
from minga.agent.local_ray import LocalRayHead
from minga.agent.reconcile import Reconciler
from minga.common.clock import FakeClock
from minga.common.domain import RunState
from tests.eventually import eventually
from tests.fakes.fake_broker import make_start_run
from tests.fixtures_ray import OBJECT_STORE_BYTES
from tests.test_infra_hiccups import Recorder

pytestmark = pytest.mark.ray


def test_a_restarted_ray_head_never_gets_an_old_run_id_and_a_refused_start_waits_for_it() -> None:
    head = LocalRayHead(gpus=0, cpus=2, object_store_memory=OBJECT_STORE_BYTES).start()
    try:
        clock, out = FakeClock(), Recorder()
        rec = Reconciler(
            JobSubmissionBackend(head.dashboard_url),
            out,  # type: ignore[arg-type]  # a Recorder stands in for the Outbox
            clock,
            rng=random.Random(3),
        )
        rec.start_run(make_start_run("minga-j-old-a1", "j-old", entrypoint="sleep 600"))

        def ticked_state(run_id: str) -> RunState | None:
            rec.tick()
            states = out.states(run_id)
            return states[-1] if states else None

        eventually(lambda: ticked_state("minga-j-old-a1") is RunState.RUNNING, timeout=60, interval=0.2)

        head.stop()  # `make run` stopped: the head and its runs are gone
        # A start sent while Ray restarts meets a refused connection: retried, not failed.
        rec.start_run(make_start_run("minga-j-new-a1", "j-new", entrypoint="echo fresh"))
        assert out.states("minga-j-new-a1") == []

        head.start()  # a fresh head (the agent is pointed at it)
        rec.backend = JobSubmissionBackend(head.dashboard_url)
        eventually(lambda: ticked_state("minga-j-old-a1") is RunState.UNKNOWN, timeout=60, interval=0.2)
        for msg in list(out.messages):
            rec.on_delivered(msg)
        rec.start_run(make_start_run("minga-j-old-a1", "j-old", entrypoint="sleep 600"))  # a resend

        def new_run_done() -> bool:
            clock.advance(0.5)  # retries follow, at about twice real time
            return ticked_state("minga-j-new-a1") is RunState.SUCCEEDED

        eventually(new_run_done, timeout=120, interval=0.2)
        assert RunState.FAILED not in out.states("minga-j-new-a1")
        on_ray = {r.run_id for r in rec.backend.list_runs()}
        assert "minga-j-new-a1" in on_ray and "minga-j-old-a1" not in on_ray
        assert out.states("minga-j-old-a1")[-1] is RunState.UNKNOWN
    finally:
        head.stop()
