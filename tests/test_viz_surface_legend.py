"""The Surfaces page's loss curves in a real browser: the legend leaves the plot its width (it sat
beside the plot, where the control's long name squeezed a half-width chart's plot to ~60 px) and
covers no axis. plotly.js draws each figure in one Chromium page (no server)."""

from __future__ import annotations

import pytest

import landscapes
from deo.race import OptimizerSpec, race, surface_problem
from tests.boxes import draw, figure_page, overlap, toolbar_covers
from viz import surface_figs as sf
from viz.palette import LEGEND_ABOVE, TOOLBAR_ROOM_PX

WIDTHS = (450, 380)  # one of the two loss charts at 1400 px, and a phone's column


@pytest.fixture(scope="module")
def figures() -> dict:
    surface = landscapes.SURFACES["saddle_plateau"]
    keys = ("gd", "adam", "deo_paper", "deo_escape", "deo_escape_random")  # the page's default race
    traces = race(surface_problem(surface, surface.default_start), [OptimizerSpec(k) for k in keys], 40)
    return {
        "loss against steps": sf.loss_figure(traces, "steps"),
        "loss against evaluations": sf.loss_figure(traces, "grad_evals"),
        "projector": sf.loss_figure(traces, "steps", large=True),
    }


def test_a_long_control_name_is_shortened_in_the_legend(figures):
    names = {trace.name for trace in figures["loss against steps"].data if trace.showlegend is not False}
    assert "DEO-escape: random N" in names and not any("control:" in n for n in names), names


@pytest.mark.parametrize("width", WIDTHS)
def test_the_legend_leaves_the_plot_its_width_and_covers_no_axis(chromium, figures, width):
    page = figure_page(chromium, width, 900)
    try:
        for name, fig in figures.items():
            if name == "projector" and width < min(WIDTHS[:1]):  # a projector is ≥ 1280 px wide
                continue
            draw(page, fig.update_layout(width=width))
            plot = page.locator("rect.nsewdrag").first.bounding_box()
            legend = page.locator("g.legend").first.bounding_box()
            title = page.locator("g.g-xtitle").first.bounding_box()
            ticks = page.locator("g.xaxislayer-above").first.bounding_box()
            assert plot and legend and title and ticks, name
            assert plot["width"] >= 0.6 * width and plot["height"] >= 150, (name, width, plot)
            assert legend["y"] + legend["height"] <= plot["y"] + 1, (name, width, legend, plot)  # above
            assert legend["x"] + legend["width"] <= width + 1, (name, width, legend)
            assert not overlap(legend, title) and not overlap(legend, ticks), (name, width, legend)
    finally:
        page.close()


def test_the_toolbar_covers_no_legend_entry_where_it_shows(chromium, figures):
    """A desktop shows Plotly's toolbar in the figure's top right while the pointer is over the
    chart: it sat on the legend's first row ("DEO (paper)"), as the same figure with the legend
    hung as before shows, until the legend hung below it."""
    width = WIDTHS[0]  # a desktop's column (a phone and a projector show no toolbar)
    page = figure_page(chromium, width, 900)
    try:
        for name in ("loss against steps", "loss against evaluations"):
            fig = figures[name]
            draw(page, sf.FrozenFigure(fig).update_layout(width=width))
            assert toolbar_covers(page) == [], name
            before = sf.FrozenFigure(fig).update_layout(width=width, height=380)
            before.layout.legend = LEGEND_ABOVE  # replaced whole (update_layout would merge it)
            draw(page, before)
            assert toolbar_covers(page), name  # the check sees the toolbar where it sat before
    finally:
        page.close()


def test_the_toolbar_covers_no_curvature_legend_entry_where_it_shows(chromium):
    """The Curvature tab's chart (the page's column, ≈ 920 px at 1400): the toolbar sat on
    "DEO-escape: random N: dimer C" at the end of the legend's first row."""
    surface = landscapes.SURFACES["saddle_plateau"]
    keys = ("gd", "adam", "deo_paper", "deo_escape", "deo_escape_random")  # the page's default race
    traces = race(surface_problem(surface, surface.default_start), [OptimizerSpec(k) for k in keys], 40)
    width = 920
    page = figure_page(chromium, width, 1100)
    try:
        fig = sf.curvature_figure(traces)
        draw(page, sf.FrozenFigure(fig).update_layout(width=width))
        assert toolbar_covers(page) == []
        before = sf.FrozenFigure(fig).update_layout(width=width, height=fig.layout.height - TOOLBAR_ROOM_PX)
        before.layout.legend = LEGEND_ABOVE  # replaced whole (update_layout would merge it)
        draw(page, before)
        assert toolbar_covers(page)  # the check sees the toolbar where it sat before
    finally:
        page.close()


def test_only_a_view_with_the_toolbar_leaves_it_room():
    surface = landscapes.SURFACES["saddle_plateau"]
    traces = race(surface_problem(surface, surface.default_start), [OptimizerSpec("gd")], 5)
    desktop = sf.loss_figure(traces).layout
    assert desktop.legend.yref == "container" and desktop.height == 380 + TOOLBAR_ROOM_PX
    assert desktop.legend.y == pytest.approx(1 - TOOLBAR_ROOM_PX / desktop.height)
    for view in ({"compact": True}, {"large": True}):  # a phone, a projector: no toolbar, no room
        layout = sf.loss_figure(traces, **view).layout
        assert layout.legend.yref != "container" and layout.legend.y == LEGEND_ABOVE["y"], view
        assert layout.height == (500 if view.get("large") else 380), view
