"""Open site streams, so a command reaches a connected agent at once.

Each site has at most one session; a new Connect from the same site replaces
the old stream (the agent reconnected), which is closed. A sync gRPC server holds
two threads per open stream (the handler and its reader), so the registry caps the
open sessions at what the server was sized for (`MAX_SITE_STREAMS`): a site beyond
it is refused and retries, and the API keeps its own workers.
"""

from __future__ import annotations

import queue
import threading

from minga.common.domain import Inventory, ResourceExhausted
from minga.common.site_messages import Command

CLOSE = None  # sentinel that ends a session's outgoing stream
MAX_SITE_STREAMS = 2000  # a federation of 100 institutions has a few hundred sites
FULL_RETRY_SECONDS = 5.0  # the retry hint to a site refused because the broker is full


class SiteSession:
    def __init__(self, site: str, inventory: Inventory | None = None) -> None:
        self.site = site
        self.inventory = inventory  # the last one the site sent: a repeat is no news
        self.outbox: queue.Queue[Command | None] = queue.Queue()

    def send(self, command: Command) -> None:
        self.outbox.put(command)

    def close(self) -> None:
        """End the outgoing stream after what is queued (safe to call more than once)."""
        self.outbox.put(CLOSE)


class SessionRegistry:
    def __init__(self, max_sessions: int = MAX_SITE_STREAMS) -> None:
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._sessions: dict[str, SiteSession] = {}

    def open(self, site: str, inventory: Inventory | None = None) -> SiteSession:
        """The site's new session; ResourceExhausted if `max_sessions` other sites hold one."""
        session = SiteSession(site, inventory)
        with self._lock:
            old = self._sessions.get(site)
            if old is None and len(self._sessions) >= self.max_sessions:
                raise ResourceExhausted(
                    f"this broker holds its maximum of {self.max_sessions} site streams; the agent retries",
                    FULL_RETRY_SECONDS,
                )
            self._sessions[site] = session
        if old is not None:
            old.close()
        return session

    def close(self, session: SiteSession) -> bool:
        """Close `session`; True if it was still the site's current one."""
        with self._lock:
            current = self._sessions.get(session.site) is session
            if current:
                del self._sessions[session.site]
        session.close()
        return current

    def drop(self, site: str) -> bool:
        """End the site's open stream, if any (its credential was revoked)."""
        with self._lock:
            session = self._sessions.pop(site, None)
        if session is not None:
            session.close()
        return session is not None

    def send(self, command: Command) -> bool:
        """Queue a command for its site; False if the site is not connected now."""
        with self._lock:
            session = self._sessions.get(command.site)
        if session is None:
            return False
        session.send(command)
        return True

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.close()
