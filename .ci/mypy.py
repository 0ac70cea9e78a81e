"""Type-check minga.* with mypy, reporting each error at its file in the checkout.

mypy cannot follow pyproject's package-dir, so it reads .ci/linktree.py's tree; the paths it
prints (minga/scheduler/...) are mapped back to the folders (scheduler/...) here.
Usage: python .ci/mypy.py PATH_TO_MYPY [mypy args...]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linktree import ROOT, build, package_dirs


def to_checkout(line: str) -> str:
    """'minga/scheduler/x.py:3: error' -> 'scheduler/x.py:3: error' (the longest mapping wins)."""
    for package, folder in sorted(package_dirs().items(), key=lambda item: -len(item[0])):
        prefix = package.replace(".", "/") + "/"
        if line.startswith(prefix):
            return str(folder.relative_to(ROOT)) + "/" + line[len(prefix) :]
    return line


def main() -> int:
    mypy, *args = sys.argv[1:]
    mypy = str(Path(mypy).resolve())
    tree = build()
    done = subprocess.run(
        [
            mypy,
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--python-executable",
            sys.executable,
            "-p",
            "minga",
            *args,
        ],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    for line in (done.stdout + done.stderr).splitlines():
        print(to_checkout(line))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
