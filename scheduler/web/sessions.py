"""Dashboard sign-ins: a random session id in an HttpOnly cookie, the token it stands for
kept in the broker's memory only.

The token is checked again on every request, so a revoked or expired token ends its
sessions at once. A session also ends after `LIFETIME_SECONDS` or on sign-out. Sessions
live in one broker's memory: after a restart or a failover, people sign in again.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

LIFETIME_SECONDS = 12 * 3600  # a working day; the token's own expiry ends it sooner
MAX_SESSIONS = 10_000  # the oldest goes first beyond this: memory stays bounded
COOKIE = "minga_session"


@dataclass(frozen=True)
class WebSession:
    token: str
    opened_at: float
    csrf: str  # echoed by the sign-out form: another site cannot sign a user out


class WebSessions:
    def __init__(self, lifetime: float = LIFETIME_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()

    def open(self, token: str, now: float) -> str:
        """A new session for `token`; returns its id (the cookie's value)."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = WebSession(token, now, secrets.token_urlsafe(16))
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return sid

    def get(self, sid: str, now: float) -> WebSession | None:
        """The live session `sid` names; None if unknown, closed or past its lifetime."""
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and now - session.opened_at >= self.lifetime:
                del self._sessions[sid]
                return None
            return session

    def close(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)
