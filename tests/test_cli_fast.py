"""cli.fast: the job commands run without typer, and do exactly what typer's would.

Each command line runs twice against a fresh fake broker: through the typer tree,
and through cli.fast (its flags read by cli.fastparse from the tree's spec). The fast
path may decline a command line (typer then reads it), but where it runs one, the
exit code, stdout, stderr and the requests the broker got must be the same.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minga.cli import errors, fast, fastspec
from minga.cli.main import app
from tests.environment import imported_modules, run_minga
from tests.test_cli_commands import ANA, Fake

JOB_COMMANDS = {"job submit", "job list", "job status", "job logs", "job cancel", "job wait"}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRAIN, SWEEP = str(EXAMPLES / "train.toml"), str(EXAMPLES / "sweep.yaml")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return fastspec.build()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("MINGA_BROKER", "MINGA_TOKEN", "MINGA_CA", "MINGA_MAX_PACKAGE_BYTES", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MINGA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_the_fast_commands_are_the_job_commands(spec: dict[str, Any]) -> None:
    assert set(spec["commands"]) == JOB_COMMANDS
    submit = {p["name"]: p for p in spec["commands"]["job submit"]["params"]}
    assert submit["gpus"]["type"] == "int" and submit["gpu_model"]["multiple"] is True
    assert submit["entrypoint"]["kind"] == "argument" and submit["entrypoint"]["nargs"] == -1
    assert spec["commands"]["job list"]["shared"] == ["broker", "token", "ca", "output"]
    assert [p["name"] for p in spec["root"]] == ["broker", "token", "ca"]


def _run(runner: str, argv: list[str], capsys: pytest.CaptureFixture[str], tmp: Path) -> tuple[Any, ...] | None:
    """(exit code, stdout, stderr, what the broker was asked) of one run on a fresh fake
    broker; None where the fast path declines the command line."""
    broker = Fake()
    errors._current["broker"] = None  # a new process each time, as from a shell
    args = [a.replace("BROKER", broker.address) for a in argv]
    try:
        capsys.readouterr()
        if runner == "typer":
            code = app(args, prog_name="minga", standalone_mode=False) or 0
        else:
            code = fast.run_fast(args, fast.Cache(tmp))
            if code is None:
                return None
        out, err = capsys.readouterr()
        # A key the user typed must reach the broker as typed; one left out is random each time.
        asked = [(r.spec, r.allow_unknown, r.array, r.idempotency_key if r.idempotency_key in args else "")
                 for r in broker.jobs.submits]  # fmt: skip
        return code, out.replace(broker.address, "BROKER"), err.replace(broker.address, "BROKER"), asked
    finally:
        broker.server.stop(None)


def _same(argv: list[str], capsys: pytest.CaptureFixture[str], tmp: Path, *, fast_runs: bool) -> None:
    by_typer = _run("typer", argv, capsys, tmp)
    by_fast = _run("fast", argv, capsys, tmp)
    if fast_runs:
        assert by_fast is not None, f"the fast path declined {argv}"
    if by_fast is not None:
        assert by_fast == by_typer


ME = ["--broker", "BROKER", "--token", ANA]
RUN_FAST = [
    ["job", "submit", *ME, "--", "python", "train.py"],
    [*ME, "job", "submit", "--gpus", "2", "--gpu-model", "A100", "--gpu-model=H100", "-o", "json", "--", "true"],
    ["job", "submit", *ME, "--name", "t", "--cpus", "1.5", "--memory", "4GiB", "--walltime", "2h", "python x.py"],
    ["job", "submit", *ME, "--env", "A=1", "--label", "k=v", "--country", "cl", "--data-country", "br", "--", "a"],
    ["job", "submit", *ME, "--idempotency-key", "k", "--array", "0-9%2", "--retry-failed", "--", "true"],
    ["job", "submit", *ME, "--non-preemptible", "--allow-unknown", "--max-attempts", "5", "-ojson", "--", "x"],
    ["job", "list", *ME],
    ["job", "list", *ME, "--all", "--expand", "-o", "json"],
    ["job", "list", *ME, "--state", "pending"],
    ["job", "status", "j-1", *ME],
    ["job", "status", *ME, "j-1", "-o", "json"],
    ["job", "cancel", "j-9", *ME],  # NOT_FOUND: one line, exit 5
    ["job", "cancel", "j-9", "--with-dependents", *ME],
    ["job", "submit", *ME, "--after", "j-1", "--after=j-2:any", "-o", "json", "--", "true"],  # j-1: NOT_FOUND
    ["job", "logs", "j-1", *ME],
    ["job", "submit", *ME],  # no entrypoint (a spec file may give it): one line, exit 2
    ["job", "submit", *ME, "-f", TRAIN, "--secret-env", "WANDB_API_KEY=k", "--gpus", "1", "--", "python", "x.py"],
    ["job", "submit", *ME, "--file", SWEEP, "--secret-env=WANDB_API_KEY=k", "-o", "json"],
    ["job", "submit", *ME, "-f", TRAIN],  # WANDB_API_KEY is not set: the file's line, exit 2
    ["job", "submit", *ME, "-f", "nowhere.toml", "--", "true"],
    ["job", "wait", "j-9", *ME],  # NOT_FOUND: exit 5
    ["job", "wait", "j-9", "j-1", *ME, "--timeout", "0", "-o", "json"],
]
DECLINED = [
    ["job", "submit", *ME, "--gpus", "-1", "--", "true"],  # refused before any call: typer words it
    ["job", "list", *ME, "--state", "done"],  # a bad state: the same
    ["job", "submit", *ME, "--gpus", "abc", "--", "true"],  # typer's coercion words it
    ["job", "submit", *ME, "--name", "--x", "--", "true"],  # a flag-like value
    ["job", "list", *ME, "--bogus"],
    ["job", "list", *ME, "--all=yes"],
    ["job", "--broker", "BROKER", "list"],  # a group takes no such flag
    ["job", "status", *ME],  # no id
    ["job", "status", "a", "b", *ME],
    ["job", "wait", *ME],  # no id
    ["job", "wait", "j-1", *ME, "--timeout", "forever"],  # refused before any call: typer words it
    ["admin", "institution", "list", *ME],  # not a fast command
]


@pytest.mark.parametrize("argv", RUN_FAST, ids=" ".join)
def test_the_fast_path_does_what_typer_does(argv: list[str], env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _same(argv, capsys, env, fast_runs=True)


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_what_the_fast_path_cannot_read_exactly_goes_to_typer(
    argv: list[str], env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("fast", argv, capsys, env) is None
    assert _run("typer", argv, capsys, env) is not None


FLAGS = {
    "job submit": ["--name", "--gpus", "--gpu-model", "--cpus", "--max-attempts", "--country", "--env", "--walltime",
                   "--array", "--idempotency-key", "-o", "--retry-failed", "--allow-unknown", "--non-preemptible",
                   "--after", "--low-carbon", "--low-carbon-first", "--no-low-carbon"],
    "job list": ["--all", "--expand", "--tasks", "--state", "-o"],
    "job status": ["-o"],
    "job wait": ["--timeout", "-o"],
}  # fmt: skip
VALUES = ["1", "0", "-1", "007", "1.5", "1e3", "abc", "", "A=1", "cl", "json", "table", "2h", "0-3%2", "--x", "-"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(FLAGS)))
    words: list[str] = []
    for flag in draw(st.lists(st.sampled_from(FLAGS[command]), max_size=5)):
        value = draw(st.sampled_from(VALUES))
        words += draw(st.sampled_from([[flag], [flag, value], [f"{flag}={value}"]]))
    if command in ("job status", "job wait"):
        words += draw(st.sampled_from([["j-1"], [], ["j-1", "j-2"]]))
    if command == "job submit":
        words += draw(st.sampled_from([["--", "true"], ["true"], ["--", "a", "--", "-b"], []]))
    order = draw(st.permutations(words)) if draw(st.booleans()) and "--" not in words else words
    return [*command.split(), *ME, *order]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_any_command_line_the_fast_path_runs_ends_as_typer_would_end_it(
    argv: list[str], env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _same(argv, capsys, env, fast_runs=False)


# -- help pages ---------------------------------------------------------------------------
def test_a_help_page_is_typers_and_is_kept(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = fast.Cache.open()
    assert cache is not None
    monkeypatch.setattr(sys, "argv", ["minga", "job", "submit", "--help"])
    assert fast.help_page(sys.argv[1:], cache) == 0
    drawn = capsys.readouterr().out
    assert "--gpu-model" in drawn and "Usage" in drawn
    assert list(cache.directory.glob("help-*")), "the page was not kept"
    monkeypatch.setattr(fast, "_typer_recording", lambda: pytest.fail("typer ran for a kept page"))
    assert fast.help_page(sys.argv[1:], cache) == 0
    assert capsys.readouterr().out == drawn


def test_a_help_flag_taken_as_a_value_runs_the_command_and_is_not_kept(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = Fake()
    try:
        argv = ["job", "submit", *ME, "--name", "--help", "--", "true"]
        argv = [a.replace("BROKER", broker.address) for a in argv]
        cache = fast.Cache.open()
        assert cache is not None and fast.wants_help(argv)
        monkeypatch.setattr(sys, "argv", ["minga", *argv])
        assert fast.help_page(argv, cache) == 0
        assert [r.spec.name for r in broker.jobs.submits] == ["--help"]  # click took it as the name
        assert not list(cache.directory.glob("help-*"))
    finally:
        broker.server.stop(None)


def test_new_code_starts_a_new_cache(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = fast.Cache.open()
    assert first is not None
    first.write("x", "kept")
    monkeypatch.setattr(fast, "code_fingerprint", lambda: "other-code")
    second = fast.Cache.open()
    assert second is not None and second.directory != first.directory
    assert second.read("x") is None and not first.directory.exists()


def test_the_help_key_follows_the_terminal_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = fast.help_key(["--help"])
    monkeypatch.setenv("COLUMNS", "200")
    assert fast.help_key(["--help"]) != key
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setenv("SOMETHING_ELSE", "1")
    monkeypatch.setenv("MINGA_TOKEN", "mgu_secret")  # no page depends on it: not even its checksum is kept
    assert fast.help_key(["--help"]) == key
    assert fast.help_key(["job", "--help"]) != key


# -- the console script ---------------------------------------------------------------------
def test_the_console_script_runs_job_commands_without_typer(env: Path) -> None:
    broker = Fake()
    try:
        shell = {**os.environ, "MINGA_BROKER": broker.address, "MINGA_TOKEN": ANA}
        first = run_minga("job", "submit", "--", "true", env=shell)  # builds the cache: typer runs once
        assert first.returncode == 0 and first.stdout == "j-1\n", first.stderr
        for argv in (["job", "submit", "--gpus", "1", "--", "true"], ["job", "list"], ["job", "status", "j-1"]):
            done = run_minga(*argv, env=shell)
            assert done.returncode == 0, done.stderr
            loaded = imported_modules(done.stderr)
            assert "minga.cli.fast" in loaded and "typer" not in loaded, argv
        listed = run_minga("job", "list", "-o", "json", env=shell)
        assert [j["id"] for j in json.loads(listed.stdout)] == ["j-1", "j-2"]
        wrong = run_minga("job", "submit", "--gpus", "x", "--", "true", env=shell)
        assert wrong.returncode == errors.EXIT_USAGE and "typer" in imported_modules(wrong.stderr)
    finally:
        broker.server.stop(None)


def test_the_console_script_keeps_help_pages(env: Path) -> None:
    shell = dict(os.environ)
    first = run_minga("--help", env=shell)
    again = run_minga("--help", env=shell)
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout
    assert "job" in first.stdout and "typer" in imported_modules(first.stderr)
    assert not {"typer", "rich"} & imported_modules(again.stderr)


@pytest.fixture(autouse=True)
def _no_leftover_connection() -> Iterator[None]:
    yield
    errors._current["broker"] = None
