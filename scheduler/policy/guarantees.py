"""Guarantees, borrowing and lending: Kueue's cohort semantics per institution and model.

Each institution is guaranteed a nominal quota per GPU model (Kueue's nominalQuota): by
default the capacity of its own sites, or the admin's explicit guarantees, scaled down when
they exceed what the federation has of a model. Use beyond the guarantee is borrowed,
bounded by Kueue's borrowingLimit; lendingLimit bounds what others hold of an owner's
capacity. Why explicit and owners' guarantees may overlap: docs/fairshare.md."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import chain

from minga.common.snapshot import Snapshot
from minga.scheduler.policy.queue import Queue


def own_capacity(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """GPUs per model on each institution's sites (every state: they come back)."""
    cap: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for site in snapshot.sites:
        for pool in site.inventory.gpus:
            cap[site.institution][pool.model] += pool.total
    return cap


def guarantees(snapshot: Snapshot) -> tuple[dict[str, dict[str, int]], tuple[str, ...]]:
    """Guarantee per institution and model, and notes where explicit ones were capped."""
    own = own_capacity(snapshot)
    total: dict[str, int] = defaultdict(int)
    for per_model in own.values():
        for model, n in per_model.items():
            total[model] += n
    result: dict[str, dict[str, int]] = {}
    explicit: dict[str, dict[str, int]] = {}
    for inst in sorted(snapshot.institutions, key=lambda i: i.slug):
        if inst.guarantee:
            explicit[inst.slug] = {m: max(n, 0) for m, n in inst.guarantee}
        else:
            result[inst.slug] = dict(own.get(inst.slug, {}))
    for slug, per_model in own.items():
        if slug not in explicit:
            result.setdefault(slug, dict(per_model))
    notes: list[str] = []
    for model in sorted({m for g in explicit.values() for m in g}):
        asked = sum(g.get(model, 0) for g in explicit.values())
        left = total.get(model, 0)
        scale = 1.0 if asked <= left else left / asked
        if scale < 1.0:
            notes.append(
                f"explicit {model} guarantees ask {asked} GPUs, the federation has {left}; scaled by {scale:.2f}"
            )
        for g in explicit.values():
            if model in g:
                g[model] = int(g[model] * scale)
    result.update(explicit)
    return result, tuple(notes)


@dataclass
class Ledger:
    """Per-cycle quota bookkeeping, mutated only inside one `schedule()` call.

    used: GPUs per institution and model held by live runs and this cycle's
    placements; lent: GPUs on each owner's sites held by other institutions.
    """

    guarantee: dict[str, dict[str, int]]
    borrowing_limit: dict[str, int | None]
    lending_limit: dict[str, int | None]
    used: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    lent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notes: tuple[str, ...] = ()

    def borrowed(self, inst: str) -> int:
        """GPUs used beyond the guarantee, summed over models."""
        g = self.guarantee.get(inst, {})
        return sum(max(0, n - g.get(m, 0)) for m, n in self.used.get(inst, {}).items())

    def excess(self, inst: str, model: str) -> int:
        """How far `inst` is above its guarantee for `model` (0 when within it)."""
        return max(0, self.used[inst][model] - self.guarantee.get(inst, {}).get(model, 0))

    def within_guarantee(self, inst: str, model: str, gpus: int) -> bool:
        return self.used[inst][model] + gpus <= self.guarantee.get(inst, {}).get(model, 0)

    def may_borrow(self, inst: str, model: str, gpus: int) -> bool:
        """Kueue borrowingLimit: the extra borrowing this placement adds must stay within it."""
        limit = self.borrowing_limit.get(inst)
        if limit is None:
            return True
        g = self.guarantee.get(inst, {}).get(model, 0)
        used = self.used[inst][model]
        extra = max(0, used + gpus - g) - max(0, used - g)
        return extra == 0 or self.borrowed(inst) + extra <= limit

    def may_lend(self, owner: str, user: str, gpus: int) -> bool:
        """Kueue lendingLimit: others may hold at most that many GPUs of the owner's capacity."""
        if owner == user:
            return True
        limit = self.lending_limit.get(owner)
        return limit is None or self.lent[owner] + gpus <= limit

    def charge(self, user: str, owner: str, model: str, gpus: int) -> None:
        self.used[user][model] += gpus
        if owner != user:
            self.lent[owner] += gpus

    def release(self, user: str, owner: str, model: str, gpus: int) -> None:
        self.used[user][model] -= gpus
        if owner != user:
            self.lent[owner] -= gpus


def build_ledger(snapshot: Snapshot) -> Ledger:
    """The ledger at the start of a cycle: guarantees, limits, and what live runs hold."""
    guarantee, notes = guarantees(snapshot)
    ledger = Ledger(
        guarantee=guarantee,
        borrowing_limit={i.slug: i.borrowing_limit for i in snapshot.institutions},
        lending_limit={i.slug: i.lending_limit for i in snapshot.institutions},
        notes=notes,
    )
    owner_of = {s.name: s.institution for s in snapshot.sites}
    for run in snapshot.live_runs:
        if run.gpus:
            ledger.charge(run.institution, owner_of.get(run.site, ""), run.gpu_model, run.gpus)
    return ledger


@dataclass(frozen=True)
class QuotaRow:
    """One institution and model in the quota view."""

    institution: str
    model: str
    guarantee: int
    used: int
    borrowed: int
    lent: int


def quota_rows(snapshot: Snapshot) -> tuple[QuotaRow, ...]:
    """Guarantee, use, borrowed (use beyond guarantee) and lent (own GPUs held by others)."""
    ledger = build_ledger(snapshot)
    owner_of = {s.name: s.institution for s in snapshot.sites}
    lent: dict[tuple[str, str], int] = defaultdict(int)
    for run in snapshot.live_runs:
        owner = owner_of.get(run.site, "")
        if run.gpus and owner != run.institution:
            lent[(owner, run.gpu_model)] += run.gpus
    keys = {(i, m) for i, g in ledger.guarantee.items() for m in g}
    keys |= {(i, m) for i, u in ledger.used.items() for m, n in u.items() if n}
    keys |= set(lent)
    rows = []
    for inst, model in sorted(k for k in keys if k[0]):
        g = ledger.guarantee.get(inst, {}).get(model, 0)
        used = ledger.used.get(inst, {}).get(model, 0)
        rows.append(QuotaRow(inst, model, g, used, max(0, used - g), lent.get((inst, model), 0)))
    return tuple(rows)


def guarantee_first(queue: Queue, ledger: Ledger) -> list[int]:
    """Jobs that fit within their institution's guarantee go before those that borrow.

    Kueue's scheduler does the same (workloads that need no borrowing are admitted
    before borrowing ones): an owner's reclaimed GPUs go to the owner in the next
    cycle instead of back to a borrower ranked higher in fair share, so reclaim
    does not ping-pong. Demand is counted in queue order against each
    institution's headroom per model. A job that would borrow holds back the
    institution's later jobs on every model it may use (all models, when it names
    none), so its own queue order (and a gang job's place in it) is never changed
    where its jobs compete, only its position against other institutions. A later
    job that fits its guarantee on a model no earlier borrowing job may use still
    goes first: a T4-only job that must borrow does not stop the owner's next,
    unconstrained job from reclaiming the owner's V100s. Only jobs of the first
    class reclaim: the owner's queue, in order, up to its guarantee.

    Returns the first class as positions in `queue.jobs`, in queue order. Each
    institution's jobs are looked at in its own queue order, and only until it has no
    headroom left or is held back on every model: its later jobs all borrow.
    """
    room = {
        inst: {m: g - ledger.used[inst].get(m, 0) for m, g in per_model.items()}
        for inst, per_model in ledger.guarantee.items()
    }
    total = {inst: sum(max(v, 0) for v in r.values()) for inst, r in room.items()}
    chosen: set[int] = set()
    shape_of, shapes = queue.shape_of, queue.shapes
    for inst, runs in queue.runs.items():
        if total.get(inst, 0) <= 0:
            continue
        per_model = room[inst]
        back: frozenset[str] = frozenset()  # the models of earlier borrowing jobs
        for pos in chain.from_iterable(runs):
            gpus, models = shapes[shape_of[pos]][:2]
            if gpus == 0:  # takes no GPUs: nothing to guarantee, nothing to reorder for
                continue
            fits = (
                [m for m, free in per_model.items() if free >= gpus and (not models or m in models) and m not in back]
                if total[inst] >= gpus
                else []
            )
            if fits:
                model = max(fits, key=lambda m: (per_model[m], m))
                per_model[model] -= gpus
                total[inst] -= gpus
                chosen.add(pos)
            elif not models:
                break  # held back on every model: all its later jobs borrow
            else:
                back |= set(models)
            if total[inst] <= 0:
                break
    return list(filter(chosen.__contains__, queue.order))
