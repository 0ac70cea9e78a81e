"""One broker holds hundreds of agent streams at once (each holds a worker for its whole
life), its API still answers meanwhile, and a stream beyond its capacity is refused
with RESOURCE_EXHAUSTED instead of waiting for a worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc

from minga.common.domain import Role
from minga.scheduler.store import Store
from minga.scheduler.store.models import SiteRow, TokenRow
from minga.v1 import admin_pb2, admin_pb2_grpc, site_pb2, site_pb2_grpc
from tests.fixtures_broker import bearer, gpu_inventory, start_broker

STREAMS = 300  # more than the 128 API workers a broker had for everything


def enroll(store: Store, n: int) -> list[str]:
    """`n` joined sites, in one transaction (the join RPC costs one each: too slow here)."""
    tokens = [f"site-{uuid.uuid4().hex}" for _ in range(n)]
    with store.db.tx() as s:
        for i, token in enumerate(tokens):
            s.add(SiteRow(name=f"s{i:03d}", institution="uchile", country="CL", joined_at=time.time()))
            s.add(
                TokenRow(
                    hash=store.accounts.hash(token),
                    kind="site",
                    subject=f"s{i:03d}",
                    role=Role.SITE.value,
                    institution="uchile",
                    created_at=time.time(),
                )
            )
    return tokens


class Agent:
    """An agent reduced to its stream: Hello, then silence until told to hang up."""

    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        self.hang_up = asyncio.Event()
        self.call = site_pb2_grpc.SiteServiceStub(channel).Connect(self._messages(), metadata=bearer(token))

    async def _messages(self) -> AsyncIterator[site_pb2.AgentMessage]:
        yield site_pb2.AgentMessage(hello=site_pb2.Hello(inventory=gpu_inventory()))
        await self.hang_up.wait()

    async def welcomed(self) -> bool:
        msg = await self.call.read()
        return msg is not grpc.aio.EOF and msg.WhichOneof("body") == "welcome"


async def hold_streams(address: str, tokens: list[str], admin: str) -> tuple[int, int, grpc.StatusCode]:
    """(streams welcomed, sites the API lists as connected meanwhile, the extra stream's status)."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
    agents = [Agent(channels[i % 4], t) for i, t in enumerate(tokens[:-1])]
    welcomed = sum(await asyncio.wait_for(asyncio.gather(*(a.welcomed() for a in agents)), 60))
    sites = await admin_pb2_grpc.AdminServiceStub(channels[0]).ListSites(
        admin_pb2.ListSitesRequest(), metadata=bearer(admin), timeout=10
    )
    connected = sum(s.connected for s in sites.sites)
    extra = Agent(channels[0], tokens[-1])
    try:
        await extra.call.read()
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        code = err.code()
    for a in agents:
        a.hang_up.set()
        a.call.cancel()
    for ch in channels:
        await ch.close()
    return welcomed, connected, code


def test_a_broker_holds_hundreds_of_agent_streams_and_refuses_one_beyond_its_capacity(tmp_path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        core = broker.broker.core
        tokens = enroll(core.store, STREAMS + 1)
        core.sessions.max_sessions = STREAMS
        welcomed, connected, extra = asyncio.run(
            hold_streams(broker.address, tokens, broker.admin_token_file.read_text().strip())
        )
        assert welcomed == STREAMS
        assert connected == STREAMS  # the API answered while they were all open
        assert extra == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        broker.close()
