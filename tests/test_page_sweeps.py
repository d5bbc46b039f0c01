"""The Sweeps page (pages/sweeps.py) on the committed sweep tables (AppTest)."""

from __future__ import annotations

import json

from apptest_helpers import assert_clean, page_runner

TIMEOUT_S = 120

run_page = page_runner("sweeps.py", TIMEOUT_S)


def heatmaps(at) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def test_the_lr_grid_table_shows_a_heatmap_per_optimizer_over_lr_and_seed():
    at = run_page()
    assert_clean(at)
    at.selectbox(key="sw.table").set_value("sweep_lr_grid_saddle.csv").run()
    assert_clean(at)
    assert at.selectbox(key="sw.x").value == "hp.lr"
    figure = heatmaps(at)
    traces = figure["data"]
    assert [t["name"] for t in traces] == ["GD", "Adam", "DEO-escape"]
    gd = traces[0]
    assert gd["x"] == ["0.003", "0.01", "0.03", "0.1", "0.3"] and gd["y"] == ["0", "1", "2", "3", "4"]
    # at lr 0.01 (the second column) every seed escapes at the README's counts: 349, 80, 177
    assert [[row[1] for row in t["z"]] for t in traces] == [[349] * 5, [80] * 5, [177] * 5]
    summary = at.dataframe[0].value
    assert summary.loc["x²−y², (1, 1e-3)", "GD"] == "119 [38–349]"  # over 5 lrs × 5 seeds


def test_optimizer_by_seed_and_another_metric():
    at = run_page()
    at.selectbox(key="sw.table").set_value("sweep_lr_grid_saddle.csv").run()
    at.selectbox(key="sw.x").set_value("optimizer").run()
    at.selectbox(key="sw.metric").set_value("grad_evals_to_escape").run()
    assert_clean(at)
    (trace,) = heatmaps(at)["data"]
    assert trace["x"] == ["GD", "Adam", "DEO-escape"] and trace["y"] == ["0", "1", "2", "3", "4"]
    # the median over the 5 lrs: GD 119, Adam 32, DEO-escape 61 steps (183 evaluations: 3 a step)
    assert trace["z"][0] == [119, 32, 183]
    summary = at.dataframe[0].value
    assert summary.loc["x²−y², (1, 1e-3)", "DEO-escape"].startswith("183")


def test_upload_is_offered_and_nothing_breaks_before_a_file():
    at = run_page()
    at.selectbox(key="sw.table").set_value("Upload a table…").run()
    assert_clean(at)
    assert any("No table yet" in i.value for i in at.info)
