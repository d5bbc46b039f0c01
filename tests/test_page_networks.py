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
    assert list(table.index) == ["GD", "Adam", "DEO (paper)"]
    assert "diverged" not in set(table["status"])
    assert (table["steps run"] == 200).all()
    # the dimer pays extra gradients at its rotation events
    assert table.loc["DEO (paper)", "gradient evaluations"] > table.loc["GD", "gradient evaluations"]


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
    assert len(results(at)) == 3
