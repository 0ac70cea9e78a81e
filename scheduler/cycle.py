"""The broker's scheduling cycle, a short list of named phases:

expire (leases, walltimes) → charge usage → load snapshot → schedule (pure policy)
→ persist in one transaction → publish.

It runs on events (submit, capacity change, run ended, site connected or lost)
and on a periodic tick, in one thread, so two cycles never overlap.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from scheduler.clock import Clock
from scheduler.commands import Command, StartRunCommand
from scheduler.leader import NotLeading
from scheduler.leases import SiteLeases
from scheduler.policy import Decisions, Snapshot, schedule
from scheduler.sessions import SessionRegistry
from scheduler.store import Store
from scheduler.store.base import StoreUnavailable
from scheduler.store.runs import Fence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleResult:
    placed: int
    preempted: int
    waiting: int
    published: int


class SchedulingCycle:
    def __init__(self, store: Store, sessions: SessionRegistry, clock: Clock, leases: SiteLeases,
                 tick_seconds: float = 2.0, fence: Fence | None = None) -> None:
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.leases = leases
        self.tick_seconds = tick_seconds
        self.fence = fence      # run first in each write; refuses a pass of a deposed leader
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- phases ---------------------------------------------------------------
    def expire(self) -> list[Command]:
        """Sites silent past the lease TTL become LOST and their runs are requeued;
        runs past their walltime are stopped (their jobs end FAILED, TIMEOUT)."""
        now = self.clock.now()
        for site in self.leases.expired(self.store.sites.names_not_lost()):
            lost = self.store.runs.site_lost(site, f"no report for {self.leases.ttl_seconds:.0f} s", now,
                                             self.fence)
            self._log_lost(site, lost)
        return self.store.runs.stop_overdue(now, self.fence)

    def _log_lost(self, site: str, requeued: int) -> None:
        """A site that went silent is news (WARNING). One that has not reconnected since this
        broker started is usually an agent still on its way back: INFO, unless runs had to move."""
        ttl = self.leases.ttl_seconds
        if self.leases.heard_from(site):
            log.warning("site %s lost: no report within the %.0f s lease TTL; %d run(s) requeued", site, ttl,
                        requeued)
        else:
            log.log(logging.WARNING if requeued else logging.INFO,
                    "site %s has not reconnected in the %.0f s since this broker started; shown as LOST "
                    "until it does; %d run(s) requeued", site, ttl, requeued)

    def charge(self) -> None:
        """Bring the usage and contribution ledgers up to now, incrementally."""
        self.store.runs.charge(self.clock.now(), self.fence)

    def load_snapshot(self) -> Snapshot:
        return self.store.runs.load_snapshot(self.clock.now())

    def decide(self, snapshot: Snapshot) -> Decisions:
        return schedule(snapshot, self.clock.now())

    def persist(self, decisions: Decisions) -> list[Command]:
        return self.store.runs.apply_decisions(decisions, self.clock.now(), self.fence)

    def publish(self, commands: list[Command]) -> int:
        """Send committed leases and stops; an offline site levels up when it reconnects."""
        return sum(self.sessions.send(cmd) for cmd in commands)

    def run_once(self) -> CycleResult:
        stops = self.expire()
        self.charge()
        decisions = self.decide(self.load_snapshot())
        commands = self.persist(decisions)
        published = self.publish(stops + commands)
        starts = sum(isinstance(c, StartRunCommand) for c in commands)
        return CycleResult(placed=starts, preempted=len(commands) - starts,
                           waiting=len(decisions.waiting), published=published)

    # -- loop -------------------------------------------------------------------
    def trigger(self) -> None:
        """Ask for a cycle soon (an event happened)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduling-cycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        store_down = False
        while not self._stop.is_set():
            self.leases.wait(self._wake, self.tick_seconds)   # or until a lease runs out
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if store_down:
                    self.leases.restart()   # sites could not report while the store was down
                self.run_once()
                if store_down:
                    log.info("database reachable again; scheduling resumes")
                store_down = False
            except NotLeading as exc:
                log.warning("scheduling pass refused: %s", exc)
            except StoreUnavailable as exc:
                if not store_down:
                    log.warning("scheduling cycle skipped: database unavailable (%s)", exc)
                store_down = True
            except Exception:  # noqa: BLE001 - the cycle must outlive one bad pass
                log.exception("scheduling cycle failed; retrying at the next tick")
