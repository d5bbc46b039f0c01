"""The Escape map page as a person uses it (AppTest on pages/escape_map.py)."""

from __future__ import annotations

from apptest_helpers import no_exception, page_runner
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 240


run_page = page_runner("escape_map.py", TIMEOUT_S)


def summary(at: AppTest):
    return at.dataframe[0].value.set_index("optimizer")


def test_default_page_maps_three_optimizers_over_a_30_by_30_grid():
    at = run_page()
    no_exception(at)
    assert not at.error
    assert at.title[0].value == "Escape map"
    table = summary(at)
    assert list(table.index) == ["GD", "Adam", "DEO-escape"]
    assert (table["escaped"].str.endswith("/900")).all()
    assert len(at.get("plotly_chart")) == 2  # the maps and the histogram


def test_colouring_by_basin_and_changing_the_grid_rerun_cleanly():
    at = run_page(resolution="8", steps="40")
    at.radio(key="mode").set_value("basin").run()
    no_exception(at)
    at.slider(key="resolution").set_value(6).run()
    no_exception(at)
    assert (summary(at)["escaped"].str.endswith("/36")).all()


def test_an_empty_optimizer_selection_says_what_to_do():
    at = run_page(resolution="6", steps="20")
    at.multiselect(key="opt").set_value([]).run()
    no_exception(at)
    assert any("at least one optimizer" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_gd_with_lr_10_diverges_from_starts_and_is_counted():
    at = run_page(surface="Double well", opt=["GD", "Adam"], resolution="6", steps="30", **{"em.gd.lr": "10"})
    no_exception(at)
    table = summary(at)
    assert table.loc["GD", "diverged"] > 0
    assert table.loc["Adam", "diverged"] == 0


def test_the_url_restores_the_configuration():
    at = run_page(
        surface="Double well",
        opt=["Adam"],
        resolution="7",
        steps="25",
        seed="4",
        mode="minimum reached",
        half_width="0.5",
    )
    no_exception(at)
    assert at.selectbox(key="surface").value == "double_well"
    assert at.multiselect(key="opt").value == ["adam"]
    assert at.slider(key="resolution").value == 7
    assert at.number_input(key="steps").value == 25
    assert at.number_input(key="seed").value == 4
    assert at.number_input(key="half_width").value == 0.5
    assert at.radio(key="mode").value == "basin"
    assert summary(at).loc["Adam", "escaped"].endswith("/49")
