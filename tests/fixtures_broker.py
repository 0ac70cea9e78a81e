"""Broker fixtures: a real broker on port 0 over a real SQLite file, real gRPC
channels, and a scripted site that speaks the SiteService stream like an agent."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from minga.common.clock import Clock, FakeClock, RandomIds
from minga.scheduler.core import Core
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.leases import SiteLeases
from minga.scheduler.server import Broker, BrokerConfig
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2_grpc, site_pb2, site_pb2_grpc
from tests.eventually import eventually


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@dataclass
class Caller:
    """Stubs bound to one token."""

    channel: grpc.Channel
    token: str

    @property
    def md(self) -> list[tuple[str, str]]:
        return bearer(self.token)

    @property
    def jobs(self) -> job_pb2_grpc.JobServiceStub:
        return job_pb2_grpc.JobServiceStub(self.channel)

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel)

    @property
    def sites(self) -> site_pb2_grpc.SiteServiceStub:
        return site_pb2_grpc.SiteServiceStub(self.channel)


@dataclass
class RunningBroker:
    broker: Broker
    db_url: str
    admin_token_file: Path
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.broker.address

    def caller(self, token: str) -> Caller:
        ch = grpc.insecure_channel(self.address)
        self.channels.append(ch)
        return Caller(ch, token)

    @property
    def admin(self) -> Caller:
        return self.caller(self.admin_token_file.read_text().strip())

    def institution(self, slug: str, country: str) -> None:
        self.admin.admin.AddInstitution(
            admin_pb2.AddInstitutionRequest(
                institution=admin_pb2.Institution(slug=slug, name=slug.upper(), country=country)
            ),
            metadata=self.admin.md,
        )

    def user(self, name: str, institution: str, role: int, ttl: int = 0) -> str:
        """A new user's token (`role` a common_pb2.Role; `ttl` seconds, 0: the default)."""
        a = self.admin
        request = admin_pb2.AddUserRequest(name=name, institution=institution, role=role, ttl_seconds=ttl)
        return a.admin.AddUser(request, metadata=a.md).token

    def researcher(self, name: str, institution: str) -> Caller:
        return self.caller(self.user(name, institution, common_pb2.ROLE_RESEARCHER))

    def join_token(self, institution: str, site: str, country: str = "") -> str:
        a = self.admin
        return a.admin.CreateSiteToken(
            admin_pb2.CreateSiteTokenRequest(institution=institution, site=site, country=country), metadata=a.md
        ).token

    def join(self, institution: str, site: str, country: str = "") -> str:
        """Join a site through the real flow; returns its site token."""
        token = self.join_token(institution, site, country)
        return self.caller("").sites.Join(site_pb2.JoinRequest(join_token=token)).site_token

    def full_pass(self) -> None:
        """Wait for a whole scheduling pass that began after this call, so the broker has
        acted on everything it was told before: the positive signal to wait for before
        asserting that something did not happen."""
        assert self.broker.core is not None, "a standby runs no passes"
        cycle = self.broker.core.cycle
        # Passes run one after another on one thread: the first to end may have begun before
        # this call, but any pass that ends after that one began after this call.
        for _ in range(2):
            seen = cycle.passes
            cycle.trigger()
            eventually(lambda: cycle.passes > seen, what="a scheduling pass")

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        self.broker.stop(grace=0.5)


class Renewals:
    """Every site lease renewal a broker makes from now on (any message from a site renews
    its lease), stamped with the broker's clock: the positive signal that a site was heard
    after the test moved that clock."""

    def __init__(self, broker: RunningBroker, monkeypatch: pytest.MonkeyPatch) -> None:
        assert broker.broker.core is not None, "a standby holds no leases"
        leases = broker.broker.core.leases
        renew = leases.renew
        self._heard: list[tuple[str, float, bool]] = []  # (site, when, whether its lease was alive)

        def recording(site: str) -> bool:
            at = leases.clock.now()  # read first: the renewal itself is no earlier
            alive = renew(site)
            self._heard.append((site, at, alive))
            return alive

        monkeypatch.setattr(leases, "renew", recording)

    def heard(self, site: str, since: float) -> bool:
        """Wait until `site` is heard at `since` or later; whether its lease was alive each time."""
        alive = eventually(
            lambda: [ok for name, at, ok in list(self._heard) if name == site and at >= since],
            what=f"site {site} heard at {since} or later",
        )
        return all(alive)


def core_over(store: Store, now: float) -> Core:
    """The services' `Core` over `store`, on a FakeClock at `now`; its cycle is not started."""
    clock = FakeClock(now)
    leases = SiteLeases(clock)
    sessions = SessionRegistry()
    cycle = SchedulingCycle(store, sessions, clock, leases)
    return Core(store=store, clock=clock, ids=RandomIds(), sessions=sessions, cycle=cycle, leases=leases)


def start_broker(
    tmp_path: Path,
    db_url: str | None = None,
    clock: Clock | None = None,
    lease_ttl_seconds: float = 30.0,
    metrics_listen: str = "",
    web_listen: str = "",
) -> RunningBroker:
    db_url = db_url or f"sqlite:///{tmp_path / 'broker.db'}"
    token_file = tmp_path / "admin-token"
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=db_url,
            admin_token_file=token_file,
            tick_seconds=0.5,
            lease_ttl_seconds=lease_ttl_seconds,
            metrics_listen=metrics_listen,
            web_listen=web_listen,
        ),
        clock=clock,
    )
    broker.start()
    return RunningBroker(broker, db_url, token_file)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    running = start_broker(tmp_path)
    yield running
    running.close()


def gpu_inventory(model: str = "A100", gpus: int = 4, memory_mb: int = 40960, cpus: float = 16) -> common_pb2.Inventory:
    return common_pb2.Inventory(
        gpus=[common_pb2.GpuPool(model=model, memory_mb=memory_mb, total=gpus, free=gpus, largest_node=gpus)],
        cpus=cpus,
        nodes=1,
    )


class ScriptedSite:
    """Speaks SiteService.Connect the way an agent does, under the test's control."""

    def __init__(
        self,
        address: str,
        site_token: str,
        inventory: common_pb2.Inventory,
        runs: list[site_pb2.RunReport] | None = None,
        heartbeat_seconds: float | None = None,
        ray_down: str | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.channel = channel or grpc.insecure_channel(address)  # a mutual-TLS one for the site port
        self.outbox: queue.Queue[site_pb2.AgentMessage | None] = queue.Queue()
        self.inbox: queue.Queue[site_pb2.BrokerMessage] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()  # the broker ended the stream
        health = site_pb2.Health(ray_down=ray_down is not None, message=ray_down or "")
        self.outbox.put(
            site_pb2.AgentMessage(hello=site_pb2.Hello(inventory=inventory, runs=runs or [], health=health))
        )
        stub = site_pb2_grpc.SiteServiceStub(self.channel)
        self._stream = stub.Connect(self._messages(), metadata=bearer(site_token) if site_token else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._beating = threading.Event()
        if heartbeat_seconds:
            self._beating.set()
            threading.Thread(target=self._beat, args=(heartbeat_seconds,), daemon=True).start()

    def _messages(self) -> Iterator[site_pb2.AgentMessage]:
        while (msg := self.outbox.get()) is not None:
            yield msg

    def _read(self) -> None:
        try:
            for msg in self._stream:
                self.inbox.put(msg)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def _beat(self, seconds: float) -> None:
        while self._beating.is_set():
            self.heartbeat()
            time.sleep(seconds)

    def heartbeat(self) -> None:
        self.outbox.put(site_pb2.AgentMessage(heartbeat=site_pb2.Heartbeat()))

    def health(self, ray_down: str | None) -> None:
        self.outbox.put(
            site_pb2.AgentMessage(health=site_pb2.Health(ray_down=ray_down is not None, message=ray_down or ""))
        )

    def next(self, kind: str, timeout: float = 10.0) -> site_pb2.BrokerMessage:
        """The next broker message of `kind` (welcome, start, stop), skipping others."""
        while True:
            msg = self.inbox.get(timeout=timeout)
            if msg.WhichOneof("body") == kind:
                return msg

    def report(self, run_id: str, state: int, message: str = "", failure: int = 0) -> None:
        self.outbox.put(
            site_pb2.AgentMessage(run=site_pb2.RunReport(run_id=run_id, state=state, message=message, failure=failure))
        )

    def log(self, run_id: str, offset: int, data: bytes) -> None:
        self.outbox.put(site_pb2.AgentMessage(log=common_pb2.LogChunk(run_id=run_id, offset=offset, data=data)))

    def close(self) -> None:
        self._beating.clear()
        self.outbox.put(None)
        self._stream.cancel()
        self.channel.close()


def build_message(cls: type[Message], values: dict[str, Any]) -> Message:
    """A request of type `cls` from plain values: maps, lists and nested messages too."""
    msg = cls()
    for name, value in values.items():
        if isinstance(value, dict):  # a map of scalars
            getattr(msg, name).update(value)
        elif isinstance(value, list):
            getattr(msg, name).extend(value)
        elif isinstance(value, Message):
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


ClockedFederation = tuple[RunningBroker, Caller, ScriptedSite, FakeClock]


@contextmanager
def one_site_on_a_fake_clock(tmp_path: Path) -> Iterator[ClockedFederation]:
    """Institution uchile (CL) with researcher ana and site dcc (4 A100), on a FakeClock.
    Hours pass on that clock between heartbeats: a lease TTL of a month keeps the site."""
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock, lease_ttl_seconds=30 * 86400)
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    try:
        yield broker, ana, site, clock
    finally:
        site.close()
        broker.close()
