"""Run reports from many site streams are applied in batches (group commit), on a
real SQLite file and a real PostgreSQL: one transaction per batch, one cycle per
batch, every report applied, each caller its own commands, and a bad report costs
only its own outcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session

import minga.scheduler.store.runs as runs_module
from minga.common.domain import JobState, RunState
from minga.common.site_messages import Command, RunReport, StopRunCommand
from minga.scheduler.service.sites import SiteReports
from minga.scheduler.store import Store
from tests.eventually import eventually
from tests.fixtures_broker import core_over
from tests.test_store import NOW, add_institution, cycle, inventory, join_site, store, store_url, submit  # noqa: F401 - fixtures

SITES = 12


@pytest.fixture
def leased(store: Store) -> list[tuple[str, str, str]]:
    """(site, job, run) for one leased 1-GPU job on each of SITES sites."""
    add_institution(store)
    for i in range(SITES):
        join_site(store, f"s{i:02d}", inv=inventory(("A100", 1)))
    for i in range(SITES):
        submit(store, f"j-{i:02d}")
    return sorted((c.site, c.run.job_id, c.run.id) for c in cycle(store))


class Triggers:
    """Counts cycle triggers (the cycle itself is not started here)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def reports(store: Store) -> Iterator[tuple[SiteReports, Triggers]]:
    core = core_over(store, NOW + 5)
    triggers = Triggers()
    core.cycle.trigger = triggers  # type: ignore[method-assign]  # the cycle is not started here: count its triggers
    yield SiteReports(core), triggers


def held_batch(site_reports: SiteReports, calls: list[tuple[str, RunReport]]) -> list[list[Command] | BaseException]:
    """Run `calls` (site, report) concurrently with the first one's commit held until
    all the others queue behind it: they then go in ONE batch. Their outcomes."""
    committer = site_reports.committer
    commit, entered, gate = committer._commit_batch, threading.Event(), threading.Event()

    def held(batch: Sequence[tuple[str, RunReport]]) -> Sequence[list[Command] | BaseException]:
        if not gate.is_set():
            entered.set()
            gate.wait(30)
        return commit(batch)

    committer._commit_batch = held
    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            first = pool.submit(site_reports.report, *calls[0])
            assert entered.wait(10)
            rest = [pool.submit(site_reports.report, *call) for call in calls[1:]]
            eventually(lambda: committer.queued == len(rest), interval=0.01, what="the other reports to queue")
            gate.set()
            futures = [first, *rest]
            return [f.exception() or f.result() for f in futures]
    finally:
        committer._commit_batch = commit


def test_many_sites_reporting_at_once_share_one_transaction_and_one_cycle(store, leased, reports) -> None:
    site_reports, triggers = reports
    calls = [(site, RunReport(run, RunState.SUCCEEDED)) for site, _, run in leased]
    calls.append(("s00", RunReport("minga-ghost-a1", RunState.RUNNING)))  # not s00's: told to stop
    outcomes = held_batch(site_reports, calls)
    assert outcomes[:-1] == [[]] * SITES
    assert outcomes[-1] == [StopRunCommand("s00", "minga-ghost-a1", "unknown run")]
    assert (site_reports.committer.batches, site_reports.committer.requests) == (2, SITES + 1)
    assert triggers.count == 2  # one per batch, not one per report
    assert {store.jobs.get(job).state for _, job, _ in leased} == {JobState.SUCCEEDED}


def test_a_report_that_fails_costs_only_its_own_outcome(store, leased, reports, monkeypatch) -> None:
    site_reports, _ = reports
    bad_site, bad_job, bad_run = leased[3]
    apply = runs_module._apply_report

    def failing(s: Session, site: str, report: RunReport, now: float, in_session: bool = True) -> list[Command]:
        if report.run_id == bad_run:
            raise RuntimeError("this report breaks its transaction")
        return apply(s, site, report, now, in_session)

    monkeypatch.setattr(runs_module, "_apply_report", failing)
    outcomes = held_batch(site_reports, [(site, RunReport(run, RunState.RUNNING)) for site, _, run in leased])
    assert [type(o) for o in outcomes] == [list] * 3 + [RuntimeError] + [list] * (SITES - 4)
    states = {job: store.jobs.get(job).state for _, job, _ in leased}
    assert states.pop(bad_job) is JobState.LEASED  # its own change, and only it, is lost
    assert set(states.values()) == {JobState.RUNNING}


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_report_postgresql_refuses_does_not_lose_the_others(store, leased, reports) -> None:
    site_reports, _ = reports
    calls = [
        (site, RunReport(run, RunState.FAILED if i == 5 else RunState.RUNNING, "nul \x00 byte" if i == 5 else ""))
        for i, (site, _, run) in enumerate(leased)
    ]
    outcomes = held_batch(site_reports, calls)
    assert [isinstance(o, Exception) for o in outcomes] == [i == 5 for i in range(SITES)]
    states = [store.jobs.get(job).state for _, job, _ in leased]
    assert states == [JobState.LEASED if i == 5 else JobState.RUNNING for i in range(SITES)]
