"""docs/cli.md is what `python -m minga.cli.reference` makes of the CLI, so it cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from minga.cli import reference, render
from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode


def test_docs_cli_md_is_generated_from_the_cli() -> None:
    assert reference.OUTPUT.read_text() == reference.generate(), (
        "docs/cli.md is stale: run `python -m minga.cli.reference > docs/cli.md`"
    )


def test_check_fails_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(reference.generate().replace("admin audit", "admin journal"))
    monkeypatch.setattr(reference, "OUTPUT", stale)
    assert reference.main(["--check"]) == 1
    assert "python -m minga.cli.reference" in capsys.readouterr().err
    stale.write_text(reference.generate())
    assert reference.main(["--check"]) == 0


@pytest.mark.parametrize(
    "command",
    [
        "minga broker init",
        "minga sim",
        "minga admin audit",
        "minga admin site drain",
        "minga admin site revoke",
        "minga admin user revoke",
        "minga quota show",
    ],
)
def test_the_reference_covers_every_command_issue_11_found_missing(command: str) -> None:
    assert f"### `{command}`" in reference.reference()


def test_the_reference_lists_flags_with_their_env_variables() -> None:
    text = reference.reference()
    assert "| `--tree` |" in text
    assert "MINGA_TOKEN" in text and "MINGA_SITE_CREDENTIAL" in text


def test_every_key_quota_show_emits_is_listed() -> None:
    view = render.quota_view_to_dict(
        QuotaView(
            rows=[QuotaRow("", "", "")],
            institutions=[InstitutionQuota("", "")],
            tree=[TreeNode("", "", "", 0.0, 0.0, 0.0, 0.0)],
            capacity=0,
            floor=Floor("", 0.0, 0.0),
        )
    )
    line = next(x for x in reference.json_keys().splitlines() if x.startswith("| `quota show"))
    listed = {k.strip("` ") for k in line.split("|")[2].split(",")}
    emitted = set(view) | {f"{part}.{k}" for part in ("rows", "institutions", "tree") for k in view[part][0]}
    assert emitted == listed
    assert len(view["rows"][0]) == 14


def test_a_template_without_a_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="generated: reference"):
        reference.generate("<!-- generated: command tree --> <!-- generated: json keys -->")


def test_the_page_names_no_path_of_this_machine() -> None:
    """The integrator regenerates it in another checkout: it must come out the same there."""
    assert str(reference.ROOT) not in reference.generate() and str(Path.home()) + "/" not in reference.generate()
