"""Ray's refusals to start a run, told apart: transient ones are retried with a capped,
jittered backoff before the start counts as failed; permanent ones are not retried.

Transient: HTTP 5xx from the dashboard ("500: No available agent to submit job, please
try again later" while the job agent starts, 502/503 while the head restarts), and a
refused or reset connection. Permanent: everything else, e.g. a 4xx for a bad runtime
env, or a working-dir package that cannot be unpacked.

Pure functions: the reconciler keeps the times on its injected clock, so tests never sleep.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

START_TRIES = 6  # submits of one run before its start counts as failed
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 15.0  # 1, 2, 4, 8, 15 s (each jittered): about half a minute in all
REFUSING_COOLOFF_SECONDS = 60.0  # a site DEGRADED by refusals tries again after this long

_STATUS = re.compile(r"status code (\d{3})")
_TRANSIENT_TEXT = (
    "try again later",
    "no available agent",
    "connection refused",
    "connection reset",
    "temporarily unavailable",
    "service unavailable",
    "bad gateway",
)


def is_transient(err: BaseException) -> bool:
    """True if Ray may well accept the same submit a little later."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = str(err).lower()
    status = _STATUS.search(text)
    if status is not None:
        return status.group(1).startswith("5") and "already exists" not in text
    if isinstance(err, OSError):  # requests' ConnectionError is an OSError too
        return True
    return any(marker in text for marker in _TRANSIENT_TEXT)


def retry_delay(tries: int, rng: random.Random) -> float:
    """The wait after the `tries`-th refused submit: exponential, capped, with jitter
    (between half and all of it), so agents that were refused together do not retry together."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(0, tries - 1))
    return ceiling * (0.5 + 0.5 * rng.random())


@dataclass
class PendingStart:
    """A run whose submit Ray refused, waiting for its next try."""

    tries: int  # submits refused so far
    next_at: float  # clock time of the next try
    last_error: str
