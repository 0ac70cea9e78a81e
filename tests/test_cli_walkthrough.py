"""The README walkthrough, end to end, through the installed `minga` command.

Every piece is a real process started here: the broker (`minga broker serve`
on a SQLite file), a site agent with its own local Ray head (`minga agent run
--ray-local`), and each CLI call. Every process is stopped by PID at the end,
and the agent's Ray head must be gone after the agent stops.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.environment import environment_without
from tests.eventually import eventually

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

MINGA = str(Path(sys.executable).parent / "minga")
GPU_JOB = "import os; print('GPUs:', os.environ['CUDA_VISIBLE_DEVICES'])"


@dataclass
class Federation:
    tmp: Path
    address: str
    env: dict[str, str]  # a clean environment: its own config and data dirs, no MINGA_* leaking in
    processes: list[subprocess.Popen[bytes]]

    def minga(
        self, *args: str, token: str | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, MINGA_BROKER=self.address)
        if token:
            env["MINGA_TOKEN"] = token
        proc = subprocess.run([MINGA, *args], capture_output=True, text=True, env=env, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"minga {' '.join(args)} -> {proc.returncode}\n{proc.stderr}"
        return proc

    def json(self, *args: str, token: str | None = None, timeout: float = 60) -> Any:
        """Run with `--output json` (before any `--`, after which all words are the entrypoint)."""
        cut = args.index("--") if "--" in args else len(args)
        argv = (*args[:cut], "--output", "json", *args[cut:])
        return json.loads(self.minga(*argv, token=token, timeout=timeout).stdout)

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([MINGA, *args], stdout=subprocess.PIPE, stderr=out, env=self.env)
        self.processes.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")[-3000:]


def _stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    return proc.stdout.readline().decode()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    env = environment_without("MINGA_", "RAY_ADDRESS")
    env.update(MINGA_CONFIG_DIR=str(tmp_path / "config"), MINGA_DATA_DIR=str(tmp_path / "data"))
    fed = Federation(tmp=tmp_path, address="", env=env, processes=[])
    # The README's path: a federation CA first, so users talk TLS and the site mutual TLS.
    init = subprocess.run(
        [MINGA, "broker", "init", "--san", "127.0.0.1", "--san", "localhost"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    env["MINGA_CA"] = str(tmp_path / "data" / "pki" / "ca.crt")
    broker = fed.start(
        "broker",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        f"sqlite:///{tmp_path / 'broker.db'}",
        "--admin-token-file",
        str(tmp_path / "admin-token"),
        "--output",
        "json",
        log="broker.log",
    )
    try:
        announced = json.loads(_first_line(broker, 60))
        fed.address = announced["address"]
        assert announced["bootstrapped"] is True and announced["site_address"]
        yield fed
    finally:
        for proc in reversed(fed.processes):
            _stop(proc)


def test_readme_walkthrough(federation: Federation, tmp_path: Path) -> None:
    fed = federation
    admin_token = (tmp_path / "admin-token").read_text().strip()
    assert oct((tmp_path / "admin-token").stat().st_mode & 0o777) == "0o600"

    # 2. the admin logs in, adds an institution and a researcher, and a site token
    me = fed.json("login", "--token", admin_token)
    assert me["role"] == "admin"
    assert oct((tmp_path / "config" / "config.json").stat().st_mode & 0o777) == "0o600"
    fed.json("admin", "institution", "add", "uchile", "--name", "Universidad de Chile", "--country", "CL")
    again = fed.minga("admin", "institution", "add", "uchile", "--name", "x", "--country", "CL", check=False)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    ana = fed.json("admin", "user", "add", "ana", "--institution", "uchile")["token"]
    assert [u["name"] for u in fed.json("admin", "user", "list") if u["role"] == "researcher"] == ["ana"]
    join = fed.json("admin", "site-token", "create", "--institution", "uchile", "--site", "dcc", "--ttl", "10m")

    # 3. the site joins (once: the join token is one-time) and runs its agent on a local Ray head
    credential = tmp_path / "site.json"
    joined = fed.json(
        "site",
        "join",
        "--broker",
        fed.address,
        "--token",
        join["token"],
        "--credential",
        str(credential),
        "--ca",
        fed.env["MINGA_CA"],
    )
    assert (joined["site"], joined["institution"], joined["country"]) == ("dcc", "uchile", "CL")
    assert oct(credential.stat().st_mode & 0o777) == "0o600"
    assert oct(Path(joined["certificate_file"]).stat().st_mode & 0o777) == "0o600"  # the site's key
    assert joined["broker"] != fed.address  # the site port
    reuse = fed.minga(
        "site",
        "join",
        "--broker",
        fed.address,
        "--token",
        join["token"],
        "--credential",
        str(tmp_path / "other.json"),
        "--ca",
        fed.env["MINGA_CA"],
        check=False,
    )
    assert reuse.returncode != 0 and reuse.stderr.startswith("error: ") and reuse.stderr.count("\n") == 1
    agent = fed.start(
        "agent",
        "run",
        "--ray-local",
        "--gpus",
        "2",
        "--gpu-model",
        "A100",
        "--credential",
        str(credential),
        log="agent.log",
    )

    def site_ready() -> bool:
        assert agent.poll() is None, fed.log("agent.log")
        sites = fed.json("site", "list")
        return bool(sites) and sites[0]["connected"] and sites[0]["gpus"][:1] and sites[0]["gpus"][0]["total"] == 2

    eventually(site_ready, timeout=180, interval=1, what="the site to report 2 A100")
    dashboard = eventually(
        lambda: next((w for w in fed.log("agent.log").split() if w.startswith("http://127.0.0.1:")), None),
        timeout=10,
        what="the agent to name its Ray head",
    )

    # 4. the researcher submits; the job sees its GPU; logs, status, list
    job = fed.json(
        "job",
        "submit",
        "--name",
        "hello",
        "--gpus",
        "1",
        "--gpu-model",
        "A100",
        "--country",
        "CL",
        "--",
        "python",
        "-c",
        GPU_JOB,
        token=ana,
    )
    assert job["state"] in ("PENDING", "LEASED", "RUNNING") and job["created"] is True
    logs = fed.minga("job", "logs", job["id"], "--follow", token=ana, timeout=180).stdout
    assert "GPUs: 0" in logs or "GPUs: 1" in logs, logs
    status = fed.json("job", "status", job["id"], token=ana)
    assert (status["state"], status["site"], status["country"], status["gpu_model"]) == (
        "SUCCEEDED",
        "dcc",
        "CL",
        "A100",
    )
    assert status["attempts"] == 1 and status["finished_at"] and status["name"] == "hello"
    table = fed.minga("job", "status", job["id"], token=ana).stdout
    assert "SUCCEEDED" in table and "dcc" in table

    # a working dir travels as a package, uploaded once while unchanged
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hello from the working dir')\n")
    (project / ".gitignore").write_text("*.ckpt\n")
    (project / "model.ckpt").write_bytes(os.urandom(1024))
    first = fed.minga("job", "submit", "--working-dir", str(project), "--", "python main.py", token=ana)
    assert "uploaded" in first.stderr
    wd_job = first.stdout.strip()
    assert "hello from the working dir" in fed.minga("job", "logs", wd_job, "--follow", token=ana, timeout=180).stdout
    second = fed.minga("job", "submit", "--working-dir", str(project), "--", "python main.py", token=ana)
    assert "not re-sent" in second.stderr

    # a job that holds both GPUs makes the next one wait, with a reason; cancel frees them
    hog = fed.json("job", "submit", "--gpus", "2", "--", "python", "-c", "import time; time.sleep(600)", token=ana)
    eventually(
        lambda: fed.json("job", "status", hog["id"], token=ana)["state"] == "RUNNING",
        timeout=120,
        interval=0.5,
        what="the 2-GPU job to run",
    )
    waiting = fed.json("job", "submit", "--gpus", "1", "--", "python", "-c", GPU_JOB, token=ana)
    pending = fed.json("job", "status", waiting["id"], token=ana)
    assert pending["state"] == "PENDING" and pending["reason"], pending
    quotas = fed.json("quota", "show", token=admin_token)["rows"]
    row = next(q for q in quotas if q["institution"] == "uchile" and q["gpu_model"] == "A100")
    assert (row["owned"], row["held"]) == (2, 2)
    assert sum(q["pending"] for q in quotas if q["institution"] == "uchile") == 1, quotas  # any model: own row
    cancelled = fed.json("job", "cancel", hog["id"], token=ana)
    assert cancelled["state"] in ("CANCELLING", "CANCELLED")
    eventually(
        lambda: fed.json("job", "status", hog["id"], token=ana)["state"] == "CANCELLED",
        timeout=120,
        interval=0.5,
        what="the cancel to be confirmed",
    )
    assert "GPUs:" in fed.minga("job", "logs", waiting["id"], "--follow", token=ana, timeout=180).stdout
    listed = {j["id"]: j["state"] for j in fed.json("job", "list", "--all", token=ana)}
    assert listed[hog["id"]] == "CANCELLED" and listed[waiting["id"]] == "SUCCEEDED" and len(listed) == 5
    assert fed.json("job", "list", token=ana) == []  # finished jobs only with --all

    # mistakes are one line with the documented exit code
    missing = fed.minga("job", "status", "j-nope", token=ana, check=False)
    assert (missing.returncode, missing.stderr) == (5, "error: no job j-nope\n")
    bad = fed.minga("job", "list", token="mgu_wrong", check=False)
    assert bad.returncode == 4 and "rejected the token" in bad.stderr and bad.stderr.count("\n") == 1
    denied = fed.minga("admin", "user", "list", token=ana, check=False)
    assert denied.returncode == 4 and denied.stderr.startswith("error: permission denied")

    # the agent stops on SIGTERM and takes its Ray head with it
    assert _stop(agent) == 0, fed.log("agent.log")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{dashboard}/api/version", timeout=5)
