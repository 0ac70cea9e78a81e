"""Emulated site agents for the load benchmarks, many to a (spawned) process, each
with its own channel and Connect stream and a fixed inventory of 8 A100s; every
process reports how many of its agents the broker has welcomed. Two kinds:

- real: `minga.agent.session.Agent` over the fake Ray backend (tests/fakes/fake_backend.py). Four
  threads each, whose waits wake every 100-200 ms: right for tens of agents;
- light: the agent's protocol only (Hello with the inventory and no runs, then a
  heartbeat at the period the Welcome sets, commands read and dropped), as asyncio
  tasks over grpc.aio: 250 of them in a process cost next to nothing.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import tempfile
import time
from pathlib import Path

import grpc
import harness

from minga.agent import AGENT_VERSION, wire
from minga.agent.backend import RunRequest
from minga.agent.session import Agent, AgentConfig
from minga.common.domain import RunState
from minga.v1 import common_pb2, site_pb2_grpc
from tests.fakes.fake_backend import FakeBackend

INVENTORY = common_pb2.Inventory(
    gpus=[common_pb2.GpuPool(model="A100", memory_mb=40960, total=8, free=8, largest_node=8)], cpus=64, nodes=1
)


class InstantBackend(FakeBackend):
    """A fake Ray where every run succeeds as soon as it is submitted."""

    def submit(self, run: RunRequest) -> bool:
        accepted = super().submit(run)
        if accepted:
            self.set_state(run.run_id, RunState.SUCCEEDED)
        return accepted


def _real_agents(
    index: int,
    address: str,
    tokens: list[str],
    poll: float,
    instant: bool,
    status: mp.Queue[tuple[int, int]],
    stop: mp.Event,
) -> None:
    """Run one agent per token in this process; report how many are welcomed, every second."""
    with tempfile.TemporaryDirectory(prefix="minga-bench-agents-") as cache:
        backend = InstantBackend if instant else FakeBackend
        agents = [
            Agent(
                AgentConfig(broker=address, token=token, poll_seconds=poll, health_seconds=5.0, cache_dir=Path(cache)),
                backend=backend(),
                inventory_source=lambda: INVENTORY,
            )
            for token in tokens
        ]
        for agent in agents:
            agent.start()
        while not stop.wait(1.0):
            status.put((index, sum(a.connected.is_set() for a in agents)))
        for agent in agents:
            agent.stop(timeout=1.0)


def _light_agents(
    index: int,
    address: str,
    tokens: list[str],
    poll: float,
    instant: bool,
    status: mp.Queue[tuple[int, int]],
    stop: mp.Event,
) -> None:
    """One light agent per token in this process; report how many are welcomed, every second."""
    asyncio.run(_light_main(index, address, tokens, status, stop))


async def _light_main(
    index: int, address: str, tokens: list[str], status: mp.Queue[tuple[int, int]], stop: mp.Event
) -> None:
    welcomed = [False] * len(tokens)
    tasks = [asyncio.create_task(_light_agent(address, token, welcomed, i)) for i, token in enumerate(tokens)]
    while not await asyncio.to_thread(stop.wait, 1.0):
        status.put((index, sum(welcomed)))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _light_agent(address: str, token: str, welcomed: list[bool], i: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = site_pb2_grpc.SiteServiceStub(channel).Connect(metadata=harness.bearer(token))
        await call.write(wire.hello_message(AGENT_VERSION, INVENTORY, []))
        first = await call.read()
        welcomed[i] = True
        beat = first.welcome.heartbeat_seconds or 5.0
        drain = asyncio.create_task(_drop_commands(call))
        try:
            while True:
                await asyncio.sleep(beat)
                await call.write(wire.heartbeat_message())
        finally:
            drain.cancel()


async def _drop_commands(call: grpc.aio.StreamStreamCall) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass


class Emulators:
    """The emulator processes, one per group of site tokens, and the latest welcomed
    count of each. `light`: the protocol-only agents; else real ones, with `poll` their Ray
    poll in seconds and, if `instant`, runs that succeed at once."""

    def __init__(
        self, address: str, groups: list[list[str]], light: bool = False, poll: float = 0.05, instant: bool = False
    ) -> None:
        ctx = mp.get_context("spawn")
        self.status: mp.Queue[tuple[int, int]] = ctx.Queue()
        # One stop event each: a process killed while waiting on a shared one would leave it
        # unusable (multiprocessing's Condition waits for every sleeper to wake).
        self.stops = [ctx.Event() for _ in groups]
        self.welcomed = [0] * len(groups)
        self.reported: set[int] = set()  # the processes heard from
        target = _light_agents if light else _real_agents
        self.procs = [
            ctx.Process(target=target, args=(i, address, tokens, poll, instant, self.status, stop))
            for i, (tokens, stop) in enumerate(zip(groups, self.stops, strict=True))
        ]
        for p in self.procs:
            p.start()

    def update(self) -> int:
        while not self.status.empty():
            index, count = self.status.get()
            self.welcomed[index] = count
            self.reported.add(index)
        return sum(self.welcomed)

    def wait_welcomed(self, expected: int, timeout: float, stall: float = 20.0) -> tuple[int, float]:
        """(welcomed, seconds): until all `expected` are welcomed, or `timeout` passes, or
        (once every process has reported) the count stays put for `stall` seconds."""
        t0 = time.monotonic()
        last, last_change = -1, t0
        while time.monotonic() - t0 < timeout:
            count = self.update()
            if count != last or len(self.reported) < len(self.procs):
                last, last_change = count, time.monotonic()
            if count >= expected or time.monotonic() - last_change > stall:
                break
            time.sleep(0.5)
        return last, time.monotonic() - t0

    def cpu_seconds(self) -> float:
        return sum(harness.cpu_seconds(p.pid) for p in self.procs if p.is_alive())

    def kill(self, index: int) -> None:
        os.kill(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].join()
        self.welcomed[index] = 0

    def close(self) -> None:
        for p, stop in zip(self.procs, self.stops, strict=True):
            if p.is_alive():
                stop.set()
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
