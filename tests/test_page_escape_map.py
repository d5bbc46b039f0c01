"""The Escape map page as a person uses it (AppTest on pages/escape_map.py)."""

from __future__ import annotations

import pytest
from apptest_helpers import no_exception, page_runner
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 240


run_page = page_runner("escape_map.py", TIMEOUT_S)


def summary(at: AppTest):
    return at.dataframe[0].value.set_index("optimizer")


def test_default_page_maps_four_optimizers_dimer_beside_its_control_over_a_30_by_30_grid():
    at = run_page()
    no_exception(at)
    assert not at.error
    assert at.title[0].value == "Escape map"
    table = summary(at)
    control = "DEO-escape — control: random fixed direction"
    assert list(table.index) == ["GD", "Adam", "DEO-escape", control]
    assert (table["escaped"].str.endswith("/900")).all()
    assert at.dataframe[0].proto.placeholder == "—"  # median steps of an optimizer that never escaped
    assert len(at.get("plotly_chart")) == 2  # the maps and the histogram
    assert any(c.value.startswith("DEO-escape: random N: a control") for c in at.caption)


def test_colouring_by_basin_and_changing_the_grid_rerun_cleanly():
    at = run_page(resolution="8", steps="40")
    at.radio(key="em.mode").set_value("basin").run()
    no_exception(at)
    at.slider(key="em.resolution").set_value(6).run()
    no_exception(at)
    assert (summary(at)["escaped"].str.endswith("/36")).all()


def test_an_empty_optimizer_selection_says_what_to_do():
    at = run_page(resolution="6", steps="20")
    at.multiselect(key="em.opt").set_value([]).run()
    no_exception(at)
    assert any("at least one optimizer" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_gd_with_lr_10_diverges_from_starts_and_is_counted():
    at = run_page(surface="Double well", opt=["GD", "Adam"], resolution="6", steps="30", **{"em.gd.lr": "10"})
    no_exception(at)
    table = summary(at)
    assert table.loc["GD", "diverged"] > 0
    assert table.loc["Adam", "diverged"] == 0


CONFIGURATION = {
    "surface": "Double well",
    "opt": ["Adam"],
    "resolution": "7",
    "steps": "25",
    "seed": "4",
    "mode": "minimum reached",
    "half_width": "0.5",
}


@pytest.mark.parametrize("names", ["prefixed", "before the prefix"])
def test_the_url_restores_the_configuration(names):
    """The page's URL parameters carry its prefix ``em.`` (Surfaces has the bare names); a link
    shared before the prefix opens the same configuration."""
    prefix = "em." if names == "prefixed" else ""
    at = run_page(**{prefix + key: value for key, value in CONFIGURATION.items()})
    no_exception(at)
    assert not at.warning, [w.value for w in at.warning]  # nothing in the link was ignored
    assert at.selectbox(key="em.surface").value == "double_well"
    assert at.multiselect(key="em.opt").value == ["adam"]
    assert at.slider(key="em.resolution").value == 7
    assert at.number_input(key="em.steps").value == 25
    assert at.number_input(key="em.seed").value == 4
    assert at.number_input(key="em.half_width").value == 0.5
    assert at.radio(key="em.mode").value == "basin"
    assert summary(at).loc["Adam", "escaped"].endswith("/49")


# ------------------------------------------------------------------ heavy work waits for Run (issue 8)


def test_a_large_map_shows_its_estimate_and_a_run_button_and_computes_nothing(monkeypatch):
    import pages.estimates

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", pages.estimates.DEFAULT_RUN_BUTTON_SECONDS)
    # this machine's measured rate decides whether 48 M row-gradients take more than 3 s (on a fast,
    # quiet day they did not, and the map ran): a rate of 1 µs per row-gradient makes it 48 s
    monkeypatch.setattr(pages.estimates, "escape_map_seconds_per_row_eval", lambda *args: 1e-6)
    from pages.common import cached_escape_map

    before = cached_escape_map.stats()["computations"]
    at = run_page(resolution="100", steps="600", seed="11")  # 10 000 starts × 600 steps: not pressed
    no_exception(at)
    assert not at.error
    assert at.button(key="em.map.run").label == "Run"
    text = " ".join(m.value for m in at.markdown)
    # GD, Adam 6 M each; DEO-escape and its control (charged the same) 18.01 M each
    assert "about 48,040,000 row-gradient evaluations, roughly" in text
    assert not at.get("plotly_chart") and not at.dataframe
    assert cached_escape_map.stats()["computations"] == before


def test_pressing_run_maps_and_a_changed_setting_asks_again(monkeypatch):
    import pages.estimates
    from pages.common import cached_escape_map

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", 0.0)  # every map waits: keep it small
    before = cached_escape_map.stats()["computations"]
    at = run_page(resolution="6", steps="20", seed="17")
    no_exception(at)
    assert not at.get("plotly_chart") and cached_escape_map.stats()["computations"] == before
    at.button(key="em.map.run").click().run()
    no_exception(at)
    assert not any("will cost" in m.value for m in at.markdown)  # the box goes once Run is pressed
    assert cached_escape_map.stats()["computations"] == before + 1
    assert (summary(at)["escaped"].str.endswith("/36")).all() and len(at.get("plotly_chart")) == 2
    at.radio(key="em.mode").set_value("basin").run()  # a view setting: the same map, still shown
    assert len(at.get("plotly_chart")) == 2 and not at.button
    at.slider(key="em.resolution").set_value(7).run()  # a new map: the estimate and Run again
    no_exception(at)
    assert at.button(key="em.map.run") and not at.get("plotly_chart")
    assert cached_escape_map.stats()["computations"] == before + 1


def test_a_small_map_runs_without_a_button(monkeypatch):
    import pages.estimates

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", pages.estimates.DEFAULT_RUN_BUTTON_SECONDS)
    at = run_page(resolution="6", steps="20", seed="19")
    no_exception(at)
    assert not at.button and len(at.get("plotly_chart")) == 2


def test_the_published_code_beside_a_clip_maps_unclipped_and_the_caption_says_so():
    at = run_page(**{"em.opt": ["GD", "DEO (published code)"], "em.clip": "0.5", "em.resolution": "5"})
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert list(summary(at).index) == ["GD", "DEO (published code)"]
    assert any("but DEO (published code), whose code has no clipping" in c.value for c in at.caption)
