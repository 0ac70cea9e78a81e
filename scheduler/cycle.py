"""The broker's scheduling cycle: expire (leases, walltimes) → charge usage → dependencies
(release or cancel jobs held by `--after`) → snapshot → schedule (pure policy) → persist in
one transaction → publish.

The snapshot comes from the leader's federation in memory (`minga.scheduler.state`). The
cycle runs in one thread, on coalesced events and on a tick (`minga.scheduler.wakeups`), so
two cycles never overlap and no caller waits for one. See docs/architecture.md, "The
federation in memory" and "Submit path".
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

from minga.common.clock import Clock
from minga.common.domain import Job, Run
from minga.common.site_messages import Command, StartRunCommand
from minga.scheduler.estimates import StartEstimates
from minga.scheduler.leader import NotLeadingError
from minga.scheduler.leases import SiteLeases
from minga.scheduler.metrics import BrokerMetrics
from minga.scheduler.policy import Decisions, Snapshot, schedule
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.sim.forecast import FIRST_STEP, Limits
from minga.scheduler.state import FederationState
from minga.scheduler.state.dependency_watch import DependencyWatch
from minga.scheduler.store import Store
from minga.scheduler.store.base import Database, StoreUnavailable
from minga.scheduler.store.dependencies import Resolution
from minga.scheduler.store.runs import Fence
from minga.scheduler.store.state_load import load_accounts, load_rows
from minga.scheduler.wakeups import Pacing, Wakeups
from minga.scheduler.webhooks import WebhookSender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleResult:
    placed: int
    preempted: int
    waiting: int
    published: int


class SchedulingCycle:
    def __init__(
        self,
        store: Store,
        sessions: SessionRegistry,
        clock: Clock,
        leases: SiteLeases,
        tick_seconds: float = 2.0,
        fence: Fence | None = None,
        pacing: Pacing | None = None,
        freeze_gc: bool = False,
        metrics: BrokerMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or BrokerMetrics()  # the broker's, or one of its own nobody serves
        self.freeze_gc = freeze_gc  # a broker process: keep the loaded federation out of the GC's passes
        self.sessions = sessions
        self.clock = clock
        self.leases = leases
        self.fence = fence  # run first in each write; refuses a pass of a deposed leader
        self.wakeups = Wakeups(pacing or Pacing(tick_seconds=tick_seconds), wait=leases.wait)  # or a lease runs out
        self._thread: threading.Thread | None = None
        self.state = FederationState(lambda: load_rows(store.db), lambda: load_accounts(store.db))
        self.dependency_watch = DependencyWatch()
        self._attached: Database | None = None
        # A forecast's cycles are no finer than a tick apart, nor than FIRST_STEP (its cost).
        self.estimates = StartEstimates(Limits(cycle_seconds=max(self.wakeups.pacing.tick_seconds, FIRST_STEP)))
        self.webhooks = WebhookSender(store, clock, self.metrics)  # job notifications, off the cycle's thread

    # -- the in-memory federation ------------------------------------------------
    def attach(self) -> FederationState:
        """Build the federation in memory from the store and follow its commits from now on
        (write-through); done once, when this broker starts leading, and again only if
        applying a commit ever failed."""
        db = self.store.db
        if self._attached is None:
            with db.commit_lock:
                db.observe(self.state)
                db.observe(self.dependency_watch)
                self.dependency_watch.restart()  # nothing was watched before: judge every held job
                self._attached = db
        if self.state.stale:
            self.state.ensure_loaded(db.commit_lock)
            if self.freeze_gc:
                # Hundreds of thousands of long-lived jobs would otherwise be walked by every
                # full collection, which a cycle's allocations trigger (CPython's gc.freeze).
                gc.collect()
                gc.freeze()
        return self.state

    def level_state(self) -> FederationState | None:
        """The leader's federation in memory, if it is loaded and level with the store; None on a
        standby or while it (re)loads. Readers (quotas, the dashboard) then read the store."""
        return self.state if self.state.loaded and not self.state.stale else None

    def detach(self) -> None:
        if self._attached is not None:
            self._attached.unobserve(self.state)
            self._attached.unobserve(self.dependency_watch)
            self._attached = None
            self.state.stale = True

    # -- phases (each takes the cycle's one `now`) -----------------------------------
    def _now(self, now: float | None) -> float:
        """The cycle's `now`; a phase called on its own (a test, a bench) reads the clock."""
        return self.clock.now() if now is None else now

    def expire(self, now: float | None = None) -> list[Command]:
        """Sites silent past the lease TTL become LOST and their runs are requeued;
        runs past their walltime are stopped (their jobs end FAILED, TIMEOUT)."""
        now = self._now(now)
        state = self.attach()
        for site in self.leases.expired(state.sites_not_lost()):
            lost = self.store.runs.site_lost(site, f"no report for {self.leases.ttl_seconds:.0f} s", now, self.fence)
            self._log_lost(site, lost)
        return self.store.runs.stop_overdue(now, self.fence, [r.id for r in state.overdue_runs(now)])

    def _log_lost(self, site: str, requeued: int) -> None:
        """A site that went silent is news (WARNING). One that has not reconnected since this
        broker started is usually an agent still on its way back: INFO, unless runs had to move."""
        ttl = self.leases.ttl_seconds
        if self.leases.heard_from(site):
            log.warning("site %s lost: no report within the %.0f s lease TTL; %d run(s) requeued", site, ttl, requeued)
        else:
            log.log(
                logging.WARNING if requeued else logging.INFO,
                "site %s has not reconnected in the %.0f s since this broker started; shown as LOST "
                "until it does; %d run(s) requeued",
                site,
                ttl,
                requeued,
            )

    def charge(self, now: float | None = None) -> None:
        """Bring the usage and contribution ledgers up to now: computed from memory,
        written in a few batched statements."""
        now = self._now(now)
        state = self.attach()
        self.store.runs.charge_batch(lambda: state.charge(now), self.fence)

    def dependencies(self, now: float | None = None) -> Resolution:
        """Judge the held jobs that wait for a job that ended since the last pass (or that
        were held since): release those whose conditions all hold into the queue, cancel
        those with one that never can, transitively, in one transaction
        (scheduler/dependencies.py). Costs what ended, not the queue's length."""
        now = self._now(now)
        self.attach()
        work = self.dependency_watch.take()
        if not work:
            return Resolution()
        try:
            done = self.store.dependencies.resolve(work.ended, work.held, work.everything, now, self.fence)
        except BaseException:
            self.dependency_watch.give_back(work)
            raise
        self.dependency_watch.judged(done.reworded)  # its own rewrites are no news to judge again
        return done

    def load_snapshot(self, now: float | None = None) -> Snapshot:
        """The policy's input, from memory: no row is read."""
        return self.attach().snapshot(self._now(now))

    def decide(self, snapshot: Snapshot, now: float | None = None) -> Decisions:
        return schedule(snapshot, self._now(now))

    def persist(self, decisions: Decisions, now: float | None = None) -> list[Command]:
        """Write the decisions in one transaction: only what changed."""
        state = self.attach()
        now = self._now(now)
        return self.store.runs.apply_decisions(
            decisions,
            now,
            self.fence,
            free=state.free_gpus,
            changed_reasons=lambda: state.changed_reasons(decisions.waiting),
        )

    def publish(self, commands: list[Command]) -> int:
        """Send committed leases and stops; an offline site levels up when it reconnects."""
        return sum(self.sessions.send(cmd) for cmd in commands)

    def run_once(self) -> CycleResult:
        now = self.clock.now()  # read once: the snapshot and every decision share it
        phase = self.metrics.phase
        started = time.perf_counter()
        with phase("expire"):
            stops = self.expire(now)
        with phase("charge"):
            self.charge(now)
        with phase("dependencies"):
            self.dependencies(now)
        with phase("snapshot"):
            snapshot = self.load_snapshot(now)
        with phase("decide"):
            decisions = self.decide(snapshot, now)
        placed, preempted = self._outcomes(decisions)
        with phase("persist"):
            commands = self.persist(decisions, now)
        self.estimates.observe(snapshot, now)  # its worker forecasts from it only when asked
        with phase("publish"):
            published = self.publish(stops + commands)
        self._count(placed, preempted, now)
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        starts = sum(isinstance(c, StartRunCommand) for c in commands)
        return CycleResult(
            placed=starts, preempted=len(commands) - starts, waiting=len(decisions.waiting), published=published
        )

    def _outcomes(self, decisions: Decisions) -> tuple[list[Job], list[tuple[str, Run | None]]]:
        """The jobs placed and the runs preempted (with their cause), read before the
        commit moves them: for the wait histogram and the GPU-seconds preemption loses."""
        state = self.state
        placed = [j for p in decisions.placements if (j := state.pending_job(p.job_id)) is not None]
        return placed, [(p.kind, state.live_run(p.run_id)) for p in decisions.preemptions]

    def _count(self, placed: list[Job], preempted: list[tuple[str, Run | None]], now: float) -> None:
        for job in placed:
            self.metrics.placed(job, now)
        for cause, run in preempted:
            self.metrics.preempted(cause, run, now)

    # -- loop -------------------------------------------------------------------
    def trigger(self) -> None:
        """Ask for a cycle soon (an event happened); returns at once."""
        self.wakeups.trigger()

    @property
    def passes(self) -> int:
        """How many cycles the loop has run (each one counted, whether it failed or not)."""
        return self.wakeups.passes

    def start(self) -> None:
        """Start the cycle's thread, the start estimates' worker (`scheduler/estimates.py`) and
        the webhook sender (`scheduler/webhooks.py`)."""
        self._thread = threading.Thread(target=self._loop, name="scheduling-cycle", daemon=True)
        self._thread.start()
        self.estimates.start()
        self.webhooks.start()

    def stop(self) -> None:
        self.wakeups.stop()
        self.estimates.stop()
        self.webhooks.stop()
        if self._thread:
            self._thread.join(timeout=10)
        self.detach()

    def _loop(self) -> None:
        store_down = False
        while self.wakeups.next_pass():
            try:
                if store_down:
                    self.leases.restart()  # sites could not report while the store was down
                self.run_once()
                self.metrics.cycles.labels("ok").inc()
                if store_down:
                    log.info("database reachable again; scheduling resumes")
                store_down = False
            except NotLeadingError as exc:
                self.metrics.cycles.labels("not_leading").inc()
                log.warning("scheduling pass refused: %s", exc)
            except StoreUnavailable as exc:
                self.metrics.cycles.labels("store_unavailable").inc()
                self.metrics.store_errors.labels("cycle").inc()
                if not store_down:
                    log.warning("scheduling cycle skipped: database unavailable (%s)", exc)
                store_down = True
            except Exception:  # logged: the cycle must outlive one bad pass
                self.metrics.cycles.labels("error").inc()
                log.exception("scheduling cycle failed; retrying at the next tick")
            finally:
                self.wakeups.pass_ended()
