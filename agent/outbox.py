"""What the agent has to tell the broker, kept across reconnects.

The wire protocol has no acknowledgements, and a gRPC stream that breaks loses
whatever it had taken but not yet delivered. So the outbox:

- keeps run reports and log chunks queued while no session is open;
- remembers every message a session sent within the last `replay_seconds`, and
  when the session breaks, puts those back in front of the queue, in order, to be
  sent again on the next session (the broker treats a repeated report or log
  chunk, which carries its byte offset, as a no-op);
- calls `on_delivered` for a message once it is older than that window: from then
  on the agent counts it as delivered (see Reconciler.hello_runs).

Inventory and health updates are not queued: only the latest of each is kept (a
replayed old "Ray is down" would requeue runs for nothing). A new session drops
the inventory, since its Hello carries a fresh one; the health update stays, as
it may be newer than the Hello, and repeating the current health changes nothing. Heartbeats are made by the
stream itself, every `heartbeat_seconds`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

from minga.common.clock import Clock
from minga.common.wire.stream import heartbeat_to_pb
from minga.v1 import site_pb2

WAIT_SLICE_SECONDS = 0.1  # how often a waiting stream checks whether it was closed
LATEST_ONLY = ("health", "inventory")  # message kinds of which only the newest matters

Message = site_pb2.AgentMessage


class Outbox:
    """A thread-safe queue of AgentMessages feeding one session at a time."""

    def __init__(
        self,
        clock: Clock,
        replay_seconds: float = 2.0,
        on_delivered: Callable[[Message], None] | None = None,
    ) -> None:
        self._clock = clock
        self.replay_seconds = replay_seconds
        self.on_delivered: Callable[[Message], None] = on_delivered or (lambda _msg: None)
        self._cond = threading.Condition()
        self._queue: deque[Message] = deque()
        self._latest: dict[str, Message] = {}

    def put(self, msg: Message) -> None:
        with self._cond:
            kind = msg.WhichOneof("body")
            if kind in LATEST_ONLY:
                self._latest[kind] = msg
            else:
                self._queue.append(msg)
            self._cond.notify_all()

    def pending(self) -> int:
        """Messages waiting for a session (tests and diagnostics)."""
        with self._cond:
            return len(self._queue) + len(self._latest)

    def stream(self, hello: Message, heartbeat_seconds: float) -> OutboxStream:
        """The request iterator of one new session: `hello`, then the queue."""
        with self._cond:
            self._latest.pop("inventory", None)
        return OutboxStream(self, hello, heartbeat_seconds)

    def _deliver(self, messages: list[Message]) -> None:
        for msg in messages:
            self.on_delivered(msg)


class OutboxStream(Iterator[Message]):
    """Feeds one gRPC Connect call. Close it when the call ends, however it ends."""

    def __init__(self, outbox: Outbox, hello: Message, heartbeat_seconds: float) -> None:
        self._box = outbox
        self._hello: Message | None = hello
        self.heartbeat_seconds = heartbeat_seconds
        self._closed = False
        self._recent: deque[tuple[float, Message]] = deque()
        self._last_heartbeat = outbox._clock.now()

    def __next__(self) -> Message:
        box = self._box
        while True:
            with box._cond:
                if self._closed:
                    raise StopIteration
                now = box._clock.now()
                delivered = self._age_out(now)
                msg = self._take(now)
                if msg is None:
                    box._cond.wait(WAIT_SLICE_SECONDS)
            box._deliver(delivered)
            if msg is not None:
                return msg

    def _take(self, now: float) -> Message | None:
        """The next message to send, recorded for replay; None if nothing is due."""
        box = self._box
        if self._hello is not None:
            msg, self._hello = self._hello, None
            return msg
        if now - self._last_heartbeat >= self.heartbeat_seconds:
            self._last_heartbeat = now
            return heartbeat_to_pb()
        if box._queue:
            msg = box._queue.popleft()
            self._recent.append((now, msg))
            return msg
        for kind in LATEST_ONLY:
            if kind in box._latest:
                return box._latest.pop(kind)
        return None

    def _age_out(self, now: float) -> list[Message]:
        done = []
        while self._recent and now - self._recent[0][0] > self._box.replay_seconds:
            done.append(self._recent.popleft()[1])
        return done

    def close(self) -> None:
        """End the stream: recent messages go back to the front of the queue."""
        box = self._box
        with box._cond:
            if self._closed:
                return
            self._closed = True
            delivered = self._age_out(box._clock.now())
            box._queue.extendleft(msg for _, msg in reversed(self._recent))
            self._recent.clear()
            box._cond.notify_all()
        box._deliver(delivered)
