"""The agent's session with the broker: one outbound bidirectional Connect stream,
re-opened with exponential backoff whenever it breaks, plus the loops that keep
the broker informed (run states, logs, heartbeats, inventory).

With several broker addresses (a leader and its standbys on one store) each round
tries them in turn, from the one that served last, until one welcomes the site;
a standby's refusal keeps the wait between rounds short, because a standby that
answers takes over within seconds of the leader's death.

Threads, all daemons, all ended by `stop()`:
- session: dials the broker, sends Hello, reads commands into a queue;
- reconcile: runs StartRun/StopRun commands and polls Ray every `poll_seconds`;
- watch: probes the site's Ray cluster every `health_seconds` and reports when it
  goes down or comes back (the broker then calls the site DEGRADED and requeues
  its runs); re-reads the inventory every `inventory_seconds`, sends changes;
- renew (sites with a certificate): renews it when a third of its life is left.
The gRPC request iterator of each session is fed from the Outbox, so none of
these threads ever writes to the stream directly.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import platformdirs

from minga.agent import AGENT_VERSION
from minga.agent.backend import JobSubmissionBackend, RayBackend
from minga.agent.inventory import collect_inventory
from minga.agent.metrics import AgentMetrics
from minga.agent.outbox import Outbox, OutboxStream
from minga.agent.packages import PackageCache, fetch_from_broker
from minga.agent.reconcile import Reconciler
from minga.agent.renewal import renew_if_due
from minga.common.channel import bearer, broker_addresses, is_standby, open_channel
from minga.common.clock import Clock, SystemClock
from minga.common.metrics_http import MetricsServer
from minga.common.wire.stream import health_to_pb, hello_to_pb, inventory_update_to_pb, refusing_to_pb
from minga.v1 import common_pb2, site_pb2, site_pb2_grpc

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 300.0
STANDBY_RETRY_SECONDS = 1.0  # the longest wait between rounds while a standby answers
Command = site_pb2.StartRun | site_pb2.StopRun


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("minga")) / "packages"


@dataclass
class AgentConfig:
    broker: str  # "host:port", or a leader and its standbys: "h1:p1,h2:p2"
    token: str = field(repr=False)  # the site's bearer token; "": it has a certificate
    ray_dashboard_url: str = "http://127.0.0.1:8265"
    gpu_model: str | None = None  # names logical GPUs (CPU-only machines)
    gpu_memory_mb: int | None = None  # their memory
    ca_file: str | None = None  # TLS root; None: plaintext
    certificate_file: str | None = None  # the site's key and certificate (mutual TLS)
    renew_check_seconds: float = 60.0  # how often the certificate's age is checked
    poll_seconds: float = 0.05  # Ray status poll of live runs
    log_seconds: float = 0.5  # Ray log poll of live runs
    heartbeat_seconds: float = 5.0  # the broker's Welcome may override it
    inventory_seconds: float = 10.0
    health_seconds: float = 2.0  # how often the site's Ray cluster is probed
    ray_down_after: int = 2  # failed probes in a row that make the site DEGRADED
    replay_seconds: float = 2.0  # see agent.outbox
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    cache_dir: Path = field(default_factory=default_cache_dir)
    agent_version: str = AGENT_VERSION
    metrics_listen: str = ""  # HOST:PORT of its Prometheus /metrics listener; "": none


class Agent:
    """The site agent. `start()` runs it in background threads; `stop()` ends them.
    Runs keep running on Ray whatever happens to the agent or the broker."""

    def __init__(
        self,
        config: AgentConfig,
        backend: RayBackend | None = None,
        clock: Clock | None = None,
        inventory_source: Callable[[], common_pb2.Inventory] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend or JobSubmissionBackend(config.ray_dashboard_url)
        self._clock = clock or SystemClock()
        self._inventory_source = inventory_source or (
            lambda: collect_inventory(config.ray_dashboard_url, config.gpu_model, config.gpu_memory_mb)
        )
        self.outbox = Outbox(self._clock, config.replay_seconds)
        self.connected = threading.Event()  # set while a session is welcomed
        self.metrics = AgentMetrics()
        self.reconciler = Reconciler(
            self.backend,
            self.outbox,
            self._clock,
            PackageCache(config.cache_dir, self._fetch_package),
            config.log_seconds,
            metrics=self.metrics,
        )
        self.metrics.watch(self.reconciler.runs_by_state, self.connected.is_set)
        self.metrics_server: MetricsServer | None = None
        self.metrics_url = ""
        self.outbox.on_delivered = self.reconciler.on_delivered
        self.reconciler.on_refusing = self._on_refusing
        self._commands: queue.Queue[Command] = queue.Queue()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a command arrived: reconcile now
        self._threads: list[threading.Thread] = []
        self._call_lock = threading.Lock()
        self._call: grpc.Future | None = None
        self._heartbeat_seconds = config.heartbeat_seconds
        self._inventory: common_pb2.Inventory | None = None
        self.ray_down: str | None = None  # why the site's Ray cluster counts as down
        self._failed_probes = 0
        self.sessions = 0  # sessions welcomed so far
        self._brokers = broker_addresses(config.broker)
        self._broker_index = 0  # the broker that served last

    @property
    def broker(self) -> str:
        """The broker this agent talks to now, or tries first."""
        return self._brokers[self._broker_index]

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Agent:
        if self.config.metrics_listen:
            self.metrics_server = MetricsServer(self.config.metrics_listen, self.metrics.registry)
            self.metrics_url = self.metrics_server.url
        loops = [("session", self._session_loop), ("reconcile", self._reconcile_loop), ("watch", self._watch_loop)]
        if self.config.certificate_file:
            loops.append(("renew", self._renew_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"minga-agent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("agent started: broker %s, Ray %s", self.config.broker, self.config.ray_dashboard_url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._cancel_call()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._threads.clear()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the session with the broker ------------------------------------------

    def _session_loop(self) -> None:
        """Keep one session open: reconnect with exponential backoff, forever."""
        backoff = self.config.backoff_initial
        while not self._stopping.is_set():
            welcomed, standby = self._session_round()
            if welcomed:
                backoff = self.config.backoff_initial
            if self._stopping.wait(min(backoff, STANDBY_RETRY_SECONDS) if standby else backoff):
                break
            if not standby:
                backoff = min(backoff * 2, self.config.backoff_max)

    def _session_round(self) -> tuple[bool, bool]:
        """Try each broker once, from the one that served last, until a session ran.
        (welcomed: a session ran; standby: a standby refused us)."""
        standby = False
        for _ in range(len(self._brokers)):
            if self._stopping.is_set():
                break
            before = self.sessions
            try:
                self._run_session()
            except grpc.RpcError as err:
                if self._stopping.is_set():
                    break
                if is_standby(err):
                    standby = True
                    log.info("broker %s: %s", self.broker, err.details())
                else:
                    self._log_session_error(err)
            except Exception as err:  # noqa: BLE001 - e.g. Ray down while building Hello
                log.warning("broker session failed: %s", err)
            if self.sessions > before:
                return True, standby  # the next round starts at the broker that served
            self._broker_index = (self._broker_index + 1) % len(self._brokers)
        return False, standby

    @staticmethod
    def _log_session_error(err: grpc.RpcError) -> None:
        code = err.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            log.error(
                "the broker refused this site's credential (%s: %s); join again with `minga site join`",
                code.name,
                err.details(),
            )
        else:
            log.warning("broker session ended: %s %s", code.name, err.details())

    def _channel_ready(self, channel: grpc.Channel) -> bool:
        """Wait up to `backoff_max` for the broker to accept connections, so an
        absent broker costs no Ray queries for a Hello nobody receives. With several
        brokers, a refused connection moves on to the next at once."""
        fail_fast = len(self._brokers) > 1
        states: queue.Queue[grpc.ChannelConnectivity] = queue.Queue()
        watch = states.put
        channel.subscribe(watch, try_to_connect=True)
        deadline = self._clock.now() + self.config.backoff_max
        try:
            while not self._stopping.is_set():
                try:
                    state = states.get(timeout=0.2)
                except queue.Empty:
                    state = None
                if state == grpc.ChannelConnectivity.READY:
                    return True
                if fail_fast and state in (
                    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                    grpc.ChannelConnectivity.SHUTDOWN,
                ):
                    break
                if self._clock.now() >= deadline:
                    break
        finally:
            channel.unsubscribe(watch)
        log.warning("broker %s not reachable (down, wrong address, or a TLS mismatch)", self.broker)
        return False

    def _run_session(self) -> bool:
        """One Connect call to `self.broker`, from Hello until the stream ends; True if welcomed."""
        channel = open_channel(self.broker, self.config.ca_file, self.config.certificate_file)
        if not self._channel_ready(channel):
            channel.close()
            return False
        try:
            hello = self._hello()
        except Exception as err:  # noqa: BLE001 - Ray's clients raise many types; any means not now
            channel.close()
            log.warning("cannot list this site's runs on Ray (%s); connecting once Ray answers or counts as down", err)
            return False
        except BaseException:
            channel.close()
            raise
        stream = self.outbox.stream(hello, self._heartbeat_seconds)
        welcomed = False
        try:
            call = site_pb2_grpc.SiteServiceStub(channel).Connect(stream, metadata=bearer(self.config.token))
            with self._call_lock:
                self._call = call
            if self._stopping.is_set():
                call.cancel()
            for msg in call:
                if msg.WhichOneof("body") == "welcome":
                    welcomed = True
                    self._welcome(msg.welcome, stream)
                else:
                    self._on_command(msg)
            log.warning("broker closed the session")
        finally:
            with self._call_lock:
                self._call = None
            self.connected.clear()
            stream.close()
            channel.close()
        return welcomed

    def _hello(self) -> site_pb2.AgentMessage:
        """What this site runs; with Ray down (as the watch loop decided), only that news."""
        down = self.ray_down
        if down is not None:
            return hello_to_pb(self.config.agent_version, self._inventory or common_pb2.Inventory(), [], down)
        return hello_to_pb(self.config.agent_version, self._current_inventory(), self.reconciler.hello_runs())

    def _welcome(self, welcome: site_pb2.Welcome, stream: OutboxStream) -> None:
        log.info("connected to broker as site %s", welcome.site)
        if welcome.heartbeat_seconds > 0:
            self._heartbeat_seconds = welcome.heartbeat_seconds
            stream.heartbeat_seconds = welcome.heartbeat_seconds
        self.sessions += 1
        self.connected.set()
        if self.reconciler.refusing is not None and self.ray_down is None:
            self.outbox.put(refusing_to_pb(self.reconciler.refusing))  # a Hello made it READY

    def _on_command(self, msg: site_pb2.BrokerMessage) -> None:
        body = msg.WhichOneof("body")
        if body == "start":
            self._commands.put(msg.start)
            self._wake.set()
        elif body == "stop":
            self._commands.put(msg.stop)
            self._wake.set()
        else:
            log.warning("ignoring unknown broker message %r", body)

    def _cancel_call(self) -> None:
        with self._call_lock:
            if self._call is not None:
                self._call.cancel()

    def _fetch_package(self, digest: str) -> bytes:
        channel = open_channel(self.broker, self.config.ca_file, self.config.certificate_file)
        try:
            return fetch_from_broker(
                site_pb2_grpc.SiteServiceStub(channel), digest, bearer(self.config.token), FETCH_TIMEOUT_SECONDS
            )
        finally:
            channel.close()

    # -- reconcile and inventory loops -----------------------------------------

    def _reconcile_loop(self) -> None:
        """Run the broker's commands in arrival order, then poll Ray; repeat."""
        while not self._stopping.is_set():
            try:
                self._run_commands()
                self.reconciler.tick()
            except Exception:
                log.exception("reconcile step failed")
            # A command wakes the loop at once: a start must not wait for the next poll.
            self._wake.wait(self.config.poll_seconds)
            self._wake.clear()

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(cmd, site_pb2.StartRun):
                self.reconciler.start_run(cmd)
            else:
                self.reconciler.stop_run(cmd)

    def _current_inventory(self) -> common_pb2.Inventory:
        try:
            self._inventory = self._inventory_source()
        except Exception as err:  # noqa: BLE001 - a failed read keeps the last inventory
            log.warning("could not read the inventory: %s", err)
        return self._inventory or common_pb2.Inventory()

    def _watch_loop(self) -> None:
        next_inventory = self._clock.now() + self.config.inventory_seconds
        while not self._stopping.wait(self.config.health_seconds):
            self._probe_ray()
            if self.ray_down is None and self._clock.now() >= next_inventory:
                next_inventory = self._clock.now() + self.config.inventory_seconds
                previous = self._inventory
                current = self._current_inventory()
                if self.connected.is_set() and current != previous:
                    self.outbox.put(inventory_update_to_pb(current))

    def _on_refusing(self, reason: str | None) -> None:
        """Ray keeps refusing new runs (DEGRADED, with why), or the cool-off is over. While
        Ray is down, the watch loop's news stands and this waits for the next one."""
        if self.ray_down is None:
            self.outbox.put(refusing_to_pb(reason))

    def _renew_loop(self) -> None:
        assert self.config.certificate_file and self.config.ca_file
        while not self._stopping.wait(self.config.renew_check_seconds):
            renew_if_due(self.broker, self.config.ca_file, self.config.certificate_file, _utc(self._clock.now()))

    def _probe_ray(self) -> None:
        """Down after `ray_down_after` failed probes in a row, so one slow answer does
        not requeue a site's runs; up again at the first answer."""
        reachable = self.backend.reachable()
        self.metrics.ray_reachable.set(1 if reachable else 0)
        if reachable:
            self._failed_probes, down = 0, None
        else:
            self._failed_probes += 1
            if self.ray_down is None and self._failed_probes < self.config.ray_down_after:
                return
            down = self.ray_down or (
                f"Ray at {self.config.ray_dashboard_url} did not answer {self._failed_probes} probes in a row"
            )
        if (down is None) == (self.ray_down is None):
            return
        self.ray_down = down
        if down is None:
            log.info("this site's Ray cluster answers again")
        else:
            log.error("this site's Ray cluster is down: %s; the broker requeues its runs", down)
        self.outbox.put(health_to_pb(down))


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)
