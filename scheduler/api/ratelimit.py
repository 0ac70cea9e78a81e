"""Rate limits: a token bucket per caller, and a message budget per stream.

One token, site or address flooding the broker with valid calls would otherwise
take its threads and its database from everyone else. Each caller gets its own
bucket (the classic token bucket: `burst` calls at once, refilled at `per_second`),
so a flood exhausts only the flooder's. A refusal says when to come back: the
interceptor turns it into RESOURCE_EXHAUSTED with "retry in N s" and `retry-after-ms`.

The arithmetic is pure and the clock is injected, so the tests need no sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from minga.common.domain import Principal, ResourceExhausted

T = TypeVar("T")
Clock = Callable[[], float]
MAX_KEYS = 100_000  # callers remembered at once; the longest idle is forgotten first (its bucket was full)


@dataclass(frozen=True)
class Rate:
    """`per_second` refill and `burst` capacity; per_second 0 means unlimited."""

    per_second: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


@dataclass(frozen=True)
class Limits:
    """The broker's limits: calls per caller, and messages per client stream (a site's
    Connect stream: reports, logs, heartbeats)."""

    calls: Rate
    stream_messages: Rate

    @staticmethod
    def of(calls_per_second: float) -> Limits:
        """The defaults `--rate-limit N` stands for: bursts of 10 s worth of calls, and a
        stream may send ten times as many messages (a reconnecting agent flushes a backlog)."""
        return Limits(
            calls=Rate(calls_per_second, 10 * calls_per_second),
            stream_messages=Rate(10 * calls_per_second, 100 * calls_per_second),
        )


DEFAULT_CALLS_PER_SECOND = 200.0


@dataclass
class Bucket:
    """A token bucket's state: `tokens` left as of `at`."""

    tokens: float
    at: float

    def take(self, rate: Rate, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens if there are enough: returns 0. Otherwise takes none and
        returns how many seconds until there are (the caller's retry hint)."""
        elapsed = max(0.0, now - self.at)  # a clock stepping back refills nothing
        self.tokens = min(rate.burst, self.tokens + elapsed * rate.per_second)
        self.at = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / rate.per_second


def retry_hint(seconds: float) -> str:
    """'retry in 0.4 s': the retry hint of a refusal's message, rounded up to a tenth."""
    return f"retry in {math.ceil(seconds * 10) / 10:.1f} s"


class RateLimiter:
    """Token buckets by key, thread-safe; remembers at most `max_keys` callers."""

    def __init__(self, rate: Rate, clock: Clock = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def wait_for(self, key: str, cost: float = 1.0) -> float:
        """Charge `key` one call: 0 if it may go ahead, else the seconds it must wait."""
        if self.rate.unlimited:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None) or Bucket(self.rate.burst, now)
            self._buckets[key] = bucket  # most recently used last
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return bucket.take(self.rate, now, cost)

    def check(self, key: str, what: str) -> None:
        """Raise ResourceExhausted with a retry hint when `key` is over its rate."""
        wait = self.wait_for(key)
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit: {what} is over {self.rate.per_second:g} calls per second "
                f"(bursts of {self.rate.burst:g}); {retry_hint(wait)}",
                wait,
            )


def caller_key(principal: Principal | None, peer: str) -> str:
    """Whose bucket a call draws on: the authenticated user or site, else (Join) the
    caller's address without its port, so reconnecting does not buy a fresh bucket."""
    if principal is not None:
        return f"{principal.role.value}:{principal.name}"
    host = peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
    return f"peer:{host}"


def metered(messages: Iterator[T], rate: Rate, clock: Clock = time.monotonic) -> Iterator[T]:
    """`messages`, ending with ResourceExhausted once the stream sends faster than `rate`.

    Each stream has its own budget; a site holds one stream at a time, and opening
    streams is itself a rate-limited call. The stream is cut rather than slowed:
    slowing would hold a broker thread for the flooder."""
    if rate.unlimited:
        yield from messages
        return
    bucket = Bucket(rate.burst, clock())
    for message in messages:
        wait = bucket.take(rate, clock())
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit: this stream sent more than {rate.per_second:g} messages per second "
                f"(bursts of {rate.burst:g}); reconnect and {retry_hint(wait)}",
                wait,
            )
        yield message
