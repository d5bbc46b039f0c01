"""The race: same start, seed, batches, budget and clipping for every optimizer; escape times."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deo.entrants import clip_note
from deo.race import (
    EscapeCriterion,
    OptimizerSpec,
    Problem,
    escape_map,
    escape_map_to_csv,
    network_problem,
    race,
    surface_escape,
    surface_minima,
    surface_problem,
)
from deo.trace import traces_from_json, traces_to_json
from landscapes.surfaces import SURFACES

LR = 0.01


def gd_escape_steps(y0: float, lr: float = LR, lam: float = 2.0, r: float = 1.0) -> int:
    """GD on x²−y²: y_t = y0 (1 + lr·|λ_min|)^t reaches r after ⌈ln(r/y0)/ln(1 + lr|λ|)⌉ steps."""
    return math.ceil(math.log(r / y0) / math.log(1 + lr * lam))


@pytest.fixture(scope="module")
def saddle_race():
    problem = surface_problem(SURFACES["saddle"], (1.0, 1e-3))
    specs = [OptimizerSpec(k) for k in ("gd", "adam", "deo_paper", "deo_escape")]
    return race(problem, specs, steps=360, seed=3)


def test_escape_steps_on_saddle_match_deo_md(saddle_race):
    gd, adam, deo_paper, deo_escape = saddle_race
    assert gd.escape_step == gd_escape_steps(1e-3) == 349
    assert abs(adam.escape_step - 80) <= 2
    assert deo_paper.escape_step is None and deo_paper.status == "running"
    assert deo_escape.escape_step is not None and deo_escape.status in ("escaped", "diverged")
    assert deo_escape.escape_step < gd.escape_step


def test_every_optimizer_starts_from_the_same_point_with_the_same_seed(saddle_race):
    for trace in saddle_race:
        np.testing.assert_array_equal(trace.position[0], [1.0, 1e-3])
        assert trace.hyperparams["seed"] == 3 and trace.hyperparams["clip"] is None
        assert trace.steps[0] == 0 and trace.grad_evals[0] == 0


def test_trace_rows_hold_the_exact_hessian_and_the_dimer(saddle_race):
    gd, _, deo_paper, _ = saddle_race
    np.testing.assert_allclose(gd.exact_lambda_min, -2.0, atol=1e-12)  # H = diag(2, −2) everywhere
    assert np.isnan(gd.curvature).all() and gd.direction is None
    np.testing.assert_array_equal(gd.position_2d, gd.position)
    # a forward difference is exact on a quadratic: after the first rotation event C = λ_min, N = v_min
    np.testing.assert_allclose(deo_paper.curvature, -2.0, atol=1e-6)
    np.testing.assert_allclose(deo_paper.cos_to_vmin, 1.0, atol=1e-9)
    # sign kept continuous
    assert (np.sum(deo_paper.direction[1:] * deo_paper.direction[:-1], axis=1) > 0).all()
    # the paper's projection: the modified gradient has no component along N
    along = np.sum(deo_paper.modified_grad * deo_paper.direction, axis=1)
    np.testing.assert_allclose(along[:-1], 0.0, atol=1e-12)
    # one Hessian per row, plus the evaluation of the final row
    np.testing.assert_array_equal(deo_paper.diagnostic_evals[:-1], np.arange(1, len(deo_paper)))
    assert deo_paper.diagnostic_evals[-1] == len(deo_paper) + 1


def test_grad_evals_are_counted_exactly(saddle_race):
    gd, adam, deo_paper, _ = saddle_race
    np.testing.assert_array_equal(gd.grad_evals, gd.steps)
    np.testing.assert_array_equal(adam.grad_evals, adam.steps)
    # DEO (optim.py): 1 per step + (rotations + 1)·c per rotation event; here rotations = 1,
    # c = 1 (forward), an event every 10 steps starting at t = 0.
    k = deo_paper.hyperparams["rotate_every"]
    t = deo_paper.steps
    expected = t + 2 * ((t + k - 1) // k)
    np.testing.assert_array_equal(deo_paper.grad_evals, expected)


def test_a_diverging_optimizer_stops_and_the_others_finish():
    problem = surface_problem(SURFACES["rosenbrock"], (-2.0, 2.0))
    specs = [OptimizerSpec("gd", {"lr": 10.0}, label="GD lr 10"), OptimizerSpec("adam")]
    bad, good = race(problem, specs, steps=60)
    assert bad.status == "diverged" and bad.stop_step is not None and bad.stop_step < 60
    assert bad.label == "GD lr 10"
    assert np.isfinite(bad.loss).all() and np.isfinite(bad.position).all()
    assert len(bad) == bad.stop_step  # rows 0 .. stop_step − 1, all finite
    assert np.abs(bad.position).max() <= problem.bound
    assert good.status == "running" and len(good) == 61 and good.steps[-1] == 60


def test_gradient_clipping_applies_to_the_update_only():
    clip = 0.5
    problem = surface_problem(SURFACES["saddle"], (1.0, 1e-3))
    gd, deo = race(problem, [OptimizerSpec("gd"), OptimizerSpec("deo_escape")], steps=3, clip=clip)
    # torch.nn.utils.clip_grad_norm_'s rule, for both: scale min(1, clip / (‖·‖ + 1e-6))
    for trace, norm in ((gd, math.hypot(2.0, 2e-3)), (deo, math.hypot(2.0, 4e-3))):
        assert trace.hyperparams["clip"] == clip
        assert trace.grad_norm[0] == pytest.approx(math.hypot(2.0, 2e-3))  # raw ‖g‖ is recorded
        assert trace.modified_grad_norm[0] == pytest.approx(clip * norm / (norm + 1e-6), rel=1e-9)
        np.testing.assert_allclose(
            trace.position[1], trace.position[0] - LR * trace.modified_grad[0], rtol=1e-15
        )
    # the dimer ends were raw: the curvature is exact (a clipped end would scale D by clip/‖g‖)
    assert deo.curvature[0] == pytest.approx(-2.0, abs=1e-6)
    # with C < 0 and α = −1 the step along N is doubled, then clipped: g_mod ∥ (2, −0.004)
    direction = np.array([2.0, -4e-3]) / math.hypot(2.0, 4e-3)
    np.testing.assert_allclose(deo.modified_grad[0], clip * direction, rtol=1e-6)


def test_clip_must_be_positive():
    problem = surface_problem(SURFACES["saddle"], (1.0, 1e-3))
    with pytest.raises(ValueError, match="clip must be > 0"):
        race(problem, [OptimizerSpec("gd")], steps=2, clip=0.0)


def test_the_published_code_runs_unclipped_beside_clipped_entrants_and_says_so():
    """Its code has no clipping (``Preset.clippable``): a race with ``clip`` runs it as without one,
    its trace shows the clip applied (None), and the other entrants are still clipped."""
    problem = surface_problem(SURFACES["saddle"], (1.0, 1e-3))
    specs = [OptimizerSpec("gd"), OptimizerSpec("deo_published")]
    clipped = race(problem, specs, steps=20, clip=0.5)
    free = race(problem, specs, steps=20)
    assert [t.hyperparams["clip"] for t in clipped] == [0.5, None]
    np.testing.assert_array_equal(clipped[1].position, free[1].position)
    assert not np.array_equal(clipped[0].position, free[0].position)  # ‖g‖ ≈ 2 > 0.5: GD was clipped
    assert clip_note(0.5, specs) == (
        "Clipping on: ‖g‖ ≤ 0.5 for every optimizer but DEO (published code), whose code has no "
        "clipping: it runs unclipped."
    )
    assert clip_note(0.5, specs[:1]) == "Clipping on: ‖g‖ ≤ 0.5 for every optimizer."
    assert clip_note(None, specs) is None


def test_every_optimizer_sees_the_same_batches_and_both_dimer_ends_the_step_batch():
    seen: dict[str, list[int]] = {}
    current = {"key": None}

    def loss(params, batch):
        seen.setdefault(current["key"], []).append(batch)
        xy = params["xy"]
        return (1 + 0.1 * batch) * (xy[0] ** 2 - xy[1] ** 2)

    problem = Problem(
        name="batched",
        params0={"xy": torch.tensor([1.0, 0.1], dtype=torch.float64)},
        loss=loss,
        batch=lambda step: step % 7,
    )
    steps = 20
    for key in ("gd", "adam", "deo_paper"):
        current["key"] = key
        race(problem, [OptimizerSpec(key)], steps=steps)
    expected = [t % 7 for t in range(steps)]
    assert seen["gd"][:steps] == expected and seen["adam"][:steps] == expected
    # DEO calls the closure 3 times on rotation steps (g_t, the probe, the trial end): same batch
    deo_calls = seen["deo_paper"]
    assert len(deo_calls) >= steps + 2 * 2
    per_step = [expected[0]] * 3 + expected[1:10] + [expected[10]] * 3 + expected[11:]
    assert deo_calls[: len(per_step)] == per_step


def test_progress_is_reported_monotonically_to_one():
    calls = []
    problem = surface_problem(SURFACES["saddle"], (1.0, 1e-3))
    race(
        problem,
        [OptimizerSpec("gd"), OptimizerSpec("adam")],
        steps=50,
        progress=lambda f, m: calls.append((f, m)),
    )
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 <= fractions[0] < 0.5
    assert any("Adam" in m for _, m in calls)


def test_record_every_keeps_the_last_row_and_traces_round_trip():
    problem = surface_problem(SURFACES["saddle_plateau"], (1.0, 0.3))
    traces = race(problem, [OptimizerSpec("gd"), OptimizerSpec("deo_paper")], steps=25, record_every=10)
    for trace in traces:
        assert trace.escape_step is None
        np.testing.assert_array_equal(trace.steps, [0, 10, 20, 25])
    # the escape step's row is always recorded (GD escapes x²−y² from (1, 1e-3) at step 349)
    (gd,) = race(
        surface_problem(SURFACES["saddle"], (1.0, 1e-3)), [OptimizerSpec("gd")], 360, record_every=100
    )
    np.testing.assert_array_equal(gd.steps, [0, 100, 200, 300, 349, 360])
    assert gd.grad_evals[gd.steps == 349] == 349
    assert traces_from_json(traces_to_json(traces)) == traces


def test_surface_defaults_offset_escape_and_bound():
    saddle = SURFACES["saddle"]
    problem = surface_problem(saddle, (1.0, 0.5), offset=1e-3)
    np.testing.assert_allclose(problem.params0["xy"].numpy(), [1.0, 1e-3], atol=1e-15)
    assert problem.escape.loss_below == -1.0 and problem.bound == 20.0 and problem.exact_hessian
    double_well = SURFACES["double_well"]  # saddle (0, 0) unstable along x
    np.testing.assert_allclose(
        surface_problem(double_well, (0.3, 0.2), offset=1e-2).params0["xy"].numpy(), [1e-2, 0.2], atol=1e-15
    )
    # the default rule without the surface's own escape_loss: f_saddle − 0.9 (f_saddle − f_min)
    plateau = SURFACES["saddle_plateau"]
    bare = SimpleNamespace(key="bare", stationary_points=plateau.stationary_points)
    assert surface_escape(bare, (1.0, 1e-6)).loss_below == pytest.approx(-0.9)
    assert surface_escape(
        SimpleNamespace(stationary_points=double_well.stationary_points), (0.1, 0.0)
    ).loss_below == pytest.approx(0.1)
    assert surface_escape(SURFACES["rosenbrock"], (0.0, 0.0)) is None


def test_escape_map_rows_equal_single_races():
    surface = SURFACES["saddle_plateau"]
    starts = np.array([[1.0, 0.1], [0.5, -0.2], [0.0, 0.0]])
    specs = [OptimizerSpec("gd"), OptimizerSpec("adam"), OptimizerSpec("deo_escape")]
    escape = surface_escape(surface, (0.0, 0.0))
    minima = surface_minima(surface)
    steps = 200
    results = escape_map(surface.f, starts, specs, steps=steps, escape=escape, minima=minima, seed=5)
    for b, start in enumerate(starts[:2]):
        problem = dataclasses.replace(surface_problem(surface, start), converge_tol=None)
        # DEO's row b draws its initial N from seed + b, as a separate run with that seed
        traces = race(problem, specs, steps=steps, seed=5 + b)
        for trace in traces:
            result = results[trace.label]
            assert trace.escape_step is not None
            assert result.steps_to_escape[b] == trace.escape_step
            assert result.grad_evals_to_escape[b] == trace.grad_evals[trace.escape_step]
            np.testing.assert_allclose(result.final[b], trace.position[-1], rtol=1e-10, atol=1e-12)
    # exactly on the saddle nothing moves (g = 0, and DEO-escape has nc_step = 0): no escape
    for result in results.values():
        assert math.isnan(result.steps_to_escape[2]) and result.basin[2] == -1
        np.testing.assert_array_equal(result.final[2], [0.0, 0.0])
    # from (1, 0.1) GD ends in the basin of (0, +√2), from (0.5, −0.2) in that of (0, −√2)
    gd = results["GD"]
    assert minima[gd.basin[0]][1] == pytest.approx(math.sqrt(2)) and gd.basin[0] >= 0
    assert minima[gd.basin[1]][1] == pytest.approx(-math.sqrt(2)) and gd.basin[1] >= 0
    assert "GD,gd,1.0,0.1," in escape_map_to_csv(starts, results)


def test_escape_map_marks_diverged_rows_and_keeps_the_others():
    surface = SURFACES["saddle"]
    starts = np.array([[1.0, 1e-3], [1.0, 0.5]])
    escape = surface_escape(surface, (0.0, 0.0))
    results = escape_map(surface.f, starts, [OptimizerSpec("gd")], steps=360, escape=escape, bound=5.0)
    gd = results["GD"]
    # row 1: y_t = 0.5·1.02^t passes 5 at t = ⌈ln 10/ln 1.02⌉ = 117 < 360; row 0 stays below 5
    assert gd.diverged.tolist() == [False, True]
    assert gd.steps_to_escape[0] == gd_escape_steps(1e-3)
    assert np.abs(gd.final[1]).max() <= 5.0 and gd.basin[1] == -1


def test_network_problem_reads_the_duck_typed_protocol():
    net = SimpleNamespace(
        key="toy",
        plateau=1.0,
        n_params=2,
        params0=lambda init_scale=None, seed=0: {
            "w": torch.full((2,), init_scale or 0.1, dtype=torch.float64)
        },
        loss=lambda params, batch: 1.0 - (params["w"][0] * params["w"][1]) * 2 + (params["w"] ** 4).sum(),
        batch=lambda step: None,
    )
    problem = network_problem(net, init_scale=1e-3)
    assert problem.exact_hessian and problem.escape.loss_below == 0.5
    (trace,) = race(problem, [OptimizerSpec("gd", {"lr": 0.1})], steps=200)
    assert trace.escape_step is not None and trace.loss[trace.escape_step] <= 0.5
    assert trace.exact_lambda_min[0] == pytest.approx(-2.0, abs=1e-4)  # H(0) = [[0, −2], [−2, 0]]


def test_escape_criterion_needs_a_radius_or_a_loss():
    with pytest.raises(ValueError, match="needs a radius or a loss_below"):
        EscapeCriterion(center=torch.zeros(2))
    criterion = EscapeCriterion(center=torch.zeros(2), radius=1.0)
    assert criterion.met(torch.tensor([[0.5, 0.5], [1.0, 0.5]]), torch.zeros(2)).tolist() == [False, True]


def test_large_problems_record_scalars_and_the_2d_projection_only():
    d = 5000  # above deo.race.VECTOR_MAX_DIM = 4096
    problem = Problem(
        name="large",
        params0={"w": torch.zeros(d, dtype=torch.float64)},
        loss=lambda params, batch: ((params["w"] - 1.0) ** 2).sum(),
        project_2d=lambda theta: theta[:2],
    )
    (trace,) = race(problem, [OptimizerSpec("gd", {"lr": 0.25})], steps=3)
    assert trace.position is None and trace.grad is None and trace.modified_grad is None
    # GD with lr 1/4 on Σ(w − 1)²: w_t = 1 − 2^−t
    np.testing.assert_allclose(trace.position_2d[:, 0], [0.0, 0.5, 0.75, 0.875])
    np.testing.assert_allclose(trace.grad_norm[0], 2 * math.sqrt(d))
