"""Every surface's default race (the app's Surfaces page on first load of that surface) works:
its start, learning rates and budget (``landscapes.RaceDefaults``) keep every default preset finite
and inside the window, and the default surface tells the story the page's caption promises."""

from __future__ import annotations

import functools

import pytest

from deo.presets import PRESETS
from deo.race import OptimizerSpec, race, surface_problem
from landscapes import SURFACES

# pages/surfaces.py's default choice: the four of the story and DEO-escape's random-direction control
DEFAULT_OPTIMIZERS = ("gd", "adam", "deo_paper", "deo_escape", "deo_escape_random")


@functools.lru_cache(maxsize=2)  # the default surface's race serves three tests (read only)
def default_race(surface_key: str) -> dict:
    surface = SURFACES[surface_key]
    specs = [
        OptimizerSpec(key, surface.race.hyperparams(key, PRESETS[key].defaults), PRESETS[key].label)
        for key in DEFAULT_OPTIMIZERS
    ]
    traces = race(surface_problem(surface, surface.default_start), specs, surface.race.steps, seed=0)
    return {t.key: t for t in traces}


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("surface_key", sorted(SURFACES))
def test_no_default_preset_diverges_in_the_default_race(surface_key):
    surface = SURFACES[surface_key]
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 <= surface.default_start[0] <= x1 and y0 <= surface.default_start[1] <= y1
    for key, trace in default_race(surface_key).items():
        assert trace.status != "diverged", (surface_key, key, trace.stop_step)
        assert int(trace.steps[-1]) <= surface.race.steps


@pytest.mark.usefixtures("one_torch_thread")
def test_the_default_surface_shows_gd_slow_adam_fast_deo_paper_stuck_and_deo_escape_escaping():
    runs = default_race("saddle_plateau")
    gd, adam, paper, escape, _ = (runs[k] for k in DEFAULT_OPTIMIZERS)
    assert paper.escape_step is None  # DEO (paper) removes the escape direction ...
    assert 0.3 < paper.position_2d[-1, 1] < 1.2 and paper.grad_norm[-1] > 0.5  # ... stalls on the slope
    assert adam.escape_step is not None and escape.escape_step is not None
    assert adam.escape_step < escape.escape_step  # Adam first, DEO-escape next ...
    assert gd.escape_step is None or gd.escape_step > escape.escape_step + 50  # ... GD slow


@pytest.mark.usefixtures("one_torch_thread")
def test_after_escape_the_dimer_keeps_an_eigenvector_that_is_no_longer_the_min_mode():
    """What the curvature tab's caption explains: C follows the local curvature along N; the torque
    vanishes on any eigenvector, so DEO-escape's N stays along y past y ≈ 1.15, where the smaller
    curvature turns to x: C → 4 (along y), λ_min = 2 (along x), |cos| → 0."""
    escape = default_race("saddle_plateau")["deo_escape"]
    assert escape.curvature[0] == pytest.approx(-2.0, abs=1e-3)  # at the start: the saddle's λ_min
    assert abs(escape.direction[-1, 1]) == pytest.approx(1.0, abs=1e-6)  # N still along y at the end
    assert escape.curvature[-1] == pytest.approx(4.0, abs=0.1)
    assert escape.exact_lambda_min[-1] == pytest.approx(2.0, abs=1e-3)
    assert escape.cos_to_vmin[-1] < 0.05


@pytest.mark.usefixtures("one_torch_thread")
def test_deo_escapes_control_in_the_default_race_never_acts_and_runs_as_gd():
    """What the page's caption says of the control beside DEO-escape (seed 0): its random N, never
    rotated, points close to x where the curvature is positive, so the gate (C < 0) never opens and
    every step is GD's; DEO-escape, whose N rotates to y, escapes well before both."""
    import numpy as np

    runs = default_race("saddle_plateau")
    gd, escape, control = runs["gd"], runs["deo_escape"], runs["deo_escape_random"]
    n = control.direction[0]
    assert abs(n[0]) > 0.9 and abs(n[1]) < 0.3, n  # close to x, and never rotated:
    assert np.allclose(control.direction, n)
    assert np.all(control.curvature > 0)  # positive curvature along N all the way: the gate stays shut
    assert np.array_equal(control.position_2d, gd.position_2d)  # on GD's path, step for step
    assert control.escape_step == gd.escape_step == 269
    assert escape.escape_step == 154
    assert control.grad_evals[-1] == escape.grad_evals[-1]  # charged the dimer run's cost
