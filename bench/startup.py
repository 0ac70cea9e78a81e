"""How long the researcher's commands take from the shell: `minga --help`, and `minga job
submit`, `job list` and `job status` end to end against a real broker (`minga broker
serve` on a temp SQLite file).

Each command is the venv's `minga` console script, run `--runs` times; the median wall
time is shown next to `python -c pass` run the same way in the same run, so start-up
cost of the interpreter itself (and of the machine's load) can be told apart.
Targets: --help <= 100 ms; submit, list and status <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import broker  # bench/harness.py, beside this script

MINGA = str(Path(sys.executable).parent / "minga")
TARGETS_MS = {"minga --help": 100.0, "minga job submit": 150.0, "minga job list": 150.0, "minga job status": 150.0}


def median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `argv` over `runs` runs after one unmeasured warm-up run;
    a failed run stops the benchmark."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return statistics.median(times[1:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    args = parser.parse_args()
    with broker("sqlite") as b:
        b.institution("uchile")
        # Bytecode caches on, as pip writes them at install: the warm-up run writes the checkout's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINGA_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            MINGA_BROKER=b.address,
            MINGA_TOKEN=b.researcher("ana", "uchile"),
            MINGA_CONFIG_DIR=str(Path(b.token_file).parent / "config"),
        )
        submit = [MINGA, "job", "submit", "--allow-unknown", "--", "true"]
        job_id = subprocess.run(submit, env=env, capture_output=True, text=True, check=True).stdout.strip()
        figures = {
            "python -c pass": median_ms([sys.executable, "-c", "pass"], env, args.runs),
            "minga --help": median_ms([MINGA, "--help"], env, args.runs),
            "minga job submit": median_ms(submit, env, args.runs),
            "minga job list": median_ms([MINGA, "job", "list"], env, args.runs),
            "minga job status": median_ms([MINGA, "job", "status", job_id], env, args.runs),
        }
    baseline = figures["python -c pass"]
    print(f"start-up, median of {args.runs} runs ({sys.executable})")
    print(f"{'command':<18} {'median':>9} {'- python':>9} {'target':>8}")
    for name, ms in figures.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"{target:6.0f} ms {'ok' if ms <= target else 'MISSED'}"
        print(f"{name:<18} {ms:6.1f} ms {ms - baseline:6.1f} ms {verdict}")


if __name__ == "__main__":
    main()
