"""Site leases: every run is leased to its site for as long as the site keeps
reporting. Any message on the site's stream renews the lease; a site silent for
longer than the TTL is LOST and its runs are requeued elsewhere (Armada's
executor leases, Slurm's node-not-responding).

Renewals live in memory, not in the store. A heartbeat is then no database write,
and a broker that restarts (or a standby that takes over) gives every site a
fresh TTL from its own start instead of declaring them all lost at once.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from scheduler.clock import Clock

DEFAULT_TTL_SECONDS = 30.0


class SiteLeases:
    def __init__(self, clock: Clock, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"lease TTL must be positive, not {ttl_seconds}")
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self._since = clock.now()       # a site not heard from since start counts from here
        self._renewed: dict[str, float] = {}
        self._lost: set[str] = set()
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

    def heard_from(self, site: str) -> bool:
        """Whether `site` has said anything since this broker started (or restarted its leases)."""
        with self._lock:
            return site in self._renewed

    def expired(self, sites: Iterable[str]) -> list[str]:
        """Those of `sites` whose lease ran out; they are marked lost here."""
        deadline = self.clock.now() - self.ttl_seconds
        with self._lock:
            gone = [s for s in sites if s not in self._lost and self._renewed.get(s, self._since) < deadline]
            self._lost.update(gone)
        return gone
