"""`minga up`: a complete federation in one process, for a laptop demo.

It wires together what the README walkthrough does by hand, through the same
public paths: a Broker on a SQLite file with its own federation CA (made on the
first run, so users talk TLS and sites mutual TLS even on loopback: the secure
path is the one a demo exercises), the admin API with the bootstrap token, the
real site join flow with a CSR, and real Agents in front of local Ray heads with
logical GPUs. Nothing here decides anything a user could not do with the
other commands; re-running reuses what exists (institutions, the researcher's
token, the site credentials), so the printed token stays valid across runs.

A re-run also keeps the broker's address: the port of the last run, saved in the
data dir, is taken again when it is free, so an `export MINGA_BROKER=...` pasted
earlier still works. And `minga up` saves broker, CA and the researcher's token to
the CLI config (unless the user has a config of their own from `minga login`), so a
plain `minga job list` works in any terminal without exports.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from minga.agent.credentials import CredentialError, join_site, load_credential, save_credential
from minga.agent.local_ray import LocalRayHead
from minga.agent.session import Agent, AgentConfig
from minga.cli import config, errors
from minga.cli.client import BrokerClient
from minga.cli.lifecycle import stop_signals, this_python_first_on_path
from minga.common import paths
from minga.common.domain import MingaError, Role
from minga.common.pki import has_broker_pki, init_broker_pki
from minga.scheduler.server import Broker, BrokerConfig, split_listen

# One institution per site, each in another country, as in the federation it models.
INSTITUTIONS: tuple[tuple[str, str, str], ...] = (
    ("uchile", "Universidad de Chile", "CL"),
    ("usp", "Universidade de São Paulo", "BR"),
    ("unam", "Universidad Nacional Autónoma de México", "MX"),
    ("uba", "Universidad de Buenos Aires", "AR"),
    ("unal", "Universidad Nacional de Colombia", "CO"),
    ("pucp", "Pontificia Universidad Católica del Perú", "PE"),
    ("udelar", "Universidad de la República", "UY"),
    ("usfq", "Universidad San Francisco de Quito", "EC"),
)
MAX_SITES = len(INSTITUTIONS)
RESEARCHER = "ana"
LAST_ADDRESS = "broker-address"  # in the data dir: the address of the last run, taken again when free
SAMPLE_JOB = """python -c "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])\""""


@dataclass
class UpConfig:
    gpus: int = 4
    sites: int = 1
    gpu_model: str = "A100"
    listen: str = "127.0.0.1:0"
    data_dir: Path | None = None  # default: <MINGA_DATA_DIR or user data dir>/up
    ready_timeout: float = 180.0
    write_cli_config: bool = False  # `minga up` sets it: save broker, CA and token where the CLI reads them


@dataclass
class SiteInfo:
    name: str
    institution: str
    country: str
    ray_dashboard: str
    ray_pid: int


@dataclass
class UpInfo:
    """What `minga up` prints: enough to use the federation from another shell."""

    broker: str
    researcher: str
    institution: str
    token: str
    admin_token_file: str
    data_dir: str
    ca_file: str  # the federation CA: clients verify the broker with it
    sites: list[SiteInfo] = field(default_factory=list)
    moved_from: str = ""  # the last run's address, when its port was taken and the broker moved
    cli_config: str = ""  # the CLI config file written with broker, CA and token; "": left alone
    metrics_url: str = ""  # the broker's Prometheus metrics
    web_url: str = ""  # the broker's web dashboard


class DevFederation:
    """Broker + N (Ray head, agent) sites in this process. `start()`, then `stop()`."""

    def __init__(self, cfg: UpConfig) -> None:
        if not 1 <= cfg.sites <= MAX_SITES:
            raise errors.usage_error(f"--sites {cfg.sites}: use 1 to {MAX_SITES}")
        if cfg.gpus < 0:
            raise errors.usage_error(f"--gpus {cfg.gpus}: use 0 or more")
        self.cfg = cfg
        self.dir = (cfg.data_dir or paths.data_dir() / "up").expanduser()
        self.broker: Any = None
        self.heads: list[Any] = []
        self.agents: list[Any] = []
        self._lock_fd: int | None = None
        self._moved_from = ""

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> UpInfo:
        """Start everything; on any failure stop what was started, then re-raise."""
        try:
            self._lock()
            self._start_broker()
            with BrokerClient(self.broker.address, self._admin_token(), self.ca_file.read_bytes()) as admin:
                token = self._ensure_accounts(admin)
                sites = [self._start_site(admin, i) for i in range(self.cfg.sites)]
                self._wait_ready(admin, [s.name for s in sites])
            cli_config = self._write_cli_config(token) if self.cfg.write_cli_config else None
        except BaseException:
            with stop_signals(threading.Event()):  # a second Ctrl-C must not cut the cleanup short
                self.stop()
            raise
        slug = INSTITUTIONS[0][0]
        return UpInfo(
            broker=self.broker.address,
            researcher=RESEARCHER,
            institution=slug,
            token=token,
            admin_token_file=str(self.broker.admin_token_file),
            data_dir=str(self.dir),
            ca_file=str(self.ca_file),
            sites=sites,
            moved_from=self._moved_from,
            cli_config=str(cli_config or ""),
            metrics_url=self.broker.metrics_url,
            web_url=self.broker.web_url,
        )

    def stop(self) -> None:
        """Stop exactly what start() started: agents, then Ray heads (by PID), then the broker."""
        for agent in reversed(self.agents):
            agent.stop()
        self.agents.clear()
        for head in reversed(self.heads):
            head.stop()
        self.heads.clear()
        if self.broker is not None:
            self.broker.stop(grace=1.0)
            self.broker = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> UpInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pieces ---------------------------------------------------------------
    def _lock(self) -> None:
        """One `minga up` per data dir: two brokers on one SQLite file would fight."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "up.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise errors.CliError(
                f"another `minga up` is running with {self.dir}: stop it first, "
                "or set MINGA_DATA_DIR to use another directory"
            ) from None
        self._lock_fd = fd

    @property
    def ca_file(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    def _start_broker(self) -> None:
        pki_dir = self.dir / "pki"
        try:
            host = split_listen(self.cfg.listen)[0]
            if not has_broker_pki(pki_dir):  # on the first run only: the sites' certificates hang on it
                init_broker_pki(pki_dir, list(dict.fromkeys(["localhost", "127.0.0.1", "::1", host])))
            listen = self._stable_listen()
            self.broker = Broker(
                BrokerConfig(
                    listen=listen,
                    db_url=f"sqlite:///{self.dir / 'broker.db'}",
                    admin_token_file=self.dir / "admin-token",
                    pki_dir=pki_dir,
                    site_listen=f"{host}:0",
                    metrics_listen=f"{host}:0",
                    web_listen=f"{host}:0",
                )
            )
        except MingaError as exc:
            raise errors.usage_error(str(exc)) from exc
        try:
            self.broker.start()
        except MingaError as exc:
            self.broker = None
            raise errors.usage_error(str(exc)) from exc
        (self.dir / LAST_ADDRESS).write_text(self.broker.address + "\n")

    def _stable_listen(self) -> str:
        """--listen as given, but port 0 becomes the last run's port when that port is free,
        so the address a user exported before a restart still reaches the broker."""
        host, port = split_listen(self.cfg.listen)
        try:
            last = (self.dir / LAST_ADDRESS).read_text().strip()
            last_host, last_port = split_listen(last)
        except (OSError, MingaError):  # no last run, or a file that is not HOST:PORT
            return self.cfg.listen
        if port != 0 or last_host != host:
            return self.cfg.listen
        if _port_free(host, last_port):
            return last
        self._moved_from = last
        return self.cfg.listen

    def _write_cli_config(self, token: str) -> Path | None:
        """Save broker, CA and the researcher's token to the CLI config, unless the user's config
        comes from `minga login` (theirs wins); returns the file written, or None."""
        path = config.config_path()
        try:
            current = config.load_config(path)
        except ValueError:
            return None  # a broken config of the user's: theirs to fix, not ours to overwrite
        if current and current.get(config.WRITTEN_BY_KEY) != config.WRITTEN_BY_UP:
            return None
        return config.save_config(
            {
                "broker": self.broker.address,
                "token": token,
                "ca_file": str(self.ca_file),
                config.WRITTEN_BY_KEY: config.WRITTEN_BY_UP,
            },
            path,
        )

    def _admin_token(self) -> str:
        if self.broker.bootstrap_token:
            return str(self.broker.bootstrap_token)
        try:
            return str(self.broker.admin_token_file.read_text().strip())
        except OSError:
            raise errors.CliError(
                f"the admin token file {self.broker.admin_token_file} is gone: delete {self.dir} to start afresh"
            ) from None

    def _ensure_accounts(self, admin: BrokerClient) -> str:
        """Institutions for every site and the researcher; returns the researcher's token."""
        for slug, name, country in INSTITUTIONS[: self.cfg.sites]:
            _ignore_exists(functools.partial(admin.add_institution, slug, name, country))
        token_file = self.dir / "researcher-token"
        try:
            added = admin.add_user(RESEARCHER, INSTITUTIONS[0][0], Role.RESEARCHER)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            if not token_file.exists():
                raise errors.CliError(
                    f"user {RESEARCHER} exists but {token_file} is gone: delete {self.dir} to start afresh"
                ) from None
            return token_file.read_text().strip()
        config.write_private(token_file, added.token + "\n")
        return added.token

    def _start_site(self, admin: BrokerClient, index: int) -> SiteInfo:
        slug, _, country = INSTITUTIONS[index]
        name = f"{slug}-local"
        cred = self._site_credential(admin, slug, name)
        head = LocalRayHead(gpus=self.cfg.gpus, gpu_model=self.cfg.gpu_model)
        self.heads.append(head)
        with this_python_first_on_path():
            head.start()
        # The site port moves with each run (port 0); the certificate stays valid across runs.
        agent = Agent(
            AgentConfig(
                broker=self.broker.site_address,
                token="",
                ray_dashboard_url=head.dashboard_url,
                ca_file=cred.ca_file,
                certificate_file=cred.certificate_file,
                gpu_model=self.cfg.gpu_model,
                cache_dir=self.dir / "packages" / name,
            )
        )
        self.agents.append(agent)
        agent.start()
        return SiteInfo(
            name=name, institution=slug, country=country, ray_dashboard=head.dashboard_url, ray_pid=head.pid
        )

    def _site_credential(self, admin: BrokerClient, institution: str, site: str) -> Any:
        """The site's credential: saved by an earlier run, else made by the real join flow
        (a key made here, a CSR, a certificate back)."""
        path = self.dir / "sites" / f"{site}.json"
        try:
            cred = load_credential(path)
            if cred.certificate_file:
                return cred
        except CredentialError:
            pass
        join_token = admin.create_site_token(institution, site, ttl_seconds=600).token
        cred = join_site(self.broker.address, join_token, str(self.ca_file), path.with_suffix(".pem"))
        save_credential(path, cred)
        return cred

    def _wait_ready(self, admin: BrokerClient, names: list[str]) -> None:
        """Until every site is connected and reports its GPUs, so the sample job runs at once."""
        deadline = time.monotonic() + self.cfg.ready_timeout
        while True:
            sites = {s.site.name: s.site for s in admin.list_sites()}
            if all(n in sites and sites[n].connected and sites[n].inventory.total_gpus >= self.cfg.gpus for n in names):
                return
            if time.monotonic() > deadline:
                raise errors.CliError(
                    f"sites did not come up within {self.cfg.ready_timeout:.0f}s: see the agent warnings above"
                )
            time.sleep(0.5)


def _port_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port now (a plain bind, without SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _ignore_exists(call: Any) -> None:
    try:
        call()
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


def path_setup() -> str:
    """The shell line that puts this very `minga` on PATH, or "" when PATH finds it already.

    The paste block then says plain `minga` everywhere, as every later hint does
    (`minga job logs --follow ...` after a submit), so all of them work in a new terminal."""
    bin_dir = Path(sys.executable).parent
    here = bin_dir / "minga"
    found = shutil.which("minga")
    if not here.exists() or (found and Path(found).resolve() == here.resolve()):
        return ""
    activate = bin_dir / "activate"
    if activate.exists():
        return f". {shlex.quote(str(activate))}"
    return f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"'
