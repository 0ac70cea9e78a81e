"""A second failure memo, for pure guests: "no pool takes this request", shared by borrowers.

A job whose institution owns no pool with the GPUs free and has no borrowing limit is seen
by every pool it can reach as any other such guest is, so its failed search is keyed on its
request and only the job fields some site's rules read, not on who asks. An entry stands
while the owners of the pools it tested are unchanged (`PoolIndex.owner_changes`). Why that
is sound: docs/fairshare.md, "When lending caps are reached"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minga.common.domain import Job
from minga.scheduler.policy.lending_verdicts import runtime_key

if TYPE_CHECKING:  # the cycle holds this memo
    from minga.scheduler.policy.cycle_state import Cycle

GuestKey = tuple[object, ...]
"""(request shape id, then only the job fields some site's rules look at; see `GuestFailures.key`)."""


class GuestFailures:
    """Reasons of failed searches by pure guests, each with what it depended on."""

    __slots__ = (
        "_version",
        "_reasons",
        "_own_most",
        "_names_institutions",
        "_names_countries",
        "_walltimes",
        "_runtime",
    )

    def __init__(self, cycle: Cycle) -> None:
        self._version: tuple[int, ...] = ()
        self._reasons: dict[GuestKey, tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._own_most: dict[str, tuple[int, int]] = {}  # institution -> (its changes, most free)
        policies = [r.policy for r in cycle.lending.rules.values()] if cycle.lending is not None else []
        # What the key must hold: only the job fields some site's rules look at.
        self._names_institutions = any(p.allow_institutions or p.deny_institutions for p in policies)
        self._names_countries = any(p.allow_countries or p.deny_countries for p in policies)
        self._walltimes = any(p.guest_max_walltime_seconds for p in policies)
        self._runtime = any(p.no_env or p.env_allow or p.no_pip or p.pip_allow for p in policies)

    def key(self, cycle: Cycle, job: Job, sid: int) -> GuestKey | None:
        """The memo key of `job` (request shape id `sid`), or None when it is no pure guest now."""
        index = cycle.index
        version = (index.top_changes, len(cycle.preemptions), cycle.reservation_changes)
        if version != self._version:
            self._version, self._reasons = version, {}
        inst = job.institution
        if cycle.ledger.borrowing_limit.get(inst) is not None:
            return None
        changes = index.owner_changes[inst]
        known = self._own_most.get(inst)
        if known is None or known[0] != changes:
            known = self._own_most[inst] = (changes, max((p.free for p in index.by_owner.get(inst, ())), default=0))
        spec = job.spec
        if known[1] >= spec.resources.gpus:
            return None
        key: GuestKey = (sid,)
        # A finite reservation backfills by walltime; one that never starts holds its pool whole.
        if self._walltimes or cycle.finite_reservation or cycle.unreserved(job):
            key += (spec.walltime_seconds,)
        if self._names_countries:
            key += (cycle.home.get(inst, ""),)
        if self._names_institutions:
            key += (inst,)
        if self._runtime:
            key += runtime_key(spec)
        return key

    def get(self, cycle: Cycle, key: GuestKey) -> str | None:
        """The reason memoized under `key`, if no pool it looked at has changed since."""
        entry = self._reasons.get(key)
        if entry is None:
            return None
        changes = cycle.index.owner_changes
        for owner, seen in entry[1]:
            if changes[owner] != seen:
                return None
        return entry[0]

    def put(self, cycle: Cycle, key: GuestKey, reason: str, owners: set[str]) -> None:
        changes = cycle.index.owner_changes
        self._reasons[key] = (reason, tuple((o, changes[o]) for o in owners))
