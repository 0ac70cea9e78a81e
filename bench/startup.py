"""How long the researcher's commands take from the shell: `minga --help`, and `minga job
submit`, `job list` and `job status` end to end against a real broker (`minga broker
serve` on a temp SQLite file).

The commands run from what a researcher installs: `pip install .` (no extras) into a
fresh venv, so no editable-install finder or dev package is on the path (`--python`
measures another install instead). Each command runs `--runs` times after one warm-up
run; the median wall time is shown next to `python -c pass` of the same venv, run the
same way in the same run. The first run after install, which fills the per-user cache
(cli.fast: help pages and the fast commands' flags), is shown on its own.
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
            env.update(
                MINGA_BROKER=b.address,
                MINGA_TOKEN=b.researcher("ana", "uchile"),
                MINGA_CONFIG_DIR=str(Path(tmp) / "config"),
                MINGA_CACHE_DIR=str(Path(tmp) / "cache"),
            )
            submit = [minga, "job", "submit", "--allow-unknown", "--", "true"]
            first = {
                "first minga --help": timed_ms([minga, "--help"], env),
                "first minga job list": timed_ms([minga, "job", "list"], env),
            }
            job_id = subprocess.run(submit, env=env, capture_output=True, text=True, check=True).stdout.strip()
            figures = {
                "python -c pass": median_ms([str(python), "-c", "pass"], env, args.runs),
                "minga --help": median_ms([minga, "--help"], env, args.runs),
                "minga job submit": median_ms(submit, env, args.runs),
                "minga job list": median_ms([minga, "job", "list"], env, args.runs),
                "minga job status": median_ms([minga, "job", "status", job_id], env, args.runs),
            }
    baseline = figures["python -c pass"]
    print(f"start-up, median of {args.runs} runs ({python})")
    print(f"{'command':<22} {'median':>9} {'- python':>9} {'target':>8}")
    for name, ms in figures.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"{target:6.0f} ms {'ok' if ms <= target else 'MISSED'}"
        print(f"{name:<22} {ms:6.1f} ms {ms - baseline:6.1f} ms {verdict}")
    for name, ms in first.items():
        print(f"{name:<22} {ms:6.1f} ms {ms - baseline:6.1f} ms (once after install: fills the cache)")


if __name__ == "__main__":
    main()
