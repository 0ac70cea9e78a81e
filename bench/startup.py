"""How long the researcher's commands take from the shell: `minga --help`, and `minga job
submit`, `job list` and `job status` end to end against a real broker (`minga broker
serve` on a temp SQLite file).

The commands run from what a researcher installs: `pip install .` (no extras) into a
fresh venv, so no editable-install finder or dev package is on the path (`--python`
measures another install instead). Each command runs `--runs` times after one warm-up
run; the median wall time is shown next to `python -c pass` of the same venv, run the
same way in the same run. They run as a user's do, through the command server that the
first command starts (cli.cmdserver), and again each in its own process
(MINGA_CMDSERVER=off: cli.fast alone). The first run after install, which fills the
per-user cache (help pages, the fast commands' flags), is shown on its own.
Targets: --help <= 100 ms; submit, list and status <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, broker  # bench/harness.py, beside this script

from minga.cli import cmdserver

TARGETS_MS = {"minga --help": 100.0, "minga job submit": 150.0, "minga job list": 150.0, "minga job status": 150.0}


def timed_ms(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one run; a failed run stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `argv` over `runs` runs after one unmeasured warm-up run."""
    timed_ms(argv, env)
    return statistics.median(timed_ms(argv, env) for _ in range(runs))


def wait_for_server(cache: Path, timeout: float = 30.0) -> Path:
    """The command server's socket, once the first command has started one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next(cache.glob("cli/*/cmd.sock"), None)
        if found is not None:
            return found
        time.sleep(0.1)
    raise SystemExit("the first command started no command server")


def researcher_install(where: Path) -> Path:
    """A venv with `pip install .` of this checkout, as a researcher gets it; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], check=True, cwd=where)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--python", type=Path, help="measure this venv's python and `minga` instead of a fresh install")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="minga-startup-") as tmp:
        python = args.python or researcher_install(Path(tmp) / "venv")
        minga = str(python.parent / "minga")
        with broker("sqlite") as b:
            b.institution("uchile")
            # Bytecode caches on, as pip writes them at install.
            env = {k: v for k, v in os.environ.items() if not k.startswith("MINGA_") and k != "PYTHONDONTWRITEBYTECODE"}
            cache = Path(tmp) / "cache"
            env.update(
                MINGA_BROKER=b.address,
                MINGA_TOKEN=b.researcher("ana", "uchile"),
                MINGA_CONFIG_DIR=str(Path(tmp) / "config"),
                MINGA_CACHE_DIR=str(cache),
            )
            submit = [minga, "job", "submit", "--allow-unknown", "--", "true"]
            first = {
                "first minga --help": timed_ms([minga, "--help"], env),
                "first minga job list": timed_ms([minga, "job", "list"], env),
            }
            sock = wait_for_server(cache)
            job_id = subprocess.run(submit, env=env, capture_output=True, text=True, check=True).stdout.strip()
            commands = {
                "minga --help": [minga, "--help"],
                "minga job submit": submit,
                "minga job list": [minga, "job", "list"],
                "minga job status": [minga, "job", "status", job_id],
            }
            alone = {**env, "MINGA_CMDSERVER": "off"}
            baseline = median_ms([str(python), "-c", "pass"], env, args.runs)
            try:
                served = {name: median_ms(argv, env, args.runs) for name, argv in commands.items()}
            finally:
                cmdserver.stop(sock.parent)
            own = {name: median_ms(argv, alone, args.runs) for name, argv in commands.items()}
    print(f"start-up, median of {args.runs} runs ({python}); python -c pass: {baseline:.1f} ms")
    print(f"{'command':<18} {'served':>9} {'target':>10} {'own process':>12}")
    for name, ms in served.items():
        target = TARGETS_MS[name]
        print(f"{name:<18} {ms:6.1f} ms {target:4.0f} {'ok' if ms <= target else 'MISSED':>6} {own[name]:9.1f} ms")
    for name, ms in first.items():
        print(f"{name:<22} {ms:6.1f} ms (once after install: fills the cache, starts the command server)")


if __name__ == "__main__":
    main()
