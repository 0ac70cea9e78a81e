"""Rate limits: the token bucket on an injected clock (no sleeping), and through a real
broker on a clock the test moves: a flooding caller gets RESOURCE_EXHAUSTED with a retry
hint, others are served, and the flooder is served again once it waited as told."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from minga.cli import errors
from minga.cli.client import BrokerClient
from minga.common.clock import FakeClock
from minga.common.domain import JobSpec, Principal, ResourceExhausted, Role
from minga.scheduler.api.ratelimit import Bucket, Limits, Rate, RateLimiter, caller_key, metered, retry_hint
from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import admin_pb2, job_pb2
from tests.fixtures_broker import RunningBroker


class Ticks:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the bucket ----------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    rate = Rate(per_second=2, burst=3)
    bucket = Bucket(tokens=3, at=0.0)
    assert [bucket.take(rate, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(rate, 0.0) == pytest.approx(0.5)  # one token refills in 1/2 s
    assert bucket.take(rate, 0.25) == pytest.approx(0.25)  # a refused take costs nothing
    assert bucket.take(rate, 0.5) == 0.0
    assert bucket.take(rate, 100.0) == 0.0 and bucket.tokens == pytest.approx(2)  # capped at the burst


def test_a_clock_stepping_back_refills_nothing() -> None:
    rate = Rate(per_second=1, burst=1)
    bucket = Bucket(tokens=0, at=50.0)
    assert bucket.take(rate, 10.0) == pytest.approx(1.0)


def test_each_key_has_its_own_bucket() -> None:
    clock = Ticks()
    limiter = RateLimiter(Rate(1, 2), clock=clock)
    assert limiter.wait_for("alice") == 0 and limiter.wait_for("alice") == 0
    assert limiter.wait_for("alice") == pytest.approx(1.0)
    assert limiter.wait_for("bob") == 0  # alice's flood is hers alone
    clock.now += 1.0
    assert limiter.wait_for("alice") == 0


def test_check_raises_with_a_retry_hint() -> None:
    limiter = RateLimiter(Rate(10, 1), clock=Ticks())
    limiter.check("k", "alice")
    with pytest.raises(ResourceExhausted, match=r"alice is over 10 calls per second.*retry in 0\.1 s") as exc:
        limiter.check("k", "alice")
    assert exc.value.retry_after == pytest.approx(0.1)


def test_unlimited_never_refuses_and_keys_are_bounded() -> None:
    assert all(RateLimiter(Rate(0, 0)).wait_for("k") == 0 for _ in range(1000))
    clock = Ticks()
    limiter = RateLimiter(Rate(1, 1), clock=clock, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.wait_for(key)
    assert len(limiter._buckets) == 2  # the longest idle ("a") was forgotten
    assert limiter.wait_for("a") == 0  # forgotten means a fresh (full) bucket


def test_retry_hint_rounds_up() -> None:
    assert retry_hint(0.31) == "retry in 0.4 s"
    assert retry_hint(2.0) == "retry in 2.0 s"


def test_callers_are_keyed_by_identity_else_by_address_without_port() -> None:
    alice = Principal("alice", Role.RESEARCHER, "uchile")
    assert caller_key(alice, "ipv4:10.0.0.1:5555") == "researcher:alice"
    assert caller_key(None, "ipv4:10.0.0.1:5555") == caller_key(None, "ipv4:10.0.0.1:6666") == "peer:ipv4:10.0.0.1"
    assert caller_key(None, "ipv6:[::1]:5555") == "peer:ipv6:[::1]"


def test_a_stream_is_cut_once_it_floods() -> None:
    clock = Ticks()
    stream = metered(iter(range(100)), Rate(1, 5), clock=clock)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ResourceExhausted, match="more than 1 messages per second"):
        next(stream)


def test_default_limits_scale_from_one_figure() -> None:
    limits = Limits.of(200)
    assert limits.calls == Rate(200, 2000) and limits.stream_messages == Rate(2000, 20000)


# -- through a real broker -------------------------------------------------------------


def start_limited(tmp_path: Path, rate_limit: float, clock: FakeClock | None = None) -> RunningBroker:
    token_file = tmp_path / "admin-token"
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0", db_url=db_url, admin_token_file=token_file, tick_seconds=0.5, rate_limit=rate_limit
        ),
        clock=clock,
    )
    broker.start()
    return RunningBroker(broker, db_url, token_file)


@pytest.fixture
def clock() -> FakeClock:
    """The limited broker's clock: its buckets refill only when the test moves it."""
    return FakeClock()


@pytest.fixture
def limited(tmp_path: Path, clock: FakeClock) -> Iterator[RunningBroker]:
    running = start_limited(tmp_path, rate_limit=2, clock=clock)  # bursts of 20 calls, then 2 per second
    yield running
    running.close()


def _flood(call: Callable[[], object], times: int) -> grpc.RpcError:
    for _ in range(times):
        try:
            call()
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return err
    raise AssertionError(f"{times} calls were all served")


def test_a_flooding_caller_is_refused_others_are_served_and_it_is_served_after_waiting(
    limited: RunningBroker, clock: FakeClock
) -> None:
    limited.institution("uchile", "CL")
    alice = limited.researcher("alice", "uchile")
    bob = limited.researcher("bob", "uchile")
    err = _flood(lambda: alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md), 50)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "alice" in err.details() and "retry in" in err.details()
    trailers = dict(err.trailing_metadata())
    wait_ms = int(trailers["retry-after-ms"])
    assert 0 < wait_ms <= 1000
    # Bob, and the admin, are not held back by Alice's flood.
    bob.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=bob.md)
    admin = limited.admin
    admin.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=admin.md)
    with pytest.raises(grpc.RpcError) as still:  # no time passed: her bucket is still empty
        alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md)
    assert still.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    clock.advance(wait_ms / 1000)
    alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md)  # served again


def test_unauthenticated_calls_are_limited_by_address(limited: RunningBroker) -> None:
    from minga.v1 import site_pb2

    anonymous = limited.caller("")
    err = _flood(lambda: anonymous.sites.Join(site_pb2.JoinRequest(join_token="mjt_nope")), 60)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "this address" in err.details()


def test_the_cli_explains_the_refusal_in_one_line_and_the_client_retries_after_the_hint(
    limited: RunningBroker, clock: FakeClock
) -> None:
    limited.institution("uchile", "CL")
    alice = limited.researcher("alice", "uchile")
    err = _flood(lambda: alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md), 50)
    line = str(errors.explain_rpc_error(err, limited.address))
    assert "\n" not in line and "throttling" in line and "retry in" in line
    hint = errors.retry_after(err)
    assert hint is not None and 0 < hint <= 1.0
    # A submit (idempotent: one key) sleeps the hint and goes through. Its sleep moves the
    # broker's clock instead of waiting, and is recorded.
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    with BrokerClient(limited.address, alice.token, sleep=sleep) as client:
        spec = JobSpec(entrypoint="echo hi")
        for _ in range(3):  # each finds no token: it is refused, waits the hint, and is served
            client.submit_job(spec)
    assert slept == [hint] * 3


def test_zero_disables_the_limits(tmp_path: Path) -> None:
    running = start_limited(tmp_path, rate_limit=0)
    try:
        running.institution("uchile", "CL")
        alice = running.researcher("alice", "uchile")
        for _ in range(300):
            alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md)
    finally:
        running.close()
