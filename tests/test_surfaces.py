"""The surface catalogue against SURFACES.md: every listed stationary point is recomputed with autograd."""

import math

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, vmap

from landscapes.surfaces import COLOR_SCALES, KINDS, SURFACES, StationaryPoint, Surface

SPEC_KEYS = {
    "saddle",
    "monkey_saddle",
    "saddle_plateau",
    "degenerate_saddle",
    "double_well",
    "rosenbrock",
    "himmelblau",
    "beale",
    "six_hump_camel",
    "three_hump_camel",
    "muller_brown",
    "rastrigin",
    "ackley",
    "goldstein_price",
    "styblinski_tang",
    "mexican_hat",
}
KEYS = sorted(SPEC_KEYS)

# Listed positions are exact or rounded to 6 decimals: ‖δ‖ ≤ √2·5e-7, so ‖∇f‖ ≤ ‖H‖·7.1e-7 + O(δ²).
GRAD_TOL = 1e-6
# Listed eigenvalues carry 3–5 significant digits (the spec's own "−4.04, 2.17" included).
EIG_RTOL, EIG_ATOL = 3e-3, 1e-3


def _derivatives(surface: Surface, points: tuple[StationaryPoint, ...]):
    xy = torch.tensor([p.xy for p in points], dtype=torch.float64)
    values = surface.f(xy)
    grads = vmap(grad(surface.f))(xy)
    eigenvalues = torch.linalg.eigvalsh(vmap(hessian(surface.f))(xy))
    return values, grads, eigenvalues


def _curvature_scale(eigenvalues: torch.Tensor) -> torch.Tensor:
    return 1 + eigenvalues.abs().amax(dim=-1)


def test_catalogue_holds_every_surface_of_the_spec():
    assert set(SURFACES) == SPEC_KEYS
    assert all(key == s.key for key, s in SURFACES.items())


@pytest.mark.parametrize("key", KEYS)
def test_surface_fields_are_complete(key):
    s = SURFACES[key]
    assert s.name and s.formula and s.latex and s.note and "\n" not in s.note
    assert s.color_scale in COLOR_SCALES
    assert (s.clip is not None) == (s.color_scale == "clip")
    (x0, x1), (y0, y1) = s.bounds
    assert x0 < x1 and y0 < y1
    assert 1 <= len(s.starts) <= 2
    assert len(s.stationary_points) >= 1
    assert all(p.kind in KINDS for p in s.stationary_points)


def test_colour_scale_hints_follow_the_spec():
    assert SURFACES["goldstein_price"].color_scale == "log"
    assert SURFACES["muller_brown"].color_scale == "clip"
    assert 100 <= SURFACES["muller_brown"].clip <= 200
    others = SPEC_KEYS - {"goldstein_price", "muller_brown"}
    assert all(SURFACES[k].color_scale == "linear" for k in others)


@pytest.mark.parametrize("key", KEYS)
def test_starts_and_stationary_points_lie_in_the_window(key):
    s = SURFACES[key]
    (x0, x1), (y0, y1) = s.bounds
    for x, y in [*s.starts, *(p.xy for p in s.stationary_points)]:
        assert x0 <= x <= x1 and y0 <= y <= y1


@pytest.mark.parametrize("key", KEYS)
def test_every_listed_stationary_point_has_zero_gradient(key):
    s = SURFACES[key]
    _, grads, eigenvalues = _derivatives(s, s.stationary_points)
    assert torch.all(grads.norm(dim=-1) <= GRAD_TOL * _curvature_scale(eigenvalues))


@pytest.mark.parametrize("key", KEYS)
def test_hessian_signs_match_the_kind(key):
    s = SURFACES[key]
    _, _, eigenvalues = _derivatives(s, s.stationary_points)
    tol = GRAD_TOL * _curvature_scale(eigenvalues)
    for p, (low, high), t in zip(s.stationary_points, eigenvalues.tolist(), tol.tolist()):
        if p.kind == "min":
            assert low >= -t, p
        elif p.kind == "max":
            assert high <= t, p
        elif p.kind == "saddle":
            assert low < -t and high > t, p
        else:
            assert min(abs(low), abs(high)) <= t, p


@pytest.mark.parametrize("key", KEYS)
def test_listed_values_and_eigenvalues_match_autograd(key):
    s = SURFACES[key]
    values, _, eigenvalues = _derivatives(s, s.stationary_points)
    for p, value, eig in zip(s.stationary_points, values.tolist(), eigenvalues.tolist()):
        assert value == pytest.approx(p.value, abs=1e-4 * max(1.0, abs(p.value))), p
        if p.eigenvalues is not None:
            assert list(p.eigenvalues) == sorted(p.eigenvalues), p
            assert eig == pytest.approx(list(p.eigenvalues), rel=EIG_RTOL, abs=EIG_ATOL), p


def _find(s: Surface, xy, kind=None, tol=1e-5) -> StationaryPoint:
    nearest = min(s.stationary_points, key=lambda p: math.dist(p.xy, xy))
    assert math.dist(nearest.xy, xy) < tol and kind in (None, nearest.kind)
    return nearest


def test_strict_saddles_of_the_spec():
    assert _find(SURFACES["saddle"], (0, 0), "saddle").eigenvalues == (-2, 2)
    assert _find(SURFACES["double_well"], (0, 0), "saddle").eigenvalues == (-4, 2)
    assert _find(SURFACES["saddle_plateau"], (0, math.sqrt(2)), "min").value == -1
    assert _find(SURFACES["monkey_saddle"], (0, 0), "degenerate").eigenvalues == (0, 0)
    assert _find(SURFACES["degenerate_saddle"], (0, 0), "degenerate").eigenvalues == (0, 2)
    assert _find(SURFACES["mexican_hat"], (0, 0), "max").eigenvalues == (-4, -4)


def test_rastrigin_lists_the_spec_examples():
    s = SURFACES["rastrigin"]
    assert _find(s, (0, 0), "min").eigenvalues == pytest.approx((396.78, 396.78), abs=0.01)
    assert _find(s, (-0.994959, 0), "min").value == pytest.approx(0.99496, abs=1e-5)
    saddle = _find(s, (0.502546, 0), "saddle")
    assert saddle.value == pytest.approx(20.2513, abs=1e-4)
    assert saddle.eigenvalues == pytest.approx((-392.73, 396.78), abs=0.01)
    _find(s, (-0.5025, 0.5025), "max", tol=1e-4)


def _roots_in(dh, lo: float, hi: float) -> int:
    """Number of sign changes of h' on a fine grid (each simple root of h' is one change)."""
    t = torch.linspace(lo, hi, 200_001, dtype=torch.float64)
    d = dh(t)
    return int((d[:-1] * d[1:] < 0).sum())


def test_rastrigin_lists_every_stationary_point_of_the_window():
    n = _roots_in(lambda t: 2 * t + 20 * math.pi * torch.sin(2 * math.pi * t), -5.12, 5.12)
    s = SURFACES["rastrigin"]
    assert n == 21 and len(s.stationary_points) == n * n
    kinds = [p.kind for p in s.stationary_points]
    assert (kinds.count("min"), kinds.count("saddle"), kinds.count("max")) == (11 * 11, 2 * 11 * 10, 10 * 10)


def test_styblinski_tang_lists_every_stationary_point():
    s = SURFACES["styblinski_tang"]
    assert _roots_in(lambda t: 2 * t**3 - 16 * t + 2.5, -5, 5) == 3 and len(s.stationary_points) == 9
    kinds = [p.kind for p in s.stationary_points]
    assert (kinds.count("min"), kinds.count("saddle"), kinds.count("max")) == (4, 4, 1)
    best = _find(s, (-2.903534, -2.903534), "min")
    assert best.value == pytest.approx(-78.33233, abs=1e-5)
    assert best.value == min(p.value for p in s.stationary_points)
    _find(s, (0.1567, 0.1567), "max", tol=1e-4)
    saddles = [p for p in s.stationary_points if p.kind == "saddle"]
    assert all(p.eigenvalues[0] == pytest.approx(-15.85, abs=0.01) for p in saddles)


def test_muller_brown_saddle_unstable_directions_match_the_spec():
    s = SURFACES["muller_brown"]
    for xy, direction in (((0.212487, 0.292988), (-0.500, 0.866)), ((-0.822002, 0.624313), (-0.761, 0.648))):
        point = torch.tensor(_find(s, xy, "saddle").xy, dtype=torch.float64)
        _, vectors = torch.linalg.eigh(hessian(s.f)(point))
        expected = torch.nn.functional.normalize(torch.tensor(direction, dtype=torch.float64), dim=0)
        assert torch.dot(vectors[:, 0], expected).abs() > 0.9999  # 3 listed decimals: angle < 1e-3


def test_escape_thresholds_follow_the_reference_table():
    assert SURFACES["saddle"].escape_loss == -1.0
    assert SURFACES["monkey_saddle"].escape_loss == -1.0
    assert SURFACES["saddle_plateau"].escape_loss == -0.9
    assert SURFACES["saddle"].starts[0] == (1.0, 1e-3)
    assert SURFACES["saddle_plateau"].starts[0] == (1.0, 1e-6)
    assert SURFACES["monkey_saddle"].starts[0] == (0.5, 1e-3)


@pytest.mark.parametrize("key", KEYS)
def test_escape_threshold_lies_below_a_saddle(key):
    s = SURFACES[key]
    if s.escape_loss is not None:
        saddle_values = [p.value for p in s.stationary_points if p.kind in ("saddle", "degenerate")]
        assert saddle_values and s.escape_loss < min(saddle_values)


@pytest.mark.parametrize("key", KEYS)
def test_functions_are_batched_over_leading_dims(key):
    s = SURFACES[key]
    torch.manual_seed(0)
    (x0, x1), (y0, y1) = s.bounds
    xy = torch.rand(3, 4, 2, dtype=torch.float64) * torch.tensor([x1 - x0, y1 - y0]) + torch.tensor([x0, y0])
    values = s.f(xy)
    assert values.shape == (3, 4)
    one_by_one = torch.stack([s.f(p) for p in xy.reshape(-1, 2)]).reshape(3, 4)
    assert torch.allclose(values, one_by_one, rtol=1e-12, atol=0)
    assert s.f(xy[0, 0]).shape == ()


@pytest.mark.parametrize("key", KEYS)
def test_float32_and_float64_agree(key):
    s = SURFACES[key]
    xy64 = torch.tensor([*s.starts, *(p.xy for p in s.stationary_points[:20])], dtype=torch.float64)
    v64, v32 = s.f(xy64), s.f(xy64.float())
    assert v64.dtype == torch.float64 and v32.dtype == torch.float32
    scale = v64.abs().max().clamp(min=1.0)
    assert torch.allclose(v32.double(), v64, rtol=1e-5, atol=1e-5 * float(scale))


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_at_starts_and_stationary_points(key, dtype):
    s = SURFACES[key]
    xy = torch.tensor([*s.starts, *(p.xy for p in s.stationary_points)], dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(s.f(xy).sum(), xy)
    assert g.dtype == dtype and torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ackley_is_smooth_enough_at_its_cone_tip(dtype):
    f = SURFACES["ackley"].f
    origin = torch.zeros(2, dtype=dtype)
    assert f(origin).item() == pytest.approx(0.0, abs=1e-4)
    assert torch.equal(grad(f)(origin), torch.zeros(2, dtype=dtype))
    h = hessian(f)(origin)
    assert torch.isfinite(h).all() and torch.linalg.eigvalsh(h.double()).min() > 0


def test_f_on_grid_is_f_at_every_node_with_rows_along_y():
    from landscapes.surfaces import f_on_grid
    from viz.surface_figs import surface_grid

    surface = SURFACES["monkey_saddle"]
    window = ((-1.0, 2.0), (-0.5, 0.5))
    xs, ys, z = f_on_grid(surface.f, window, 7)
    np.testing.assert_array_equal(xs, np.linspace(-1.0, 2.0, 7))
    np.testing.assert_array_equal(ys, np.linspace(-0.5, 0.5, 7))
    assert z.shape == (7, 7) and z.dtype == np.float64
    for j, i in ((0, 0), (2, 5), (6, 3)):
        point = torch.tensor([xs[i], ys[j]], dtype=torch.float64)
        assert z[j, i] == float(surface.f(point))
    # the Surfaces page's contour image evaluates f the same way (one definition)
    grid = surface_grid(surface, n=9)
    np.testing.assert_array_equal(grid.z, f_on_grid(surface.f, surface.bounds, 9)[2])
    with pytest.raises(ValueError, match="grid size"):
        f_on_grid(surface.f, window, 1)
