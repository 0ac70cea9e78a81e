"""Failures become one line on stderr and a documented exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from minga.cli import errors
from minga.cli.client import BrokerClient
from minga.cli.main import app
from tests.environment import environment_without

MINGA = Path(sys.executable).parent / "minga"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))


@pytest.mark.parametrize(
    ("code", "details", "token", "line", "exit_code"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            "t",
            "cannot reach broker at b:1: is it running? set --broker or MINGA_BROKER",
            errors.EXIT_UNREACHABLE,
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED",
            "t",
            "TLS handshake with broker at b:1 failed: check --ca / MINGA_CA (the broker's CA certificate) and that "
            "the broker serves TLS",
            errors.EXIT_UNREACHABLE,
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "standby broker; the leader is at b:2",
            "t",
            "broker at b:1 is a standby broker; the leader is at b:2: add the leader to --broker or MINGA_BROKER "
            "(several addresses: HOST:PORT,HOST:PORT)",
            errors.EXIT_UNREACHABLE,
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "",
            "t",
            "broker at b:1 did not answer in time: is it overloaded? try again",
            errors.EXIT_UNREACHABLE,
        ),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "unknown token",
            "t",
            "broker at b:1 rejected the token (unknown token): check --token / MINGA_TOKEN or run `minga login` again",
            errors.EXIT_AUTH,
        ),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing bearer token",
            None,
            "broker at b:1 needs a token: pass --token, set MINGA_TOKEN, or run `minga login`",
            errors.EXIT_AUTH,
        ),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "researchers may not list users",
            "t",
            "permission denied: researchers may not list users",
            errors.EXIT_AUTH,
        ),
        (grpc.StatusCode.NOT_FOUND, "no user bob", "t", "no user bob", errors.EXIT_NOT_FOUND),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "gpus must be at most 64",
            "t",
            "gpus must be at most 64",
            errors.EXIT_USAGE,
        ),
        (
            grpc.StatusCode.ALREADY_EXISTS,
            "user bob already exists",
            "t",
            "user bob already exists",
            errors.EXIT_REFUSED,
        ),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            "job j-1 already finished",
            "t",
            "job j-1 already finished",
            errors.EXIT_REFUSED,
        ),
        (grpc.StatusCode.INTERNAL, "boom", "t", "broker at b:1 failed (INTERNAL): boom", errors.EXIT_REFUSED),
    ],
)
def test_rpc_error_becomes_one_line(
    monkeypatch: pytest.MonkeyPatch,
    code: grpc.StatusCode,
    details: str,
    token: str | None,
    line: str,
    exit_code: int,
) -> None:
    def fail(self: BrokerClient) -> None:
        raise FakeRpcError(code, details)

    monkeypatch.setattr(BrokerClient, "list_users", fail)
    args = ["admin", "user", "list", "--broker", "b:1"] + (["--token", token] if token else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exit_code
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def test_not_found_names_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: BrokerClient, job_id: str) -> None:
        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, "job not found")

    monkeypatch.setattr(BrokerClient, "get_job_or_array", fail)  # neither a job nor an array
    result = CliRunner().invoke(app, ["job", "status", "j-123", "--broker", "b:1", "--token", "t"])
    assert (result.exit_code, result.stderr) == (errors.EXIT_NOT_FOUND, "error: no job j-123\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job", "submit", "--env", "FOO", "--", "true"], "Invalid value for --env: 'FOO' has no '='"),
        (["job", "submit", "--gpus", "-1", "--", "true"], "Invalid value for --gpus: -1 is negative"),
        (["job", "submit", "--walltime", "soon", "--", "true"], "bad duration 'soon'"),
        (["job", "submit", "--memory", "lots", "--", "true"], "Invalid value for --memory: bad size 'lots'"),
        (["job", "submit", "--country", "Chile", "--", "true"], "two-letter ISO code"),
        (["job", "submit", "--max-attempts", "0", "--", "true"], "--max-attempts: 0 must be at least 1"),
        (["job", "submit", "--working-dir", "/no/such/dir", "--", "true"], "/no/such/dir is not a directory"),
        (["job", "submit"], "no entrypoint: put the command after `--`"),  # or `run` in a spec file (-f)
        (["job", "list", "--state", "done"], "bad state 'done': use one of PENDING"),
        (["job", "list"], "no broker address: pass --broker HOST:PORT, set MINGA_BROKER, or run `minga login`"),
        (["job", "list", "--broker", "b:1", "--ca", "/no/ca.pem"], "cannot read CA certificate /no/ca.pem"),
        (["admin", "user", "add", "x", "--institution", "u", "--role", "god"], "'god' is not one of"),
        (["agent", "run"], "give exactly one of --ray-address URL"),
        (["agent", "run", "--ray-address", "http://h:8265", "--ray-local", "--gpus", "1"], "exactly one of"),
        (["agent", "run", "--ray-local"], "--ray-local needs --gpus N"),
        (["agent", "run", "--ray-address", "http://h:8265", "--gpus", "2"], "--gpus applies only with --ray-local"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_user_mistakes_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == errors.EXIT_USAGE, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{not json")
    result = CliRunner().invoke(app, ["job", "list"])
    assert result.exit_code == errors.EXIT_USAGE
    assert "config.json is not valid JSON" in result.stderr and "minga login" in result.stderr


def test_unreachable_broker_through_the_real_console_script(tmp_path: Path) -> None:
    """End to end: nothing listens on port 1; the installed `minga` says so in one line."""
    env = environment_without("MINGA_")
    env["MINGA_CONFIG_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [str(MINGA), "job", "list", "--broker", "127.0.0.1:1"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == errors.EXIT_UNREACHABLE
    assert proc.stderr == "error: cannot reach broker at 127.0.0.1:1: is it running? set --broker or MINGA_BROKER\n"
    assert proc.stdout == ""


# What a researcher's command must never load: the broker, the agent, the simulator and their extras.
HEAVY = (
    "ray",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "matplotlib",
    "numpy",
    "cryptography",
    "minga.scheduler",
    "minga.agent",
)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["job", "submit", "--broker", "127.0.0.1:1", "--", "true"],
        ["job", "list", "--broker", "127.0.0.1:1"],
        ["job", "status", "j-1", "--broker", "127.0.0.1:1"],
    ],
    ids=["help", "submit", "list", "status"],
)
def test_researcher_commands_import_nothing_heavy(args: list[str]) -> None:
    """The commands run (here against a closed port) in a fresh interpreter; then no module of
    HEAVY is loaded. `--help` does not load grpc or the generated messages either."""
    heavy = HEAVY + (("grpc", "minga.v1") if args == ["--help"] else ())
    code = (
        "import sys; from minga.cli.main import app; app(sys.argv[1:], standalone_mode=False); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
