"""The Networks figures' legends in a real browser: no legend covers its x-axis title (issue 8: the
lower chart's legend sat on "step"). plotly.js draws each figure in one Chromium page (no server);
the test waits for the drawing, then compares bounding boxes."""

from __future__ import annotations

import pytest

import landscapes
from deo.problems import network_problem
from deo.race import OptimizerSpec, race
from tests.boxes import draw, figure_page, overlap, toolbar_covers
from viz import network_figs as figs
from viz.palette import LEGEND_ABOVE

WIDTHS = (700, 420)  # a half-width column of the page at 1400 px, and a phone


@pytest.fixture(scope="module")
def figures() -> dict:
    problem = network_problem(landscapes.make_network("xor"))
    traces = race(problem, [OptimizerSpec(k) for k in ("gd", "adam", "deo_paper")], 30)
    on_slice = [t.loss * 1.1 for t in traces]
    return {
        "loss against steps": figs.loss_figure(traces, "steps", plateau=0.25),
        "loss against evaluations": figs.loss_figure(traces, "grad_evals", plateau=0.25),
        "curvature": figs.curvature_figure(traces),
        "cos": figs.cos_figure(traces),
        "true loss along the trajectory": figs.trajectory_loss_figure(traces, on_slice),
        "true loss, projector": figs.trajectory_loss_figure(traces, on_slice, large=True),
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_no_legend_covers_the_x_axis_title_or_tick_labels(chromium, figures, width):
    page = figure_page(chromium, width, 900)
    try:
        for name, fig in figures.items():
            draw(page, fig.update_layout(width=width))
            if page.locator("g.legend").count() == 0:  # Plotly shows no legend for a single line
                assert "true loss" not in name and "loss against" not in name, name
                continue
            legend = page.locator("g.legend").first.bounding_box()
            title = page.locator("g.g-xtitle").first.bounding_box()
            ticks = page.locator("g.xaxislayer-above").first.bounding_box()
            assert legend and title and ticks, name
            assert not overlap(legend, title), (name, width, legend, title)
            assert not overlap(legend, ticks), (name, width, legend, ticks)
    finally:
        page.close()


def test_the_toolbar_covers_no_loss_legend_entry_where_it_shows(chromium):
    """A desktop shows Plotly's toolbar in the figure's top right while the pointer is over the
    chart: on the Networks page's half-width charts (loss; |cos| and the removed fraction) it sat on
    "DEO (paper)" or "DEO (paper): random N",
    as the same figure with the legend hung as before shows, until the legend hung below it."""
    problem = network_problem(landscapes.make_network("two_moons"))
    keys = ("gd", "adam", "deo_paper", "deo_paper_random")  # the page's default race
    traces = race(problem, [OptimizerSpec(k) for k in keys], 20)
    width = 450
    page = figure_page(chromium, width, 900)
    try:
        builders = {  # the loss tab's two charts and the curvature tab's half-width pair
            "loss, steps": lambda **kw: figs.loss_figure(traces, "steps", plateau=0.5, **kw),
            "loss, evaluations": lambda **kw: figs.loss_figure(traces, "grad_evals", plateau=0.5, **kw),
            "|cos|": lambda **kw: figs.cos_figure(traces, **kw),
            "removed fraction": lambda **kw: figs.removed_fraction_figure(traces, **kw),
        }
        for name, build in builders.items():
            fig = build()
            draw(page, fig.update_layout(width=width))
            assert toolbar_covers(page) == [], name
            phone = build(compact=True).layout
            assert phone.legend.yref != "container"  # no toolbar, no room
            fig.update_layout(height=phone.height)
            fig.layout.legend = LEGEND_ABOVE  # replaced whole (update_layout would merge it)
            draw(page, fig)
            assert toolbar_covers(page), name  # the check sees the toolbar where it sat before
    finally:
        page.close()
