"""Specifications of the Escape map figures (viz/escape_figs.py), on hand-made EscapeResults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deo.race import EscapeResult
from viz.escape_figs import FRAME_COLOR, NEVER_COLOR, escape_histogram, escape_maps_figure
from viz.palette import color_for

NX, NY = 4, 3
XS, YS = np.linspace(-1, 1, NX), np.linspace(-0.5, 0.5, NY)


def result(
    key: str, steps: list[float], basin: list[int], diverged: list[bool] | None = None
) -> EscapeResult:
    b = NX * NY
    return EscapeResult(
        key=key,
        label=key.upper(),
        hyperparams={},
        steps_to_escape=np.asarray(steps, dtype=float),
        grad_evals_to_escape=np.asarray(steps, dtype=float),
        final=np.zeros((b, 2)),
        basin=np.asarray(basin),
        diverged=np.asarray(diverged or [False] * b),
        wall_time=0.0,
    )


@pytest.fixture
def results() -> dict:
    never = float("nan")
    return {
        "GD": result("gd", [10, 20, never, 40, 50, 60, 70, 80, 90, 100, never, 5], [0, 1] * 6),
        "ADAM": result("adam", [8] * 12, [1] * 12, [True] + [False] * 11),
        "DEO-ESCAPE": result("deo_escape", [3] * 12, [0] * 11 + [-1]),
    }


def test_one_map_per_optimizer_side_by_side_sharing_one_colour_scale(results):
    fig = escape_maps_figure(
        XS, YS, results, steps_budget=200, saddle=(0, 0), minima=[(0.0, 0.4), (0.0, -0.4)]
    )
    maps = [t for t in fig.data if t.type == "heatmap" and t.coloraxis == "coloraxis"]
    assert [m.name for m in maps] == ["GD", "ADAM", "DEO-ESCAPE"]
    assert [a.text for a in fig.layout.annotations] == ["GD", "ADAM", "DEO-ESCAPE"]
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 200
    gd = np.asarray(maps[0].z)
    assert gd.shape == (NY, NX)
    assert gd[0, 1] == 20 and np.isnan(gd[0, 2])  # row-major: start b = (xs[b % nx], ys[b // nx])


def test_never_escaped_cells_have_their_own_colour_and_legend_entry_not_the_frame_grey(results):
    fig = escape_maps_figure(XS, YS, results, steps_budget=200)
    assert NEVER_COLOR != FRAME_COLOR == fig.layout.plot_bgcolor
    never = [t for t in fig.data if t.type == "heatmap" and t.name == "GD never escaped"]
    assert len(never) == 1 and never[0].colorscale[0][1] == NEVER_COLOR
    z = np.asarray(never[0].z, dtype=float)
    assert z[0, 2] == 1 and z[2, 2] == 1 and np.nansum(z) == 2  # GD's two starts that never escaped
    assert not any(t.name == "ADAM never escaped" for t in fig.data)  # ADAM escaped (or diverged)
    key = next(t for t in fig.data if t.type == "scatter" and t.name == "never escaped")
    assert key.marker.color == NEVER_COLOR and key.showlegend is not False
    assert "never escaped" in fig.layout.coloraxis.colorbar.title.text


def test_diverged_starts_are_drawn_black_over_the_map(results):
    fig = escape_maps_figure(XS, YS, results, steps_budget=200)
    overlays = [
        t for t in fig.data if t.type == "heatmap" and t.coloraxis is None and "never" not in (t.name or "")
    ]
    assert len(overlays) == 1  # only ADAM has a diverged start
    z = np.asarray(overlays[0].z, dtype=float)
    assert z[0, 0] == 1 and np.isnan(z).sum() == NX * NY - 1


def test_basin_mode_colours_by_minimum_with_a_legend_entry_each(results):
    fig = escape_maps_figure(XS, YS, results, mode="basin", minima=[(0.0, 0.4), (0.0, -0.4)])
    names = [t.name for t in fig.data if t.type == "scatter" and t.showlegend is not False]
    assert "minimum 0 (0, 0.4)" in names and "minimum 1 (0, -0.4)" in names and "no listed minimum" in names
    deo = next(t for t in fig.data if t.type == "heatmap" and t.name == "DEO-ESCAPE")
    z = np.asarray(deo.z, dtype=float)
    assert np.isnan(z[-1, -1]) and z[0, 0] == 0  # basin −1 → background


def test_equal_aspect_and_fixed_ranges_on_every_map(results):
    fig = escape_maps_figure(XS, YS, results)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis3.scaleanchor == "x3"
    assert list(fig.layout.xaxis2.range) == [-1.0, 1.0] and list(fig.layout.yaxis2.range) == [-0.5, 0.5]


def test_figure_json_is_strict(results):
    text = escape_maps_figure(XS, YS, results).to_json()

    def refuse(token):
        raise AssertionError(f"non-finite number {token} in the figure JSON")

    json.loads(text, parse_constant=refuse)


def test_histogram_counts_escaped_starts_per_optimizer_in_its_colour(results):
    fig = escape_histogram(results, steps_budget=200)
    assert [t.name for t in fig.data] == [
        "GD (10/12 escaped)",
        "ADAM (12/12 escaped)",
        "DEO-ESCAPE (12/12 escaped)",
    ]
    assert len(fig.data[0].x) == 10
    assert fig.data[1].marker.color == color_for("adam")


def test_bad_mode_and_empty_results_are_refused(results):
    with pytest.raises(ValueError, match="mode"):
        escape_maps_figure(XS, YS, results, mode="colour")
    with pytest.raises(ValueError, match="at least one"):
        escape_maps_figure(XS, YS, {})


@pytest.mark.parametrize("n, grid", [(1, (1, 1)), (3, (1, 3)), (4, (2, 2)), (5, (2, 3)), (7, (3, 3))])
def test_maps_fill_as_few_rows_as_they_need_as_evenly_as_they_can(n, grid):
    """At most three maps per row, the rows balanced: four maps are two rows of two, not three and
    one; a random-direction control's panel is titled by its short name."""
    keys = ["gd", "adam", "deo_escape", "deo_escape_random", "deo_paper", "momentum", "adamw"][:n]
    labels = {"deo_escape_random": "DEO-escape — control: random fixed direction"}
    runs = {labels.get(k, k.upper()): result(k, [5] * (NX * NY), [0] * (NX * NY)) for k in keys}
    fig = escape_maps_figure(XS, YS, runs, steps_budget=10)
    maps = [t for t in fig.data if t.type == "heatmap" and t.coloraxis == "coloraxis"]

    def domain(axis: str) -> tuple:  # "x3" -> layout.xaxis3.domain
        return tuple(fig.layout[axis[0] + "axis" + axis[1:]].domain)

    rows, columns = {domain(m.yaxis) for m in maps}, {domain(m.xaxis) for m in maps}
    assert (len(rows), len(columns)) == grid
    if n >= 4:
        assert fig.layout.annotations[3].text == "DEO-escape: random N"
        assert maps[3].name == "DEO-escape — control: random fixed direction"  # hover keeps the full name


def test_on_a_phone_two_maps_per_row_the_colour_bar_lies_under_them_and_ticks_show_once(results):
    """``compact`` (a phone, 420 px): three maps are two rows of two, the right column's y ticks and
    the top row's x ticks are hidden (one window for every map), the colour bar is horizontal under
    the maps; the histogram's legend goes above its plot."""
    fig = escape_maps_figure(XS, YS, results, steps_budget=200, compact=True)
    maps = [t for t in fig.data if t.type == "heatmap" and t.coloraxis == "coloraxis"]
    assert [(m.xaxis, m.yaxis) for m in maps] == [("x", "y"), ("x2", "y2"), ("x3", "y3")]
    assert fig.layout.yaxis2.showticklabels is False and fig.layout.yaxis.showticklabels is not False
    assert fig.layout.xaxis.showticklabels is False and fig.layout.xaxis3.showticklabels is not False
    bar = fig.layout.coloraxis.colorbar
    assert bar.orientation == "h" and bar.y < 0
    assert fig.layout.legend.y < bar.y  # the legend under the colour bar
    wide = escape_maps_figure(XS, YS, results, steps_budget=200, large=True)
    assert wide.layout.coloraxis.colorbar.orientation != "h"
    # beside every map a projector's large tick labels were drawn over the map to their left
    assert wide.layout.yaxis2.showticklabels is False and wide.layout.yaxis3.showticklabels is False
    hist = escape_histogram(results, steps_budget=200, compact=True)
    assert hist.layout.legend.orientation == "h" and hist.layout.legend.y > 1
    # in projector fonts too: beside the plot the legend left it ≈ 140 px of a 780 px chart
    projector = escape_histogram(results, steps_budget=200, large=True)
    assert projector.layout.legend.orientation == "h" and projector.layout.legend.y > 1
    assert escape_histogram(results, steps_budget=200).layout.legend.orientation != "h"  # a desktop's


def test_two_rows_of_maps_are_lower_so_the_default_four_fit_a_laptop_screen(results):
    """One row keeps 380 px; two or more rows are 260 px each, so the escape map page's default
    2 × 2 (DEO-escape and its control in the bottom row) fits under its header on a 900 px screen."""
    from viz.escape_figs import PANEL_HEIGHT, ROWS_PANEL_HEIGHT

    one_row = escape_maps_figure(XS, YS, results, steps_budget=200)
    four = dict(results, CONTROL=result("deo_escape_random", [4] * (NX * NY), [0] * (NX * NY)))
    two_rows = escape_maps_figure(XS, YS, four, steps_budget=200)
    assert one_row.layout.height == PANEL_HEIGHT + 60
    assert two_rows.layout.height == 2 * ROWS_PANEL_HEIGHT + 60 <= 600
