"""Test tiers, assigned at collection so that test files need no markers for them.

Every test gets exactly one tier marker:

- `slow`: it starts Ray (marked `ray`, or uses a `LocalRayHead`), it runs Hypothesis
  (`given`, `find`, a state machine: hundreds of generated cases), or it is marked
  `slow` by hand (a test of seconds on its own);
- `integration`: it uses something real outside its own code: a broker or another gRPC
  server, a site stream, a database (a `Store` on SQLite, or PostgreSQL: marked
  `postgres`), or a child process;
- `unit`: everything else: in-process logic, fakes, files at most.

A test's tier comes from what it refers to: the test function, its fixtures, and,
transitively, the functions and classes of the test package they name. That is read
from the names their code uses, so a broker started in a local fixture or a helper counts too.
"""

from __future__ import annotations

import dis
import inspect
import subprocess
import types
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import hypothesis
import pytest
from hypothesis.stateful import run_state_machine_as_test

from minga.agent.local_ray import LocalRayHead
from minga.scheduler.server import Broker
from minga.scheduler.store import Store
from minga.scheduler.store.db import make_engines
from tests.fakes.fake_broker import FakeBroker
from tests.fixtures_broker import ScriptedSite, start_broker

TIERS = ("unit", "integration", "slow")
SLOW_MARKERS = ("ray", "slow")
INTEGRATION_MARKERS = ("postgres",)
SLOW_ENTRY_POINTS = (LocalRayHead, hypothesis.given, hypothesis.find, run_state_machine_as_test)
INTEGRATION_ENTRY_POINTS = (
    Broker,
    Store,
    make_engines,
    start_broker,
    ScriptedSite,
    FakeBroker,
    grpc.server,
    subprocess.run,
    subprocess.Popen,
    subprocess.check_output,
    subprocess.check_call,
    subprocess.call,
)
ENTRY_POINTS = SLOW_ENTRY_POINTS + INTEGRATION_ENTRY_POINTS
ENTRY_MODULES = (grpc, subprocess)  # entry points reached as attributes: `grpc.server(...)`
LOADS = {"LOAD_GLOBAL", "LOAD_NAME"}
ATTRIBUTES = {"LOAD_ATTR", "LOAD_METHOD"}


def _referenced(code: types.CodeType, namespace: dict[str, Any]) -> Iterator[Any]:
    """The entry points and test-package objects `code` (and the functions nested in it)
    loads from `namespace`, including entry points one attribute deep (`grpc.server`).
    Reading instructions is slow, so code naming none of those is skipped unread."""
    if any(_worth_following(namespace.get(name)) for name in code.co_names):
        loaded: Any = None
        for ins in dis.get_instructions(code):
            if ins.opname in LOADS:
                loaded = namespace.get(ins.argval)
            elif ins.opname in ATTRIBUTES and loaded in ENTRY_MODULES:
                loaded = getattr(loaded, ins.argval, None)
            else:
                continue
            if _worth_following(loaded):
                yield loaded
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _referenced(const, namespace)


def _worth_following(obj: Any) -> bool:
    return obj is not None and (obj in ENTRY_MODULES or _is_entry_point(obj) or _in_test_package(obj))


def _is_entry_point(obj: Any) -> bool:
    return any(obj is entry for entry in ENTRY_POINTS)


def _functions_of(obj: Any) -> list[types.FunctionType]:
    """The Python functions behind `obj`: itself, or a class's methods and properties,
    each unwrapped from its decorators (Hypothesis' rules wrap theirs)."""
    if isinstance(obj, type):
        members = [m.fget if isinstance(m, property) else m for m in vars(obj).values()]
        members = [m.__func__ if isinstance(m, staticmethod | classmethod) else m for m in members]
    else:
        members = [obj]
    members = [inspect.unwrap(m) if callable(m) else m for m in members]
    return [m for m in members if isinstance(m, types.FunctionType)]


def _in_test_package(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("tests.")


class Tiers:
    """Finds what a test reaches. Fixtures and helpers are shared by many tests, so each
    function's code is read once, and each root's reach is kept."""

    def __init__(self) -> None:
        self._direct: dict[types.FunctionType, tuple[frozenset[int], tuple[types.FunctionType, ...]]] = {}
        self._reach: dict[types.FunctionType, frozenset[int]] = {}

    def reach(self, roots: Iterable[Any]) -> set[int]:
        """Ids of the entry points reachable from `roots`."""
        return {entry for root in roots for fn in _functions_of(root) for entry in self._function_reach(fn)}

    def _function_reach(self, root: types.FunctionType) -> frozenset[int]:
        if root not in self._reach:
            found: set[int] = set()
            seen = {root}
            todo = [root]
            while todo:
                entries, inner = self._references(todo.pop())
                found |= entries
                todo.extend(f for f in inner if f not in seen)
                seen.update(inner)
            self._reach[root] = frozenset(found)
        return self._reach[root]

    def _references(self, fn: types.FunctionType) -> tuple[frozenset[int], tuple[types.FunctionType, ...]]:
        """The entry points `fn` names itself, and the test-package functions it names."""
        if fn not in self._direct:
            entries: set[int] = set()
            inner: list[types.FunctionType] = []
            for obj in _referenced(fn.__code__, fn.__globals__):
                if _is_entry_point(obj):
                    entries.add(id(obj))
                elif _in_test_package(obj):
                    inner.extend(_functions_of(obj))
            self._direct[fn] = (frozenset(entries), tuple(inner))
        return self._direct[fn]

    def tier(self, item: pytest.Item) -> str:
        marked = {m.name for m in item.iter_markers()}
        if marked & set(SLOW_MARKERS) or getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            return "slow"
        reach = self.reach(_roots(item))
        if reach & {id(e) for e in SLOW_ENTRY_POINTS}:
            return "slow"
        if marked & set(INTEGRATION_MARKERS) or reach:
            return "integration"
        return "unit"


def _roots(item: pytest.Item) -> list[Any]:
    """The test function and the functions of every fixture it uses."""
    roots: list[Any] = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the test's fixture closure
    for defs in info.name2fixturedefs.values() if info else ():
        roots.extend(d.func for d in defs)
    return roots


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers = Tiers()
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):  # a tier marked by hand stands
            item.add_marker(tiers.tier(item))
