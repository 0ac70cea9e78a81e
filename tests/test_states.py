"""The job state machine (common/states.py): one transition table, terminal is final."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import LIVE_JOB_STATES, TERMINAL_JOB_STATES, JobState, RunState
from minga.common.states import (
    ALLOWED_TRANSITIONS,
    IllegalTransitionError,
    can_transition,
    job_state_after_run_report,
    transition,
)

S, R = JobState, RunState
ALL_PAIRS = list(itertools.product(JobState, JobState))
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in ALLOWED_TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if b not in ALLOWED_TRANSITIONS[a]]


def test_table_covers_every_state():
    assert set(ALLOWED_TRANSITIONS) == set(JobState)


def test_table_holds_the_lifecycle_design_md_names():
    """The moves DESIGN.md spells out must all be legal (guards against a shrunk table)."""
    expected = {
        (S.PENDING, S.LEASED),
        (S.LEASED, S.RUNNING),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.LEASED, S.PENDING),
        (S.RUNNING, S.PENDING),
        (S.LEASED, S.CANCELLING),
        (S.RUNNING, S.CANCELLING),
        (S.CANCELLING, S.CANCELLED),
        (S.PENDING, S.CANCELLED),
    }
    assert expected <= set(LEGAL)


@pytest.mark.parametrize(("current", "target"), LEGAL, ids=[f"{a.value}->{b.value}" for a, b in LEGAL])
def test_legal_transition_is_accepted(current, target):
    assert can_transition(current, target)
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL])
def test_illegal_transition_raises(current, target):
    assert not can_transition(current, target)
    with pytest.raises(IllegalTransitionError) as info:
        transition(current, target)
    assert info.value.current is current and info.value.target is target
    assert current.value in str(info.value) and target.value in str(info.value)


def test_illegal_transition_is_a_value_error():
    assert issubclass(IllegalTransitionError, ValueError)


@pytest.mark.parametrize("state", sorted(TERMINAL_JOB_STATES, key=lambda s: s.value))
def test_terminal_states_have_no_exits(state):
    assert state.terminal
    assert ALLOWED_TRANSITIONS[state] == frozenset()
    for target in JobState:
        with pytest.raises(IllegalTransitionError):
            transition(state, target)


def test_no_self_loops():
    for state in JobState:
        assert not can_transition(state, state)


def test_terminal_and_live_sets():
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == TERMINAL_JOB_STATES
    assert {S.LEASED, S.RUNNING, S.CANCELLING} == LIVE_JOB_STATES
    assert not (TERMINAL_JOB_STATES & LIVE_JOB_STATES)
    assert [s for s in JobState if s.live] == [S.LEASED, S.RUNNING, S.CANCELLING]


def test_every_state_can_reach_a_terminal_state():
    for start in JobState:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in ALLOWED_TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL_JOB_STATES, f"{start.value} can never finish"


# -- job_state_after_run_report -------------------------------------------------

REPORT_TABLE = [
    # (job state, run report, expected job state or None for "no change")
    (S.LEASED, R.STARTING, None),
    (S.LEASED, R.RUNNING, S.RUNNING),
    (S.LEASED, R.SUCCEEDED, S.SUCCEEDED),
    (S.LEASED, R.FAILED, S.FAILED),
    (S.LEASED, R.STOPPED, S.FAILED),
    (S.LEASED, R.UNKNOWN, None),
    (S.RUNNING, R.STARTING, None),
    (S.RUNNING, R.RUNNING, None),
    (S.RUNNING, R.SUCCEEDED, S.SUCCEEDED),
    (S.RUNNING, R.FAILED, S.FAILED),
    (S.RUNNING, R.STOPPED, S.FAILED),
    (S.RUNNING, R.UNKNOWN, None),
    (S.CANCELLING, R.STARTING, None),
    (S.CANCELLING, R.RUNNING, None),
    (S.CANCELLING, R.SUCCEEDED, S.SUCCEEDED),
    (S.CANCELLING, R.FAILED, S.FAILED),
    (S.CANCELLING, R.STOPPED, S.CANCELLED),
    (S.CANCELLING, R.UNKNOWN, None),
    (S.PENDING, R.STARTING, None),
    (S.PENDING, R.RUNNING, None),
] + [(t, r, None) for t in sorted(TERMINAL_JOB_STATES, key=lambda s: s.value) for r in RunState]


@pytest.mark.parametrize(
    ("job", "run", "expected"), REPORT_TABLE, ids=[f"{j.value}+{r.value}" for j, r, _ in REPORT_TABLE]
)
def test_job_state_after_run_report(job, run, expected):
    assert job_state_after_run_report(job, run) is expected


def test_every_non_none_report_outcome_is_a_legal_transition():
    """The report table never asks the state machine for an illegal move."""
    for job in JobState:
        if job is S.PENDING:
            continue  # a pending job has no run; fencing keeps its reports away
        for run in RunState:
            target = job_state_after_run_report(job, run)
            if target is not None:
                assert can_transition(job, target), (job, run, target)


def test_terminal_run_report_always_ends_a_live_job():
    for job in LIVE_JOB_STATES:
        for run in (R.SUCCEEDED, R.FAILED, R.STOPPED):
            assert job_state_after_run_report(job, run).terminal


# -- property: exactly one terminal state -----------------------------------------


def _apply(state: JobState, run: RunState, history: list[JobState]) -> JobState:
    target = job_state_after_run_report(state, run)
    if target is None:
        return state
    new = transition(state, target)  # raises on an illegal move: the test fails
    history.append(new)
    return new


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from([S.LEASED, S.RUNNING, S.CANCELLING]),
    events=st.lists(
        st.one_of(st.sampled_from([r for r in RunState if r is not RunState.LOST]), st.just("cancel")), max_size=30
    ),
)
def test_reports_never_leave_a_terminal_state(start, events):
    """Any sequence of run reports (and cancel requests) yields at most one terminal state,
    and once one is reached the job never changes again. (LOST is the broker's own run
    state, never a report.)"""
    state, history = start, [start]
    for event in events:
        before = state
        if event == "cancel":
            if state in (S.LEASED, S.RUNNING):
                state = transition(state, S.CANCELLING)
                history.append(state)
        else:
            state = _apply(state, event, history)
        if before.terminal:
            assert state is before
    terminals = [s for s in history if s.terminal]
    assert len(terminals) <= 1
    if terminals:
        assert state is terminals[0]
    if any(isinstance(e, RunState) and e.terminal for e in events):
        assert state.terminal and len(terminals) == 1
