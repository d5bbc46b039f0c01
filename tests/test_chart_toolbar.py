"""Plotly's toolbar shows at a figure's top right, where legends in rows above a plot and panel
titles sit: every page leaves it out on a projector (large fonts) and on a phone, and keeps Plotly's
hover-only toolbar on a desktop (``pages.common.chart_config``)."""

from __future__ import annotations

import json

import pytest
from apptest_helpers import no_exception, page_runner

PAGES = ["surfaces.py", "dimer.py", "networks.py", "escape_map.py", "sweeps.py", "about.py"]


def chart_configs(at) -> list[dict]:
    return [json.loads(chart.proto.config or "{}") for chart in at.get("plotly_chart")]


@pytest.mark.parametrize("page", PAGES)
def test_projector_mode_draws_no_toolbar_over_the_legends_and_a_desktop_keeps_it(page):
    run = page_runner(page, timeout_s=240)
    projector = run(big="true")
    no_exception(projector)
    configs = chart_configs(projector)
    assert configs, page  # the page drew its charts
    assert all(config.get("displayModeBar") is False for config in configs), configs
    desktop = run()
    no_exception(desktop)
    configs = chart_configs(desktop)
    assert configs and all("displayModeBar" not in config for config in configs), configs
    assert all(config.get("displaylogo") is False for config in configs), configs
