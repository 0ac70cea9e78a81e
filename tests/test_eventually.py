"""tests/eventually.py: the first truthy value comes back; a condition never met fails
naming what was awaited and the last value seen."""

from __future__ import annotations

import itertools

import pytest

from tests.eventually import eventually


def test_the_first_truthy_value_comes_back() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "ready", interval=0) == "ready"


def test_a_condition_never_met_fails_naming_it_and_its_last_value() -> None:
    with pytest.raises(AssertionError) as failed:
        eventually(lambda: [] or 0, timeout=0, interval=0)
    assert "eventually(lambda: [] or 0" in str(failed.value) and "(last: 0)" in str(failed.value)


def test_what_describes_the_wait_and_may_be_computed_at_the_end() -> None:
    seen: list[int] = []
    with pytest.raises(AssertionError, match=r"not met within 0 s: 1 tries \(last: None\)"):
        eventually(lambda: seen.append(1), timeout=0, what=lambda: f"{len(seen)} tries")
