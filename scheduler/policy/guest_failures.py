"""A second failure memo for guests: "no pool takes this request" shared across borrowers.

`fair_cycle.decide` memoizes failures per (institution, request, walltime, ...), since a
search's outcome depends on who asks. When a lending cap is reached (a site's
`max_lent`, an institution's `limits set --lend`), GPUs stay free that only their owner
may take, so the queue's tail is not decided in bulk (`queue_tail.py`) and every
institution's first job of each request shape searches those pools again in vain:
tens of thousands of searches at 100,000 pending.

For a *pure guest*, though, the institution does not matter. A job whose institution
owns no pool with the GPUs free and has no borrowing limit is looked at by every pool it
can reach exactly as any other such guest is (unless a site policy lists institutions
by name: then the key holds the institution too): the
lending caps, the institution lending limits and the reservation compare only GPUs,
walltime and owner != borrower; a site's other rules only the borrower's country,
walltime, environment and pip names. A failed search visits every reachable pool
whatever the data country, so its reason is the same too. This memo therefore keys a
failure on those fields alone. Free GPUs only shrink within a cycle, so the failure
stands while the pools it tested do not change: each entry keeps the change counts of
their owners (`PoolIndex.owner_changes`: every GPU taken and every CPU-only placement
counts under the site's owner, and the GPUs lent and the sites' lent counts change only
with them), and the memo is cleared when a model's most free GPUs drop (the capacity
reason names them), a reclaim preempts (it gives quota back) or a reservation is held or let go.
"""

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
