"""Formulas that are not finite somewhere in their window (log(x), 1/x, sqrt(y), ...): the contour
masks those cells, races that walk into them stop as "diverged" with a sentence, escape maps mark
the rows that start there as diverged without touching the others, and nothing raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
from apptest_helpers import no_exception, page_runner

import landscapes
from deo.race import (
    OptimizerSpec,
    escape_map,
    grid_starts,
    map_escape,
    race,
    surface_bound,
    surface_escape,
    surface_problem,
)
from viz import surface_figs as sf

ALL = [
    OptimizerSpec(k) for k in ("gd", "momentum", "adam", "pgd", "deo_paper", "deo_escape", "deo_published")
]

# (formula, start, keys expected to stop as diverged within 200 steps)
WALKS = [
    ("log(x) + y**2", (0.5, 0.5), {"gd", "pgd", "deo_escape"}),  # x → 0⁺ then log of a negative number
    ("log(x) + y**2", (-1.0, 0.5), {s.key for s in ALL}),  # starts where f is NaN
    ("1/x + y**2", (0.0, 0.5), {s.key for s in ALL}),  # starts on the pole
    ("sqrt(y) + x**2", (0.5, 0.0), {s.key for s in ALL}),  # f finite, ∇f infinite at y = 0
    ("log(abs(x)) + y**2", (1e-300, 0.5), {s.key for s in ALL}),  # ‖∇f‖² overflows
    ("x**2 - y**2 + log(y)", (0.5, 0.01), {"gd", "adam", "deo_escape", "pgd"}),
]


@pytest.mark.parametrize(("text", "start", "diverging"), WALKS)
def test_a_race_into_the_undefined_region_stops_as_diverged(text, start, diverging):
    surface = landscapes.parse_formula(text)
    traces = race(surface_problem(surface, start), ALL, 200)
    stopped = {t.key for t in traces if t.status == "diverged"}
    assert diverging <= stopped
    for t in traces:
        assert np.isfinite(t.loss).all()  # only finite rows are recorded
        if t.status == "diverged":
            assert t.stop_step is not None and t.stop_step <= 200
    notes = sf.divergence_notes(traces, surface)
    assert len(notes) == len(stopped)
    assert all("not finite at its next point" in n and "stopped at step" in n for n in notes)


def test_a_catalogue_divergence_says_lower_the_learning_rate():
    surface = landscapes.SURFACES["rosenbrock"]
    traces = race(surface_problem(surface, (-2.0, 2.0)), [OptimizerSpec("gd", {"lr": 10.0})], 20)
    assert traces[0].status == "diverged"
    (note,) = sf.divergence_notes(traces, surface)
    assert note.startswith("GD stopped at step") and "lower its learning rate" in note


def test_escape_map_marks_rows_in_the_undefined_region_and_leaves_the_others_alone():
    surface = landscapes.parse_formula("log(x) + y**2 - x**2")
    starts = grid_starts(surface.bounds, 6)  # x < 0 for half of them: f is NaN there
    escape = map_escape(surface)
    assert math.isfinite(escape.loss_below)  # f(centre) = log(0) = −inf: the nearest finite point is used
    specs = [OptimizerSpec("gd"), OptimizerSpec("deo_escape")]
    results = escape_map(surface.f, starts, specs, 30, escape, bound=surface_bound(surface))
    left = starts[:, 0] < 0
    finite_starts = starts.copy()
    finite_starts[left, 0] = 1.0  # the same rows (same random dimer directions), all where f is finite
    results = escape_map(surface.f, starts, specs, 30, escape, bound=surface_bound(surface))
    control = escape_map(surface.f, finite_starts, specs, 30, escape, bound=surface_bound(surface))
    for name, r in results.items():
        assert r.diverged[left].all() and (r.basin[left] == -1).all()
        np.testing.assert_array_equal(r.diverged[~left], control[name].diverged[~left])
        np.testing.assert_array_equal(r.final[~left], control[name].final[~left])
        np.testing.assert_array_equal(r.steps_to_escape[~left], control[name].steps_to_escape[~left])


def test_map_escape_refuses_a_formula_that_is_nowhere_finite():
    with pytest.raises(ValueError, match="not finite anywhere"):
        map_escape(landscapes.parse_formula("log(-1 - x**2) + y"))


def test_the_contour_masks_non_finite_cells_with_a_hatch():
    surface = landscapes.parse_formula("log(x) + y**2")
    grid = sf.surface_grid(surface, n=40)
    rgb = sf._colorize(grid.display)
    masked = ~np.isfinite(grid.display)
    assert masked[:, :19].all() and np.isfinite(grid.display[:, 21:]).all()
    colours = {tuple(c) for c in rgb[masked]}
    assert colours == {tuple(c) for c in sf.MASK_RGB}  # both stripes of the hatch, nothing else
    scale = {tuple(c) for c in rgb[~masked]}
    assert not scale & colours  # distinct from every colour of the scale (white included)
    assert sf.has_nonfinite_region(surface) and not sf.has_nonfinite_region(landscapes.SURFACES["saddle"])


@pytest.mark.parametrize("text", ["1/x - y**2", "sqrt(y) + x**2", "log(x*y)", "1/(x**2 + y**2 - 1)"])
def test_figures_of_non_finite_formulas_are_json_clean(text):
    surface = landscapes.parse_formula(text)
    traces = race(
        surface_problem(surface, surface.starts[0]), [OptimizerSpec("gd"), OptimizerSpec("adam")], 50
    )
    fig = sf.race_figure(surface, traces)
    text_json = fig.to_json()
    assert "NaN" not in text_json and "Infinity" not in text_json
    text_json = sf.surface3d_figure(surface, traces, grid=sf.surface_grid(surface, n=30)).to_json()
    assert "NaN" not in text_json and "Infinity" not in text_json


run_page = page_runner("surfaces.py", 240)


def test_the_surfaces_page_says_why_a_run_into_log_of_a_negative_number_stopped(one_torch_thread):
    at = run_page(surface="✏️ Type a formula", formula="log(x) + y**2", x0="0.5", y0="0.5", opt=["GD", "Adam"])
    no_exception(at)
    assert not at.error
    notes = [c.value for c in at.caption if "stopped at step" in c.value]
    assert notes and notes[0].startswith("⚠️ GD stopped at step") and "not finite" in notes[0]


@pytest.mark.parametrize(("key", "leaves"), [("gd", True), ("deo_escape", True), ("deo_paper", False)])
def test_escape_map_without_bound_survives_overflowing_rows(key, leaves):
    """No ``bound`` and an lr that blows up (×201 per step on x²−y²): the rows' values stay finite
    until their sum overflows. Those rows count as diverged; the run must not raise (it did: the DEO
    step refused the infinite summed loss at step 67). DEO (paper) never leaves this saddle."""
    surface = landscapes.SURFACES["saddle"]
    starts = np.tile([1.0, 1e-3], (5, 1))
    spec = OptimizerSpec(key, {"lr": 100.0}, label=key)
    result = escape_map(surface.f, starts, [spec], 200, surface_escape(surface, (1.0, 1e-3)))[key]
    assert np.isfinite(result.final).all()
    assert (result.diverged | np.isfinite(result.steps_to_escape)).all() == leaves
