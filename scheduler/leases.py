"""Site leases: every run is leased to its site for as long as the site keeps reporting;
a site silent for longer than the TTL is LOST and its runs are requeued elsewhere.

Renewals live in memory (a heartbeat writes nothing), and expiry is checked at the next
lease deadline, not only at the cycle's tick. See docs/reliability.md, "Leases and fencing".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from minga.common.clock import Clock

DEFAULT_TTL_SECONDS = 30.0
# A lease is expired once the clock is past its deadline; waking this much later makes
# sure it is (the wait runs on the monotonic clock, deadlines on the injected one).
DEADLINE_MARGIN_SECONDS = 0.01


class SiteLeases:
    def __init__(self, clock: Clock, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"lease TTL must be positive, not {ttl_seconds}")
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self._since = clock.now()  # a site not heard from since start counts from here
        self._renewed: dict[str, float] = {}
        self._lost: set[str] = set()
        self._checked = self._since  # when expiry was last checked
        self._woken = self._since  # when a lease that ran out last ended the cycle's wait
        self._lock = threading.Lock()

    def renew(self, site: str) -> bool:
        """The site said something. False if its lease had already expired: its runs
        were requeued, so the session must start over with a Hello."""
        with self._lock:
            if site in self._lost:
                return False
            self._renewed[site] = self.clock.now()
            return True

    def connected(self, site: str) -> None:
        """A Hello: the site lists its runs again, so a lost site may come back."""
        with self._lock:
            self._lost.discard(site)
            self._renewed[site] = self.clock.now()

    def restart(self) -> None:
        """Every site's lease starts afresh now: after the broker could not read its
        store for a while, the sites that kept trying must not all be declared lost."""
        with self._lock:
            self._since = self.clock.now()
            self._renewed.clear()

    def renewed_at(self, site: str) -> float | None:
        """When `site` last renewed its lease (reported), if it has since this broker started."""
        with self._lock:
            return self._renewed.get(site)

    def heard_from(self, site: str) -> bool:
        """Whether `site` has said anything since this broker started (or restarted its leases)."""
        with self._lock:
            return site in self._renewed

    def expired(self, sites: Iterable[str]) -> list[str]:
        """Those of `sites` whose lease ran out; they are marked lost here."""
        now = self.clock.now()
        deadline = now - self.ttl_seconds
        with self._lock:
            self._checked = now
            gone = [s for s in sites if s not in self._lost and self._renewed.get(s, self._since) < deadline]
            self._lost.update(gone)
        return gone

    def next_expiry(self, after: float) -> float | None:
        """The earliest lease deadline later than `after` among sites not lost (a site
        silent since then expires right after it); None if there is none."""
        with self._lock:
            # Sites not heard from since start are not listed here: they all expire at once.
            deadlines = [t + self.ttl_seconds for s, t in self._renewed.items() if s not in self._lost]
            deadlines.append(self._since + self.ttl_seconds)
        ahead = [d for d in deadlines if d > after]
        return min(ahead) if ahead else None

    def wait(self, wake: threading.Event, longest: float) -> None:
        """The cycle's wait between passes: until `wake` is set, `longest` seconds (its tick)
        pass, or a lease runs out, whichever comes first. It sleeps until just past the next
        deadline, and sleeps on if that site spoke meanwhile, so sites that keep talking
        cost no pass. A lease that ran out ends one wait only: if the pass that follows
        fails (the store is down), the next wait is the tick, not a spin."""
        end = time.monotonic() + longest
        while (left := end - time.monotonic()) > 0:
            now = self.clock.now()
            with self._lock:
                seen = max(self._checked, self._woken)
            deadline = self.next_expiry(after=seen)
            if deadline is not None and deadline < now:  # ran out, and no check saw it yet
                with self._lock:
                    self._woken = now
                return
            step = left if deadline is None else min(left, deadline - now + DEADLINE_MARGIN_SECONDS)
            if wake.wait(step):
                return
