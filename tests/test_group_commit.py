"""Group commit of submits (scheduler.store.group_commit), on a real SQLite file and a
real PostgreSQL: concurrent submits share one transaction with their audit lines, and
each caller still gets exactly its own answer, whatever else is in its batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from minga.common.domain import Job
from minga.scheduler.store import Store
from minga.scheduler.store.audit import AuditEntry
from minga.scheduler.store.jobs import Submitted, _Submit
from tests.eventually import eventually
from tests.test_store import NOW, new_job, store, store_url  # noqa: F401 - the store fixtures, SQLite and PostgreSQL


def line(job: Job) -> AuditEntry:
    return AuditEntry(
        at=NOW,
        who=job.owner,
        role="researcher",
        method="JobService/SubmitJob",
        target=job.id,
        peer="test",
        outcome="OK",
    )


class Hold:
    """The first batch's commit, held until `release(n)` sees `n` requests queued
    behind it, which then go into the next batch together."""

    def __init__(self, store: Store) -> None:
        self.committer = store.jobs.committer
        self.commit = self.committer._commit_batch
        self.entered, self.gate = threading.Event(), threading.Event()

    def held(self, batch: Sequence[_Submit]) -> Sequence[Submitted | BaseException]:
        if not self.gate.is_set():
            self.entered.set()
            self.gate.wait(30)
        return self.commit(batch)

    def wait_entered(self) -> None:
        assert self.entered.wait(10), "the first submit never reached its commit"

    def release(self, queued: int) -> None:
        eventually(lambda: self.committer.queued >= queued, interval=0.01, what=f"{queued} submits to queue")
        assert self.committer.queued == queued
        self.gate.set()


@contextmanager
def held_first_batch(store: Store) -> Iterator[Hold]:
    hold = Hold(store)
    hold.committer._commit_batch = hold.held
    try:
        yield hold
    finally:
        hold.gate.set()
        hold.committer._commit_batch = hold.commit


def submit_all(store: Store, jobs: list[tuple[Job, str | None]], audit: bool = True) -> list[Future[tuple[Job, bool]]]:
    """Submit the first job, hold its commit, queue the others behind it, then let go."""
    with ThreadPoolExecutor(len(jobs)) as pool, held_first_batch(store) as hold:

        def submit(job: Job, key: str | None) -> Submitted:
            return store.jobs.submit(job, key, line if audit else None)

        first = pool.submit(submit, *jobs[0])
        hold.wait_entered()
        rest = [pool.submit(submit, *pair) for pair in jobs[1:]]
        hold.release(len(rest))
        return [first, *rest]


def commits(store: Store) -> list[int]:
    """A counter of the write engine's commits, live."""
    counted = [0]
    event.listen(store.db.engine, "commit", lambda conn: counted.__setitem__(0, counted[0] + 1))
    return counted


def audit_targets(store: Store) -> list[str]:
    return sorted(e.target for e in store.audit.list() if e.method == "JobService/SubmitJob")


def test_concurrent_submits_share_one_transaction_and_each_gets_its_own_job(store):
    counted = commits(store)
    jobs = [(new_job(f"j-{i}"), f"key-{i}" if i % 2 else None) for i in range(40)]
    answers = [f.result(30) for f in submit_all(store, jobs)]
    assert [(job.id, created) for job, created in answers] == [(f"j-{i}", True) for i in range(40)]
    assert store.jobs.committer.batches == 2 and counted[0] == 2  # the held one, then the 39 together
    assert sorted(j.id for j in store.jobs.list(None, True, None)) == sorted(f"j-{i}" for i in range(40))
    assert audit_targets(store) == sorted(f"j-{i}" for i in range(40))  # one line per submit


def test_one_key_twice_in_a_batch_and_across_batches_makes_one_job(store):
    store.jobs.submit(new_job("j-old"), "used-before", line)
    jobs = [
        (new_job("j-0"), None),
        (new_job("j-a"), "k"),
        (new_job("j-b"), "k"),
        (new_job("j-c"), "used-before"),
        (new_job("j-bob", owner="bob"), "k"),
    ]
    answers = [f.result(30) for f in submit_all(store, jobs)]
    winner = answers[1][0].id  # j-a or j-b, whichever was queued first
    assert winner in ("j-a", "j-b") and answers[2][0].id == winner
    assert sorted(created for _, created in answers[1:3]) == [False, True]
    assert [(job.id, created) for job, created in (answers[0], answers[4])] == [("j-0", True), ("j-bob", True)]
    assert answers[3][0].id == "j-old" and not answers[3][1]
    assert sorted(j.id for j in store.jobs.list(None, True, None)) == sorted(["j-0", winner, "j-bob", "j-old"])
    # every call is in the log, the replays naming the job they were answered with
    assert audit_targets(store) == sorted(["j-0", winner, winner, "j-bob", "j-old", "j-old"])


def test_a_bad_request_in_a_batch_fails_only_its_caller(store):
    store.jobs.submit(new_job("j-taken"), None)

    def broken(job: Job) -> AuditEntry:
        raise ValueError("cannot describe this call")

    jobs = [(new_job("j-0"), None), (new_job("j-1"), "k1"), (new_job("j-taken"), None), (new_job("j-3"), None)]
    futures = submit_all(store, jobs, audit=False)
    with pytest.raises(IntegrityError):  # its id is taken: its own error, nobody else's
        futures[2].result(30)
    assert [f.result(30)[0].id for i, f in enumerate(futures) if i != 2] == ["j-0", "j-1", "j-3"]
    submit = store.jobs.submit
    with ThreadPoolExecutor(3) as pool, held_first_batch(store) as hold:
        first = pool.submit(submit, new_job("j-4"), None, line)
        hold.wait_entered()
        ok = pool.submit(submit, new_job("j-5"), None, line)
        failing = pool.submit(submit, new_job("j-6"), None, broken)
        hold.release(2)
        assert first.result(30)[1] and ok.result(30)[1]
        with pytest.raises(ValueError):
            failing.result(30)
    ids = {j.id for j in store.jobs.list(None, True, None)}
    assert ids == {"j-taken", "j-0", "j-1", "j-3", "j-4", "j-5"}  # j-6 and its line: neither
    assert audit_targets(store) == ["j-4", "j-5"]


def test_a_failed_commit_leaves_neither_the_job_nor_its_audit_line(store):
    def kill(session: Session) -> None:
        if session.bind is store.db.engine:
            raise RuntimeError("the commit died")

    event.listen(Session, "before_commit", kill)
    try:
        with pytest.raises(RuntimeError):
            store.jobs.submit(new_job("j-lost"), "k", line)
        futures = submit_all(store, [(new_job(f"j-{i}"), None) for i in range(3)])
        for f in futures:
            with pytest.raises(RuntimeError):
                f.result(30)
    finally:
        event.remove(Session, "before_commit", kill)
    assert store.jobs.list(None, True, None) == [] and audit_targets(store) == []
    job, created = store.jobs.submit(new_job("j-lost"), "k", line)  # the retry goes through
    assert created and audit_targets(store) == ["j-lost"]


def test_a_submit_alone_is_committed_at_once_with_its_line(store):
    counted = commits(store)
    job, created = store.jobs.submit(new_job("j-1"), "k", line)
    assert created and counted[0] == 1 and audit_targets(store) == ["j-1"]
