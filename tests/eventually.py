"""Waiting in tests for something another thread or process does: poll a condition
until it holds, and fail clearly, naming the condition, when it never does."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 15.0
DEFAULT_INTERVAL = 0.05


def eventually(
    condition: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    what: str | Callable[[], str] | None = None,
) -> T:
    """The first truthy value `condition()` returns, checked every `interval` seconds.

    Fails the test (AssertionError) once `timeout` seconds pass without one, saying what
    was awaited (`what`, called then if it is a function, or the condition's source) and
    the last value it returned. The timeout only bounds a broken test: a passing one
    returns at its first success.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            awaited = what() if callable(what) else what or _describe(condition)
            raise AssertionError(f"not met within {timeout:g} s: {awaited} (last: {value!r})")
        time.sleep(interval)


def _describe(condition: Callable[[], object]) -> str:
    """The condition's source line when there is one (a lambda), else its name."""
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return getattr(condition, "__qualname__", repr(condition))
