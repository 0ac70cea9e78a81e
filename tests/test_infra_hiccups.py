"""Infrastructure hiccups never fail a researcher's job (issue 12, point 5), with the fake
Ray backend and the store on SQLite and PostgreSQL: refusals retried on the injected
clock, a site that keeps refusing DEGRADED with its reason, infrastructure requeues on
their own budget, and a run its site's Ray forgot requeued with a new epoch.
The real-Ray version lives in test_infra_ray.py."""

from __future__ import annotations

import random

import pytest

from minga.agent.reconcile import Reconciler
from minga.agent.refusals import RETRY_MAX_SECONDS, START_TRIES, is_transient, retry_delay
from minga.common.clock import FakeClock
from minga.common.domain import JobState, RunState, SiteState
from minga.common.site_messages import RunReport, StartRunCommand
from minga.common.wire.enums import run_state_from_pb
from minga.scheduler.requeue_rules import INFRA_REQUEUE_LIMIT, Fault, after_run_ended, infra_backoff_seconds
from minga.scheduler.store.models import RunRow
from minga.v1 import site_pb2
from tests.fakes.fake_backend import FakeBackend
from tests.fakes.fake_broker import make_start_run
from tests.test_requeue import running, submit
from tests.test_store import NOW, cycle, fed, held_gpus, store, store_url  # noqa: F401 - fixtures

REFUSAL = RuntimeError("Request failed with status code 500: No available agent to submit job, please try again later.")


# -- the pure rules --------------------------------------------------------------------


def test_infrastructure_requeues_never_touch_max_attempts_and_have_their_own_bound() -> None:
    failures, infra = 0, 0
    for n in range(1, INFRA_REQUEUE_LIMIT + 1):
        out = after_run_ended(Fault.INFRASTRUCTURE, failures, infra, 1, "site lost", NOW)
        assert out.state is JobState.PENDING and out.failures == 0 and out.infra_requeues == n
        assert out.not_before == NOW + infra_backoff_seconds(n)
        infra = out.infra_requeues
    gave_up = after_run_ended(Fault.INFRASTRUCTURE, failures, infra, 1, "site lost", NOW)
    assert gave_up.state is JobState.FAILED and "gave up after 20 infrastructure requeues" in gave_up.reason
    user = after_run_ended(Fault.USER, 0, 7, 1, "exit 3", NOW)
    assert user.state is JobState.FAILED and (user.failures, user.infra_requeues) == (1, 7)


def test_infra_backoff_grows_to_a_few_minutes() -> None:
    waits = [infra_backoff_seconds(n) for n in range(1, 12)]
    assert waits[:3] == [2.0, 4.0, 8.0] and max(waits) == 240.0 and waits == sorted(waits)


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (REFUSAL, True),
        (RuntimeError("Request failed with status code 503: Service Unavailable."), True),
        (ConnectionRefusedError("[Errno 111] Connection refused"), True),
        (ConnectionResetError("Connection reset by peer"), True),
        (ConnectionError("Failed to connect to Ray at address: http://127.0.0.1:1."), True),
        (RuntimeError("Request failed with status code 400: invalid runtime_env: pip must be a list."), False),
        (RuntimeError("no such resource"), False),
    ],
)
def test_refusals_are_told_apart(err: Exception, transient: bool) -> None:
    assert is_transient(err) is transient


def test_retry_delay_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 20)]
    assert max(delays) <= RETRY_MAX_SECONDS and min(delays) >= 0.5
    assert len({round(d, 6) for d in delays[6:]}) > 1  # capped ones still differ: jitter


# -- the agent's reconciler over the fake backend ------------------------------------------


class Recorder:
    """Stands in for the outbox: the messages the agent would send, in order."""

    def __init__(self) -> None:
        self.messages: list[site_pb2.AgentMessage] = []

    def put(self, msg: site_pb2.AgentMessage) -> None:
        self.messages.append(msg)

    def reports(self, run_id: str) -> list[site_pb2.RunReport]:
        return [m.run for m in self.messages if m.WhichOneof("body") == "run" and m.run.run_id == run_id]

    def states(self, run_id: str) -> list[RunState]:
        return [run_state_from_pb(r.state) for r in self.reports(run_id)]

    def health(self) -> list[site_pb2.Health]:
        return [m.health for m in self.messages if m.WhichOneof("body") == "health"]


def agent(backend: FakeBackend) -> tuple[Reconciler, Recorder, FakeClock]:
    clock, out = FakeClock(), Recorder()
    return Reconciler(backend, out, clock, rng=random.Random(1)), out, clock  # type: ignore[arg-type]  # a Recorder stands in for the Outbox


def test_a_start_refused_a_few_times_is_retried_on_the_clock_and_runs() -> None:
    backend = FakeBackend()
    backend.refuse(START_TRIES - 1)
    rec, out, clock = agent(backend)
    rec.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert out.states("minga-j-1-a1") == [] and backend.submissions == []
    rec.tick()  # not due yet: the clock did not move
    assert backend.refused == 1
    for _ in range(START_TRIES):
        clock.advance(RETRY_MAX_SECONDS)
        rec.tick()
    assert backend.refused == START_TRIES - 1 and [r.run_id for r in backend.submissions] == ["minga-j-1-a1"]
    assert out.states("minga-j-1-a1") == [RunState.STARTING]  # never FAILED
    assert out.health() == []  # the site never counted as refusing


def test_a_ray_that_keeps_refusing_fails_the_start_as_infrastructure_and_degrades_the_site() -> None:
    backend = FakeBackend()
    backend.refuse(100)
    rec, out, clock = agent(backend)
    rec.start_run(make_start_run("minga-j-1-a1", "j-1"))
    for _ in range(START_TRIES + 2):
        clock.advance(RETRY_MAX_SECONDS)
        rec.tick()
    [report] = out.reports("minga-j-1-a1")
    assert run_state_from_pb(report.state) is RunState.FAILED
    assert report.failure == site_pb2.FAILURE_KIND_INFRASTRUCTURE and "No available agent" in report.message
    assert backend.refused == START_TRIES
    [health] = out.health()
    assert health.refusing_starts and not health.ray_down and "No available agent" in health.message
    clock.advance(120)  # the cool-off: try the site again
    rec.tick()
    assert [h.refusing_starts for h in out.health()] == [True, False]


def test_a_permanent_refusal_is_not_retried_and_is_the_users() -> None:
    backend = FakeBackend()
    backend.refuse(1, RuntimeError("Request failed with status code 400: invalid runtime_env."))
    rec, out, _ = agent(backend)
    rec.start_run(make_start_run("minga-j-1-a1", "j-1"))
    [report] = out.reports("minga-j-1-a1")
    assert run_state_from_pb(report.state) is RunState.FAILED and report.failure == site_pb2.FAILURE_KIND_USER
    assert backend.refused == 1 and out.health() == []


def test_a_run_its_ray_forgot_is_reported_unknown_and_never_submitted_again() -> None:
    backend = FakeBackend()
    rec, out, _ = agent(backend)
    rec.start_run(make_start_run("minga-j-1-a1", "j-1"))
    backend.set_state("minga-j-1-a1", RunState.RUNNING)
    rec.tick()
    backend.forget_all()  # the head restarted
    rec.tick()
    assert out.states("minga-j-1-a1")[-1] is RunState.UNKNOWN
    for msg in list(out.messages):
        rec.on_delivered(msg)  # the broker has it all; the agent forgets the run
    rec.start_run(make_start_run("minga-j-1-a1", "j-1"))  # an old broker resends it
    assert out.states("minga-j-1-a1")[-1] is RunState.UNKNOWN
    assert [r.run_id for r in backend.submissions] == ["minga-j-1-a1"]  # once, ever
    assert backend.run("minga-j-1-a1") is None


# -- the broker: no job fails because of the infrastructure --------------------------------


def test_many_infrastructure_failures_never_fail_a_job_with_one_attempt(fed):
    submit(fed, "j-1", max_attempts=1)
    now = NOW
    for n in range(1, 6):
        run_id = running(fed, "j-1", now)
        fed.runs.apply_report(
            "dcc",
            RunReport(
                run_id, RunState.FAILED, "could not start on Ray after 6 tries: " + str(REFUSAL), infrastructure=True
            ),
            now + 1,
        )
        job = fed.jobs.get("j-1")
        assert job.state is JobState.PENDING and (job.failures, job.infra_requeues) == (0, n)
        now += 1 + infra_backoff_seconds(n)
    run_id = running(fed, "j-1", now)
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.SUCCEEDED), now + 1)
    job = fed.jobs.get("j-1")
    assert job.state is JobState.SUCCEEDED and (job.attempts, job.failures, job.infra_requeues) == (6, 0, 5)


def test_a_refusing_site_is_degraded_with_its_reason_and_keeps_its_running_runs(fed):
    submit(fed, "j-1")
    run_id = running(fed, "j-1")
    assert (
        fed.runs.site_health(
            "dcc", False, "Ray refused 6 submits in a row: 500: No available agent", NOW + 1, refusing=True
        )
        == 0
    )
    site = fed.sites.get("dcc")
    assert site.state is SiteState.DEGRADED and "Ray refuses new runs" in site.state_reason
    assert "No available agent" in site.state_reason
    assert fed.jobs.get("j-1").state is JobState.RUNNING and held_gpus(fed) == 2
    submit(fed, "j-2")
    assert cycle(fed, NOW + 2) == []  # a DEGRADED site takes no new run
    fed.runs.site_health("dcc", False, "", NOW + 3)
    assert fed.sites.get("dcc").state is SiteState.READY
    [start] = cycle(fed, NOW + 4)
    assert start.run.job_id == "j-2" and fed.jobs.get("j-1").run_id == run_id


def test_a_run_the_sites_ray_forgot_is_requeued_with_a_new_epoch_not_resent(fed):
    submit(fed, "j-1")
    first = running(fed, "j-1")
    # The site reconnects (e.g. `make run` restarted) and its new Ray lists nothing.
    commands = fed.runs.reconcile_site("dcc", [], NOW + 10)
    assert not any(isinstance(c, StartRunCommand) and c.run.id == first for c in commands)
    job = fed.jobs.get("j-1")
    assert job.state is JobState.PENDING and "vanished" in job.reason
    assert (job.attempts, job.failures, job.infra_requeues) == (1, 0, 1)
    [start] = cycle(fed, NOW + 10 + infra_backoff_seconds(1))
    assert start.run.id != first and start.run.epoch == 2
    with fed.db.read() as s:  # the history keeps both attempts
        old, new = s.get(RunRow, first), s.get(RunRow, start.run.id)
        assert (old.state, old.live, new.epoch) == (RunState.LOST.value, False, 2)
        assert "vanished" in old.message


def test_a_start_lost_in_transit_is_still_resent_under_its_id(fed):
    submit(fed, "j-1")
    [start] = cycle(fed)  # the site never reported it
    [resent] = fed.runs.reconcile_site("dcc", [], NOW + 1)
    assert isinstance(resent, StartRunCommand) and resent.run.id == start.run.id
    assert fed.jobs.get("j-1").infra_requeues == 0
