"""Pipelined group commit (scheduler.store.pipeline) and the site reports that use it:
a caller queues without waiting, batches are committed in queue order by one applier,
a ticket waits for everything queued before it, a skipped request is never committed,
the queue is bounded, and a site's reports queued while a batch commits go together
into the next one, in the order they were sent."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from minga.common.domain import JobState, RunState
from minga.common.site_messages import Command, RunReport
from minga.scheduler.store.pipeline import PipelinedCommit
from tests.eventually import eventually
from tests.test_site_reports_batch import leased, reports  # noqa: F401 - fixtures
from tests.test_store import store, store_url  # noqa: F401 - the store fixtures


class Gated:
    """A commit function that records its batches; the first one waits for `gate`."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, batch: Sequence[int]) -> list[int | BaseException]:
        if not self.batches:
            self.entered.set()
            assert self.gate.wait(10)
        self.batches.append(list(batch))
        return [ValueError(f"bad {r}") if r < 0 else r * 10 for r in batch]


def test_requests_queued_during_a_commit_go_together_in_order_each_with_its_outcome() -> None:
    commit = Gated()
    pipeline: PipelinedCommit[int, int] = PipelinedCommit(commit)
    outcomes: dict[int, int | BaseException] = {}
    first = pipeline.submit_async(1, lambda o: outcomes.__setitem__(1, o))
    assert commit.entered.wait(10)
    tickets = [pipeline.submit_async(r, lambda o, r=r: outcomes.__setitem__(r, o)) for r in (2, -3, 4)]
    assert pipeline.queued == 3 and not pipeline.wait(first, timeout=0.05)  # nobody waited to queue
    commit.gate.set()
    assert pipeline.wait(tickets[-1], timeout=10)
    assert commit.batches == [[1], [2, -3, 4]]
    assert {k: v for k, v in outcomes.items() if not isinstance(v, BaseException)} == {1: 10, 2: 20, 4: 40}
    assert isinstance(outcomes[-3], ValueError)
    assert (pipeline.batches, pipeline.requests) == (2, 4)


def test_submit_waits_for_its_own_outcome_and_raises_its_own_error() -> None:
    commit = Gated()
    commit.gate.set()
    pipeline: PipelinedCommit[int, int] = PipelinedCommit(commit)
    assert pipeline.submit(5) == 50
    try:
        pipeline.submit(-1)
    except ValueError as exc:
        assert str(exc) == "bad -1"
    else:
        raise AssertionError("the error of its own request")


def test_a_skipped_request_is_not_committed_and_a_failing_batch_fails_each_request() -> None:
    commit = Gated()
    pipeline: PipelinedCommit[int, int] = PipelinedCommit(commit)
    outcomes: list[object] = []
    pipeline.submit_async(1, outcomes.append)
    assert commit.entered.wait(10)
    pipeline.submit_async(2, outcomes.append, skip=lambda: True)
    last = pipeline.submit_async(3, outcomes.append)
    commit.gate.set()
    assert pipeline.wait(last, timeout=10)
    assert commit.batches == [[1], [3]] and outcomes == [10, 30]

    def broken(batch: Sequence[int]) -> list[int]:
        raise RuntimeError("the database went away")

    failing: PipelinedCommit[int, int] = PipelinedCommit(broken)
    errors: list[object] = []
    failing.wait(max(failing.submit_async(r, errors.append) for r in (1, 2)))
    assert [str(e) for e in errors] == ["the database went away"] * 2


def test_the_queue_is_bounded_and_an_idle_applier_ends_and_restarts() -> None:
    commit = Gated()
    pipeline: PipelinedCommit[int, int] = PipelinedCommit(commit, max_queued=2, idle_seconds=0.05)
    pipeline.submit_async(0, lambda o: None)
    assert commit.entered.wait(10)
    pipeline.submit_async(1, lambda o: None)
    pipeline.submit_async(2, lambda o: None)
    third = threading.Thread(target=pipeline.submit_async, args=(3, lambda o: None))
    third.start()
    third.join(0.1)
    assert third.is_alive() and pipeline.queued == 2  # full: the caller waits for room
    commit.gate.set()
    third.join(10)
    assert not third.is_alive()
    assert pipeline.wait(4, timeout=10)
    eventually(lambda: pipeline._applier is None, interval=0.01, what="the idle applier thread to end")
    assert pipeline.submit(7) == 70  # and a new one takes the next request
    assert [r for b in commit.batches for r in b] == [0, 1, 2, 3, 7]


def test_a_sites_reports_queued_without_waiting_are_applied_in_order_in_one_batch(store, leased, reports) -> None:
    site_reports, triggers = reports
    site, job, run = leased[0]
    committer = site_reports.committer
    commit, entered, gate = committer._commit_batch, threading.Event(), threading.Event()

    def held(batch: Sequence[tuple[str, RunReport]]) -> Sequence[list[Command] | BaseException]:
        if not gate.is_set():
            entered.set()
            gate.wait(30)
        return commit(batch)

    committer._commit_batch = held
    outcomes: list[object] = []
    other_site, _, other_run = leased[1]
    site_reports.report_async(other_site, RunReport(other_run, RunState.RUNNING), outcomes.append)
    assert entered.wait(10)
    # One stream's reports, sent back to back while the first batch commits: RUNNING then SUCCEEDED.
    site_reports.report_async(site, RunReport(run, RunState.RUNNING), outcomes.append)
    site_reports.report_async(site, RunReport(run, RunState.SUCCEEDED), outcomes.append)
    site_reports.report_async(site, RunReport("minga-ghost-a1", RunState.RUNNING), outcomes.append)
    gate.set()
    site_reports.wait_site(site)
    assert (committer.batches, committer.requests) == (2, 4)
    assert outcomes[:3] == [[], [], []] and [c.run_id for c in outcomes[3]] == ["minga-ghost-a1"]
    assert store.jobs.get(job).state is JobState.SUCCEEDED  # in order: RUNNING first, then SUCCEEDED
    assert triggers.count == 1  # the batch that ended a run
