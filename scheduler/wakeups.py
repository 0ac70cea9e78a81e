"""When the scheduling loop runs: on a periodic tick, and soon after an event, but never
event after event.

The rule is Slurm's `sched_min_interval`: an event-triggered pass waits a short settle
delay after the first event and starts no sooner than a minimum interval after the
previous pass ended, so a burst of submits costs a handful of passes. The periodic tick is
not paced. See docs/architecture.md, "Submit path".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Wait = Callable[[threading.Event, float], object]
"""Block until the event is set or the seconds pass (or sooner, e.g. at a lease deadline)."""


@dataclass(frozen=True)
class Pacing:
    tick_seconds: float = 2.0  # a pass this long after the last one, event or not
    min_interval: float = 0.15  # between the end of a pass and an event-triggered start
    settle_seconds: float = 0.01  # after the first event of a burst, before the pass starts

    def __post_init__(self) -> None:
        if min(self.tick_seconds, self.min_interval, self.settle_seconds) < 0:
            raise ValueError(f"scheduling pacing must not be negative: {self}")


class Wakeups:
    """Coalesces `trigger()` calls into passes of one loop thread (see the module doc)."""

    def __init__(self, pacing: Pacing, wait: Wait = threading.Event.wait) -> None:
        self.pacing = pacing
        self._wait = wait
        self._event = threading.Event()
        self._stop = threading.Event()
        self._last_end = time.monotonic()  # when the last pass ended (or pacing began)
        self.passes = 0  # passes run so far: what tests and benches count

    def trigger(self) -> None:
        """Ask for a pass soon; any number of calls before it starts make one pass."""
        self._event.set()

    def stop(self) -> None:
        self._stop.set()
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def next_pass(self) -> bool:
        """Block until the next pass is due; False once stopped. Every trigger that came
        before this returns is covered by the pass the caller runs now."""
        self._wait(self._event, self._until(self.pacing.tick_seconds))
        if self._event.is_set() and not self.stopped:
            ready_at = max(time.monotonic() + self.pacing.settle_seconds, self._last_end + self.pacing.min_interval)
            self._stop.wait(min(ready_at, self._last_end + self.pacing.tick_seconds) - time.monotonic())
        self._event.clear()
        return not self.stopped

    def pass_ended(self) -> None:
        self.passes += 1
        self._last_end = time.monotonic()

    def _until(self, after_last_end: float) -> float:
        return max(0.0, self._last_end + after_last_end - time.monotonic())
