"""A minimal in-process broker speaking SiteService over real gRPC, for the agent's
tests and demos: it records everything an agent sends, lets a test push StartRun
and StopRun down the stream, and can be stopped and restarted on the same port to
play a broker restart. It implements no scheduling at all.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from minga.agent.packages import digest_of
from minga.v1 import common_pb2, site_pb2, site_pb2_grpc

_Outgoing = queue.Queue[site_pb2.BrokerMessage | None]  # messages down one stream; None ends it


class FakeBroker(site_pb2_grpc.SiteServiceServicer):
    """Accepts agents presenting `token`; `port=0` picks a free port."""

    def __init__(
        self,
        token: str = "site-token",
        port: int = 0,
        heartbeat_seconds: float = 0.0,
        site: str = "test-site",
        tls: grpc.ServerCredentials | None = None,
    ) -> None:
        self.token = token
        self.site = site
        self.heartbeat_seconds = heartbeat_seconds
        self.packages: dict[str, bytes] = {}
        self.join_tokens: dict[str, site_pb2.JoinResponse] = {}
        self.received: list[site_pb2.AgentMessage] = []  # every message, in order
        self.hellos: list[site_pb2.Hello] = []
        self.fetches: list[str] = []
        self._cond = threading.Condition()
        self._outgoing: _Outgoing | None = None
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        site_pb2_grpc.add_SiteServiceServicer_to_server(self, self._server)
        bind = f"127.0.0.1:{port}"
        self.port = self._server.add_secure_port(bind, tls) if tls else self._server.add_insecure_port(bind)
        if self.port == 0:
            raise RuntimeError(f"could not bind the fake broker to port {port}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeBroker:
        self._server.start()
        return self

    def stop(self) -> None:
        """Drop every stream at once, like a broker process that dies."""
        with self._cond:
            if self._outgoing is not None:
                self._outgoing.put(None)
                self._outgoing = None
        self._server.stop(grace=None).wait()

    # -- what tests use -----------------------------------------------------------

    def add_package(self, data: bytes) -> str:
        digest = digest_of(data)
        self.packages[digest] = data
        return digest

    def send(self, msg: site_pb2.BrokerMessage) -> None:
        """Push a command down the connected agent's stream."""
        with self._cond:
            if self._outgoing is None:
                raise RuntimeError("no agent is connected")
            self._outgoing.put(msg)

    def start_run(self, start: site_pb2.StartRun) -> None:
        self.send(site_pb2.BrokerMessage(start=start))

    def stop_run(self, run_id: str, reason: str = "test") -> None:
        self.send(site_pb2.BrokerMessage(stop=site_pb2.StopRun(run_id=run_id, reason=reason)))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` holds (checked whenever a message arrives)."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def connected(self) -> bool:
        return self._outgoing is not None

    def reports(self, run_id: str) -> list[site_pb2.RunReport]:
        with self._cond:
            return [m.run for m in self.received if m.WhichOneof("body") == "run" and m.run.run_id == run_id]

    def states(self, run_id: str) -> list[int]:
        return [r.state for r in self.reports(run_id)]

    def log(self, run_id: str) -> bytes:
        """The run's log as a broker would store it: chunks placed by offset,
        bytes it already has ignored, a gap never filled by a later chunk."""
        data = b""
        with self._cond:
            chunks = [m.log for m in self.received if m.WhichOneof("body") == "log" and m.log.run_id == run_id]
        for chunk in chunks:
            if chunk.offset <= len(data) < chunk.offset + len(chunk.data):
                data += chunk.data[len(data) - chunk.offset :]
        return data

    def kinds(self) -> list[str]:
        with self._cond:
            return [m.WhichOneof("body") for m in self.received]

    # -- SiteService --------------------------------------------------------------

    def _authorized(self, context: grpc.ServicerContext) -> bool:
        metadata = dict(context.invocation_metadata())
        return metadata.get("authorization") == f"Bearer {self.token}"

    def Join(self, request: site_pb2.JoinRequest, context: grpc.ServicerContext) -> site_pb2.JoinResponse:
        resp = self.join_tokens.pop(request.join_token, None)
        if resp is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "unknown or used join token")
        return resp

    def FetchPackage(
        self, request: site_pb2.FetchPackageRequest, context: grpc.ServicerContext
    ) -> site_pb2.FetchPackageResponse:
        if not self._authorized(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad site token")
        self.fetches.append(request.digest)
        data = self.packages.get(request.digest)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no package {request.digest}")
        return site_pb2.FetchPackageResponse(digest=request.digest, data=data)

    def Connect(
        self, request_iterator: Iterator[site_pb2.AgentMessage], context: grpc.ServicerContext
    ) -> Iterator[site_pb2.BrokerMessage]:
        if not self._authorized(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad site token")
        outgoing: _Outgoing = queue.Queue()
        with self._cond:
            if self._outgoing is not None:
                self._outgoing.put(None)  # a newer session replaces the old one
            self._outgoing = outgoing
        threading.Thread(target=self._read, args=(request_iterator, outgoing), daemon=True).start()
        yield site_pb2.BrokerMessage(welcome=site_pb2.Welcome(site=self.site, heartbeat_seconds=self.heartbeat_seconds))
        while context.is_active():
            try:
                item = outgoing.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def _read(self, requests: Iterator[site_pb2.AgentMessage], outgoing: _Outgoing) -> None:
        try:
            for msg in requests:
                with self._cond:
                    self.received.append(msg)
                    if msg.WhichOneof("body") == "hello":
                        self.hellos.append(msg.hello)
                    self._cond.notify_all()
        except grpc.RpcError:
            pass
        finally:
            with self._cond:
                if self._outgoing is outgoing:
                    self._outgoing = None
                outgoing.put(None)
                self._cond.notify_all()


def make_start_run(
    run_id: str,
    job_id: str,
    epoch: int = 1,
    entrypoint: str = "echo hi",
    gpus: int = 0,
    gpu_model: str = "",
    working_dir_digest: str = "",
    env: dict[str, str] | None = None,
    notice_seconds: int = 0,
) -> site_pb2.StartRun:
    """A StartRun as the broker would send it."""
    return site_pb2.StartRun(
        run_id=run_id,
        job_id=job_id,
        epoch=epoch,
        gpu_model=gpu_model,
        notice_seconds=notice_seconds,
        spec=common_pb2.JobSpec(
            entrypoint=entrypoint,
            resources=common_pb2.Resources(gpus=gpus),
            runtime_env=common_pb2.RuntimeEnv(working_dir_digest=working_dir_digest, env=env or {}),
        ),
    )
