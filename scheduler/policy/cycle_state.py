"""The state of one fair-share cycle: what is free, what is decided so far, and the memos.

Built by `Cycle.start` from the frozen snapshot and mutated only inside one
`schedule()` call. Free capacity only shrinks within a cycle (preemptions free GPUs
in the next one), which is what makes the memos sound: a request shape that failed
once fails again for every larger request of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from minga.common.domain import Job, Run
from minga.common.snapshot import Decisions, Placement, Preemption, Snapshot
from minga.scheduler.policy.backfill import NEVER, Ends, Reservation, pool_ends, run_end
from minga.scheduler.policy.entitlement import Tree, build_tree, job_project, run_project
from minga.scheduler.policy.fairshare import fair_tree_order, fair_user_order, rank_factors
from minga.scheduler.policy.guarantees import Ledger, build_ledger
from minga.scheduler.policy.guest_failures import GuestFailures
from minga.scheduler.policy.latency import rank_table
from minga.scheduler.policy.lending_verdicts import Lending
from minga.scheduler.policy.low_carbon import site_intensities
from minga.scheduler.policy.never_fits import NeverFits
from minga.scheduler.policy.pending_columns import pending_columns
from minga.scheduler.policy.pool_index import ANY, Pool, PoolIndex
from minga.scheduler.policy.queue import Queue, fair_queue
from minga.scheduler.policy.share_now import held_by_project
from minga.scheduler.policy.user_tree import Users, build_users, user_holdings, user_id
from minga.scheduler.policy.waiting_list import Verdict, WaitingList

_UNKNOWN = object()

FailureKey = tuple[object, ...]
"""The failure memo's key: who asks, the request but its GPU count, the walltime, and with
site policies what their runtime rules read (`fair_cycle._failure_key`)."""


@dataclass
class Cycle:
    snapshot: Snapshot
    now: float
    tree: Tree  # the account tree, with every account a pending job names
    fair_tree: list[str]  # every project in Fair Tree order (decayed usage over entitlement)
    users: Users  # each project's user leaves with their weights
    fair_users: list[str]  # every user leaf in Fair Tree order (depth first, below `fair_tree`)
    queue: Queue  # the pending jobs in Fair Tree order
    index: PoolIndex
    ledger: Ledger
    never: NeverFits
    home: dict[str, str]  # institution -> its country
    latency: dict[tuple[str, str], int]
    explicit: set[str]  # institutions with an explicit guarantee
    intensity: dict[str, float] = field(default_factory=dict)  # site -> grid intensity (`low_carbon.py`)
    lending: Lending | None = None  # site owners' lending policies; None: no site has one
    reservations: dict[tuple[str, str], Reservation] = field(default_factory=dict)  # EASY backfill, by pool
    reserved_models: set[str] = field(default_factory=set)  # GPU models with a reservation
    gang_reservations: dict[str, int] = field(default_factory=dict)  # model -> those of waiting gangs
    holders: dict[str, tuple[str, str]] = field(default_factory=dict)  # job id -> the pool it reserved
    finite_reservation: bool = False  # some reservation of this cycle starts at a known time
    reservation_changes: int = 0  # reservations held or let go so far (for memos)
    held: dict[str, int] = field(default_factory=dict)  # project -> GPUs it holds now (runs leaving: not)
    held_users: dict[str, int] = field(default_factory=dict)  # user leaf -> the same
    unwaited: set[int] = field(default_factory=set)  # positions decided waiting, then placed after all
    placements: list[Placement] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    waiting_positions: list[int] = field(default_factory=list)  # the columns of a WaitingList
    waiting_reasons: list[str] = field(default_factory=list)
    waiting_never: list[bool] = field(default_factory=list)
    tail: Sequence[int] = ()  # positions waiting on their shape's verdict
    tail_verdicts: list[Verdict] = field(default_factory=list)  # by shape id (those of the tail's shapes)
    guaranteed: set[str] = field(default_factory=set)  # ids of the jobs within their guarantee
    largest_free: int = 0  # most free GPUs on any READY pool; only shrinks
    largest_open: int = 0  # the same, leaving out the pools kept whole for a waiting gang
    tops_seen: int = -1  # `index.top_changes` when the two above were last refreshed
    kept: dict[tuple[str, str], int] = field(default_factory=dict)  # pool kept -> its gang's position
    failed: dict[FailureKey, tuple[int, str]] = field(default_factory=dict)  # shape -> (fewest GPUs, reason)
    guest_failures: GuestFailures = None  # type: ignore[assignment]  # set by `start`, before any use
    reclaim_failed: set[tuple[FailureKey, int]] = field(default_factory=set)  # (failure key, GPUs)
    reclaim_bounds: dict[str, int] = field(default_factory=dict)
    capacity_reasons: dict[tuple[int, int], str] = field(default_factory=dict)
    # country tiers by (origin, allowed countries)
    groups: dict[tuple[str, tuple[str, ...]], list[list[str]]] = field(default_factory=dict)
    placed_ends: dict[tuple[str, str], list[tuple[float, int]]] = field(default_factory=dict)
    _models: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    _headroom: dict[str, int] = field(default_factory=dict)
    _never: list[str | None | object] = field(default_factory=list)  # by shape id; _UNKNOWN: not asked yet
    _request_ids: list[int] = field(default_factory=list)  # by shape id; -1: not asked yet
    _requests: dict[tuple[object, ...], int] = field(default_factory=dict)
    _ends: dict[tuple[str, str], Ends] = field(default_factory=dict)
    _kept_at: dict[int, tuple[str, str]] = field(default_factory=dict)  # `kept`, the other way round

    @classmethod
    def start(cls, snapshot: Snapshot, now: float) -> Cycle:
        pending = pending_columns(snapshot)
        tree = build_tree(snapshot, pending.accounts)
        fair_tree = fair_tree_order(snapshot, tree)
        held_users, live_users = user_holdings(snapshot)
        users = build_users(snapshot, tree, pending.owners, held_users)
        fair_users = fair_user_order(snapshot, users, fair_tree, live_users)
        cycle = cls(
            snapshot=snapshot,
            now=now,
            tree=tree,
            fair_tree=fair_tree,
            users=users,
            fair_users=fair_users,
            queue=fair_queue(pending, rank_factors(fair_users), now, snapshot.settings.age_weight),
            index=PoolIndex(snapshot.sites, snapshot.live_runs),
            ledger=build_ledger(snapshot),
            never=NeverFits(snapshot.sites),
            home={i.slug: i.country for i in snapshot.institutions},
            latency=rank_table(snapshot.settings.latency),
            explicit={i.slug for i in snapshot.institutions if i.guarantee},
        )
        cycle.lending = Lending.start(snapshot, now, cycle.home)
        cycle.intensity = site_intensities(snapshot)
        cycle.held = held_by_project(snapshot)
        cycle.held_users = held_users
        cycle.guest_failures = GuestFailures(cycle)
        cycle.refresh_largest_free()
        cycle._never = [_UNKNOWN] * len(cycle.queue.shapes)
        cycle._request_ids = [-1] * len(cycle.queue.shapes)
        return cycle

    def decisions(self) -> Decisions:
        positions, reasons, never, tail = self.waiting_positions, self.waiting_reasons, self.waiting_never, self.tail
        if self.unwaited:  # placed by fair-share preemption after they were decided
            keep = [k for k, pos in enumerate(positions) if pos not in self.unwaited]
            positions = [positions[k] for k in keep]
            reasons = [reasons[k] for k in keep]
            never = [never[k] for k in keep]
            tail = [pos for pos in tail if pos not in self.unwaited]
        waiting = WaitingList(self.queue.jobs, positions, reasons, never, tail, self.queue.shape_of, self.tail_verdicts)
        return Decisions(placements=tuple(self.placements), waiting=waiting, preemptions=tuple(self.preemptions))

    def wait(self, pos: int, reason: str, never_fits: bool = False) -> None:
        """The job at `pos` in the snapshot's pending jobs waits, for `reason`."""
        self.waiting_positions.append(pos)
        self.waiting_reasons.append(reason)
        self.waiting_never.append(never_fits)

    def never_fits(self, pos: int) -> str | None:
        """Why no site could ever hold the pending job at `pos`, or None (per request shape)."""
        sid = self.queue.shape_of[pos]
        reason = self._never[sid]
        if reason is _UNKNOWN:
            reason = self._never[sid] = self.never.reason(self.queue.jobs[pos], self.queue.shapes[sid])
        return reason  # type: ignore[return-value]  # never _UNKNOWN here: asked just above

    def request_id(self, sid: int) -> int:
        """An id for request shape `sid` but its GPU count: the shapes that share a failure memo."""
        rid = self._request_ids[sid]
        if rid < 0:
            rid = self._request_ids[sid] = self._requests.setdefault(self.queue.shapes[sid][1:], len(self._requests))
        return rid

    def lends(self, job: Job, site: str, gpus: int) -> bool:
        """Whether `site`'s lending policy (if any) takes `job` now."""
        return self.lending is None or self.lending.refusal(self.lending.key(job), site, gpus) is None

    def capacity_reason(self, gpus: int, most: int) -> str:
        """The reason of a job waiting for GPUs (memoized: most jobs share a handful)."""
        reason = self.capacity_reasons.get((gpus, most))
        if reason is None:
            reason = self.capacity_reasons[(gpus, most)] = (
                f"capacity: waiting for {gpus} free GPUs on one site (most free now: {most})"
            )
        return reason

    def models(self, job: Job) -> list[str]:
        """The federation's GPU models the job allows."""
        wanted = job.spec.resources.gpu_models
        models = self._models.get(wanted)
        if models is None:
            models = self._models[wanted] = [m for m in self.index.models if not wanted or m in wanted]
        return models

    def headroom(self, inst: str) -> int:
        """Most GPUs of one model `inst` could still take within its guarantee."""
        room = self._headroom.get(inst)
        if room is None:
            used = self.ledger.used[inst]
            room = max((g - used.get(m, 0) for m, g in self.ledger.guarantee.get(inst, {}).items()), default=0)
            self._headroom[inst] = room
        return room

    def charged(self, inst: str) -> None:
        """`inst`'s use changed: forget its headroom."""
        self._headroom.pop(inst, None)

    def refresh_largest_free(self) -> None:
        self.tops_seen = self.index.top_changes
        self.largest_free = max(map(self.index.largest_free, self.index.models), default=0)
        self.largest_open = self.largest_free if not self.kept else self._largest_open()

    def _largest_open(self) -> int:
        """The most free GPUs on a READY pool not kept for a gang (kept pools are few). It only
        falls while the kept pools stay kept, so the search starts where it last stopped;
        `largest_open < 0` asks for it from the top (a pool was let go of)."""
        start = self.largest_free if not 0 <= self.largest_open <= self.largest_free else self.largest_open
        kept, index = self.kept, self.index
        for free in range(start, 0, -1):
            for model in index.models:
                if index.largest_free(model) >= free and any(
                    key not in kept for key in index.buckets[(ANY, model)][free]
                ):
                    return free
        return 0

    def keep(self, reservation: Reservation, pos: int) -> None:
        """Keep a pool whole for the waiting gang at `pos`, which fits there now."""
        self.hold(reservation, gang=True)
        self.kept[(reservation.site, reservation.model)] = pos
        self._kept_at[pos] = (reservation.site, reservation.model)
        self.refresh_largest_free()

    def ends_of(self, pool: Pool) -> Ends:
        """When the GPUs of `pool` free up, from its live runs and this cycle's placements
        (memoized until either changes: several reservations look at the same pools)."""
        key = pool.key
        ends = self._ends.get(key)
        if ends is None:
            ends = self._ends[key] = pool_ends(
                [(run_end(r), r.gpus) for r in self.index.runs.get(key, [])] + self.placed_ends.get(key, [])
            )
        return ends

    def kept_for(self, pos: int) -> Pool | None:
        """The pool kept whole for the gang at `pos`, if any."""
        key = self._kept_at.get(pos) if self.kept else None
        return None if key is None else self.index.pools[key]

    def unkeep(self, pool: Pool) -> None:
        """Keep `pool` no longer (its gang cannot take it after all)."""
        key = pool.key
        del self._kept_at[self.kept.pop(key)]
        self.holders.pop(self.reservations.pop(key).job_id, None)
        self.reservation_changes += 1
        self.largest_open = -1  # that pool is open again
        self.refresh_largest_free()

    def unreserved(self, job: Job) -> bool:
        """Whether one of the models `job` allows has no reservation yet."""
        return any(m not in self.reserved_models for m in self.models(job))

    def reservation_for(self, job: Job) -> Reservation | None:
        """The first reservation on a model `job` allows (for its waiting reason)."""
        models = set(self.models(job))
        return next((r for r in self.reservations.values() if r.model in models), None)

    def hold(self, reservation: Reservation, gang: bool = False) -> None:
        """Keep `reservation`'s pool for its job: only jobs it admits may use it. A waiting
        `gang`'s counts against its model's cap (`gang_reservations.GANG_RESERVATIONS`)."""
        key = (reservation.site, reservation.model)
        if gang:
            self.gang_reservations[reservation.model] = self.gang_reservations.get(reservation.model, 0) + 1
        assert key not in self.reservations, key  # one reservation a pool
        self.finite_reservation = self.finite_reservation or reservation.start < NEVER
        self.reservation_changes += 1
        self.reservations[key] = reservation
        self.holders[reservation.job_id] = key
        self.reserved_models.add(reservation.model)

    def preempt(self, run: Run, pool: Pool | None, preemption: Preemption) -> None:
        """Stop `run`: its GPUs leave its institution's and project's count now. The GPUs stay
        out of the free counts: whoever preempted takes them (`place(..., freed=...)`)."""
        if pool is not None:
            self.index.runs[pool.key].remove(run)
            self._ends.pop(pool.key, None)
            self.ledger.release(run.institution, pool.owner, pool.model, run.gpus)
            if self.lending is not None:
                self.lending.placed(pool.site, run.institution, -run.gpus)
        self.charged(run.institution)
        project = run_project(run.institution, run.project)
        self.held[project] -= run.gpus
        leaf = user_id(project, run.owner)
        self.held_users[leaf] = self.held_users.get(leaf, 0) - run.gpus
        self.preemptions.append(preemption)

    def place(self, job: Job, pool: Pool, freed: int = 0, freed_cpus: float = 0.0) -> None:
        """Start `job` on `pool`: take the GPUs and CPUs, charge the institution.

        `freed` GPUs (and `freed_cpus` CPUs) of runs preempted for it come first; only the
        rest is taken from what is free. Free counts never grow within a cycle, which keeps
        the memos sound: what the preempted runs free beyond the job's needs is held until
        the next cycle.
        """
        res = job.spec.resources
        walltime = float(job.spec.walltime_seconds)
        held = self.holders.pop(job.id, None)
        if held is not None and self.reservations[held].job_id == job.id:
            del self.reservations[held]  # its holder is placed (by preemption, or it was kept)
            self.reservation_changes += 1
            kept_for = self.kept.pop(held, None)
            if kept_for is not None:
                del self._kept_at[kept_for]
                self.largest_open = -1  # refreshed below
        reservation = self.reservations.get(pool.key)
        if reservation is not None:
            reservation.consume(pool, res.gpus, walltime, self.now)
        taken = res.gpus - freed if res.gpus > freed else 0
        self.index.take(pool, taken, res.cpus - freed_cpus if res.cpus > freed_cpus else 0.0)
        self.ledger.charge(job.institution, pool.owner, pool.model, res.gpus)
        project = job_project(job)
        self.held[project] = self.held.get(project, 0) + res.gpus
        leaf = user_id(project, job.owner)
        self.held_users[leaf] = self.held_users.get(leaf, 0) + res.gpus
        self.charged(job.institution)
        if self.lending is not None:
            self.lending.placed(pool.site, job.institution, res.gpus)
        end = self.now + walltime if walltime > 0 else NEVER
        self.placed_ends.setdefault(pool.key, []).append((end, res.gpus))
        self._ends.pop(pool.key, None)
        self.placements.append(Placement(job.id, pool.site, pool.model, res.gpus, res.cpus))
        if (
            self.index.top_changes != self.tops_seen
            or self.largest_open < 0
            or self.kept
            and pool.free + taken >= self.largest_open
        ):
            self.refresh_largest_free()  # a model's most free GPUs fell, or the open pools' may have
