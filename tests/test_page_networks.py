"""The Networks page in Streamlit's AppTest: defaults, a diverging optimizer, URL state, widgets.

Slow-ish (each race trains small networks on the CPU): about 30–60 s on a loaded 2-core machine.
"""

from __future__ import annotations

import pytest
from apptest_helpers import assert_clean, page_runner
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 300


pytestmark = pytest.mark.usefixtures("one_torch_thread")
run = page_runner("networks.py", TIMEOUT_S)


def results(at: AppTest):
    return at.dataframe[-1].value.set_index("optimizer")


def test_default_run_races_the_default_optimizers_without_error():
    at = run()
    assert_clean(at)
    table = results(at)
    control = "DEO (paper) — control: random fixed direction"
    assert list(table.index) == ["GD", "Adam", "DEO (paper)", control]
    assert "diverged" not in set(table["status"])
    assert (table["steps run"] == 200).all()
    assert at.dataframe[-1].proto.placeholder == "—"  # "diverged at" of a run that did not: a dash
    # the dimer pays extra gradients at its rotation events; its control is charged the same
    assert table.loc["DEO (paper)", "gradient evaluations"] > table.loc["GD", "gradient evaluations"]
    assert table.loc[control, "gradient evaluations"] == table.loc["DEO (paper)", "gradient evaluations"]
    # on two_moons DEO (paper) follows Adam step for step: the caption says Adam lies under it (and
    # the chart draws Adam as a band); against gradient evaluations the two are apart (README)
    captions = " ".join(c.value for c in at.caption)
    assert "Adam lies under DEO (paper) on the left chart (the losses differ by at most 0.0081)" in captions
    assert "on the right chart" not in captions


def test_a_diverging_learning_rate_is_marked_and_the_others_finish():
    at = run(**{"nw.problem": "xor", "nw.gd.lr": "10"})
    assert_clean(at)
    table = results(at)
    assert table.loc["GD", "status"] == "diverged"
    assert table.loc["GD", "diverged at"] > 0
    assert (table.drop(index="GD")["status"] != "diverged").all()
    assert (table.drop(index="GD")["steps run"] == 200).all()
    assert any("GD at step" in w.value for w in at.warning)


def test_configuration_is_restored_from_the_url():
    at = run(**{"nw.problem": "xor", "nw.steps": "60", "nw.seed": "3", "nw.plane": "PCA", "nw.init": "0.1"})
    assert_clean(at)
    assert at.selectbox(key="nw.problem").value == "xor"
    assert at.number_input(key="nw.steps").value == 60
    assert at.number_input(key="nw.seed").value == 3
    assert at.radio(key="nw.plane").value == "pca"
    assert at.select_slider(key="nw.init").value == 0.1
    assert (results(at)["steps run"] == 60).all()


def test_out_of_bounds_url_values_fall_back_to_the_defaults():
    at = run(**{"nw.problem": "xor", "nw.steps": "999999", "nw.seed": "-4"})
    assert_clean(at)
    assert at.number_input(key="nw.steps").value == 200
    assert at.number_input(key="nw.seed").value == 0


def test_every_slice_plane_draws_without_error():
    at = run(**{"nw.problem": "xor", "nw.steps": "40"})
    for plane in ("min_curvature", "pca", "random"):
        at.radio(key="nw.plane").set_value(plane).run()
        assert_clean(at)
        assert len(at.get("plotly_chart")) == 7  # 2 loss, 3 dimer, the slice and the true loss


def test_changing_the_problem_and_removing_every_optimizer():
    at = run(**{"nw.problem": "xor", "nw.steps": "30"})
    at.selectbox(key="nw.problem").set_value("deep_linear").run()
    assert_clean(at)
    assert any("Deep linear" in m.value or "deep" in m.value.lower() for m in at.markdown)
    at.multiselect(key="nw.opt").set_value([]).run()
    assert_clean(at)
    assert any("at least one optimizer" in w.value for w in at.warning)


def test_projector_mode_and_hidden_controls_render():
    at = run(**{"nw.problem": "xor", "nw.steps": "30", "big": "true", "lecture": "true"})
    assert_clean(at)
    assert len(results(at)) == 4  # GD, Adam, DEO (paper) and its control


# ------------------------------------------------------------------ heavy work waits for Run (issue 8)


def test_a_heavy_race_shows_its_estimate_and_a_run_button_and_computes_nothing(monkeypatch):
    import pages.estimates

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", pages.estimates.DEFAULT_RUN_BUTTON_SECONDS)
    # this machine's measured rates would decide whether the race takes more than 3 s (≈ 10 s on a
    # fast, quiet day: too close); 12 ms per gradient and 2 ms per loss make it ≈ 12.5 s everywhere
    monkeypatch.setattr(pages.estimates, "network_seconds_per_eval", lambda key: 0.012)
    monkeypatch.setattr(pages.estimates, "network_seconds_per_loss_eval", lambda key: 0.002)
    from pages.estimates import network_race

    before = network_race.stats()["computations"]
    at = run(**{"nw.problem": "tiny_transformer", "nw.seed": "11"})  # ~10 s: not pressed here
    assert_clean(at)
    assert at.button(key="nw.race.run").label == "Run"
    text = " ".join(m.value for m in at.markdown)
    # GD, Adam 200 each, DEO (paper) and its control (charged the same) 242 each
    assert "**This race and its 2-D slice** will cost about 884 gradient evaluations and 961 loss" in text
    assert "loss evaluations, roughly" in text and "on this server" in text
    assert not at.get("plotly_chart") and not at.dataframe
    assert network_race.stats()["computations"] == before


def test_pressing_run_races_and_a_changed_setting_asks_again(monkeypatch):
    import pages.estimates
    from pages.estimates import network_race

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", 0.0)  # every race waits: keep it small
    query = {"nw.problem": "xor", "nw.steps": "20", "nw.seed": "17"}
    before = network_race.stats()["computations"]
    at = run(**query)
    assert_clean(at)
    assert not at.get("plotly_chart") and network_race.stats()["computations"] == before
    at.button(key="nw.race.run").click().run()
    assert_clean(at)
    assert network_race.stats()["computations"] == before + 1
    assert (results(at)["steps run"] == 20).all() and len(at.get("plotly_chart")) == 7
    at.checkbox(key="nw.log").check().run()  # a view setting: the same race, still shown
    assert len(at.get("plotly_chart")) == 7 and not at.button
    at.slider(key="nw.grid").set_value(11).run()  # the same race, a new slice: asks for the slice only
    assert_clean(at)
    assert at.button(key="nw.race.run") and not at.get("plotly_chart")
    assert any("**This 2-D slice** will cost about 121 loss evaluations" in m.value for m in at.markdown)
    at.slider(key="nw.grid").set_value(31).run()  # back: both cached, shown at once
    assert len(at.get("plotly_chart")) == 7 and not at.button
    at.number_input(key="nw.steps").set_value(30).run()  # a new race: the estimate and Run again
    assert_clean(at)
    assert at.button(key="nw.race.run") and not at.get("plotly_chart")
    assert network_race.stats()["computations"] == before + 1
    # another session asking for the race already cached sees it at once (a peek, no button)
    other = run(**query)
    assert not other.button and len(other.get("plotly_chart")) == 7
    assert network_race.stats()["computations"] == before + 1


def test_a_light_race_runs_without_a_button(monkeypatch):
    import pages.estimates

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", pages.estimates.DEFAULT_RUN_BUTTON_SECONDS)
    at = run(**{"nw.problem": "xor", "nw.steps": "20", "nw.seed": "19"})
    assert_clean(at)
    assert not at.button and len(results(at)) == 4


def test_a_preset_whose_settings_do_not_work_together_is_left_out_and_the_others_race():
    """rotation = sd without a rotation step: the race failed as a whole, no optimizer shown."""
    at = run(**{"nw.steps": "20", "nw.deo_paper.rotation": "sd"})
    assert_clean(at)
    assert any("DEO (paper)** is left out" in w.value and "rotation_step" in w.value for w in at.warning)
    assert "DEO (paper)" not in results(at).index and "GD" in results(at).index
