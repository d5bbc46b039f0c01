"""Specification of the functional dimer (deo/dimer.py): probe, rotations, min_mode, modify_gradient.

Numbers come from the maths: eigenvalues of quadratics built as A = Q diag(λ) Qᵀ, the finite
difference orders O(ΔR) and O(ΔR²), and DEO.md's acceptance criteria.
"""

import math

import pytest
import torch

from deo.dimer import (
    DimerProbe,
    batched_dot,
    lanczos_rotation,
    min_mode,
    modify_gradient,
    normalize,
    perp,
    probe,
    rotate_fourier,
    rotate_sd,
)

DTYPE = torch.float64


def assert_near(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """|actual − expected| <= atol elementwise (broadcasting)."""
    gap = (actual - expected).abs()
    assert bool((gap <= atol).all()), f"largest gap {gap.max().item()} > {atol}"


def quadratic(d: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A = Q diag(λ) Qᵀ per batch row with λ = −1 ∪ linspace(0.5, 4): (A (B, d, d), v_min (B, d), λ (d,))."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(batch, d, d, generator=generator, dtype=DTYPE))
    spectrum = torch.cat([torch.tensor([-1.0], dtype=DTYPE), torch.linspace(0.5, 4.0, d - 1, dtype=DTYPE)])
    a = q @ torch.diag_embed(spectrum.expand(batch, d)) @ q.mT
    return 0.5 * (a + a.mT), q[..., :, 0], spectrum


def quadratic_grad(a: torch.Tensor):
    """∇(½θᵀAθ) = Aθ, batched over the rows of A."""
    return lambda x: torch.einsum("...ij,...j->...i", a, x)


def random_unit(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return normalize(torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE))


METHODS = [
    {"rotation": "fourier", "plane": "sd"},
    {"rotation": "fourier", "plane": "cg"},
    {"rotation": "fourier", "plane": "lbfgs"},
    {"rotation": "sd", "plane": "sd", "rotation_step": 0.2},  # 0.2 < 2/(λ_max − λ_min) = 0.4
    {"rotation": "lanczos", "plane": "cg"},  # plane unused
]


def method_id(method: dict) -> str:
    return (
        f"{method['rotation']}-{method['plane']}" if method["rotation"] == "fourier" else method["rotation"]
    )


@pytest.mark.parametrize("d", [2, 20, 200])
@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_every_rotation_method_finds_min_mode_of_batched_quadratics(d, method):
    batch = 3
    a, v_min, spectrum = quadratic(d, batch, seed=d)
    x = torch.randn(batch, d, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    n, curvature, info = min_mode(quadratic_grad(a), x, seed=2, max_iterations=300, **method)
    assert info["converged"].all()
    assert (batched_dot(n, v_min).abs() > 0.999).all()
    spread = spectrum.max() - spectrum.min()
    assert ((curvature - spectrum.min()).abs() < 1e-3 * spread).all()


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_finite_difference_probe_equals_exact_hessian_vector_product_on_quadratic(scheme):
    a, _, _ = quadratic(20, 2, seed=3)
    x = torch.randn(2, 20, dtype=DTYPE, generator=torch.Generator().manual_seed(4))
    n = random_unit((2, 20), seed=5)
    result = probe(quadratic_grad(a), x, n, 1e-3, scheme=scheme)
    exact = torch.einsum("...ij,...j->...i", a, n)  # the Hessian of ½θᵀAθ is A (hvp: tests/test_hessian.py)
    assert_near(result.hn, exact, atol=1e-9)
    assert_near(result.curvature, batched_dot(exact, n), atol=1e-9)
    assert_near(result.force, -perp(exact, n), atol=1e-9)
    assert result.grad_evals == (2 if scheme == "forward" else 3)  # g0 was not given


def test_probe_counts_only_the_gradients_it_makes():
    a, _, _ = quadratic(5, 1, seed=0)
    x, n = torch.zeros(1, 5, dtype=DTYPE), random_unit((1, 5), seed=0)
    g0 = quadratic_grad(a)(x)
    assert probe(quadratic_grad(a), x, n, 1e-3, g0=g0).grad_evals == 1
    assert probe(quadratic_grad(a), x, n, 1e-3, g0=g0, scheme="central").grad_evals == 2


def test_one_fourier_iteration_gives_exact_eigenvector_in_2d():
    a, v_min, spectrum = quadratic(2, 4, seed=7)
    x = torch.randn(4, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(8))
    n = random_unit((4, 2), seed=9)
    first = probe(quadratic_grad(a), x, n, 1e-3)
    n_new, curvature, info = rotate_fourier(quadratic_grad(a), x, n, first, 1e-3)
    assert info["grad_evals"] == 1
    alignment = batched_dot(n_new, v_min).abs()
    assert_near(alignment, torch.ones(4, dtype=DTYPE), atol=1e-10)
    assert_near(curvature, spectrum[0].expand(4), atol=1e-9)
    # the interpolated end gradient is the true gradient at θ + ΔR·N(φ_min)
    assert_near(info["g1_interp"], quadratic_grad(a)(x + 1e-3 * n_new), atol=1e-12)


def test_fourier_model_is_exact_curvature_along_the_rotation_plane_of_a_quadratic():
    a, _, _ = quadratic(6, 1, seed=10)
    x, n = torch.zeros(1, 6, dtype=DTYPE), random_unit((1, 6), seed=11)
    first = probe(quadratic_grad(a), x, n, 1e-3)
    _, _, info = rotate_fourier(quadratic_grad(a), x, n, first, 1e-3)
    theta = normalize(first.force)
    for phi in torch.linspace(-1.5, 1.5, 7, dtype=DTYPE):
        n_phi = n * torch.cos(phi) + theta * torch.sin(phi)
        exact = torch.einsum("...i,...ij,...j->...", n_phi, a, n_phi)
        model = info["a0"] / 2 + info["a1"] * torch.cos(2 * phi) + info["b1"] * torch.sin(2 * phi)
        assert_near(model, exact, atol=1e-8)


def test_trial_angle_follows_kastner_sherwood_and_rotates_along_the_force():
    a, _, _ = quadratic(4, 1, seed=12)
    x, n = torch.zeros(1, 4, dtype=DTYPE), random_unit((1, 4), seed=13)
    first = probe(quadratic_grad(a), x, n, 1e-3)
    _, _, info = rotate_fourier(quadratic_grad(a), x, n, first, 1e-3)
    derivative = 2 * batched_dot(first.hn, normalize(first.force))  # C'(0) = 2 D·Θ = −2‖F_R‖
    expected = -0.5 * torch.atan(derivative / (2 * first.curvature.abs()))
    assert_near(info["trial_angle"], expected, atol=1e-14)
    assert (info["trial_angle"] > 0).all()


def curvature_error(scheme: str, length: float) -> float:
    """|C(ΔR) − NᵀHN| for f(θ) = Σθᵢ⁴/4 + θ₀θ₁θ₂ (third and fourth derivatives along N are ≠ 0)."""

    def grad_fn(p):  # ∂f/∂θᵢ = θᵢ³ + the product of the other two coordinates
        return p**3 + torch.stack([p[1] * p[2], p[0] * p[2], p[0] * p[1]])

    x = torch.tensor([0.7, -0.4, 0.9], dtype=DTYPE)
    n = normalize(torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE))
    hessian = torch.diag(3 * x**2) + torch.tensor(
        [[0.0, x[2], x[1]], [x[2], 0.0, x[0]], [x[1], x[0], 0.0]], dtype=DTYPE
    )
    exact = n @ hessian @ n
    return abs(float(probe(grad_fn, x, n, length, scheme=scheme).curvature - exact))


@pytest.mark.parametrize(("scheme", "order"), [("forward", 1.0), ("central", 2.0)])
def test_finite_difference_curvature_error_shrinks_with_the_scheme_order(scheme, order):
    lengths = [0.1, 0.05, 0.02, 0.01, 0.005]
    log_length = torch.log(torch.tensor(lengths, dtype=DTYPE))
    log_error = torch.log(torch.tensor([curvature_error(scheme, h) for h in lengths], dtype=DTYPE))
    slope = torch.linalg.lstsq(torch.stack([log_length, torch.ones_like(log_length)], 1), log_error[:, None])
    assert abs(float(slope.solution[0, 0]) - order) < 0.1


@pytest.mark.parametrize("alpha", [1.0, 2.0, -1.0, 0.5])
def test_modify_gradient_scales_the_component_along_n_by_one_minus_alpha(alpha):
    g = torch.randn(5, 7, dtype=DTYPE, generator=torch.Generator().manual_seed(14))
    n = random_unit((5, 7), seed=15)
    g_mod = modify_gradient(g, n, alpha)
    assert_near(batched_dot(g_mod, n), (1 - alpha) * batched_dot(g, n), atol=1e-12)
    assert_near(perp(g_mod, n), perp(g, n), atol=1e-12)
    assert torch.equal(modify_gradient(g, -n, alpha), g_mod)
    axis = torch.zeros(5, 7, dtype=DTYPE)
    axis[:, 3] = 1.0  # an exactly unit N: the identity holds bit for bit
    assert torch.equal(batched_dot(modify_gradient(g, axis, alpha), axis), (1 - alpha) * g[:, 3])


def test_probe_end_gradient_differs_from_midpoint_gradient_whenever_hn_is_nonzero():
    a = torch.diag(torch.tensor([2.0, 0.0, -1.0], dtype=DTYPE))
    x = torch.tensor([0.3, -0.2, 0.5], dtype=DTYPE)
    moving = probe(quadratic_grad(a), x, normalize(torch.tensor([1.0, 1.0, 1.0], dtype=DTYPE)), 1e-3)
    assert not torch.equal(moving.g1, moving.g0)
    assert moving.torque > 0
    flat = probe(quadratic_grad(a), x, torch.tensor([0.0, 1.0, 0.0], dtype=DTYPE), 1e-3)  # HN = 0
    assert torch.equal(flat.g1, flat.g0)


def rotations_on_diag(update, steps: int = 300) -> float:
    """Iterate an orientation update on H = diag(3, 1, −2); return the final curvature NᵀHN."""
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=DTYPE))
    x, n, length = torch.zeros(3, dtype=DTYPE), normalize(torch.ones(3, dtype=DTYPE)), 1e-3
    for _ in range(steps):
        n = update(n, probe(quadratic_grad(h), x, n, length), length)
    return float(n @ h @ n)


def test_published_rotation_sign_climbs_to_max_curvature_while_rotate_sd_descends():
    def published(n, result: DimerProbe, length):  # N ← normalize(N + η·perp_N(g₁ − g₀)), η·ΔR = 0.1
        return normalize(n + (0.1 / length) * perp(result.g1 - result.g0, n))

    def ours(n, result: DimerProbe, length):
        return rotate_sd(n, result, 0.1)

    assert rotations_on_diag(published) == pytest.approx(3.0, abs=1e-9)
    assert rotations_on_diag(ours) == pytest.approx(-2.0, abs=1e-9)


def test_zero_vectors_and_zero_forces_never_produce_nan():
    zero = torch.zeros(2, 4, dtype=DTYPE)
    assert torch.equal(normalize(zero), zero)
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=DTYPE))
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=DTYPE)
    n = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=DTYPE)  # row 0: an eigenvector
    result = probe(quadratic_grad(h), x, n, 1e-3)
    assert result.torque[0] == 0
    assert torch.equal(rotate_sd(n, result, 0.1)[0], n[0])
    n_new, curvature, info = rotate_fourier(quadratic_grad(h), x, n, result, 1e-3)
    assert torch.equal(n_new[0], n[0])
    assert bool(info["skipped"][0]) and not bool(info["skipped"][1])
    assert curvature[0] == -2.0
    for value in [n_new, curvature, *(v for v in info.values() if isinstance(v, torch.Tensor))]:
        assert not value.isnan().any()
    assert torch.equal(modify_gradient(x, torch.zeros_like(x), 1.0), x)


def test_min_mode_leaves_a_row_with_zero_torque_where_it_is():
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=DTYPE))
    n0 = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.0, 0.8]], dtype=DTYPE)
    x = torch.zeros(2, 3, dtype=DTYPE)
    n, curvature, info = min_mode(quadratic_grad(h), x, n0=n0, max_iterations=100)
    assert torch.equal(n[0], n0[0])
    assert curvature[0] == 3.0  # a stationary (max-curvature) orientation: zero torque, no rotation
    assert info["converged"].all()
    assert abs(float(n[1, 2])) > 0.999


@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_batched_rows_equal_separate_runs(method):
    batch, d = 4, 12
    a, _, _ = quadratic(d, batch, seed=16)
    x = torch.randn(batch, d, dtype=DTYPE, generator=torch.Generator().manual_seed(17))
    n0 = random_unit((batch, d), seed=18)
    n, curvature, info = min_mode(quadratic_grad(a), x, n0=n0, max_iterations=60, **method)
    for row in range(batch):
        n_row, c_row, info_row = min_mode(
            quadratic_grad(a[row]), x[row], n0=n0[row], max_iterations=60, **method
        )
        assert_near(n[row], n_row, atol=1e-12)
        assert_near(curvature[row], c_row, atol=1e-12)
        assert bool(info["converged"][row]) == bool(info_row["converged"])


def test_fourier_min_mode_costs_one_gradient_per_iteration_forward_and_two_central():
    a, _, _ = quadratic(20, 2, seed=19)
    x = torch.zeros(2, 20, dtype=DTYPE)
    options = {"seed": 0, "max_iterations": 5, "torque_tol": 0.0, "rotation": "fourier"}
    _, _, forward = min_mode(quadratic_grad(a), x, **options)
    _, _, central = min_mode(quadratic_grad(a), x, scheme="central", **options)
    assert forward["iterations"] == central["iterations"] == 5
    assert forward["grad_evals"] == 2 + 5  # g0 and the first end, then one trial end per iteration
    assert central["grad_evals"] == 3 + 2 * 5


def test_central_scheme_min_mode_finds_min_mode():
    a, v_min, spectrum = quadratic(20, 2, seed=20)
    n, curvature, _ = min_mode(quadratic_grad(a), torch.ones(2, 20, dtype=DTYPE), seed=3, scheme="central")
    assert (batched_dot(n, v_min).abs() > 0.999).all()
    assert ((curvature - spectrum[0]).abs() < 1e-3 * (spectrum[-1] - spectrum[0])).all()


def test_min_mode_history_records_the_fourier_model_of_every_iteration():
    a, _, _ = quadratic(8, 2, seed=21)
    n0 = random_unit((2, 8), seed=4)
    x = torch.zeros(2, 8, dtype=DTYPE)
    n, curvature, info = min_mode(quadratic_grad(a), x, n0=n0, record=True, rotation="fourier")
    history = info["history"]
    assert len(history) == info["iterations"] > 0
    before = n0
    for entry in history:
        assert set(entry) == {
            "n", "curvature", "torque", "theta", "trial_angle", "angle", "a0", "a1", "b1", "grad_evals"
        }  # fmt: skip
        for phi in (-1.0, 0.3, 1.2):  # on a quadratic the model is C(φ) = N(φ)ᵀAN(φ) in the recorded plane
            n_phi = before * math.cos(phi) + entry["theta"] * math.sin(phi)
            exact = torch.einsum("...i,...ij,...j->...", n_phi, a, n_phi)
            model = entry["a0"] / 2 + entry["a1"] * math.cos(2 * phi) + entry["b1"] * math.sin(2 * phi)
            rotated = entry["angle"] != 0
            assert_near(model[rotated], exact[rotated], atol=1e-8)
        before = entry["n"]
    assert torch.equal(history[-1]["n"], n)
    assert torch.equal(history[-1]["curvature"], curvature)


def test_min_mode_draws_its_start_from_the_seed_in_the_dtype_of_x():
    a, _, _ = quadratic(5, 1, seed=22)
    x = torch.zeros(1, 5, dtype=DTYPE)
    first = min_mode(quadratic_grad(a), x, seed=5, max_iterations=0)[0]
    again = min_mode(quadratic_grad(a), x, seed=5, max_iterations=0)[0]
    other = min_mode(quadratic_grad(a), x, seed=6, max_iterations=0)[0]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.dtype == DTYPE
    assert float(torch.linalg.vector_norm(first)) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rotation": "newton"}, "rotation must be one of"),
        ({"plane": "bfgs"}, "plane must be one of"),
        ({"scheme": "backward"}, "scheme must be one of"),
        ({"length": 0.0}, "dimer length must be > 0"),
        ({"rotation": "sd"}, "rotation_step > 0"),
    ],
)
def test_min_mode_rejects_invalid_options_with_a_clear_message(kwargs, message):
    a, _, _ = quadratic(3, 1, seed=0)
    with pytest.raises(ValueError, match=message):
        min_mode(quadratic_grad(a), torch.zeros(1, 3, dtype=DTYPE), **kwargs)


def test_rotate_sd_step_lowers_curvature_like_power_iteration():
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=DTYPE))
    n = normalize(torch.ones(3, dtype=DTYPE))
    step = 0.1
    expected = normalize(n - step * (h @ n - (n @ h @ n) * n))
    result = rotate_sd(n, probe(quadratic_grad(h), torch.zeros(3, dtype=DTYPE), n, 1e-3), step)
    assert_near(result, expected, atol=1e-12)
    assert float(result @ h @ result) < float(n @ h @ n) - math.ulp(1.0)


@pytest.mark.parametrize("plane", ["sd", "cg", "lbfgs"])
def test_fourier_min_mode_finds_min_mode_with_float32_probes(plane):
    a, v_min, spectrum = quadratic(20, 2, seed=23)
    grad_fn = quadratic_grad(a.float())
    x = torch.randn(2, 20, generator=torch.Generator().manual_seed(24)).float()
    n, curvature, _ = min_mode(
        grad_fn, x, seed=7, length=1e-3, rotation="fourier", plane=plane, max_iterations=100
    )
    assert n.dtype == torch.float32
    assert (batched_dot(n.double(), v_min).abs() > 0.999).all()
    assert ((curvature.double() - spectrum[0]).abs() < 1e-2 * (spectrum[-1] - spectrum[0])).all()


@pytest.mark.parametrize("plane", ["sd", "cg", "lbfgs"])
def test_fourier_min_mode_finds_min_mode_of_a_non_quadratic_function(plane):
    """f(θ) = ½θᵀAθ + Σθᵢ⁴/4, H = A + diag(3θ²): forward probes are exact up to O(ΔR)."""
    a, _, _ = quadratic(10, 3, seed=25)
    x = 0.5 * torch.randn(3, 10, dtype=DTYPE, generator=torch.Generator().manual_seed(26))
    eigenvalues, eigenvectors = torch.linalg.eigh(a + torch.diag_embed(3 * x**2))
    n, curvature, info = min_mode(
        lambda t: torch.einsum("...ij,...j->...i", a, t) + t**3,
        x,
        seed=8,
        rotation="fourier",
        plane=plane,
        max_iterations=200,
    )
    assert info["converged"].all()
    assert (batched_dot(n, eigenvectors[..., 0]).abs() > 0.999).all()
    spread = eigenvalues[..., -1] - eigenvalues[..., 0]
    assert ((curvature - eigenvalues[..., 0]).abs() < 1e-3 * spread).all()


# ---------------------------------------------------------------------------------------------
# rotation="lanczos": Lanczos on finite-difference Hessian-vector products


def counting(grad_fn):
    """grad_fn wrapped to count its calls (``calls[0]``)."""
    calls = [0]

    def wrapped(*args):
        calls[0] += 1
        return grad_fn(*args)

    return wrapped, calls


def test_lanczos_is_the_default_rotation():
    a, _, _ = quadratic(6, 1, seed=40)
    x = torch.zeros(1, 6, dtype=DTYPE)
    default = min_mode(quadratic_grad(a), x, seed=1, max_iterations=3, torque_tol=0.0, record=True)
    lanczos = min_mode(quadratic_grad(a), x, seed=1, max_iterations=3, torque_tol=0.0, rotation="lanczos")
    assert torch.equal(default[0], lanczos[0]) and torch.equal(default[1], lanczos[1])
    assert all(math.isnan(float(h["a0"])) for h in default[2]["history"])  # no Fourier model


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("basis", ["diagonal", "rotated"])
@pytest.mark.parametrize("d", [2, 20, 200])
def test_lanczos_finds_min_mode_of_batched_quadratics(d, basis, dtype):
    batch = 3
    a, v_min, spectrum = quadratic(d, batch, seed=41 + d)
    if basis == "diagonal":  # A = diag(λ) with λ shuffled per row
        order = torch.stack(
            [torch.randperm(d, generator=torch.Generator().manual_seed(row)) for row in range(batch)]
        )
        a = torch.diag_embed(spectrum[order])
        v_min = (order == 0).to(DTYPE)
    x = torch.randn(batch, d, generator=torch.Generator().manual_seed(42), dtype=DTYPE)
    grad_fn, calls = counting(quadratic_grad(a.to(dtype)))
    n, curvature, info = min_mode(grad_fn, x.to(dtype), seed=3, max_iterations=100)
    assert n.dtype == curvature.dtype == dtype
    assert info["converged"].all()
    assert (batched_dot(n.double(), v_min).abs() > 0.999).all()
    tolerance = (1e-3 if dtype == torch.float64 else 1e-2) * (spectrum[-1] - spectrum[0])
    assert ((curvature.double() - spectrum[0]).abs() < tolerance).all()
    assert calls[0] == info["grad_evals"] == 2 + info["iterations"]
    assert info["iterations"] < min(d, 30)  # a Krylov method: far fewer products than d at d = 200


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_lanczos_counts_every_call_of_grad_fn(scheme):
    a, _, _ = quadratic(30, 2, seed=43)
    x = torch.randn(2, 30, generator=torch.Generator().manual_seed(44), dtype=DTYPE)
    per_product, at_x = (1, 1) if scheme == "forward" else (2, 0)
    for options in ({"max_iterations": 7, "torque_tol": 0.0}, {"max_iterations": 0}, {}):
        grad_fn, calls = counting(quadratic_grad(a))
        _, _, info = min_mode(grad_fn, x, seed=5, scheme=scheme, rotation="lanczos", **options)
        if "max_iterations" in options:
            assert info["iterations"] == options["max_iterations"]
        assert calls[0] == info["grad_evals"] == at_x + per_product * (info["iterations"] + 1)


def test_lanczos_ritz_pair_is_the_krylov_optimum_and_its_torque_the_true_residual():
    """After k products, C is the least eigenvalue of A on span{n0, A n0, …, A^(k−1) n0} and the
    reported torque is ‖A N − C N‖ computed from the tridiagonal alone."""
    d = 40
    a, _, _ = quadratic(d, 1, seed=45)
    a = a[0]
    n0 = random_unit((d,), seed=46)
    x = torch.randn(d, generator=torch.Generator().manual_seed(47), dtype=DTYPE)
    _, _, run = min_mode(quadratic_grad(a), x, n0=n0, max_iterations=8, torque_tol=0.0, record=True)
    krylov = [n0]
    for k, entry in enumerate(run["history"], start=2):
        krylov.append(a @ krylov[-1])
        q, _ = torch.linalg.qr(torch.stack(krylov[:k], 1))
        optimum = torch.linalg.eigvalsh(q.T @ a @ q)[0]
        assert float(entry["curvature"]) == pytest.approx(float(optimum), abs=1e-9)
        residual = torch.linalg.vector_norm(a @ entry["n"] - entry["curvature"] * entry["n"])
        assert float(entry["torque"]) == pytest.approx(float(residual), rel=1e-6, abs=1e-9)
        assert float(entry["n"] @ a @ entry["n"]) == pytest.approx(float(entry["curvature"]), abs=1e-9)
    assert len(run["history"]) == run["iterations"] >= 6  # stops at ½·arctan(torque/|C|) < PHI_TOL


def test_lanczos_stops_on_its_residual_without_knowing_the_answer():
    a, v_min, spectrum = quadratic(100, 2, seed=48)
    x = torch.zeros(2, 100, dtype=DTYPE)
    loose = min_mode(quadratic_grad(a), x, seed=6, torque_tol=0.3, max_iterations=100)
    tight = min_mode(quadratic_grad(a), x, seed=6, torque_tol=1e-9, max_iterations=100)
    assert (loose[2]["torque"] < 0.3).all() and loose[2]["converged"].all()
    assert loose[2]["iterations"] < tight[2]["iterations"]
    gap = float(spectrum[1] - spectrum[0])
    # sin∠(N, v_min) ≤ residual/gap (Davis–Kahan): the stop certifies the angle it reaches
    sines = torch.sqrt(1 - batched_dot(loose[0], v_min) ** 2)
    assert (sines <= loose[2]["torque"] / gap + 1e-12).all()
    tight_sines = torch.sqrt(1 - batched_dot(tight[0], v_min) ** 2)
    assert (tight_sines <= tight[2]["torque"] / gap + 1e-12).all() and (tight_sines < 0.1 * sines).all()


def test_lanczos_central_scheme_finds_min_mode_of_a_non_quadratic_function():
    """f(θ) = ½θᵀAθ + Σθᵢ⁴/4: forward and central products (O(ΔR), O(ΔR²)) both find the min mode."""
    a, _, _ = quadratic(10, 3, seed=49)
    x = 0.5 * torch.randn(3, 10, dtype=DTYPE, generator=torch.Generator().manual_seed(50))
    eigenvalues, eigenvectors = torch.linalg.eigh(a + torch.diag_embed(3 * x**2))
    spread = eigenvalues[..., -1] - eigenvalues[..., 0]
    for scheme, tolerance in (("forward", 1e-2), ("central", 1e-5)):
        n, curvature, info = min_mode(
            lambda t: torch.einsum("...ij,...j->...i", a, t) + t**3, x, seed=8, scheme=scheme, torque_tol=1e-8
        )
        assert info["converged"].all()
        assert (batched_dot(n, eigenvectors[..., 0]).abs() > 0.999).all()
        assert ((curvature - eigenvalues[..., 0]).abs() < tolerance * spread).all()


def rotating_quadratic(d: int, steps: int, angle: float, seed: int) -> list[torch.Tensor]:
    """A(t) = R(t) A₀ R(t)ᵀ, R(t) turning the plane of v_min and a second direction by ``angle`` per step."""
    a0, v_min, _ = quadratic(d, 1, seed=seed)
    a0, v_min = a0[0], v_min[0]
    other = normalize(perp(random_unit((d,), seed=seed + 1), v_min))
    matrices = []
    for t in range(steps):
        c, s = math.cos(angle * t), math.sin(angle * t)
        r = torch.eye(d, dtype=DTYPE) + (c - 1) * (torch.outer(v_min, v_min) + torch.outer(other, other))
        r = r + s * (torch.outer(other, v_min) - torch.outer(v_min, other))
        matrices.append(r @ a0 @ r.T)
    return matrices


def test_lanczos_warm_start_needs_fewer_gradients_on_a_slowly_moving_quadratic():
    matrices = rotating_quadratic(50, steps=12, angle=0.02, seed=51)
    x = torch.zeros(50, dtype=DTYPE)
    warm_evals, cold_evals = [], []
    n = None
    for t, a in enumerate(matrices):
        cold = min_mode(quadratic_grad(a), x, seed=100 + t, torque_tol=1e-4)
        warm = min_mode(quadratic_grad(a), x, n0=n, seed=100 + t, torque_tol=1e-4)
        n = warm[0]
        assert cold[2]["converged"] and warm[2]["converged"]
        exact = torch.linalg.eigh(a).eigenvectors[:, 0]
        assert abs(float(warm[0] @ exact)) > 0.999
        if t > 0:
            warm_evals.append(warm[2]["grad_evals"])
            cold_evals.append(cold[2]["grad_evals"])
    assert sum(warm_evals) < 0.75 * sum(cold_evals)
    assert all(w < c for w, c in zip(warm_evals, cold_evals))


def test_lanczos_rotation_for_a_caller_that_shifts_theta_itself():
    """The optimizer's form: shift_grad(v, s) = ∇L(θ + s·v) and g0 known; r iterations cost r + 1
    calls, and the result is min_mode's (which also pays for g0)."""
    a, _, _ = quadratic(16, 2, seed=52)
    x = torch.randn(2, 16, generator=torch.Generator().manual_seed(53), dtype=DTYPE)
    n0 = random_unit((2, 16), seed=54)
    grad_fn = quadratic_grad(a)
    shift_grad, calls = counting(lambda v, s: grad_fn(x + s * v))
    n, curvature, info = lanczos_rotation(
        shift_grad, n0, 1e-3, g0=grad_fn(x), max_iterations=3, torque_tol=0.0
    )
    assert calls[0] == info["grad_evals"] == 4 and info["iterations"] == 3
    n_mm, c_mm, info_mm = min_mode(grad_fn, x, n0=n0, max_iterations=3, torque_tol=0.0)
    assert_near(n, n_mm, atol=1e-12)
    assert_near(curvature, c_mm, atol=1e-12)
    assert info_mm["grad_evals"] == info["grad_evals"] + 1
    with pytest.raises(ValueError, match="needs g0"):
        lanczos_rotation(shift_grad, n0, 1e-3)


def test_lanczos_rotation_with_both_tolerances_zero_makes_every_product():
    """DEO's fixed cost: phi_tol = torque_tol = 0 makes all r + 1 products even from a converged N,
    where the default stop needs one; an exhausted Krylov space (d = 2) stops at d products."""
    a, v_min, _ = quadratic(30, 1, seed=55)
    x = torch.zeros(1, 30, dtype=DTYPE)
    n0 = normalize(v_min + 1e-7 * random_unit((1, 30), seed=56))
    grad_fn = quadratic_grad(a)
    shift_grad = lambda v, s: grad_fn(x + s * v)  # noqa: E731
    _, _, stops = lanczos_rotation(shift_grad, n0, 1e-3, g0=grad_fn(x), max_iterations=6)
    _, _, fixed = lanczos_rotation(
        shift_grad, n0, 1e-3, g0=grad_fn(x), max_iterations=6, torque_tol=0.0, phi_tol=0.0
    )
    assert stops["grad_evals"] == 1 and fixed["grad_evals"] == 7
    h = torch.diag(torch.tensor([2.0, -1.0], dtype=DTYPE))
    x2 = torch.zeros(2, dtype=DTYPE)
    n, curvature, small = lanczos_rotation(
        lambda v, s: (x2 + s * v) @ h,
        normalize(torch.ones(2, dtype=DTYPE)),
        1e-3,
        g0=x2,
        max_iterations=6,
        torque_tol=0.0,
        phi_tol=0.0,
    )
    assert small["grad_evals"] == 2 and bool(small["converged"])
    assert float(curvature) == pytest.approx(-1.0, abs=1e-9) and abs(float(n[1])) == pytest.approx(
        1.0, abs=1e-9
    )


def test_lanczos_rotation_fails_a_row_whose_end_gradient_is_not_finite_without_raising():
    """An end outside the function's domain: that row is NaN and not converged, the others go on."""

    def grad_fn(x):
        g = x.clone()
        g[..., 0] = torch.where(x[..., 0] > 1.0005, torch.nan, x[..., 0])
        return g

    x = torch.tensor([[1.0, 0.5, 0.2], [0.0, 0.5, 0.2]], dtype=torch.float64)
    n0 = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    _, curvature, info = min_mode(grad_fn, x, n0=n0, rotation="lanczos")
    assert math.isnan(float(curvature[0])) and not bool(info["converged"][0])
    assert abs(float(curvature[1]) - 1.0) < 1e-6 and bool(info["converged"][1])


def test_min_mode_checks_its_budget_before_any_gradient():
    from deo.budget import BudgetError

    calls = []

    def grad_fn(x):
        calls.append(1)
        return x

    with pytest.raises(BudgetError, match="MAX_MIN_MODE_GRAD_EVALS"):
        min_mode(grad_fn, torch.zeros(10_000, 2, dtype=torch.float64), max_iterations=100_000)
    assert calls == []


def test_the_angle_stop_is_relative_to_the_curvature():
    """The stop ½·arctan(‖F_R‖/|C|) < phi_tol measures the torque against |C| (DEO.md's skip rule,
    ARPACK's residual against the Ritz value): on a spectrum far from zero next to its spread a
    random N passes it at once — C is within the tolerance of λ_min relative to |C|, N is not the
    eigenvector. Lanczos with phi_tol=0 goes on to the eigenvector (the documented way out)."""
    hessian = torch.diag(torch.linspace(999.0, 1001.0, 20, dtype=torch.float64))
    x = torch.zeros(20, dtype=torch.float64)
    n, c, info = min_mode(lambda v: v @ hessian, x, seed=0)
    assert bool(info["converged"]) and info["iterations"] == 0
    assert abs(float(c) - 999.0) / 999.0 < 1e-3 and abs(float(n[0])) < 0.6  # C close, N not
    n, c, info = min_mode(lambda v: v @ hessian, x, seed=0, phi_tol=0.0, max_iterations=60)
    assert bool(info["converged"]) and abs(float(n[0])) > 1 - 1e-9 and float(c) == pytest.approx(999.0)
    shifted = hessian - 1000.0 * torch.eye(20, dtype=torch.float64)  # the same problem near zero
    n, c, _ = min_mode(lambda v: v @ shifted, x, seed=0)
    assert abs(float(n[0])) > 0.999 and float(c) == pytest.approx(-1.0, abs=1e-5)
    with pytest.raises(ValueError, match="phi_tol must be an angle"):
        min_mode(lambda v: v @ hessian, x, seed=0, phi_tol=-1.0)
