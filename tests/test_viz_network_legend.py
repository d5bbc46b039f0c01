"""The Networks figures' legends in a real browser: no legend covers its x-axis title (issue 8: the
lower chart's legend sat on "step"). Plotly draws each figure in Chromium from a standalone HTML
page (no server); the test waits for the drawn legend, then compares bounding boxes."""

from __future__ import annotations

import pytest

import landscapes
from deo.problems import network_problem
from deo.race import OptimizerSpec, race
from tests.boxes import overlap
from viz import network_figs as figs

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
    page = chromium.new_page(viewport={"width": width, "height": 900})
    try:
        for name, fig in figures.items():
            fig = fig.update_layout(width=width)
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True))
            page.wait_for_selector("g.g-xtitle", state="attached")  # drawn
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
