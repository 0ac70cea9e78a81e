"""A silent site is LOST at its lease deadline, not at the cycle's next tick: the
cycle waits at most until the next deadline (SiteLeases.wait_seconds)."""
from __future__ import annotations

import time

from minga.v1 import common_pb2

from scheduler.clock import FakeClock
from scheduler.leases import DEADLINE_MARGIN_SECONDS, SiteLeases
from tests.fixtures_broker import ScriptedSite, gpu_inventory, start_broker
from tests.test_leases import site_info, until

TICK = 2.0


def test_the_cycle_waits_until_just_past_the_next_lease_deadline() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=30)
    leases.connected("a")
    clock.advance(10)
    leases.connected("b")
    assert leases.wait_seconds(TICK) == TICK                 # a's deadline is 20 s away
    clock.advance(19)
    assert leases.wait_seconds(TICK) == 1 + DEADLINE_MARGIN_SECONDS
    clock.advance(1 + DEADLINE_MARGIN_SECONDS)
    assert leases.expired(["a", "b"]) == ["a"]               # the pass after that wait finds it
    assert leases.next_expiry(after=clock.now()) == clock.now() - DEADLINE_MARGIN_SECONDS + 10   # b's
    leases.renew("b")                                        # b keeps talking: its deadline moves on
    assert leases.next_expiry(after=clock.now()) == clock.now() + 30


def test_a_deadline_that_passed_during_a_long_pass_gives_one_immediate_pass_not_a_spin() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=30)
    leases.connected("a")
    assert leases.wait_seconds(TICK) == TICK
    clock.advance(31)                                        # a pass ran across a's deadline
    assert leases.wait_seconds(TICK) == 0                    # so check at once...
    assert leases.wait_seconds(TICK) == TICK                 # ...once (say the store was down)
    assert leases.expired(["a"]) == ["a"]


def test_sites_not_heard_from_since_start_expire_together_at_start_plus_ttl() -> None:
    clock = FakeClock()
    leases = SiteLeases(clock, ttl_seconds=5)
    assert leases.wait_seconds(60) == 5 + DEADLINE_MARGIN_SECONDS
    clock.advance(5 + DEADLINE_MARGIN_SECONDS)
    assert leases.expired(["x", "y"]) == ["x", "y"]
    assert leases.next_expiry(after=clock.now()) is None
    assert leases.wait_seconds(60) == 60


def test_a_broker_with_a_long_tick_still_loses_a_silent_site_at_its_deadline(tmp_path) -> None:
    """With an hour-long tick, only the lease deadline can make the cycle run in time."""
    ttl = 1.0
    broker = start_broker(tmp_path, lease_ttl_seconds=ttl)
    try:
        broker.broker.core.cycle.tick_seconds = 3600.0
        broker.institution("uchile", "CL")
        site = ScriptedSite(broker.address, broker.join("uchile", "a"), gpu_inventory(), heartbeat_seconds=0.2)
        site.next("welcome")
        until(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_READY)
        time.sleep(2 * ttl)
        assert site_info(broker, "a").state == common_pb2.SITE_STATE_READY   # heartbeats keep it
        site.fall_silent()
        until(lambda: site_info(broker, "a").state == common_pb2.SITE_STATE_LOST, timeout=ttl + 5)
        site.close()
    finally:
        broker.close()
