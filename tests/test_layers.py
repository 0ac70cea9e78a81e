"""The layers of docs/architecture.md hold: the import contracts in pyproject.toml, and the
policy importing nothing of minga but itself and the kernel.

Both read the link tree of .ci/linktree.py, since the top-level folders map onto minga.*
through package-dir, which import-linter and grimp cannot follow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINKTREE = ROOT / ".ci" / "linktree.py"


@pytest.fixture(scope="module")
def tree_env() -> dict[str, str]:
    tree = subprocess.run([sys.executable, str(LINKTREE)], check=True, capture_output=True, text=True).stdout.strip()
    return {**os.environ, "PYTHONPATH": tree}


def test_import_contracts_are_kept(tree_env) -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT / ".ci",
        env=tree_env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The store never imports the policy KEPT" in done.stdout and " 0 broken" in done.stdout  # it ran


def test_the_policy_imports_only_itself_and_the_kernel(tree_env) -> None:
    script = (
        "import grimp, json\n"
        "g = grimp.build_graph('minga', cache_dir=None)\n"
        "policy = [m for m in g.modules if m.startswith('minga.scheduler.policy')]\n"
        "print(json.dumps(len(policy)))\n"
        "print(json.dumps(sorted({f'{m} -> {t}' for m in policy for t in g.find_modules_directly_imported_by(m)\n"
        "    if not t.startswith(('minga.scheduler.policy', 'minga.common'))})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT / ".ci", env=tree_env, capture_output=True, text=True, check=True
    )
    count, outside = (json.loads(line) for line in done.stdout.splitlines())
    assert count > 20, "the graph did not see the policy"
    assert outside == []


def test_no_bare_top_level_package_is_importable_from_the_tree(tree_env) -> None:
    """Outside the checkout, only minga.* exists: the folders are not packages of their own."""
    script = (
        "import importlib.util, sys\n"
        "sys.path = [p for p in sys.path if p not in ('', '.')]\n"
        "print([n for n in ('scheduler', 'agent', 'cli', 'common') if importlib.util.find_spec(n)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd="/", env=tree_env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
