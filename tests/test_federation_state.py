"""The leader's in-memory federation (scheduler.state) against the store, on SQLite and
PostgreSQL: random operations through the repositories and the scheduling cycle, and
after each one the state in memory must equal a fresh load from the store.

A hypothesis state machine drives it (submits, arrays, cancels, cycles, run reports,
lost and degraded sites, inventory changes, admin changes, time passing).
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from minga.common.clock import FakeClock
from minga.common.domain import JobState, RunState
from minga.common.site_messages import RunReport
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.leases import SiteLeases
from minga.scheduler.policy import Snapshot
from minga.scheduler.policy.pending_columns import pending_columns, read_pending
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store
from tests.pg import pg_schema, url_in_schema
from tests.test_pending_columns import same_columns
from tests.test_store import NOW, add_institution, inventory, join_site, new_job

SITES = ("dcc", "usp-1", "unam")


def canonical(snap: Snapshot) -> Snapshot:
    """Order-free parts sorted, so two snapshots compare by content."""
    return replace(snap, live_runs=tuple(sorted(snap.live_runs, key=lambda r: r.id)))


class FederationMirror(RuleBasedStateMachine):
    kind = "sqlite"

    @initialize()
    def setup(self) -> None:
        self._stack = ExitStack()
        if self.kind == "sqlite":
            url = f"sqlite:///{self._stack.enter_context(tempfile.TemporaryDirectory())}/broker.db"
        else:
            url = url_in_schema(self._stack.enter_context(pg_schema()))
        self.store = Store(url)
        self.clock = FakeClock(NOW)
        add_institution(self.store, "uchile", "CL")
        add_institution(self.store, "usp", "BR")
        for i, name in enumerate(SITES):
            join_site(
                self.store,
                name,
                "uchile" if i != 1 else "usp",
                "CL" if i != 1 else "BR",
                inventory(("A100", 4 + 2 * i)),
            )
        self.cycle = SchedulingCycle(self.store, SessionRegistry(), self.clock, SiteLeases(self.clock, 1e9))
        self.cycle.attach()
        self.n = 0

    def teardown(self) -> None:
        if hasattr(self, "cycle"):
            self.cycle.detach()
            self.store.close()
            self._stack.close()

    def _live_runs(self) -> list:
        return sorted(self.store.runs.load_snapshot(self.clock.now()).live_runs, key=lambda r: r.id)

    @rule(gpus=st.integers(0, 6), owner=st.sampled_from(["ana", "beto"]), inst=st.sampled_from(["uchile", "usp"]))
    def submit(self, gpus: int, owner: str, inst: str) -> None:
        self.n += 1
        self.store.jobs.submit(
            new_job(f"j-{self.n}", gpus=gpus, owner=owner, institution=inst, submitted=self.clock.now()), None
        )

    @rule(tasks=st.integers(1, 5), limit=st.integers(0, 2))
    def submit_array(self, tasks: int, limit: int) -> None:
        self.n += 1
        first = replace(new_job(f"a-{self.n}_0", gpus=1), array_id=f"a-{self.n}", array_index=0, array_limit=limit)
        self.store.arrays.submit(first, list(range(tasks)), limit, None)

    @rule(pick=st.integers(0, 1000))
    def cancel(self, pick: int) -> None:
        jobs = self.store.jobs.list(None, False, None)
        if jobs:
            self.store.jobs.request_cancel(jobs[pick % len(jobs)].id, self.clock.now(), "cancelled")

    @rule()
    def run_cycle(self) -> None:
        self.cycle.run_once()

    @rule(
        pick=st.integers(0, 1000),
        state=st.sampled_from(
            [RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.UNKNOWN]
        ),
        infra=st.booleans(),
    )
    def report(self, pick: int, state: RunState, infra: bool) -> None:
        runs = self._live_runs()
        if runs:
            run = runs[pick % len(runs)]
            self.store.runs.apply_report(
                run.site, RunReport(run.id, state, "m", infrastructure=infra), self.clock.now()
            )

    @rule(
        picks=st.lists(
            st.tuples(
                st.integers(0, 1000),
                st.sampled_from([RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.UNKNOWN]),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def report_batch(self, picks: list[tuple[int, RunState]]) -> None:
        """Several sites' reports applied as one group commit, a run possibly twice."""
        runs = self._live_runs()
        if runs:
            batch = [
                (run.site, RunReport(run.id, state, "m")) for pick, state in picks for run in [runs[pick % len(runs)]]
            ]
            outcomes = self.store.runs.apply_reports(batch, self.clock.now())
            assert not [o for o in outcomes if isinstance(o, Exception)]

    @rule(site=st.sampled_from(SITES))
    def lose_site(self, site: str) -> None:
        self.store.runs.site_lost(site, "no report", self.clock.now())

    @rule(site=st.sampled_from(SITES), down=st.booleans(), refusing=st.booleans())
    def site_health(self, site: str, down: bool, refusing: bool) -> None:
        self.store.runs.site_health(site, down, "ray", self.clock.now(), refusing)

    @rule(site=st.sampled_from(SITES), gpus=st.integers(0, 8))
    def reconnect(self, site: str, gpus: int) -> None:
        self.store.sites.connected(site, inventory(("A100", gpus)), self.clock.now())
        self.store.runs.reconcile_site(site, [], self.clock.now())

    @rule(site=st.sampled_from(SITES))
    def disconnect(self, site: str) -> None:
        self.store.sites.disconnected(site, self.clock.now())

    @rule(weight=st.floats(0.5, 4.0))
    def admin_changes_the_tree(self, weight: float) -> None:
        self.store.shares.set_weight("institution", "usp", weight)
        self.store.shares.update_settings(age_weight=weight)

    @rule(seconds=st.floats(0.5, 400.0))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def memory_equals_the_store(self) -> None:
        if not hasattr(self, "cycle"):
            return
        now = self.clock.now()
        snapshot = self.cycle.state.snapshot(now)
        assert canonical(snapshot) == canonical(self.store.runs.load_snapshot(now))
        assert same_columns(pending_columns(snapshot), read_pending(snapshot.pending))  # kept, not read
        assert self.cycle.state.rebuilds == 1  # never fell back to a full reload


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_memory_stays_equal_to_a_fresh_load_from_the_store(kind):
    FederationMirror.kind = kind
    run_state_machine_as_test(
        FederationMirror,
        settings=settings(
            max_examples=12,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )


def leader_with_jobs(tmp_path, jobs: int) -> tuple[Store, FakeClock, SchedulingCycle]:
    """A store with one 8-GPU site and `jobs` pending jobs, and a cycle over it."""
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    clock = FakeClock(NOW)
    add_institution(store)
    join_site(store, "dcc")
    for i in range(jobs):
        store.jobs.submit(new_job(f"j-{i:03d}", gpus=1 + i % 3), None)
    return store, clock, SchedulingCycle(store, SessionRegistry(), clock, SiteLeases(clock, 1e9))


def test_a_cycle_reads_no_row_to_build_its_snapshot(tmp_path):
    """Once the leader holds the federation, a cycle's snapshot issues no SQL at all."""
    from sqlalchemy import event

    store, clock, cycle = leader_with_jobs(tmp_path, 20)
    cycle.run_once()
    statements: list[str] = []
    event.listen(store.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    snapshot = cycle.load_snapshot(clock.now())
    assert statements == [] and len(snapshot.pending) > 0 and snapshot.live_runs
    assert [j.state for j in snapshot.pending] == [JobState.PENDING] * len(snapshot.pending)
    cycle.detach()
    store.close()


def test_a_deep_queue_writes_the_new_jobs_reasons_each_cycle_and_the_others_in_turn(tmp_path, monkeypatch):
    from minga.scheduler.policy.waiting_list import WaitingList
    from minga.scheduler.state import federation

    monkeypatch.setattr(federation, "FULL_DIFF_JOBS", 0)  # every queue counts as deep
    monkeypatch.setattr(federation, "REFRESH_JOBS", 100)
    store, clock, cycle = leader_with_jobs(tmp_path, 300)
    order = [j.id for j in sorted(store.jobs.list(None, False, JobState.PENDING), key=lambda j: (j.submitted_at, j.id))]

    def unwritten() -> set[str]:
        return {
            j.id for j in store.jobs.list(None, False, JobState.PENDING) if j.reason == "waiting"
        }  # as new_job made them

    for turn in range(3):  # 100 more reasons each cycle, in queue order
        cycle.run_once()
        assert unwritten() == set(order[100 * (turn + 1) :])
        clock.advance(1.0)
    stored = {j.id: j.reason for j in store.jobs.list(None, False, JobState.PENDING)}

    store.jobs.submit(new_job("j-new", gpus=2), None)
    clock.advance(1.0)
    decisions = cycle.decide(cycle.load_snapshot(clock.now()), clock.now())
    assert isinstance(decisions.waiting, WaitingList)
    every = {w.job_id: w.reason for w in decisions.waiting}
    jobs = decisions.waiting.jobs
    assert decisions.waiting.reasons_at(range(len(jobs))) == every
    cycle.persist(decisions, clock.now())  # j-new's reason, and the first 100 again
    assert store.jobs.get("j-new").reason == every["j-new"]
    assert {j.id: j.reason for j in store.jobs.list(None, False, JobState.PENDING) if j.id != "j-new"} == {
        i: (every[i] if i in order[:100] else r) for i, r in stored.items()
    }
    cycle.detach()
    store.close()
