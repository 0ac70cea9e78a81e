"""Leases, requeue and walltime at the store and the lease table, on SQLite and
PostgreSQL: what becomes of a job when its run is lost, fails, or runs too long.
The gRPC-level and real-process versions live in test_leases.py and test_faults.py."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import text

from minga.common.clock import FakeClock
from minga.common.domain import JobState, RunState, SiteState
from minga.common.site_messages import RunReport, StopRunCommand
from minga.scheduler.leases import SiteLeases
from minga.scheduler.policy import Placement
from minga.scheduler.requeue_rules import backoff_seconds, infra_backoff_seconds
from minga.scheduler.store import Store
from minga.scheduler.store.runs import _free_gpus, _lease
from tests.eventually import eventually
from tests.test_store import (  # noqa: F401 - fixtures
    NOW,
    cycle,
    fed,
    held_gpus,
    inventory,
    join_site,
    new_job,
    store,
    store_url,
)

# PostgreSQL backends waiting for a lock that the backend :pid holds (pg_locks is read live,
# where pg_stat_activity would be a snapshot taken once per transaction).
BLOCKED_BY = text("SELECT count(*) FROM pg_locks WHERE NOT granted AND :pid = ANY(pg_blocking_pids(pid))")


def submit(store: Store, jid: str, gpus: int = 2, **spec_changes) -> None:
    job = new_job(jid, gpus=gpus)
    store.jobs.submit(replace(job, spec=replace(job.spec, **spec_changes)), None)


def running(store: Store, jid: str, now: float = NOW, site: str = "dcc") -> str:
    """Lease `jid` in a cycle at `now` and report it RUNNING; its run id."""
    return all_running(store, now, site)[jid]


def all_running(store: Store, now: float = NOW, site: str = "dcc") -> dict[str, str]:
    """Lease what a cycle at `now` places, all on `site`, and report it RUNNING: job -> run id."""
    runs = {}
    for start in cycle(store, now):
        assert start.site == site
        store.runs.apply_report(site, RunReport(start.run.id, RunState.RUNNING), now)
        runs[start.run.job_id] = start.run.id
    return runs


def pending_ids(store: Store, now: float) -> list[str]:
    return [j.id for j in store.runs.load_snapshot(now).pending]


# -- failures: whose fault, and how often ----------------------------------------------


def test_an_infrastructure_failure_requeues_after_a_backoff_and_never_counts_as_a_failure(fed):
    submit(fed, "j-1", max_attempts=2)
    run_1 = running(fed, "j-1")
    fed.runs.apply_report("dcc", RunReport(run_1, RunState.FAILED, "supervisor died", infrastructure=True), NOW + 10)
    job = fed.jobs.get("j-1")
    assert job.state is JobState.PENDING
    assert "infrastructure failure: supervisor died" in job.reason and "infrastructure requeue 1 of 20" in job.reason
    assert held_gpus(fed) == 0
    assert pending_ids(fed, NOW + 11) == []  # in its backoff
    assert pending_ids(fed, NOW + 10 + infra_backoff_seconds(1)) == ["j-1"]
    run_2 = running(fed, "j-1", NOW + 13)
    assert run_2 != run_1 and fed.jobs.get("j-1").attempts == 2
    fed.runs.apply_report("dcc", RunReport(run_2, RunState.FAILED, "node died", infrastructure=True), NOW + 20)
    job = fed.jobs.get("j-1")
    # Two infrastructure failures with max_attempts=2: still PENDING, no failure charged.
    assert job.state is JobState.PENDING and "infrastructure requeue 2 of 20" in job.reason
    assert (job.attempts, job.failures, job.infra_requeues) == (2, 0, 2)


def test_a_users_failure_ends_the_job_unless_it_asked_for_retries(fed):
    submit(fed, "plain")
    submit(fed, "retried", retry_failed=True)
    for run_id in all_running(fed).values():
        fed.runs.apply_report("dcc", RunReport(run_id, RunState.FAILED, "exit code 3"), NOW + 5)
    plain, retried = fed.jobs.get("plain"), fed.jobs.get("retried")
    assert plain.state is JobState.FAILED and plain.reason == "exit code 3"
    assert retried.state is JobState.PENDING and "failed: exit code 3" in retried.reason


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff_seconds(50) == 300.0


# -- a lost site -----------------------------------------------------------------------


def test_a_lost_site_requeues_its_runs_and_ends_a_cancel(fed):
    submit(fed, "keep")
    submit(fed, "cancel-me")
    keep = all_running(fed)["keep"]
    fed.jobs.request_cancel("cancel-me", NOW + 1, "cancelled by ana")
    assert fed.runs.site_lost("dcc", "no report for 30 s", NOW + 40) == 2
    site = fed.sites.get("dcc")
    assert site.state is SiteState.LOST and site.state_reason == "no report for 30 s"
    job = fed.jobs.get("keep")
    assert (
        job.state is JobState.PENDING
        and "site dcc lost" in job.reason
        and "infrastructure requeue 1 of 20" in job.reason
    )
    assert fed.jobs.get("cancel-me").state is JobState.CANCELLED
    assert held_gpus(fed) == 0
    assert cycle(fed, NOW + 100) == []  # a LOST site takes nothing
    join_site(fed, "b")
    [moved] = cycle(fed, NOW + 100)
    assert moved.site == "b" and moved.run.epoch == 2 and moved.run.id != keep


def test_a_lost_site_that_returns_has_its_stale_run_stopped_and_changes_nothing(fed):
    submit(fed, "j-1")
    stale = running(fed, "j-1")
    fed.runs.site_lost("dcc", "no report for 30 s", NOW + 40)
    join_site(fed, "b")
    fresh = running(fed, "j-1", NOW + 100, site="b")
    # dcc comes back still running the old run, then says it finished: both change nothing.
    fed.sites.connected("dcc", inventory(("A100", 8)), NOW + 110)
    assert fed.runs.reconcile_site("dcc", [RunReport(stale, RunState.RUNNING)], NOW + 110) == [
        StopRunCommand("dcc", stale, "stale run: fenced by a newer epoch")
    ]
    assert fed.sites.get("dcc").state is SiteState.READY
    assert fed.runs.apply_report("dcc", RunReport(stale, RunState.SUCCEEDED), NOW + 111) == []
    assert fed.jobs.get("j-1").state is JobState.RUNNING and fed.jobs.get("j-1").run_id == fresh
    fed.runs.apply_report("b", RunReport(fresh, RunState.SUCCEEDED), NOW + 120)
    fed.runs.apply_report("dcc", RunReport(stale, RunState.FAILED, "late"), NOW + 121)
    done = fed.jobs.get("j-1")
    assert done.state is JobState.SUCCEEDED and done.finished_at == NOW + 120  # one terminal state


def test_a_degraded_site_requeues_its_runs_and_takes_none_until_ray_is_back(fed):
    submit(fed, "j-1")
    running(fed, "j-1")
    assert fed.runs.site_health("dcc", True, "dashboard refused the connection", NOW + 5) == 1
    site = fed.sites.get("dcc")
    assert site.state is SiteState.DEGRADED and "dashboard refused" in site.state_reason
    assert fed.jobs.get("j-1").state is JobState.PENDING
    assert cycle(fed, NOW + 60) == []
    fed.runs.site_health("dcc", False, "", NOW + 61)
    assert fed.sites.get("dcc").state is SiteState.READY
    assert [c.run.job_id for c in cycle(fed, NOW + 62)] == ["j-1"]


# -- walltime --------------------------------------------------------------------------


def test_a_run_past_its_walltime_is_stopped_and_its_job_fails_with_timeout(fed):
    submit(fed, "j-1", walltime_seconds=60)
    run_id = running(fed, "j-1", NOW)
    assert fed.runs.stop_overdue(NOW + 59) == []
    [stop] = fed.runs.stop_overdue(NOW + 61)
    assert (stop.site, stop.run_id) == ("dcc", run_id) and stop.reason.startswith("TIMEOUT")
    job = fed.jobs.get("j-1")
    assert job.state is JobState.FAILED and job.reason == "TIMEOUT: ran past its walltime of 60 s"
    assert held_gpus(fed) == 0
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.STOPPED, "stopped"), NOW + 62)
    assert fed.jobs.get("j-1").state is JobState.FAILED
    assert fed.runs.stop_overdue(NOW + 100) == []


# -- the lease table -------------------------------------------------------------------


def test_leases_expire_after_the_ttl_and_a_hello_revives_them() -> None:
    clock = FakeClock(NOW)
    leases = SiteLeases(clock, ttl_seconds=30)
    clock.advance(20)
    assert leases.renew("a")
    clock.advance(15)  # a: 15 s ago; b: never, 35 s since start
    assert leases.expired(["a", "b"]) == ["b"]
    assert not leases.renew("b")  # too late: the session must start over
    assert leases.expired(["b"]) == []  # lost once, not again
    leases.connected("b")
    assert leases.renew("b")
    clock.advance(31)
    assert sorted(leases.expired(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError):
        SiteLeases(clock, ttl_seconds=0)


# -- concurrent writers (PostgreSQL runs them truly in parallel) -----------------------


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_cancel_waits_for_a_lease_in_flight_and_wins_after_it(fed):
    """Under READ COMMITTED a cancel that read PENDING while the cycle leased the job
    would be overwritten by the lease. The job's row lock makes the cancel wait, see
    LEASED, and ask the site to stop the run."""
    submit(fed, "j-1")
    outcome = {}
    cancel = threading.Thread(
        target=lambda: outcome.update(result=fed.jobs.request_cancel("j-1", NOW + 1, "cancelled by ana"))
    )
    with fed.db.tx() as s:
        start = _lease(s, Placement("j-1", "dcc", "A100", 2, 1.0), _free_gpus(s), NOW)
        assert start is not None
        holder = s.connection().execute(text("SELECT pg_backend_pid()")).scalar()
        cancel.start()
        eventually(
            lambda: s.connection().execute(BLOCKED_BY, {"pid": holder}).scalar(),
            what="the cancel to wait for the lease's transaction",
        )
        assert cancel.is_alive()  # blocked on the job's row lock
    cancel.join(10)
    job = fed.jobs.get("j-1")
    assert job.state is JobState.CANCELLING and outcome["result"].stop_run_id == start.run.id
