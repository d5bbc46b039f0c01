"""The Dimer page's studies as library calls (``deo.dimer_studies``), checked against closed forms.

f(θ) = ½θᵀAθ + Σθᵢ⁴/24 has g = Aθ + θ³/6 and H = A + diag(θ²/2), so the dimer's finite differences
have exact errors: forward D − HN = ΔR·θ∘N²/2 + ΔR²·N³/6, central D − HN = ΔR²·N³/6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deo.dimer import min_mode
from deo.dimer_studies import (
    RotationRun,
    finite_difference_errors,
    gradient_of,
    hessian_spectrum,
    orientation_2d,
    rotation_convergence,
    rotation_run,
    sd_rotation_step,
)

A = np.array([[1.0, 1.5], [1.5, -0.5]])
POINT = (0.3, 0.2)


def quartic(x: torch.Tensor) -> torch.Tensor:
    a = torch.tensor(A, dtype=x.dtype)
    return 0.5 * ((x @ a) * x).sum(-1) + (x**4).sum(-1) / 24


def hessian(point) -> np.ndarray:
    return A + np.diag(np.asarray(point) ** 2 / 2)


def test_hessian_spectrum_and_orientation_are_the_closed_forms():
    lam, vecs = hessian_spectrum(quartic, POINT)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(hessian(POINT)), rtol=1e-12)
    np.testing.assert_allclose(vecs @ np.diag(lam) @ vecs.T, hessian(POINT), atol=1e-12)
    np.testing.assert_allclose(orientation_2d(90.0).numpy(), [0.0, 1.0], atol=1e-15)
    assert sd_rotation_step(lam, 0.5) == pytest.approx(0.5 / (lam[1] - lam[0]))
    assert sd_rotation_step(np.array([2.0, 2.0]), 0.5) == 0.5  # no spread: the step itself


@pytest.mark.parametrize("rotation", ["fourier", "sd"])
def test_rotation_run_records_the_engines_run_and_a_force_perpendicular_to_each_orientation(rotation):
    n0 = orientation_2d(30.0)
    run = rotation_run(quartic, POINT, n0, 1e-4, rotation, "central", "cg", 0.5, 40)
    _, _, info = min_mode(
        gradient_of(quartic),
        torch.tensor(POINT, dtype=torch.float64),
        n0=n0,
        length=1e-4,
        max_iterations=40,
        rotation=rotation,
        scheme="central",
        rotation_step=run.rotation_step,
    )
    assert run.iterations == info["iterations"] and run.grad_evals == info["grad_evals"]
    assert run.converged == info["converged"]
    assert (run.rotation_step is None) == (rotation == "fourier")
    np.testing.assert_allclose(run.orientations[0], n0.numpy())
    h = hessian(POINT)
    for n, force, torque in zip(run.orientations, run.forces, run.torques):
        hn = h @ n
        np.testing.assert_allclose(force, -(hn - (n @ hn) * n), atol=1e-6)  # F_R = −perp_N(HN)
        assert float(np.linalg.norm(force)) == pytest.approx(torque, abs=1e-6)
    lam, v = np.linalg.eigh(h)
    assert run.abs_cos[-1] == pytest.approx(abs(run.orientations[-1] @ v[:, 0]))
    assert run.curvatures[-1] == pytest.approx(lam[0], abs=1e-5)  # N₀ starts near the max mode
    assert run.abs_cos[-1] > 1 - 1e-6
    assert np.all(np.isnan(run.a0)) == (rotation == "sd")  # sd fits no Fourier model


def test_rotation_run_refuses_inconsistent_shapes_and_is_frozen():
    run = rotation_run(quartic, POINT, orientation_2d(0.0), 1e-3, "sd", "forward", "cg", 0.5, 3)
    with pytest.raises(ValueError, match="orientations"):
        RotationRun(**{**run.__dict__, "orientations": run.orientations[:-1]})
    with pytest.raises(AttributeError):
        run.grad_evals = 0


def test_rotation_convergence_counts_the_engines_gradients_and_fourier_needs_one_iteration():
    n0 = orientation_2d(-40.0)
    runs = rotation_convergence(quartic, POINT, n0, 1e-5, "cg", 0.5, 6)
    assert [(r.rotation, r.scheme) for r in runs] == [
        ("fourier", "forward"), ("fourier", "central"), ("sd", "forward"), ("sd", "central")
    ]  # fmt: skip
    lam, v = np.linalg.eigh(hessian(POINT))
    x = torch.tensor(POINT, dtype=torch.float64)
    for r in runs:
        step = sd_rotation_step(lam, 0.5) if r.rotation == "sd" else None
        for j in range(r.iterations + 1):  # a run stopped after j iterations made that many calls
            _, _, short = min_mode(gradient_of(quartic), x, n0=n0, length=1e-5, max_iterations=j,
                                   rotation=r.rotation, scheme=r.scheme, rotation_step=step)  # fmt: skip
            assert r.grad_evals[j] == short["grad_evals"]
        n = n0.numpy()
        assert r.curvature_error[0] == pytest.approx(abs(n @ hessian(POINT) @ n - lam[0]), abs=1e-4)
        assert r.abs_cos[0] == pytest.approx(abs(n @ v[:, 0]))
    fourier = [r for r in runs if r.rotation == "fourier"]
    assert all(r.abs_cos[1] > 1 - 1e-6 for r in fourier)  # the model's minimum on a near-quadratic
    assert runs[1].grad_evals[0] > runs[0].grad_evals[0]  # a central probe costs one more gradient


def test_finite_difference_errors_follow_the_closed_form_truncation_and_round_off():
    n = orientation_2d(25.0)
    lengths = np.logspace(-10, 0, 41)
    sweeps = {(s.scheme, s.dtype): s for s in finite_difference_errors(quartic, POINT, n, lengths)}
    assert list(sweeps) == [("forward", "float64"), ("forward", "float32"),
                            ("central", "float64"), ("central", "float32")]  # fmt: skip
    theta, n = np.asarray(POINT), n.numpy()
    hn = hessian(POINT) @ n
    truncation = lengths >= 1e-3  # round-off ε‖g‖/ΔR is below 1e-12 there in float64
    h = lengths[truncation]
    forward = np.outer(h, theta * n**2 / 2) + np.outer(h**2, n**3 / 6)
    central = np.outer(h**2, n**3 / 6)
    for (scheme, exact) in (("forward", forward), ("central", central)):
        s = sweeps[scheme, "float64"]
        np.testing.assert_allclose(s.hn_error[truncation], np.linalg.norm(exact, axis=1) / np.linalg.norm(hn),
                                   rtol=1e-4)  # fmt: skip
        np.testing.assert_allclose(s.curvature_error[truncation], np.abs(exact @ n) / np.linalg.norm(hn),
                                   rtol=1e-4)  # fmt: skip
        np.testing.assert_array_equal(s.lengths, lengths)
    # round-off ε·‖g‖/ΔR against truncation: the best ΔR grows with ε (float32's ε is 2²⁹ × float64's)
    for scheme in ("forward", "central"):
        best64, best32 = sweeps[scheme, "float64"].best_length, sweeps[scheme, "float32"].best_length
        assert best32 >= 100 * best64
    assert sweeps["forward", "float64"].best_length == pytest.approx(1e-8, rel=math.sqrt(10) ** 3)
