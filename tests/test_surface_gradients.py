"""A surface's f and ∇f at one point without autograd (landscapes.autodiff) equal autograd's (bit for bit
where torch's and Python's scalar functions agree), and the race that uses them (no autograd graph per
closure call) draws the same traces."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import landscapes
from deo.presets import PRESETS
from deo.race import OptimizerSpec, race, surface_problem
from landscapes.autodiff import UnsupportedOperation, value_and_grad
from landscapes.surfaces import SURFACES, Surface

FLOAT_FIELDS = ("loss", "position", "grad", "modified_grad", "grad_norm", "direction", "curvature", "torque",
                "exact_lambda_min", "exact_v_min", "cos_to_vmin")  # fmt: skip
RTOL = 1e-12  # relative to |f| and to ‖∇f‖ (float64 rounding: a few 1e-15 measured)

# every operator and function the formula parser allows, folded constants and x**y included
ALL_FUNCTIONS = (
    "sin(x)*cos(y) + tan(x/3) + exp(y/2) - log(2 + x^2) + sqrt(1 + y^2) + abs(x - 0.3)"
    " + tanh(x*y) + sinh(y/2) + cosh(x/3) + (2 + x^2)^(y/3) + 2^x - 3/(1 + y^2) + sin(2)*x + x^3"
    " - (1 + y^2)^0.5^2"
)


def _autograd(f, x: float, y: float) -> tuple[float, float, float]:
    xy = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    value = f(xy)
    (g,) = torch.autograd.grad(value, xy)
    return value.item(), g[0].item(), g[1].item()


def _points(surface: Surface, n: int, seed: int) -> list[tuple[float, float]]:
    generator = torch.Generator().manual_seed(seed)
    (x0, x1), (y0, y1) = surface.bounds
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    random = [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * b) for a, b in u.tolist()]
    return random + list(surface.starts) + [surface.default_start]


def _assert_close(surface: Surface, x: float, y: float) -> None:
    out = surface.value_and_grad(x, y)
    assert out is not None, (surface.key, x, y)
    f, dx, dy = out
    f_a, dx_a, dy_a = _autograd(surface.f, x, y)
    g_norm = math.hypot(dx_a, dy_a)
    assert abs(f - f_a) <= RTOL * abs(f_a), (surface.key, x, y, f, f_a)
    assert math.hypot(dx - dx_a, dy - dy_a) <= RTOL * g_norm, (surface.key, x, y, (dx, dy), (dx_a, dy_a))


@pytest.mark.parametrize("key", sorted(SURFACES))
def test_tape_gradient_equals_autograd_on_every_surface(key):
    surface = SURFACES[key]
    for x, y in _points(surface, 200, seed=len(key)):
        _assert_close(surface, x, y)


def test_tape_covers_every_formula_function_and_operator():
    surface = landscapes.parse_formula(ALL_FUNCTIONS)
    for x, y in _points(surface, 200, seed=1):
        _assert_close(surface, x, y)


@pytest.mark.parametrize(
    "formula, x, y",
    [
        ("log(x) + y", -1.0, 0.5),  # NaN in torch
        ("sqrt(x^2) + y", 0.0, 0.5),  # a finite value with an infinite slope
        ("exp(x) + y", 800.0, 0.0),  # overflow
        ("x^1.5 + y", -2.0, 0.0),  # a complex power in Python, NaN in torch
        ("1/x + y", 0.0, 1.0),
    ],
)
def test_no_answer_where_autograd_is_not_finite(formula, x, y):
    surface = landscapes.parse_formula(formula)
    assert surface.value_and_grad(x, y) is None
    assert not all(map(math.isfinite, _autograd(surface.f, x, y)))


@pytest.mark.parametrize("key", sorted(set(SURFACES) - {"muller_brown", "ackley"}))
def test_tape_is_autograd_bit_for_bit_without_exp(key):
    """Autograd's derivative formulas in autograd's order: the same floats, not just close ones (so
    a chaotic run, e.g. GD at lr·λ ≈ 4 on Rastrigin, follows the same path); Müller–Brown and Ackley
    use exp, where Python's and torch's scalar exp can differ in the last bit."""
    surface = SURFACES[key]
    for x, y in _points(surface, 100, seed=7 + len(key)):
        assert surface.value_and_grad(x, y) == _autograd(surface.f, x, y), (key, x, y)


def test_abs_has_slope_zero_at_zero_as_in_torch():
    surface = landscapes.parse_formula("abs(x) + y^2")
    assert surface.value_and_grad(0.0, 1.0) == _autograd(surface.f, 0.0, 1.0) == (1.0, 0.0, 2.0)


def test_an_unsupported_torch_function_is_refused_and_the_race_uses_autograd():
    def f(xy):
        return torch.atan2(xy[..., 1], xy[..., 0]) + xy[..., 0] ** 2

    with pytest.raises(UnsupportedOperation):
        value_and_grad(f, 1.0, 0.5)
    surface = dataclasses.replace(SURFACES["saddle"], key="atan2", f=f)
    problem = surface_problem(surface, (1.0, 0.5))
    assert problem.loss.value_and_grad is None
    (trace,) = race(problem, [OptimizerSpec("gd", {"lr": 0.1})], 3)
    assert trace.status == "running" and len(trace.steps) == 4


def test_default_race_with_the_tape_equals_the_autograd_race():
    """The default Surfaces race (five presets, the page's learning rates) with and without the
    surface's own gradients: the same traces, bit for bit."""
    surface = SURFACES["saddle_plateau"]
    specs = []
    for key in ["gd", "adam", "deo_paper", "deo_escape", "deo_escape_random"]:
        extra = surface.race.hyperparams(key, PRESETS[key].defaults)
        defaults = PRESETS[key].defaults
        specs.append(OptimizerSpec(key, {k: v for k, v in extra.items() if v != defaults.get(k)}))
    problem = surface_problem(surface, surface.default_start)
    assert problem.loss.value_and_grad is not None
    fast = race(problem, specs, 60)
    autograd_only = dataclasses.replace(problem, loss=lambda params, batch: problem.loss(params, batch))
    slow = race(autograd_only, specs, 60)
    for a, b in zip(fast, slow):
        assert (a.status, a.escape_step, a.stop_step) == (b.status, b.escape_step, b.stop_step)
        assert a.steps.tolist() == b.steps.tolist() and a.grad_evals.tolist() == b.grad_evals.tolist()
        for name in FLOAT_FIELDS:
            va, vb = getattr(a, name), getattr(b, name)
            if va is None:
                assert vb is None
                continue
            assert np.array_equal(va, vb, equal_nan=True), (a.key, name)
