"""The Sweeps page (pages/sweeps.py) on the committed sweep tables (AppTest)."""

from __future__ import annotations

import json

from apptest_helpers import assert_clean, no_exception, page_runner

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


def test_heatmap_rows_keep_their_height_whatever_the_labels_take():
    """Turned optimizer names once took most of a 320 px figure and left a 70 px strip of heatmap;
    each row of panels now keeps PLOT_PX besides its labels, a control's name breaks after its
    colon, and on a phone the panels stack with the colour bar flat under them."""
    import numpy as np

    from viz.sweep_figs import PLOT_PX, sweep_heatmaps

    seeds = list(range(5))
    short = {"p": (["a", "b"], seeds, np.ones((5, 2)))}
    long = {"p": (["GD", "DEO-escape: random N"], seeds, np.ones((5, 2)))}
    fig_short, fig_long = sweep_heatmaps(short, "optimizer"), sweep_heatmaps(long, "optimizer")
    for fig in (fig_short, fig_long):
        layout = fig.layout
        assert layout.height - layout.margin.t - layout.margin.b >= PLOT_PX
    assert fig_long.layout.height > fig_short.layout.height  # the labels' room comes on top
    assert list(fig_long.layout.xaxis.ticktext) == ["GD", "DEO-escape:<br>random N"]
    assert list(fig_long.data[0].x) == ["GD", "DEO-escape: random N"]  # the data keep the names
    four = {name: (["1", "2"], seeds, np.ones((5, 2))) for name in "abcd"}
    phone = sweep_heatmaps(four, "lr", compact=True)
    domains = {tuple(phone.layout[f"xaxis{k if k > 1 else ''}"].domain) for k in range(1, 5)}
    assert domains == {(0.0, 1.0)}  # one panel a row
    assert phone.data[0].colorbar.orientation == "h" and phone.data[0].colorbar.y < 0
    assert (
        len(
            {
                tuple(sweep_heatmaps(four, "lr").layout[f"xaxis{k if k > 1 else ''}"].domain)
                for k in range(1, 5)
            }
        )
        == 3
    )


GRID_CSV = b"problem,optimizer,seed,escape_step,final_loss,hp.lr\np1,GD,0,10,0.5,0.1\np1,Adam,1,4,0.2,0.1\n"
OTHER_CSV = b"problem,optimizer,seed,best_loss\nq9,GD,0,1.5\nq9,Adam,1,2.5\n"
NO_METRIC_CSV = b"problem,optimizer,seed\np1,GD,0\n"


def test_a_second_upload_starts_from_its_own_problems_metrics_and_axes():
    """The problem, metric and axis chosen on one uploaded table once stayed for the next upload:
    a metric the new table lacks made the summary fail with "None"."""
    at = run_page()
    at.selectbox(key="sw.table").set_value("Upload a table…").run()
    at.file_uploader(key="sw.upload").set_value(("a.csv", GRID_CSV, "text/csv")).run()
    assert_clean(at)
    at.selectbox(key="sw.metric").set_value("final_loss").run()
    at.selectbox(key="sw.x").set_value("hp.lr").run()
    assert_clean(at)
    at.file_uploader(key="sw.upload").set_value(("b.csv", OTHER_CSV, "text/csv")).run()
    assert_clean(at)
    assert at.selectbox(key="sw.problem").value == "q9"
    assert at.selectbox(key="sw.metric").value == "best_loss"
    assert at.selectbox(key="sw.x").value == "optimizer"
    summary = at.dataframe[0].value
    assert (summary.loc["q9", "GD"], summary.loc["q9", "Adam"]) == ("1.5", "2.5")  # not "2" and "2"
    assert any("the median is not finite" in m.value for m in at.markdown)


def test_a_table_without_a_metric_column_says_which_columns_it_needs():
    at = run_page()
    at.selectbox(key="sw.table").set_value("Upload a table…").run()
    at.file_uploader(key="sw.upload").set_value(("m.csv", NO_METRIC_CSV, "text/csv")).run()
    no_exception(at)
    (error,) = [e.value for e in at.error]
    assert "no metric to show" in error and "`escape_step`" in error


def test_the_link_holds_the_table_problem_metric_and_axis():
    """The Sweeps controls were the only ones not in the link: a shared view, or a return to the
    page, came back to the first table's steps to escape."""
    at = run_page(**{"sw.table": "sweep_lr_grid_saddle.csv", "sw.metric": "final loss", "sw.x": "optimizer"})
    assert_clean(at)
    assert at.selectbox(key="sw.table").value == "sweep_lr_grid_saddle.csv"
    assert at.selectbox(key="sw.metric").value == "final_loss"
    assert at.selectbox(key="sw.x").value == "optimizer"
