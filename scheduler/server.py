"""`Broker`: wires the store, the cycle and the servicers into a gRPC server.

Several brokers may share one store: the gRPC server of each always runs, and the
one that holds the store's leader lock (`minga.scheduler.leader`) runs the scheduling
cycle and serves; the others are standbys until it dies.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import uuid
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc

from minga.common.clock import Clock, IdGenerator, RandomIds, SystemClock
from minga.common.domain import InvalidArgument, Principal, Role, Unauthenticated
from minga.common.leadership import LeadershipStatus
from minga.common.metrics_http import MetricsServer
from minga.common.paths import data_dir
from minga.common.pki import SERVER_CERT, SERVER_KEY, SITE_CERT_DAYS, BrokerPki, has_broker_pki, load_broker_pki
from minga.scheduler.api import audit
from minga.scheduler.api.admin_servicer import AdminServicer
from minga.scheduler.api.interceptor import AuthInterceptor, bearer_authenticator
from minga.scheduler.api.job_servicer import JobServicer
from minga.scheduler.api.ratelimit import DEFAULT_CALLS_PER_SECOND, Limits
from minga.scheduler.api.site_servicer import SiteServicer
from minga.scheduler.auth import load_or_create_key, new_token
from minga.scheduler.core import Core
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.enrollment import Enrollment, certificate_principal
from minga.scheduler.leader import (
    Election,
    LeaderRecord,
    leader_fence,
    lock_for,
    read_leader,
    record_leader,
)
from minga.scheduler.leases import DEFAULT_TTL_SECONDS, SiteLeases
from minga.scheduler.metrics import BrokerMetrics
from minga.scheduler.metrics.energy import EnergyCollector, RunningTotals, Totals
from minga.scheduler.metrics.federation import FederationCollector, Source
from minga.scheduler.metrics.rpc import MetricsInterceptor
from minga.scheduler.service.packages import check_limit_setting
from minga.scheduler.sessions import MAX_SITE_STREAMS, SessionRegistry
from minga.scheduler.store import Store
from minga.scheduler.validation import MAX_PACKAGE_BYTES
from minga.scheduler.wakeups import Pacing
from minga.v1 import admin_pb2_grpc, job_pb2_grpc, site_pb2_grpc

if TYPE_CHECKING:
    from minga.scheduler.web.server import WebServer

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 80 * 1024 * 1024
API_WORKERS = 128  # threads for unary calls and short streams, apart from the site streams


@dataclass
class BrokerConfig:
    listen: str = "127.0.0.1:50551"
    db_url: str = ""  # "": a SQLite file in the data dir
    admin_token_file: Path | None = None
    # The key token hashes are made with (HMAC-SHA256); every broker on one store needs
    # the same one. None: "token-key" next to the admin token file, created on first start.
    token_key_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    tick_seconds: float = 2.0
    # Event-triggered cycles start at least this long after the previous one ended (Slurm's
    # sched_min_interval), and this long after the first event of a burst: scheduler.wakeups.
    cycle_min_interval: float = 0.15
    cycle_settle_seconds: float = 0.01
    lease_ttl_seconds: float = DEFAULT_TTL_SECONDS  # a site silent this long is LOST
    advertise: str = ""  # where clients reach this broker; "": the listen address
    leader_poll_seconds: float = 1.0  # how often a standby tries the leader lock, and the leader checks it
    step_down_seconds: float = 15.0  # a leader cut off from its database this long steps down
    rate_limit: float = DEFAULT_CALLS_PER_SECOND  # calls/s per caller (bursts of 10 s); 0: no limits
    # The federation CA (`minga broker init`): with it, sites enroll with certificates and
    # connect with mutual TLS on the site port. None: <data dir>/pki if it exists.
    pki_dir: Path | None = None
    site_listen: str = ""  # HOST:PORT of the site port; "": the listen host, port + 1 (0: any)
    site_advertise: str = ""  # where sites reach the site port(s), "h1:p1,h2:p2"; "": derived
    site_cert_lifetime: dt.timedelta = dt.timedelta(days=SITE_CERT_DAYS)
    max_package_bytes: int = MAX_PACKAGE_BYTES  # the largest working-dir package it accepts (chunked)
    metrics_listen: str = ""  # HOST:PORT of the Prometheus /metrics listener; "": none (docs/metrics.md)
    web_listen: str = ""  # HOST:PORT of the web dashboard; "": none (docs/dashboard.md)


class Broker:
    def __init__(self, config: BrokerConfig, clock: Clock | None = None, ids: IdGenerator | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.ids = ids or RandomIds()
        self.admin_token_file = config.admin_token_file or data_dir() / "admin-token"
        self.token_key_file = config.token_key_file or self.admin_token_file.parent / "token-key"
        self.bootstrap_token: str | None = None
        self.address = ""
        self.advertised = ""
        self.broker_id = uuid.uuid4().hex
        self.core: Core | None = None
        self.election: Election | None = None
        self._leader: LeaderRecord | None = None  # the leader as last read from the store
        self._server: grpc.Server | None = None
        self._site_server: grpc.Server | None = None  # the mutual-TLS site port, with a federation CA
        self.site_address = ""
        self.metrics = BrokerMetrics()
        self.metrics.registry.register(FederationCollector(lambda: self.leading, self._metrics_source))
        self._energy: RunningTotals | None = None  # while leading: read afresh on each take-over
        self.metrics.registry.register(EnergyCollector(self._energy_totals))
        self.metrics_server: MetricsServer | None = None  # with --metrics-listen
        self.metrics_url = ""
        self.web_server: WebServer | None = None  # with --web-listen
        self.web_url = ""
        self._tls_files: tuple[Path, Path] | None = None  # the certificate and key users' ports serve

    def start(self) -> None:
        if self.config.metrics_listen:
            self.metrics_server = MetricsServer(self.config.metrics_listen, self.metrics.registry)
            self.metrics_url = self.metrics_server.url
        try:
            self._start()
        except BaseException:
            self._stop_metrics()
            raise
        if self.config.web_listen:
            try:
                self._start_web()
            except BaseException:
                self.stop()
                raise

    def _start_web(self) -> None:
        """The dashboard, over TLS with the broker's own certificate when it has one."""
        from minga.scheduler.web.app import Backend, create_app
        from minga.scheduler.web.server import WebServer

        backend = Backend(
            core=lambda: self.core,
            refusal=self._refusal,
            authenticate=lambda token: self._core.store.accounts.principal_for_token(token, self.clock.now()),
            clock=self.clock,
            secure=self._tls_files is not None,
        )
        self.web_server = WebServer(self.config.web_listen, create_app(backend), self._tls_files)
        self.web_url = self.web_server.url

    def _start(self) -> None:
        host, port = split_listen(self.config.listen)
        check_limit_setting(self.config.max_package_bytes)
        pki = self._load_pki()
        tls = _load_tls(self.config.tls_cert, self.config.tls_key)
        if tls is not None and self.config.tls_cert and self.config.tls_key:
            self._tls_files = (self.config.tls_cert, self.config.tls_key)
        if tls is None and pki is not None:
            tls = grpc.ssl_server_credentials([(pki.server_key_pem, pki.server_cert_pem)])
            self._tls_files = (pki.directory / SERVER_CERT, pki.directory / SERVER_KEY)
        if tls is None and not _is_loopback(host) and not self.config.insecure:
            raise InvalidArgument(
                f"refusing to listen on {host} without TLS: run `minga broker init --san "
                f"{host}` first, pass --tls-cert/--tls-key, or --insecure"
            )
        store = Store(self.config.db_url or f"sqlite:///{data_dir() / 'broker.db'}")
        try:
            token_key = load_or_create_key(self.token_key_file)
            store.accounts.use_key(token_key)
            store.webhooks.use_key(token_key.key)  # webhook secrets are encrypted with a key derived from it
        except Exception:
            store.close()
            raise
        sessions = SessionRegistry()
        leases = SiteLeases(self.clock, self.config.lease_ttl_seconds)
        cycle = SchedulingCycle(
            store, sessions, self.clock, leases, pacing=self._pacing(), freeze_gc=True, metrics=self.metrics
        )  # started on leading
        store.db.observe(self.metrics)  # counts the jobs each commit ends
        self.core = Core(
            store=store,
            clock=self.clock,
            ids=self.ids,
            sessions=sessions,
            cycle=cycle,
            leases=leases,
            max_package_bytes=self.config.max_package_bytes,
        )
        server = _grpc_server(
            MetricsInterceptor(self.metrics),
            AuthInterceptor(bearer_authenticator(self._authenticate), self._refusal, self._audit)
            .limit(self._rate_limits(), self.clock.now)
            .resolve_targets(store.accounts.owner_of),
        )
        job_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(self.core), server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(self.core, self._status), server)
        site_pb2_grpc.add_SiteServiceServicer_to_server(SiteServicer(self.core), server)
        bound = _bind(server, f"{host}:{port}", tls)
        self.address = f"{host}:{bound}"
        self.advertised = self.config.advertise or _advertised(host, bound)
        if pki is not None:
            self._start_site_port(pki, host, port)
        self.election = Election(
            lock_for(store.url),
            self,
            self.config.leader_poll_seconds,
            self.config.step_down_seconds,
            on_poll=self._read_leader,
        )
        self.election.start()  # leads at once if no other broker does
        if not self.election.leading:
            self._read_leader()
        server.start()
        self._server = server
        if self._site_server is not None:
            self._site_server.start()
        log.info(
            "broker listening on %s as %s (store %s)%s",
            self.address,
            self.election.role.value,
            store.db.engine.url.render_as_string(),
            f"; sites connect with mutual TLS on {self.site_address}"
            if pki
            else "; no federation CA, so sites hold bearer tokens (`minga broker init` makes one)",
        )

    def _pacing(self) -> Pacing:
        return Pacing(self.config.tick_seconds, self.config.cycle_min_interval, self.config.cycle_settle_seconds)

    def _rate_limits(self) -> Limits | None:
        rate = self.config.rate_limit
        return Limits.of(rate) if rate > 0 else None

    def _load_pki(self) -> BrokerPki | None:
        """The federation CA: from --pki-dir (which must hold one), else <data dir>/pki if any."""
        if self.config.pki_dir is not None:
            return load_broker_pki(self.config.pki_dir)
        default = data_dir() / "pki"
        return load_broker_pki(default) if has_broker_pki(default) else None

    def _start_site_port(self, pki: BrokerPki, host: str, port: int) -> None:
        """The site port: mutual TLS, client certificates signed by the federation CA only.
        gRPC cannot ask for a client certificate without demanding one, so sites get a
        port of their own, and users keep theirs without certificates."""
        site_host, site_port = (
            split_listen(self.config.site_listen) if self.config.site_listen else (host, port + 1 if port else 0)
        )
        creds = grpc.ssl_server_credentials(
            [(pki.server_key_pem, pki.server_cert_pem)], root_certificates=pki.ca.pem, require_client_auth=True
        )
        server = _grpc_server(
            MetricsInterceptor(self.metrics),
            AuthInterceptor(self._site_certificate, self._refusal, self._audit, served=SITE_PORT_RPCS).limit(
                self._rate_limits(), self.clock.now
            ),
        )
        site_pb2_grpc.add_SiteServiceServicer_to_server(SiteServicer(self._core), server)
        bound = _bind(server, f"{site_host}:{site_port}", creds)
        self.site_address = f"{site_host}:{bound}"
        endpoint = self.config.site_advertise or _advertised(site_host, bound)
        self._core.enrollment = Enrollment(pki.ca, endpoint, self.config.site_cert_lifetime)
        self._site_server = server

    # -- leadership (hooks of scheduler.leader.Election) -----------------------------
    def take_over(self) -> None:
        """Lead as a fresh broker start would: no site stream is open here yet, and every
        site gets a fresh lease TTL from now rather than being declared lost at once."""
        core = self._core
        core.store.sites.mark_all_disconnected()
        self._bootstrap_admin(core.store)
        record = LeaderRecord(address=self.advertised, since=self.clock.now(), broker_id=self.broker_id)
        record_leader(core.store.db, record)
        self._leader = record
        self._energy = None  # the full sums, read at the first scrape of this term
        self._start_cycle()
        self.metrics.leadership_changes.labels("took_lead").inc()
        log.info("this broker (%s) leads now", self.advertised)

    def pause(self) -> None:
        self._core.cycle.stop()

    def resume(self) -> None:
        self._start_cycle()

    def step_down(self) -> None:
        core = self._core
        core.cycle.stop()
        core.sessions.close_all()  # the agents dial the next broker
        self.metrics.leadership_changes.labels("stepped_down").inc()
        self._energy = None  # the next term reads the full sums again
        self._read_leader()

    def _start_cycle(self) -> None:
        core = self._core
        core.leases = SiteLeases(self.clock, self.config.lease_ttl_seconds)
        core.cycle = SchedulingCycle(
            core.store,
            core.sessions,
            self.clock,
            core.leases,
            fence=leader_fence(self.broker_id),
            pacing=self._pacing(),
            freeze_gc=True,
            metrics=self.metrics,
        )
        core.cycle.start()
        core.cycle.trigger()

    def _read_leader(self) -> None:
        try:
            self._leader = read_leader(self._core.store.db)
        except Exception as exc:  # noqa: BLE001 - keep the last one known
            log.debug("cannot read the leader record: %s", exc)

    def _energy_totals(self) -> Totals | None:
        """Energy and emissions by country, while this broker leads (docs/carbon.md)."""
        core = self.core
        if core is None or not self.leading:
            self._energy = None
            return None
        energy = self._energy
        if energy is None:
            energy = self._energy = RunningTotals(core.store.carbon.energy_since)
        return energy.read()

    def _metrics_source(self) -> Source | None:
        """What a scrape reads: the cycle's state while this broker leads."""
        core = self.core
        if core is None or not self.leading:
            return None
        return Source(core.cycle.state, core.leases, self.clock)

    def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None

    @property
    def leading(self) -> bool:
        return self.election is not None and self.election.leading

    def _refusal(self) -> str | None:
        """Why this broker serves no calls now: it is a standby. None while it leads."""
        if self.election is None or self.election.leading:
            return None
        leader = self._leader
        if leader is not None and leader.broker_id != self.broker_id:
            return f"standby broker; the leader is at {leader.address}"
        return "standby broker; no broker leads right now (a standby takes over within seconds)"

    def _status(self) -> LeadershipStatus:
        if not self.leading:
            self._read_leader()
        leader = self._leader
        return LeadershipStatus(
            address=self.advertised,
            leading=self.leading,
            role=self.election.role.value if self.election else "standby",
            leader_address=leader.address if leader else "",
            leading_since=leader.since if leader else 0.0,
        )

    @property
    def _core(self) -> Core:
        assert self.core is not None, "the broker has not started"
        return self.core

    def _authenticate(self, token: str) -> Principal | None:
        assert self.core is not None
        principal = self.core.store.accounts.principal_for_token(token, self.clock.now())
        if principal is not None and principal.role is Role.SITE and self.core.enrollment is not None:
            raise Unauthenticated(
                "this broker has a federation CA: sites connect with their certificate "
                "on the site port; join again with `minga site join`"
            )
        return principal

    def _site_certificate(self, context: grpc.ServicerContext) -> Principal:
        """The site named by the client certificate of a site-port call (mutual TLS)."""
        core = self._core
        assert core.enrollment is not None
        # grpc's stubs type the auth context's values as bytes; each is a list of them.
        presented = cast("list[bytes]", context.auth_context().get("x509_pem_cert") or [])
        cert = presented[0] if presented else None
        return certificate_principal(core.enrollment, cert, self.clock.now(), core.store.accounts.principal_for)

    def _audit(
        self,
        method: str,
        principal: Principal | None,
        request: Any,
        response: Any,
        peer: str,
        outcome: str,
        detail: str,
    ) -> None:
        """Append a finished state-changing call to the audit log. A log that cannot be
        written (the database is down) costs a warning, never the call's answer, and a
        call refused because the database is down is not made to wait for it again."""
        assert self.core is not None
        if outcome == grpc.StatusCode.UNAVAILABLE.name:
            log.warning(
                "audit log: %s by %s not recorded: the database is unavailable",
                method,
                principal.name if principal else "an anonymous caller",
            )
            return
        try:
            self.core.store.audit.append(
                audit.entry(method, self.clock.now(), principal, request, response, peer, outcome, detail)
            )
        except Exception as exc:  # noqa: BLE001 - a failed audit write must not fail the call it records
            log.warning(
                "audit log: could not record %s by %s (%s)",
                method,
                principal.name if principal else "an anonymous caller",
                exc,
            )

    def _bootstrap_admin(self, store: Store) -> None:
        """On the very first start, mint the admin token and write it owner-only."""
        token = new_token("user")
        if not store.accounts.bootstrap_admin(store.accounts.hash(token), self.clock.now()):
            return
        path = self.admin_token_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        self.bootstrap_token = token

    def stop(self, grace: float | None = 1.0) -> None:
        if self.election:
            self.election.stop()
        if self.core:
            self.core.sessions.close_all()
            self.core.cycle.stop()
        if self.election:
            self.election.release()  # a standby takes over at its next poll
        for server in (self._server, self._site_server):
            if server:
                server.stop(grace).wait()
        self._stop_metrics()
        if self.web_server is not None:
            self.web_server.stop()
            self.web_server = None
        if self.core:
            self.core.store.close()

    def wait(self) -> None:
        if self._server:
            self._server.wait_for_termination()


# What the site port serves: a site's own calls, nothing a user makes.
SITE_PORT_RPCS = frozenset(
    {
        "/minga.v1.SiteService/Connect",
        "/minga.v1.SiteService/FetchPackage",
        "/minga.v1.SiteService/FetchPackageStream",
        "/minga.v1.SiteService/RenewCertificate",
    }
)


def _grpc_server(*interceptors: grpc.ServerInterceptor) -> grpc.Server:
    """A sync server whose pool holds every site stream (one worker each for its whole
    life, up to MAX_SITE_STREAMS, which SessionRegistry enforces) and still has
    API_WORKERS for everything else. Threads start on demand, so the size costs nothing
    until sites connect; 1,000 idle streams cost about 2,000 threads (handler and reader)."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=API_WORKERS + MAX_SITE_STREAMS, thread_name_prefix="rpc"),
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Agents ping to find a dead or blackholed connection; let them.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
            ("grpc.http2.max_ping_strikes", 0),
        ],
    )


def _bind(server: grpc.Server, target: str, tls: grpc.ServerCredentials | None) -> int:
    """Listen on `target`; the port bound (a free one for port 0)."""
    try:
        bound = server.add_secure_port(target, tls) if tls else server.add_insecure_port(target)
    except RuntimeError as exc:
        raise InvalidArgument(f"cannot listen on {target}: {exc}") from exc
    if bound == 0:
        raise InvalidArgument(f"cannot listen on {target}: the port is taken or the address is wrong")
    return bound


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidArgument(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:50551")
    return host.strip("[]") if host.startswith("[") else host, int(port)


def _advertised(host: str, port: int) -> str:
    """The address to tell clients: a wildcard listen address names this machine instead."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_tls(cert: Path | None, key: Path | None) -> grpc.ServerCredentials | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise InvalidArgument("TLS needs both --tls-cert and --tls-key")
    try:
        pair = (Path(key).read_bytes(), Path(cert).read_bytes())
    except OSError as exc:
        raise InvalidArgument(f"cannot read TLS files: {exc}") from exc
    return grpc.ssl_server_credentials([pair])
