"""Studies of one dimer at one point θ: its rotation toward the min mode, sd against fourier
rotation, and the finite-difference error against the dimer length ΔR.

Each study runs the engine (:func:`deo.dimer.min_mode`, :func:`deo.dimer.probe`) on a function
``f: (d,) -> ()`` at θ and compares it with the exact Hessian ``H = V diag(λ) Vᵀ`` at θ
(:func:`deo.hessian.exact_eigh`, float64). The results are frozen dataclasses of numpy arrays, so a
page, a script or a notebook draws the same numbers. Notation of ``DEO.md``: N the unit dimer
orientation, ΔR the dimer length, D = (g₁ − g₀)/ΔR ≈ HN, C = D·N the curvature, F_R = −perp_N(D) the
rotational force and ‖F_R‖ the torque.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy import ndarray
from torch import Tensor

from deo.dimer import SCHEMES, min_mode, probe
from deo.hessian import exact_eigh

Function = Callable[[Tensor], Tensor]
STUDY_ROTATIONS = ("fourier", "sd")  # the rotations the comparison runs side by side
DTYPES = {"float64": torch.float64, "float32": torch.float32}
FINITE_DIFFERENCE_LENGTHS = np.logspace(-10, 0, 41)  # ΔR of the finite-difference study: four per decade


def gradient_of(f: Function) -> Callable[[Tensor], Tensor]:
    """``(..., d) -> (..., d)``: the gradient of ``f`` by autograd, in the input's dtype."""

    def grad_fn(x: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            return torch.autograd.grad(f(x).sum(), x)[0]

    return grad_fn


def orientation_2d(angle_deg: float) -> Tensor:
    """The unit orientation N = (cos a, sin a) of the angle a in degrees, float64 ``(2,)``."""
    a = math.radians(angle_deg)
    return torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)


def hessian_spectrum(f: Function, point: Sequence[float]) -> tuple[ndarray, ndarray]:
    """Exact Hessian eigenvalues ``(d,)`` ascending and unit eigenvectors ``(d, d)`` (columns) at θ."""
    lam, vecs = exact_eigh(f, torch.tensor(point, dtype=torch.float64))
    return lam.numpy(), vecs.numpy()


def sd_rotation_step(eigenvalues: ndarray, relative_step: float) -> float:
    """The sd rotation step η_rot = ``relative_step``/(λ_max − λ_min) (stable for relative_step < 2);
    ``relative_step`` itself when the spectrum has no spread."""
    spread = float(eigenvalues[-1] - eigenvalues[0])
    return relative_step / spread if spread > 0 else relative_step


def _array(value, name: str, shape: tuple[int, ...]) -> ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


@dataclass(frozen=True)
class RotationRun:
    """One recorded ``min_mode(..., record=True)`` run at θ from N₀, and a fresh probe at each N_k.

    Shapes (K iterations, d dimensions): ``orientations`` (K+1, d) N₀ … N_K (N_k the orientation
    after iteration k); ``forces`` (K+1, d) the rotational force F_R probed at each N_k;
    ``curvatures`` / ``torques`` (K+1,) the engine's C and ‖F_R‖ at each N_k; ``trial_angles``,
    ``angles``, ``a0``, ``a1``, ``b1`` (K,) of iteration k (radians; the Fourier coefficients are NaN
    for sd rotation); ``eigenvalues`` (d,) ascending and ``eigenvectors`` (d, d) (columns) of the
    exact Hessian. ``grad_evals`` counts every gradient of the run, the one at θ included;
    ``rotation_step`` is η_rot of sd rotation (None for fourier).
    """

    point: ndarray
    orientations: ndarray
    forces: ndarray
    curvatures: ndarray
    torques: ndarray
    trial_angles: ndarray
    angles: ndarray
    a0: ndarray
    a1: ndarray
    b1: ndarray
    eigenvalues: ndarray
    eigenvectors: ndarray
    grad_evals: int = 0
    converged: bool = False
    rotation_step: float | None = None

    def __post_init__(self) -> None:
        k, d = len(np.asarray(self.angles)), len(np.asarray(self.point))
        for name, shape in (
            ("point", (d,)),
            ("orientations", (k + 1, d)),
            ("forces", (k + 1, d)),
            ("curvatures", (k + 1,)),
            ("torques", (k + 1,)),
            ("trial_angles", (k,)),
            ("angles", (k,)),
            ("a0", (k,)),
            ("a1", (k,)),
            ("b1", (k,)),
            ("eigenvalues", (d,)),
            ("eigenvectors", (d, d)),
        ):
            object.__setattr__(self, name, _array(getattr(self, name), name, shape))

    @property
    def iterations(self) -> int:
        """K, the rotation iterations the engine ran."""
        return len(self.angles)

    @property
    def abs_cos(self) -> ndarray:
        """``|cos∠(N_k, v_min)|`` (K+1,): 1 when N_k is the exact min-curvature eigenvector."""
        return np.abs(self.orientations @ self.eigenvectors[:, 0])

    def rotation_direction(self, k: int) -> ndarray:
        """Θ of iteration k+1: the unit rotational force at N_k (zero when the torque is 0)."""
        force = self.forces[k]
        norm = float(np.linalg.norm(force))
        return force / norm if norm > 0 else np.zeros_like(force)


def rotation_run(
    f: Function,
    point: Sequence[float],
    n0: Tensor,
    length: float,
    rotation: str = "fourier",
    scheme: str = "forward",
    plane: str = "cg",
    relative_step: float = 0.5,
    max_iterations: int = 10,
) -> RotationRun:
    """Rotate a dimer of length ΔR = ``length`` at θ = ``point`` from N₀ = ``n0`` with ``min_mode``
    (``rotation``, ``scheme``, ``plane``; sd rotation steps by :func:`sd_rotation_step` of
    ``relative_step``) and probe each recorded orientation again for its rotational force."""
    grad_fn = gradient_of(f)
    x = torch.tensor(point, dtype=torch.float64)
    eigenvalues, eigenvectors = hessian_spectrum(f, point)
    step = sd_rotation_step(eigenvalues, relative_step) if rotation == "sd" else None
    _, _, info = min_mode(
        grad_fn,
        x,
        n0=n0,
        length=length,
        max_iterations=max_iterations,
        rotation=rotation,
        scheme=scheme,
        plane=plane,
        record=True,
        rotation_step=step,
    )
    history = info["history"]
    orientations = [n0] + [h["n"] for h in history]
    probes = [probe(grad_fn, x, n, length, scheme=scheme) for n in orientations]

    def column(name: str) -> ndarray:
        return np.array([float(h[name]) for h in history], dtype=np.float64)

    return RotationRun(
        point=np.array(point, dtype=np.float64),
        orientations=np.stack([n.numpy() for n in orientations]),
        forces=np.stack([p.force.numpy() for p in probes]),
        curvatures=np.array([float(probes[0].curvature)] + [float(h["curvature"]) for h in history]),
        torques=np.array([float(probes[0].torque)] + [float(h["torque"]) for h in history]),
        trial_angles=column("trial_angle"),
        angles=column("angle"),
        a0=column("a0"),
        a1=column("a1"),
        b1=column("b1"),
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        grad_evals=int(info["grad_evals"]),
        converged=bool(info["converged"]),
        rotation_step=step,
    )


@dataclass(frozen=True)
class RotationConvergence:
    """One rotation variant's convergence from N₀ (K+1 points: the start and each iteration).

    ``grad_evals`` (K+1,) the engine's cumulative gradient evaluations (the start's probe first);
    ``curvature_error`` (K+1,) |C_k − λ_min|; ``abs_cos`` (K+1,) |cos∠(N_k, v_min)|.
    """

    rotation: str
    scheme: str
    grad_evals: ndarray
    curvature_error: ndarray
    abs_cos: ndarray

    @property
    def iterations(self) -> int:
        return len(self.abs_cos) - 1


def rotation_convergence(
    f: Function,
    point: Sequence[float],
    n0: Tensor,
    length: float,
    plane: str = "cg",
    relative_step: float = 0.5,
    max_iterations: int = 10,
    rotations: Sequence[str] = STUDY_ROTATIONS,
    schemes: Sequence[str] = SCHEMES,
) -> tuple[RotationConvergence, ...]:
    """Every ``rotations`` × ``schemes`` variant of ``min_mode`` from the same θ, N₀ and ΔR.

    The gradient evaluations are the engine's own count: a run of 0 iterations gives the start's cost,
    then ``history[k]["grad_evals"]`` of the recorded run each iteration's.
    """
    grad_fn = gradient_of(f)
    x = torch.tensor(point, dtype=torch.float64)
    eigenvalues, eigenvectors = hessian_spectrum(f, point)
    v_min = eigenvectors[:, 0]
    runs = []
    for rotation in rotations:
        step = sd_rotation_step(eigenvalues, relative_step) if rotation == "sd" else None
        for scheme in schemes:
            kwargs = {
                "n0": n0,
                "length": length,
                "rotation": rotation,
                "scheme": scheme,
                "plane": plane,
                "rotation_step": step,
            }
            _, c0, start = min_mode(grad_fn, x, max_iterations=0, **kwargs)
            _, _, info = min_mode(grad_fn, x, max_iterations=max_iterations, record=True, **kwargs)
            history = info["history"]
            curvature = np.array([float(c0)] + [float(h["curvature"]) for h in history])
            directions = np.stack([n0.numpy()] + [h["n"].numpy() for h in history])
            runs.append(
                RotationConvergence(
                    rotation=rotation,
                    scheme=scheme,
                    grad_evals=np.array(
                        [start["grad_evals"]] + [h["grad_evals"] for h in history], dtype=np.float64
                    ),
                    curvature_error=np.abs(curvature - eigenvalues[0]),
                    abs_cos=np.abs(directions @ v_min),
                )
            )
    return tuple(runs)


@dataclass(frozen=True)
class FiniteDifferenceErrors:
    """One (scheme, dtype) probe along N at θ for each dimer length ΔR of ``lengths`` (m,).

    ``hn_error`` (m,) ‖D − HN‖/‖HN‖ and ``curvature_error`` (m,) |C − NᵀHN|/‖HN‖, against the
    float64 exact Hessian.
    """

    scheme: str
    dtype: str
    lengths: ndarray
    hn_error: ndarray
    curvature_error: ndarray

    @property
    def best_length(self) -> float:
        """The ΔR of the smallest ‖D − HN‖/‖HN‖."""
        return float(self.lengths[int(np.nanargmin(self.hn_error))])


def finite_difference_errors(
    f: Function,
    point: Sequence[float],
    n: Tensor,
    lengths: ndarray = FINITE_DIFFERENCE_LENGTHS,
    schemes: Sequence[str] = SCHEMES,
    dtypes: Sequence[str] = tuple(DTYPES),
) -> tuple[FiniteDifferenceErrors, ...]:
    """``deo.dimer.probe`` at θ along N for every ΔR of ``lengths``, every scheme × dtype (θ, N
    and the gradient in that dtype): too small a ΔR loses to round-off, too large to truncation."""
    grad_fn = gradient_of(f)
    eigenvalues, eigenvectors = hessian_spectrum(f, point)
    n = np.asarray(n, dtype=np.float64)
    hn = eigenvectors @ (eigenvalues * (eigenvectors.T @ n))
    scale = max(float(np.linalg.norm(hn)), 1e-300)
    curvature = float(n @ hn)
    lengths = np.asarray(lengths, dtype=np.float64)
    sweeps = []
    for scheme in schemes:
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            x = torch.tensor(point, dtype=dtype)
            direction = torch.tensor(n, dtype=dtype)
            hn_error, c_error = [], []
            for length in lengths:
                p = probe(grad_fn, x, direction, float(length), scheme=scheme)
                d = p.hn.to(torch.float64).numpy()
                hn_error.append(np.linalg.norm(d - hn) / scale)
                c_error.append(abs(float(p.curvature) - curvature) / scale)
            sweeps.append(
                FiniteDifferenceErrors(
                    scheme=scheme,
                    dtype=dtype_name,
                    lengths=lengths,
                    hn_error=np.array(hn_error),
                    curvature_error=np.array(c_error),
                )
            )
    return tuple(sweeps)
