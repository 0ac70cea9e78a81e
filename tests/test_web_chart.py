"""The dashboard's line chart (`minga.scheduler.web.chart`): well-formed inline SVG,
one line per series inside the picture, every text escaped, and no data said so."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from minga.scheduler.web.chart import OKABE_ITO, line_chart_svg, palette_colour

SVG = "{http://www.w3.org/2000/svg}"
START = 1_764_806_400.0  # 2025-12-04 00:00 UTC
TIMES = [START + i * 1800 for i in range(48)]  # a day in half hours


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    return root


def view_box(root: ET.Element) -> tuple[float, float]:
    x, y, w, h = map(float, root.get("viewBox", "").split())
    assert (x, y) == (0, 0)
    return w, h


def polylines(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}polyline")


def points(line: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.get("points", "").split())]


def test_one_line_per_series_each_point_inside_the_picture():
    series = {"CL": [i / 47 for i in range(48)], "MX": [1 - i / 47 for i in range(48)], "AR": [0.2] * 48}
    root = parse(line_chart_svg(TIMES, series, title="Share by country", y_label="share", y_max=1.0))
    w, h = view_box(root)
    lines = polylines(root)
    assert [line.get("data-series") for line in lines] == ["CL", "MX", "AR"]
    assert [line.get("stroke") for line in lines] == [palette_colour(0), palette_colour(1), palette_colour(2)]
    for line in lines:
        pts = points(line)
        assert len(pts) == 48
        assert all(0 <= x <= w and 0 <= y <= h for x, y in pts)
        assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    first, last = points(lines[0])[0], points(lines[0])[-1]
    assert last[1] < first[1]  # a share rising to 100% climbs


def test_the_title_and_description_label_the_image():
    root = parse(line_chart_svg(TIMES, {"CL": [0.25] * 48}, title="Shares", y_label="share", y_max=1.0))
    ids = root.get("aria-labelledby", "").split()
    labels = {el.get("id"): el for el in root.iter() if el.get("id")}
    assert [labels[i].tag for i in ids] == [f"{SVG}title", f"{SVG}desc"]
    assert labels[ids[0]].text == "Shares"
    assert "CL: 25%" in (labels[ids[1]].text or "") and "23:30 UTC" in (labels[ids[1]].text or "")


def test_axes_read_percentages_and_utc_times():
    root = parse(line_chart_svg(TIMES, {"CL": [0.5] * 48}, title="t", y_label="share", y_max=1.0))
    texts = [el.text for el in root.iter(f"{SVG}text")]
    assert {"0%", "50%", "100%"} <= set(texts)
    assert {"00:00", "06:00", "12:00", "18:00"} <= set(texts) and "UTC" in texts


def test_values_beyond_the_axis_are_clamped_and_non_finite_ones_left_out():
    values = [2.0, -1.0, math.nan, 0.5] + [0.5] * 44
    root = parse(line_chart_svg(TIMES, {"CL": values}, title="t", y_label="share", y_max=1.0))
    w, h = view_box(root)
    pts = points(polylines(root)[0])
    assert len(pts) == 47 and all(0 <= x <= w and 0 <= y <= h for x, y in pts)


def test_without_a_maximum_the_axis_rounds_up_from_the_data():
    root = parse(line_chart_svg(TIMES, {"CL": [37.0] * 48}, title="GPUs held", y_label="GPUs"))
    texts = {el.text for el in root.iter(f"{SVG}text")}
    assert "40" in texts and "0" in texts and "%" not in "".join(t or "" for t in texts)


def test_names_and_labels_are_escaped():
    name = 'MX <script>&"x"'
    svg = line_chart_svg(TIMES[:3], {name: [1, 2, 3]}, title="<b>&", y_label='"y" <', chart_id='a"b')
    root = parse(svg)
    assert "<script>" not in svg and "<b>" not in svg
    assert polylines(root)[0].get("data-series") == name
    assert root.find(f"{SVG}title").text == "<b>&"  # type: ignore[union-attr]
    assert name in "".join(root.itertext())


@pytest.mark.parametrize(
    ("times", "series"), [([], {}), ([], {"CL": []}), (TIMES, {}), ([START], {"CL": [0.5]})], ids=str
)
def test_little_or_no_data_is_still_a_valid_picture(times, series):
    svg = line_chart_svg(times, series, title="Share", y_label="share", y_max=1.0)
    root = parse(svg)
    w, h = view_box(root)
    if not times or not series:
        assert "no data" in "".join(root.itertext()) and not polylines(root)
    else:
        assert all(0 <= x <= w and 0 <= y <= h for line in polylines(root) for x, y in points(line))


def test_many_series_reuse_the_palette_dashed_and_the_legend_fits():
    series = {f"C{i:02d}": [i / 20] * 48 for i in range(20)}
    root = parse(line_chart_svg(TIMES, series, title="t", y_label="share", y_max=1.0, height=120))
    w, h = view_box(root)
    lines = polylines(root)
    assert len(lines) == 20 and len({(line.get("stroke"), line.get("stroke-dasharray")) for line in lines}) == 20
    for el in root.iter():
        for attr in ("x", "x1", "x2"):
            if el.get(attr) is not None:
                assert 0 <= float(el.get(attr, "")) <= w
        for attr in ("y", "y1", "y2"):
            if el.get(attr) is not None:
                assert 0 <= float(el.get(attr, "")) <= h


def test_the_palette_is_okabe_ito_and_repeats():
    assert len(set(OKABE_ITO)) == 8
    assert [palette_colour(i) for i in range(10)] == [*OKABE_ITO, OKABE_ITO[0], OKABE_ITO[1]]


def test_a_series_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="CL"):
        line_chart_svg(TIMES, {"CL": [1.0]}, title="t", y_label="y")
