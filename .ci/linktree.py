"""Lay the minga.* package out as one tree of links, for tools that read files, not import hooks.

The top-level folders (scheduler/, agent/, cli/, common/, proto/minga) map onto minga.* through
pyproject's package-dir, which an installed minga follows but mypy and import-linter cannot.
This writes .ci/tree/minga/... with a symlink per source file (real directories, so every walker
descends) and prints the tree's root. Run it again after adding or removing a module.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".ci" / "tree"


def package_dirs() -> dict[str, Path]:
    """minga.* package -> its folder, from pyproject's package-dir (the longest prefix wins)."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in setup["package-dir"].items()}


def build() -> Path:
    shutil.rmtree(TREE, ignore_errors=True)
    for package, folder in sorted(package_dirs().items()):
        target = TREE.joinpath(*package.split("."))
        for source in folder.rglob("*"):
            relative = source.relative_to(folder)
            if "__pycache__" in relative.parts or source.suffix not in (".py", ".pyi", ".typed"):
                continue
            link = target / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return TREE


if __name__ == "__main__":
    sys.stdout.write(f"{build()}\n")
