"""The store's job dependencies (issue 15, part 1) on a real SQLite file and a real
PostgreSQL: held jobs stay out of the snapshot and of the leader's state as loaded, one
pass releases and cancels (transitively) in one transaction, looking only at what ended,
and a new leader's first pass judges every held job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import event

from minga.common.clock import FakeClock
from minga.common.domain import Job, JobState
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.dependencies import WAITING_FOR_CYCLE
from minga.scheduler.leases import SiteLeases
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store
from minga.scheduler.store.state_load import load_rows
from tests.test_store import NOW, add_institution, new_job, store_url  # noqa: F401 - store_url: a fixture


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    add_institution(s)
    yield s
    s.close()


def held(jid: str, *after: str, submitted: float = 1.0) -> Job:
    job = new_job(jid, gpus=0, submitted=submitted)
    return replace(job, spec=replace(job.spec, after=after), after_unmet=len(after), reason="held")


def submit(store: Store, *jobs: Job) -> None:
    for job in jobs:
        store.jobs.submit(job, None)


def state(store: Store, jid: str) -> tuple[JobState, str, int]:
    job = store.jobs.get(jid)
    return job.state, job.reason, job.after_unmet


def test_held_jobs_are_out_of_the_snapshot_and_the_loaded_state(store: Store) -> None:
    submit(store, new_job("j-a", gpus=0), held("j-b", "j-a:ok"))
    assert [j.id for j in store.runs.load_snapshot(NOW).pending] == ["j-a"]
    assert [j.id for j in load_rows(store.db).pending] == ["j-a"]
    assert store.dependencies.dependents(["j-a"]) == ["j-b"]


def test_one_pass_releases_and_cancels_transitively(store: Store) -> None:
    submit(
        store,
        new_job("j-a", gpus=0),
        held("j-ok", "j-a:ok"),
        held("j-ok2", "j-ok:ok"),
        held("j-ok3", "j-ok2:ok"),
        held("j-any", "j-a:any"),
        held("j-failed", "j-a:failed"),
        held("j-later", "j-ok2:any"),
        held("j-other", "j-zzz:ok"),  # waits for a job that does not exist: never judged here
    )
    store.jobs.request_cancel("j-a", NOW, "cancelled by ana")
    done = store.dependencies.resolve({"j-a"}, set(), False, NOW + 5)
    assert sorted(done.released) == ["j-any", "j-failed", "j-later"]
    assert done.cancelled == ["j-ok", "j-ok2", "j-ok3"]  # each round judges the jobs the last one ended
    assert state(store, "j-ok") == (JobState.CANCELLED, "dependency j-a was cancelled", 0)
    assert state(store, "j-ok3") == (JobState.CANCELLED, "dependency j-ok2 was cancelled", 0)
    assert state(store, "j-any") == (JobState.PENDING, WAITING_FOR_CYCLE, 0)
    assert state(store, "j-other") == (JobState.PENDING, "held", 1)  # nothing it waits for ended
    assert sorted(j.id for j in store.runs.load_snapshot(NOW + 5).pending) == ["j-any", "j-failed", "j-later"]
    again = store.dependencies.resolve({"j-a"}, set(), False, NOW + 6)
    assert again.released == again.cancelled == []  # judged once


def test_an_array_is_waited_for_as_all_its_tasks(store: Store) -> None:
    first = replace(new_job("j-arr_0", gpus=0), array_id="j-arr", array_index=0)
    store.arrays.submit(first, [0, 1], 0, None)
    submit(store, held("j-eval", "j-arr:any"))
    assert store.dependencies.targets(["j-arr", "j-arr_1", "j-eval", "j-nope"]).keys() == {
        "j-arr",
        "j-arr_1",
        "j-eval",
    }
    assert store.dependencies.targets(["j-arr"])["j-arr"].array
    store.jobs.request_cancel("j-arr_0", NOW, "cancelled")
    done = store.dependencies.resolve({"j-arr_0", "j-arr"}, set(), False, NOW)
    assert done.released == [] and state(store, "j-eval")[1] == "waiting for job array j-arr to end"
    store.jobs.request_cancel("j-arr_1", NOW, "cancelled")
    assert store.dependencies.resolve({"j-arr_1", "j-arr"}, set(), False, NOW).released == ["j-eval"]
    (status,) = store.dependencies.of_job(store.jobs.get("j-eval"))
    assert (status.job_id, status.state, status.status) == ("j-arr", "2/2 ended, 2 did not succeed", "met")


def test_a_new_leaders_first_pass_judges_every_held_job(store: Store) -> None:
    submit(store, new_job("j-a", gpus=0), held("j-b", "j-a:any"), held("j-c", "j-b:ok"))
    store.jobs.request_cancel("j-a", NOW, "cancelled")  # no cycle watched this
    clock = FakeClock(NOW + 10)
    cycle = SchedulingCycle(store, SessionRegistry(), clock, SiteLeases(clock))
    try:
        done = cycle.dependencies()
        assert done.released == ["j-b"] and done.cancelled == []
        assert "j-b" in {j.id for j in cycle.load_snapshot().pending}
        assert "j-c" not in {j.id for j in cycle.load_snapshot().pending}
        statements: list[str] = []
        record = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
        event.listen(store.db.engine, "before_cursor_execute", record)
        try:
            assert cycle.dependencies().released == []  # then only what changed: here nothing,
        finally:
            event.remove(store.db.engine, "before_cursor_execute", record)
        assert statements == []  # so no statement at all, however many jobs are held or queued
    finally:
        cycle.detach()


def test_cycles_are_found_through_arrays_too(store: Store) -> None:
    first = replace(held("j-arr_0", "j-a:ok"), array_id="j-arr", array_index=0)
    store.arrays.submit(first, [0, 1], 0, None)
    submit(store, new_job("j-a", gpus=0), held("j-b", "j-arr:ok"))
    assert store.dependencies.reaches(["j-b"], {"j-a"}) == "j-a"
    assert store.dependencies.reaches(["j-a"], {"j-b"}) is None
    assert store.dependencies.dependents(["j-a"]) == ["j-arr_0", "j-arr_1", "j-b"]
