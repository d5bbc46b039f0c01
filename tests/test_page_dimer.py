"""The Dimer page in Streamlit's AppTest: defaults, key widgets, URL state, the saddle search.

The listed Müller–Brown saddles come from SURFACES.md; λ_min is checked against the exact Hessian.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from apptest_helpers import assert_clean, page_runner
from streamlit.testing.v1 import AppTest

import landscapes
from deo.hessian import exact_eigh

TIMEOUT_S = 180
MB_SADDLES = ((0.212487, 0.292988), (-0.822002, 0.624313))


pytestmark = pytest.mark.usefixtures("one_torch_thread")
run = page_runner("dimer.py", TIMEOUT_S)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def saddle_table(at: AppTest):
    return next(df.value for df in at.dataframe if "reached x" in df.value.columns).iloc[0]


def test_default_run_shows_the_exact_min_eigenvalue_and_reaches_a_listed_saddle():
    at = run()
    assert_clean(at)
    surface = landscapes.SURFACES["muller_brown"]
    point = surface.starts[0]
    assert (at.number_input(key="dm.x").value, at.number_input(key="dm.y").value) == point
    lam, _ = exact_eigh(surface.f, torch.tensor(point, dtype=torch.float64))
    assert float(metric(at, "exact λ_min")) == pytest.approx(float(lam[0]), rel=1e-4)
    row = saddle_table(at)
    reached = (row["reached x"], row["reached y"])
    assert min(math.dist(reached, s) for s in MB_SADDLES) < 1e-3
    assert any("Reached the listed saddle" in s.value for s in at.success)


def test_sd_rotation_records_one_history_row_per_iteration():
    at = run(**{"dm.iters": "5"})
    at.radio(key="dm.rotation").set_value("sd").run()
    assert_clean(at)
    history = next(df.value for df in at.dataframe if "torque ‖F_R‖" in df.value.columns)
    assert list(history["iteration"]) == list(range(6))  # N₀ and 5 sd rotations (none converges)


def test_changing_the_surface_moves_theta_to_its_first_start():
    at = run()
    at.selectbox(key="dm.surface").set_value("saddle").run()
    assert_clean(at)
    start = landscapes.SURFACES["saddle"].starts[0]
    assert (at.number_input(key="dm.x").value, at.number_input(key="dm.y").value) == pytest.approx(start)


def test_configuration_is_restored_from_the_url():
    at = run(**{"dm.surface": "Himmelblau", "dm.x": "0.5", "dm.y": "-1.25", "dm.angle": "90",
                "dm.scheme": "central", "dm.length": "1e-05"})  # fmt: skip
    assert_clean(at)
    assert at.selectbox(key="dm.surface").value == "himmelblau"
    assert (at.number_input(key="dm.x").value, at.number_input(key="dm.y").value) == (0.5, -1.25)
    assert at.slider(key="dm.angle").value == 90
    assert at.radio(key="dm.scheme").value == "central"
    assert at.select_slider(key="dm.length").value == pytest.approx(1e-5)


def test_out_of_window_url_values_are_ignored():
    at = run(**{"dm.x": "99", "dm.angle": "720"})
    assert_clean(at)
    assert at.number_input(key="dm.x").value == landscapes.SURFACES["muller_brown"].starts[0][0]
    assert at.slider(key="dm.angle").value == 0


def test_saddle_search_from_the_third_minimum_reaches_the_other_saddle():
    at = run(**{"dm.ss.start": "min 3 (-0.05, 0.47)"})
    assert_clean(at)
    row = saddle_table(at)
    assert math.dist((row["reached x"], row["reached y"]), MB_SADDLES[1]) < 1e-3
    assert re.search(r"\(-0\.822002, 0\.624313\)", row["nearest listed saddle"])


def test_a_diverging_saddle_search_is_reported_not_raised():
    at = run(**{"dm.ss.steps": "50", "dm.ss.dimer_saddle_search.lr": "0.5"})
    assert not at.exception, [e.value for e in at.exception]
    row = saddle_table(at)
    assert row["status"] == "diverged"
    assert any("diverged" in w.value for w in at.warning)


def test_projector_mode_and_hidden_controls_render():
    at = run(**{"big": "true", "lecture": "true"})
    assert_clean(at)
    assert at.metric
