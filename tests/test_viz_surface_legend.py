"""The Surfaces page's loss curves in a real browser: the legend leaves the plot its width (it sat
beside the plot, where the control's long name squeezed a half-width chart's plot to ~60 px) and
covers no axis. plotly.js draws each figure in one Chromium page (no server)."""

from __future__ import annotations

import pytest

import landscapes
from deo.race import OptimizerSpec, race, surface_problem
from tests.boxes import draw, figure_page, overlap
from viz import surface_figs as sf

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
