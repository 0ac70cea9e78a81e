"""A silent site is LOST at its lease deadline, not at the cycle's next tick: the
cycle's wait between passes (SiteLeases.wait) ends once a lease runs out, and sites
that keep talking never end it."""

from __future__ import annotations

import threading
from dataclasses import replace

from minga.common.clock import FakeClock
from minga.scheduler.leases import SiteLeases
from minga.v1 import common_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Renewals, ScriptedSite, gpu_inventory, start_broker
from tests.test_leases import site_info

HOUR = 3600.0
WAIT = 10.0  # no test waits this long: each wait it starts ends for another reason


class StepsEvent(threading.Event):
    """An event that records how long each wait on it was asked to sleep: the positive
    signal that a waiter is asleep, and for how long, without sleeping in the test."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.steps.append(timeout)
        return super().wait(timeout)


def waiting(leases: SiteLeases, wake: threading.Event, longest: float = 3600.0) -> threading.Thread:
    thread = threading.Thread(target=leases.wait, args=(wake, longest), daemon=True)
    thread.start()
    return thread


def test_next_expiry_is_the_earliest_deadline_ahead_of_sites_not_lost() -> None:
    clock = FakeClock()
    start = clock.now()
    leases = SiteLeases(clock, ttl_seconds=30)
    assert leases.next_expiry(after=start) == start + 30  # sites not heard from yet
    leases.connected("a")
    clock.advance(10)
    leases.connected("b")
    assert leases.next_expiry(after=start + 30) == start + 40  # b's
    clock.advance(21)
    assert leases.expired(["a", "b"]) == ["a"]
    assert leases.next_expiry(after=start + 30) == start + 40  # a is lost: it expires no more
    leases.renew("b")  # b keeps talking: its deadline moves on
    assert leases.next_expiry(after=start + 30) == clock.now() + 30


def test_the_wait_ends_when_a_silent_sites_lease_runs_out() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=0.05)  # seconds of the fake clock, slept for real
    leases.connected("a")
    wake = threading.Event()
    thread = waiting(leases, wake)
    clock.advance(0.1)
    thread.join(WAIT)
    assert not thread.is_alive() and not wake.is_set()  # the deadline ended it, not an event
    assert leases.expired(["a"]) == ["a"]


def test_a_site_that_keeps_talking_never_ends_the_wait_and_an_event_does() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=0.05)
    leases.connected("a")
    clock.advance(0.04)
    leases.renew("a")
    clock.advance(0.04)
    assert leases.expired(["a", "never-heard-from"]) == ["never-heard-from"]  # a pass saw that one
    wake = StepsEvent()
    thread = waiting(leases, wake)
    for _ in range(5):  # many deadlines pass, each after a renewal
        clock.advance(0.04)
        leases.renew("a")
        # Two more waits: the second one began after the renewal, so the waiter saw it.
        seen = len(wake.steps)
        eventually(lambda n=seen: len(wake.steps) >= n + 2, what="the waiter to look at the leases again")
    assert thread.is_alive()
    wake.set()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_a_lease_that_ran_out_ends_one_wait_only_so_a_failing_pass_does_not_spin() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=0.05)
    leases.connected("a")
    clock.advance(0.1)
    first = waiting(leases, threading.Event())
    first.join(WAIT)
    assert not first.is_alive()
    wake = StepsEvent()
    second = waiting(leases, wake)  # the pass failed before it checked expiry
    steps = eventually(lambda: list(wake.steps), what="the second wait to start sleeping")
    assert steps[0] > 3000 and second.is_alive()  # it sleeps for its tick (or an event) instead
    assert leases.expired(["a"]) == ["a"]
    wake.set()
    second.join(WAIT)


def test_a_broker_with_a_long_tick_still_loses_a_silent_site_at_its_deadline(tmp_path, monkeypatch) -> None:
    """With an hour-long tick, only the lease deadline can make the cycle run in time. The
    cycle sleeps until the deadline it reads on the broker's clock, which the test moves:
    once past it, the cycle notices within a TTL of real time."""
    ttl = 1.0
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=ttl)
    try:
        wakeups = broker.broker.core.cycle.wakeups
        wakeups.pacing = replace(wakeups.pacing, tick_seconds=HOUR)
        broker.institution("uchile", "CL")
        renewals = Renewals(broker, monkeypatch)
        site = ScriptedSite(broker.address, broker.join("uchile", "a"), gpu_inventory())  # beats when told
        site.next("welcome")
        eventually(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_READY)
        for _ in range(4):  # two TTLs pass, the site speaking every half TTL...
            clock.advance(ttl / 2)
            site.heartbeat()
            assert renewals.heard("a", since=clock.now())
        broker.full_pass()  # ...and a pass checks the leases
        assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY  # heartbeats keep it
        clock.advance(2 * ttl)  # then it is silent past its deadline
        eventually(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_LOST, timeout=60)  # not the tick
        site.close()
    finally:
        broker.close()
