"""The layer contracts in pyproject.toml's [tool.importlinter] hold (DESIGN.md, layers):
today, that the store never imports the policy, directly or through another module."""
from __future__ import annotations

from pathlib import Path

from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_import_contracts_are_kept(capsys) -> None:
    status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, is_debug_mode=True, no_logo=True)
    report = capsys.readouterr().out
    assert status == EXIT_STATUS_SUCCESS, report
    assert "The store never imports the policy" in report and " 0 broken" in report   # it ran
