"""A real single-node Ray head started as a subprocess, for tests, demos and
`minga up`.

Every port Ray opens is chosen explicitly (never a default: Redis may hold 6379,
Ray's default GCS port), each head gets its own short temp dir and worker port
range, so several heads can run side by side on one machine. `stop()` stops
exactly the processes this head started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from minga.agent import proctree
from minga.agent.ports import free_port_block, free_ports
from minga.common.clock import Clock, SystemClock

log = logging.getLogger(__name__)

WORKER_PORTS = 200  # one port per Ray worker process; ample for a test head
LOG_TAIL_LINES = 40
START_ATTEMPTS = 3  # a port chosen as free may be taken before Ray binds it
# An idle head exits on SIGTERM in 1-4 s; with jobs running it may drain for long
# against processes already gone, so after this grace everything is SIGKILLed.
STOP_GRACE_SECONDS = 3.0


class RayStartError(RuntimeError):
    """The head did not come up; the message carries the tail of its logs."""


def ray_executable() -> str:
    """The `ray` CLI of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ray")
    if found is None:
        raise RayStartError("no `ray` executable next to the interpreter or on PATH")
    return found


class LocalRayHead:
    """One local Ray head (GCS, raylet, dashboard, job API) on free ports.

    Usable as a context manager. `gpus` are logical GPUs: Ray hands jobs
    CUDA_VISIBLE_DEVICES even on a machine without any, which is what the tests
    and a CPU-only demo site need. `gpus=None` lets Ray detect the host's real GPUs.
    """

    def __init__(
        self,
        gpus: int | None = 0,
        gpu_model: str | None = None,
        cpus: int | None = None,
        object_store_memory: int | None = None,
        start_timeout: float = 90.0,
        keep_temp_dir: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.gpus = gpus
        self.gpu_model = gpu_model
        self.cpus = cpus if cpus is not None else max(os.cpu_count() or 1, 2 * (gpus or 0), 2)
        self.object_store_memory = object_store_memory
        self.start_timeout = start_timeout
        self.keep_temp_dir = keep_temp_dir
        self._clock = clock or SystemClock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._temp_dir: Path | None = None
        self._ports: dict[str, int] = {}
        self._stopped = threading.Event()
        self._exited_early = False

    # -- what callers use -------------------------------------------------

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self._port('dashboard')}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the Ray head is not started")
        return self._proc.pid

    @property
    def temp_dir(self) -> Path:
        if self._temp_dir is None:
            raise RuntimeError("the Ray head is not started")
        return self._temp_dir

    def start(self) -> LocalRayHead:
        """Start the head and wait until its job API answers; retries on port races."""
        if self._proc is not None:
            raise RuntimeError("the Ray head is already started")
        last_error: RayStartError | None = None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
                return self
            except RayStartError as err:
                last_error = err
                log.warning("Ray head start attempt %d failed", attempt)
                self.stop()
                if not self._exited_early:
                    break
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """SIGTERM the `ray start --block` leader (it stops its children), then
        SIGKILL whatever it started that is still alive. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            tree = proctree.descendants(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    log.info(
                        "Ray head %d still up %.0fs after SIGTERM; killing what it started",
                        proc.pid,
                        STOP_GRACE_SECONDS,
                    )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            for key in tree:
                proctree.kill(key)
            proc.wait()
            self._wait_gone(tree)
        if self._temp_dir is not None and not self.keep_temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _wait_gone(self, tree: list[proctree.ProcessKey], timeout: float = 5.0) -> None:
        """Wait until the killed processes are gone, so none of them writes into the
        temp dir while it is removed."""
        deadline = self._clock.now() + timeout
        while any(proctree.alive(key) for key in tree) and self._clock.now() < deadline:
            self._stopped.wait(0.05)

    def __enter__(self) -> LocalRayHead:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- how it starts -----------------------------------------------------

    def _port(self, name: str) -> int:
        if name not in self._ports:
            raise RuntimeError("the Ray head is not started")
        return self._ports[name]

    def _choose_ports(self) -> None:
        names = [
            "gcs",
            "dashboard",
            "client_server",
            "agent_listen",
            "agent_grpc",
            "node_manager",
            "object_manager",
            "metrics_export",
            "runtime_env_agent",
        ]
        ports = free_ports(len(names))
        self._ports = dict(zip(names, ports, strict=True))
        self._ports["min_worker"] = free_port_block(WORKER_PORTS, exclude=set(ports))
        self._ports["max_worker"] = self._ports["min_worker"] + WORKER_PORTS - 1

    def command(self) -> list[str]:
        """The `ray start` command line for the chosen ports and resources."""
        p = self._ports
        cmd = [
            ray_executable(),
            "start",
            "--head",
            "--block",
            "--port",
            str(p["gcs"]),
            "--dashboard-port",
            str(p["dashboard"]),
            "--include-dashboard=true",
            "--dashboard-host",
            "127.0.0.1",
            "--num-cpus",
            str(self.cpus),
            "--ray-client-server-port",
            str(p["client_server"]),
            "--dashboard-agent-listen-port",
            str(p["agent_listen"]),
            "--dashboard-agent-grpc-port",
            str(p["agent_grpc"]),
            "--node-manager-port",
            str(p["node_manager"]),
            "--object-manager-port",
            str(p["object_manager"]),
            "--metrics-export-port",
            str(p["metrics_export"]),
            "--runtime-env-agent-port",
            str(p["runtime_env_agent"]),
            "--min-worker-port",
            str(p["min_worker"]),
            "--max-worker-port",
            str(p["max_worker"]),
            "--temp-dir",
            str(self.temp_dir),
            "--disable-usage-stats",
        ]
        if self.gpus is not None:
            cmd += ["--num-gpus", str(self.gpus)]
        if self.gpu_model:
            cmd += ["--resources", json.dumps({f"accelerator_type:{self.gpu_model}": 1})]
        if self.object_store_memory:
            cmd += ["--object-store-memory", str(self.object_store_memory)]
        return cmd

    def _start_once(self) -> None:
        self._exited_early = False
        # Short on purpose: Ray's unix socket paths live below it (limit ~107 chars).
        self._temp_dir = Path(tempfile.mkdtemp(prefix="minga-ray-", dir="/tmp"))
        self._choose_ports()
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        # Job entrypoints say `python ...`: let that be this interpreter, which has Ray.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("RAY_ADDRESS", None)
        with open(self._start_log, "wb") as out:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        log.info("started Ray head pid=%d dashboard=%s", self._proc.pid, self.dashboard_url)
        self._wait_ready()

    @property
    def _start_log(self) -> Path:
        return self.temp_dir / "ray-start.log"

    def _wait_ready(self) -> None:
        """Block until the job API answers, the leader dies, or the timeout passes."""
        from ray.job_submission import JobSubmissionClient

        deadline = self._clock.now() + self.start_timeout
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                self._exited_early = True
                raise RayStartError(f"`ray start` exited with code {self._proc.returncode}\n{self.log_tail()}")
            try:
                JobSubmissionClient(self.dashboard_url)
                if self._node_registered():
                    return
            except Exception:  # noqa: BLE001 - not up yet; any failure means "retry"
                pass
            if self._clock.now() > deadline:
                raise RayStartError(
                    f"Ray head not ready after {self.start_timeout:.0f}s at {self.dashboard_url}\n{self.log_tail()}"
                )
            self._stopped.wait(0.25)

    def _node_registered(self) -> bool:
        """The dashboard answers before the raylet registers; wait for the node too,
        so the inventory and the first job see its GPUs."""
        from minga.agent.inventory import fetch_nodes

        nodes = fetch_nodes(self.dashboard_url)
        if self.gpus is None:  # whatever Ray detected
            return bool(nodes)
        return any(node.gpus == self.gpus for node in nodes)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of `ray start`'s output and of the dashboard log."""
        parts = []
        logs = [self._start_log, self.temp_dir / "session_latest" / "logs" / "dashboard.log"]
        for path in logs:
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no Ray log found)"
