"""`minga sim`'s output reads without the docs (issue 11, section 2): the table says which
way each metric is better and explains them, and the plot tells all 19 countries apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from minga.cli.main import app
from minga.scheduler.sim import federation
from minga.scheduler.sim.examples import example_federation
from minga.scheduler.sim.report import DIRECTION, HEADLINE, LEGEND, country_styles

FED = (
    '[[institutions]]\nslug = "a"\ncountry = "CL"\n[[institutions]]\nslug = "b"\ncountry = "AR"\n'
    '[[sites]]\nname = "s1"\ninstitution = "a"\ncountry = "CL"\nmodel = "G2"\ngpus = 8\n'
)


@pytest.fixture(scope="module")
def table_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    fed = tmp_path_factory.mktemp("fed") / "fed.toml"
    fed.write_text(FED)
    res = CliRunner().invoke(
        app,
        [
            "sim",
            "--federation",
            str(fed),
            "--trace",
            "synthetic",
            "--jobs",
            "80",
            "--policy",
            "fifo",
            "--policy",
            "minga",
        ],
    )
    assert res.exit_code == 0, res.output
    return res.output.splitlines()


def row(lines: list[str], metric: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:1] == [metric])


def test_every_headline_metric_says_which_way_is_better(table_lines: list[str]) -> None:
    assert row(table_lines, "metric")[:2] == ["metric", "better"]
    for key in HEADLINE:
        assert row(table_lines, key)[1] == DIRECTION[key], key
    assert row(table_lines, "utilization")[1] == "higher"
    assert row(table_lines, "wait_p95_s")[1] == "lower"
    assert row(table_lines, "share_deviation")[1] == "lower"
    assert row(table_lines, "cycles")[1] not in ("higher", "lower")  # context, not a score


def test_the_two_utilizations_are_explained_in_the_output(table_lines: list[str]) -> None:
    text = " ".join(" ".join(table_lines).split())
    assert "utilization: busy GPU-time / GPU-time some job wanted" in text
    assert "utilization_capacity: busy GPU-time / (all GPUs x time from first arrival to last end)" in text
    assert all(line in table_lines for line in LEGEND)


def test_the_legend_fits_80_columns() -> None:
    assert max(len(line) for line in LEGEND) <= 80


def test_all_19_countries_of_the_example_get_distinct_colours_and_styles() -> None:
    codes = sorted(federation.load(example_federation()).countries)
    assert len(codes) == 19
    styles = country_styles(codes)
    assert set(styles) == set(codes)
    assert len(set(styles.values())) == 19  # distinct (colour, hatch) pairs
    assert len({colour for colour, _ in styles.values()}) == 19  # and distinct colours alone
    assert styles["AR"][0] != styles["HN"][0] and styles["CL"][0] != styles["PA"][0]


def test_styles_stay_distinct_past_the_palette() -> None:
    codes = [f"C{i:02d}" for i in range(40)]
    assert len(set(country_styles(codes).values())) == 40


def test_the_plot_uses_the_styles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PNG's stack layers get the colours and hatches `country_styles` picked."""
    import matplotlib.figure

    from minga.scheduler.sim import report

    fed_file = tmp_path / "fed.toml"
    fed_file.write_text(FED)
    fed = federation.load(fed_file)
    result = {"federation": {"gpus": 8}, "series": {"fifo": [(0.0, {"AR": 2, "CL": 4}), (3600.0, {"CL": 8})]}}
    saved: list[matplotlib.figure.Figure] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    report.plot(result, tmp_path / "p.png", fed.countries)
    layers = saved[0].axes[0].collections
    styles = country_styles(["AR", "CL"])
    assert [tuple(layer.get_facecolor()[0][:3]) for layer in layers] == [styles[c][0][:3] for c in ("AR", "CL")]
    assert [layer.get_hatch() or "" for layer in layers] == [styles[c][1] for c in ("AR", "CL")]
