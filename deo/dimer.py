"""The dimer method as pure functions, batched over leading dims.

Notation of ``DEO.md``: θ parameters ``x`` of shape ``(..., d)`` (leading dims are independent
problems), ``grad_fn`` maps ``(..., d) -> (..., d)``, N a unit dimer orientation, ΔR the dimer
length. Dot products and norms are over the last dim.

- probe:  ``D = (g₁ − g₀)/ΔR ≈ HN`` (forward) or ``(g(θ+ΔR·N) − g(θ−ΔR·N))/(2ΔR)`` (central),
  curvature ``C = D·N``, rotational force ``F_R = −perp_N(D)``, torque ``‖F_R‖``.
- rotation: ``rotate_sd`` (a fixed step along F_R) and ``rotate_fourier`` (Kästner–Sherwood: one
  trial orientation, a Fourier model of C(φ), its minimum, the end gradient interpolated).
- ``min_mode`` iterates rotations to the minimum-curvature eigenvector.
- ``modify_gradient`` is DEO's gradient transformation ``g − α(g·N)N``.

``probe_shifted`` and ``rotate_fourier_shifted`` are ``probe`` and ``rotate_fourier`` for a caller that
moves θ itself (the optimizer shifts its parameters in place): they take ``shift_grad(v, s)`` =
∇L(θ + s·v) instead of ``grad_fn`` and θ. Every function makes as few passes over d as it can (a
dot product is one BLAS pass; per-row masks act on ``(...)`` coefficients, not on ``(..., d)``
vectors), because at d ~ 10⁶ these passes, not the arithmetic, are the optimizer's overhead.

Sign: with *loss* gradients, moving N along +F_R lowers the curvature. (The published code adds
``+perp_N(g₁ − g₀)``, which climbs to the maximum-curvature direction.)
No function divides by a norm or angle that can be 0: such rows are left unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

GradFn = Callable[[Tensor], Tensor]
ShiftGradFn = Callable[[Tensor, float], Tensor]

SCHEMES = ("forward", "central")
ROTATIONS = ("lanczos", "fourier", "sd")
PLANES = ("sd", "cg", "lbfgs")
LBFGS_MEMORY = 5
PHI_TOL = 1e-3


SMALL_D = 64  # below this many columns a dot product is a product and a matvec with ones


_ONES: dict[tuple[int, torch.dtype, int], Tensor] = {}  # read-only vectors of ones, d < SMALL_D


def _ones(like: Tensor) -> Tensor:
    """``like.new_ones(d)`` for the last dim d < SMALL_D, made once per (d, dtype, device) and never
    written (not under inference mode, whose tensors autograd could not save)."""
    key = (like.shape[-1], like.dtype, like.get_device())  # get_device: -1 on the CPU, cheap
    ones = _ONES.get(key)
    if ones is None:
        ones = like.new_ones(like.shape[-1])
        if not torch.is_inference_mode_enabled():
            _ONES[key] = ones
    return ones


def batched_dot(a: Tensor, b: Tensor) -> Tensor:
    """``a·b`` over the last dim: ``(..., d), (..., d) -> (...)`` (leading dims broadcast).

    Small d (many tiny rows, where a reduction over the last dim is slow on CPU): ``(a∘b)·1``,
    whose sums of exactly rounded products do not depend on how many rows are batched together.
    Large d: one BLAS dot (a single pass, no temporary) for a single row, ``Σ(a∘b)`` for several;
    a row of a large-d batch therefore agrees with the same row alone only up to rounding.
    """
    if a.shape[-1] < SMALL_D:
        product = a * b
        return product @ _ones(product)
    if a.dtype != b.dtype or a.shape != b.shape:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = torch.broadcast_tensors(a.to(dtype), b.to(dtype))
    if a.numel() == a.shape[-1]:
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(a.shape[:-1])
    return (a * b).sum(-1)


def row_norm(v: Tensor) -> Tensor:
    """``‖v‖`` over the last dim, ``(..., d) -> (...)``, as ``√(v·v)`` (one :func:`batched_dot`)."""
    return torch.sqrt(batched_dot(v, v))


def normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    """``v/‖v‖`` per row, ``(..., d) -> (..., d)``; rows with ``‖v‖ < eps`` are returned unchanged."""
    norm = row_norm(v).unsqueeze(-1)
    return v / torch.where(norm < eps, 1.0, norm)  # v/1 is v, bit for bit


def normalize_(v: Tensor, eps: float = 1e-12) -> Tensor:
    """:func:`normalize` in place (for a fresh ``v``): the same values, no new ``(..., d)`` tensor."""
    norm = row_norm(v).unsqueeze(-1)
    return v.div_(torch.where(norm < eps, 1.0, norm))


def perp(v: Tensor, n: Tensor) -> Tensor:
    """``perp_N(v) = v − (v·N)N``, the part of v orthogonal to the unit vector N, ``(..., d)``."""
    return torch.addcmul(v, batched_dot(v, n).unsqueeze(-1), n, value=-1)


def modify_gradient(g: Tensor, n: Tensor, alpha: float | Tensor) -> Tensor:
    """DEO's gradient transformation ``g_mod = g − α(g·N)N``, ``(..., d)``.

    ``α = 1`` projects out the component along N (the paper), ``α = 2`` reflects it (the classic
    dimer translation, which climbs to saddles), ``α = −1`` doubles it. ``α`` may be a float or a
    tensor broadcastable to the leading dims ``(...)``. Invariant under N → −N;
    ``g_mod·N = (1 − α)(g·N)`` for unit N.
    """
    alpha = torch.as_tensor(alpha, dtype=g.dtype, device=g.device)
    return g - (alpha * batched_dot(g, n)).unsqueeze(-1) * n


def modify_gradient_(g: Tensor, n: Tensor, alpha: Tensor, along: Tensor) -> Tensor:
    """:func:`modify_gradient` in place, for a caller that already has ``along`` = g·N ``(...)``:
    ``g ← g − α(g·N)N`` in one pass over d (``alpha`` a tensor broadcastable to ``(...)``)."""
    return g.addcmul_((alpha * along).unsqueeze(-1), n, value=-1)


@dataclass
class DimerProbe:
    """Everything one probe of orientation N gives (shapes for x of shape ``(..., d)``).

    ``g0`` gradient at the midpoint θ; ``g1`` at θ + ΔR·N (None for a probe built from D alone,
    :func:`difference_probe`); ``g_minus`` at θ − ΔR·N (central scheme only, else None);
    ``hn`` = D ≈ HN; ``curvature`` C = D·N ``(...)``; ``force`` F_R = −perp_N(D); ``torque``
    ‖F_R‖ ``(...)``; ``grad_evals`` the calls of ``grad_fn`` the probe made (a g0 passed in is free).
    """

    g0: Tensor
    g1: Tensor | None
    hn: Tensor
    curvature: Tensor
    force: Tensor
    torque: Tensor
    grad_evals: int
    g_minus: Tensor | None = None


def _check_length(length: float) -> None:
    try:
        usable = not isinstance(length, (bool, str, bytes)) and 0 < float(length) < math.inf
    except (TypeError, ValueError):
        usable = False
    if not usable:
        raise ValueError(f"dimer length must be > 0 and finite, got {length!r}")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def assemble_probe(
    g0: Tensor, g1: Tensor, g_minus: Tensor | None, n: Tensor, length: float, grad_evals: int
) -> DimerProbe:
    """Build a DimerProbe from end gradients already known (forward when ``g_minus`` is None)."""
    found = difference_probe(g0, _finite_difference(g0, g1, g_minus, length), n, grad_evals)
    found.g1, found.g_minus = g1, g_minus
    return found


def difference_probe(g0: Tensor, hn: Tensor, n: Tensor, grad_evals: int) -> DimerProbe:
    """Build a DimerProbe from D ≈ HN already known (``g1`` and ``g_minus`` None): C = D·N,
    F_R = −perp_N(D), torque ‖F_R‖."""
    curvature = batched_dot(hn, n)
    force = (curvature.unsqueeze(-1) * n).sub_(hn)  # −perp_N(D)
    return DimerProbe(
        g0=g0,
        g1=None,
        hn=hn,
        curvature=curvature,
        force=force,
        torque=row_norm(force),
        grad_evals=grad_evals,
    )


def _finite_difference(g0: Tensor, g1: Tensor, g_minus: Tensor | None, length: float) -> Tensor:
    """D ≈ HN: ``(g₁ − g₀)/ΔR`` (forward, ``g_minus`` None) or ``(g₁ − g₋)/(2ΔR)`` (central)."""
    return torch.sub(g1, g0).div_(length) if g_minus is None else torch.sub(g1, g_minus).div_(2.0 * length)


def _end_gradients(
    shift_grad: ShiftGradFn, n: Tensor, length: float, scheme: str
) -> tuple[Tensor, Tensor | None]:
    """``(g(θ + ΔR·N), g(θ − ΔR·N) or None)``: the dimer ends of the scheme."""
    g1 = shift_grad(n, length)
    return g1, (shift_grad(n, -length) if scheme == "central" else None)


def _shift_of(grad_fn: GradFn, x: Tensor) -> ShiftGradFn:
    """``shift_grad(v, s) = grad_fn(x + s·v)``."""
    return lambda v, s: grad_fn(x + s * v)


def probe(
    grad_fn: GradFn,
    x: Tensor,
    n: Tensor,
    length: float,
    g0: Tensor | None = None,
    scheme: str = "forward",
) -> DimerProbe:
    """Probe the curvature along the unit vector N at θ = ``x`` with a dimer of length ΔR.

    Forward: ``D = (g(θ + ΔR·N) − g₀)/ΔR`` (error O(ΔR), one gradient).
    Central: ``D = (g(θ + ΔR·N) − g(θ − ΔR·N))/(2ΔR)`` (error O(ΔR²), two gradients).
    ``g0`` (the gradient at θ, usually already known) is evaluated when not given, and counted.
    Shapes: x, n, g0 ``(..., d)``.
    """
    _check_length(length)
    _check_scheme(scheme)
    evals = 0
    if g0 is None:
        g0 = grad_fn(x)
        evals += 1
    found = probe_shifted(_shift_of(grad_fn, x), n, length, g0, scheme)
    found.grad_evals += evals
    return found


def probe_shifted(
    shift_grad: ShiftGradFn, n: Tensor, length: float, g0: Tensor, scheme: str = "forward"
) -> DimerProbe:
    """:func:`probe` with the gradient at θ known and ``shift_grad(v, s)`` = ∇L(θ + s·v)."""
    _check_length(length)
    _check_scheme(scheme)
    g1, g_minus = _end_gradients(shift_grad, n, length, scheme)
    return assemble_probe(g0, g1, g_minus, n, length, 1 if scheme == "forward" else 2)


def rotate_sd(n: Tensor, probe: DimerProbe, step: float | Tensor) -> Tensor:
    """Steepest-descent rotation ``N ← normalize(N + step·F_R)``, ``(..., d)``.

    For small ``step`` this is power iteration on ``I − step·H``: it lowers the curvature and
    converges to the minimum-curvature eigenvector when ``0 < step < 2/(λ_max − λ_min)``.
    A row with zero force stays put.
    """
    step = torch.as_tensor(step, dtype=n.dtype, device=n.device)
    if step.dim() > 0:
        step = step.unsqueeze(-1)
    return normalize(n + step * probe.force)


def rotate_fourier(
    grad_fn: GradFn,
    x: Tensor,
    n: Tensor,
    probe: DimerProbe,
    length: float,
    phi_tol: float = PHI_TOL,
    scheme: str = "forward",
    search_dir: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict]:
    """One Fourier-model rotation (Heyden–Bell–Keil 2005, Kästner–Sherwood 2008).

    Rotate in the plane of N and Θ = normalize(perp_N(search_dir)) (default search_dir = F_R),
    ``N(φ) = N cos φ + Θ sin φ``, with the curvature model ``C(φ) = a₀/2 + a₁ cos 2φ + b₁ sin 2φ``:

    - ``b₁ = ½C'(0) = D·Θ``; trial angle ``φ₁ = −½·arctan(C'(0)/(2|C(0)|))``;
    - one probe at N(φ₁) gives D(φ₁); ``a₁ = (C(0) − C(π/2))/2`` with ``C(π/2) = Θ·HΘ`` and
      ``HΘ ≈ (D(φ₁) − D(0) cos φ₁)/sin φ₁``; ``a₀ = 2(C(0) − a₁)``. On a quadratic this equals
      Kästner–Sherwood's ``a₁ = (C(0) − C(φ₁) + b₁ sin 2φ₁)/(1 − cos 2φ₁)``, but it divides
      rounding errors by sin φ₁ instead of 1 − cos 2φ₁ ≈ 2φ₁², which keeps float32 probes usable;
    - ``φ_min`` minimises the model: ``½·arctan(b₁/a₁)``, +π/2 if that is the maximum; the
      representative in (−π/2, π/2] is returned (N and −N are the same mode);
    - the new curvature ``C(φ_min) = a₀/2 − √(a₁² + b₁²)`` comes from the model, and the end
      gradient at φ_min is interpolated (exact on a quadratic):
      ``g₁(φ_min) ≈ [sin(φ₁−φ_min)/sin φ₁]·g₁(0) + [sin φ_min/sin φ₁]·g₁(φ₁)
      + [1 − cos φ_min − sin φ_min·tan(φ₁/2)]·g₀`` (central: the same for the minus end).

    Rows with ``|φ₁| < phi_tol`` (or no rotation plane) are skipped with masks: N and C unchanged,
    angle 0, ``a₁ = 0``, ``a₀ = 2C(0)``, ``g1_interp = g₁(0)`` (while the batch's trial gradient is
    finite in that row); so a batch behaves exactly like separate runs.
    Costs one probe (1 gradient forward, 2 central) for the whole batch.

    Returns ``(n_new (..., d), curvature (...), info)`` with info ``trial_angle``, ``angle``,
    ``a0``, ``a1``, ``b1``, ``skipped`` (all ``(...)``), ``theta`` (Θ, ``(..., d)``), ``tangent``
    (the unit tangent of the rotation path at φ_min, ``(..., d)``, for conjugate directions),
    ``grad_evals``, ``g1_interp``
    and, central only, ``g_minus_interp``.
    """
    n_new, curvature, info = rotate_fourier_shifted(
        _shift_of(grad_fn, x), n, probe, length, phi_tol=phi_tol, scheme=scheme, search_dir=search_dir
    )
    cos_m, sin_m = torch.cos(info["angle"]).unsqueeze(-1), torch.sin(info["angle"]).unsqueeze(-1)
    info["tangent"] = info["theta"] * cos_m - n * sin_m
    return n_new, curvature, info


def rotate_fourier_shifted(
    shift_grad: ShiftGradFn,
    n: Tensor,
    probe: DimerProbe,
    length: float,
    phi_tol: float = PHI_TOL,
    scheme: str = "forward",
    search_dir: Tensor | None = None,
    ends: bool = True,
) -> tuple[Tensor, Tensor, dict]:
    """:func:`rotate_fourier` with ``shift_grad(v, s)`` = ∇L(θ + s·v); info without ``tangent``.

    ``ends=False``: instead of the end gradients ``g1_interp`` (and ``g_minus_interp``), info holds
    ``hn_interp``, D at φ_min interpolated the same way, ``s₀·D(0) + s₁·D(φ₁)`` (the g₀ terms
    cancel: ``s₀ + s₁ + s_g = 1``); two passes over d instead of three plus a finite difference,
    for a caller that only needs D (the optimizer's rotation event; build the next probe with
    :func:`difference_probe`); its info then holds only ``angle``, ``b1``, ``theta``, ``grad_evals``
    and ``hn_interp`` (not the model's ``trial_angle``, ``a0``, ``a1``, ``skipped``).

    The same model in fewer passes over d: ``C(π/2) = Θ·HΘ = (D(φ₁)·Θ − cos φ₁·b₁)/sin φ₁`` is one
    dot product, and a skipped row gets the coefficients (1, 0) for (N, Θ) and (1, 0, 0) for
    (g₁(0), g₁(φ₁), g₀), so it keeps N and g₁(0) bit for bit (its trial gradient being finite)
    without a select over d.
    """
    _check_length(length)
    _check_scheme(scheme)
    if search_dir is None:
        search_dir = probe.force
    theta_raw = perp(search_dir, n)
    plane_norm = row_norm(theta_raw)
    has_plane = plane_norm >= 1e-12
    theta = theta_raw.div_(torch.where(has_plane, plane_norm, 1.0).unsqueeze(-1))
    c0 = probe.curvature
    b1 = batched_dot(probe.hn, theta)
    trial_angle = -0.5 * torch.atan2(2.0 * b1, 2.0 * c0.abs())
    rotate = has_plane & (trial_angle.abs() >= phi_tol)
    phi1 = torch.where(rotate, trial_angle, math.pi / 4)
    cos1, sin1 = torch.cos(phi1), torch.sin(phi1)

    n_trial = normalize_(torch.mul(n, cos1.unsqueeze(-1)).addcmul_(theta, sin1.unsqueeze(-1)))
    g1_trial, g_minus_trial = _end_gradients(shift_grad, n_trial, length, scheme)
    hn_trial = _finite_difference(probe.g0, g1_trial, g_minus_trial, length)
    c_half = (batched_dot(hn_trial, theta) - cos1 * b1) / sin1  # C(π/2) = Θ·HΘ
    a1 = 0.5 * (c0 - c_half)
    a0 = 2.0 * (c0 - a1)
    phi_min = 0.5 * torch.atan2(-b1, -a1)
    curvature = a0 / 2 - torch.sqrt(a1 * a1 + b1 * b1)

    phi_min = torch.where(rotate, phi_min, 0.0)
    cos_m, sin_m = torch.cos(phi_min), torch.sin(phi_min)
    rotated = torch.mul(n, cos_m.unsqueeze(-1)).addcmul_(theta, sin_m.unsqueeze(-1))
    rotated_norm = torch.where(rotate, row_norm(rotated), 1.0)
    n_new = rotated.div_(rotated_norm.unsqueeze(-1))

    s0 = (torch.sin(phi1 - phi_min) / sin1).unsqueeze(-1)
    s1 = (sin_m / sin1).unsqueeze(-1)
    info = {"angle": phi_min, "b1": b1, "theta": theta, "grad_evals": 1 if scheme == "forward" else 2}
    if not ends:  # the optimizer's rotation event: D at φ_min, and no model fields it does not read
        info["hn_interp"] = (s0 * probe.hn).addcmul_(s1, hn_trial)
        return n_new, torch.where(rotate, curvature, c0), info
    info["trial_angle"] = torch.where(has_plane, trial_angle, 0.0)
    info["a0"] = torch.where(rotate, a0, 2.0 * c0)
    info["a1"] = torch.where(rotate, a1, 0.0)
    info["skipped"] = ~rotate
    sg = (1 - cos_m - sin_m * torch.tan(phi1 / 2)).unsqueeze(-1)
    info["g1_interp"] = (s0 * probe.g1).addcmul_(s1, g1_trial).addcmul_(sg, probe.g0)
    if scheme == "central":
        info["g_minus_interp"] = (s0 * probe.g_minus).addcmul_(s1, g_minus_trial).addcmul_(sg, probe.g0)
    return n_new, torch.where(rotate, curvature, c0), info


@dataclass
class GramEvent:
    """What :func:`fourier_gram_event` finds: the new N as coefficients of the basis rows
    (``direction``), its curvature C, the torque ‖F_R‖ at it and F_R itself (``force``, as
    coefficients of the basis rows: a caller that can afford one more pass over d measures the
    torque from the vector, without the cancellation of ‖D‖² − C² in the Gram entries)."""

    direction: list[float]
    curvature: float
    torque: float
    force: list[float]


def _gram_div(a: float, b: float) -> float:
    """``a/b`` with float semantics (±inf, NaN) instead of ZeroDivisionError."""
    if b != 0.0:
        return a / b
    return math.nan if a == 0.0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


def fourier_gram_event(
    end: Callable[[list[float]], list[list[float]]],
    length: float,
    scheme: str,
    rotations: int,
    phi_tol: float = PHI_TOL,
) -> GramEvent:
    """A DEO rotation event — a probe of N₀ and ``rotations`` Fourier rotations
    (:func:`rotate_fourier_shifted` with ``ends=False``, then :func:`difference_probe`) — done on
    the Gram matrix of a few d-vectors instead of on the vectors: the same formulas, with every
    d-vector (N, D, F_R, Θ, the trial orientation, the interpolated D) a list of coefficients of the
    basis rows and every dot product ``uᵀ·gram·v``.

    Basis rows: 0 = N₀, then one row per probe of an orientation v, in the order of the probes:
    forward ``g(θ + ΔR·v) − g₀`` (g₀ the gradient at θ), central ``g(θ + ΔR·v) − g(θ − ΔR·v)``
    (so D = row/ΔR or row/(2ΔR)). ``end(v)`` (v a coefficient list) evaluates the end gradient(s)
    at θ ± ΔR·v, adds the row and returns the Gram matrix of all rows so far. g₀ itself is not a
    row: no formula of the event dots it (the step's g₀·N at the new N is one dot product after
    the event). Scalars are
    Python floats (float64). Norms of vectors that are nearly parallel to a basis vector lose
    digits to cancellation (a torque below ~√ε·‖D‖ of the dots' precision reads as noise); the
    rotation is skipped below ``phi_tol`` anyway.
    """
    g: list[list[float]] = []

    def dot(u: list[float], v: list[float]) -> float:
        total = 0.0
        for i, ui in enumerate(u):
            if ui != 0.0:
                row = g[i]
                for j, vj in enumerate(v):
                    if vj != 0.0:
                        total += ui * row[j] * vj
        return total

    def comb(a: float, u: list[float], b: float, v: list[float]) -> list[float]:
        size = max(len(u), len(v))
        u, v = u + [0.0] * (size - len(u)), v + [0.0] * (size - len(v))
        return [a * x + b * y for x, y in zip(u, v)]

    def basis(i: int, value: float) -> list[float]:
        out = [0.0] * (i + 1)
        out[i] = value
        return out

    def difference(row: int) -> list[float]:  # D of the probe stored in ``row``
        return basis(row, 1.0 / length if scheme == "forward" else 0.5 / length)

    def norm(v: list[float]) -> float:
        return math.sqrt(max(dot(v, v), 0.0)) if dot(v, v) == dot(v, v) else math.nan

    n = basis(0, 1.0)
    g = end(n)
    hn = difference(1)
    curvature_n = dot(hn, n)
    force = comb(curvature_n, n, -1.0, hn)
    torque = norm(force)
    curvature = curvature_n
    for _ in range(rotations):
        # rotate_fourier_shifted(search_dir = F_R, ends=False)
        theta_raw = comb(1.0, force, -dot(force, n), n)
        plane_norm = norm(theta_raw)
        has_plane = plane_norm >= 1e-12
        theta = comb(_gram_div(1.0, plane_norm if has_plane else 1.0), theta_raw, 0.0, [])
        c0 = curvature_n
        b1 = dot(hn, theta)
        trial = -0.5 * math.atan2(2.0 * b1, 2.0 * abs(c0))
        rotate = has_plane and abs(trial) >= phi_tol
        phi1 = trial if rotate else math.pi / 4
        cos1, sin1 = math.cos(phi1), math.sin(phi1)
        n_trial = comb(cos1, n, sin1, theta)
        trial_norm = norm(n_trial)
        n_trial = comb(_gram_div(1.0, trial_norm if trial_norm >= 1e-12 else 1.0), n_trial, 0.0, [])
        first = len(g)
        g = end(n_trial)
        hn_trial = difference(first)
        c_half = _gram_div(dot(hn_trial, theta) - cos1 * b1, sin1)
        a1 = 0.5 * (c0 - c_half)
        a0 = 2.0 * (c0 - a1)
        phi_min = 0.5 * math.atan2(-b1, -a1) if rotate else 0.0
        model = a0 / 2 - math.sqrt(a1 * a1 + b1 * b1) if a1 == a1 and b1 == b1 else math.nan
        cos_m, sin_m = math.cos(phi_min), math.sin(phi_min)
        rotated = comb(cos_m, n, sin_m, theta)
        rotated_norm = norm(rotated) if rotate else 1.0
        n = comb(_gram_div(1.0, rotated_norm), rotated, 0.0, [])
        s0, s1 = _gram_div(math.sin(phi1 - phi_min), sin1), _gram_div(sin_m, sin1)
        hn = comb(s0, hn, s1, hn_trial)
        curvature = model if rotate else c0
        # difference_probe(g₀, D, N)
        curvature_n = dot(hn, n)
        force = comb(curvature_n, n, -1.0, hn)
        torque = norm(force)
    return GramEvent(direction=n, curvature=curvature, torque=torque, force=force)


def _select_probe(mask: Tensor, new: DimerProbe, old: DimerProbe) -> DimerProbe:
    """Per row: ``new`` where ``mask`` (shape ``(...)``), else ``old``."""
    rows = mask.unsqueeze(-1)
    return DimerProbe(
        g0=old.g0,
        g1=torch.where(rows, new.g1, old.g1),
        hn=torch.where(rows, new.hn, old.hn),
        curvature=torch.where(mask, new.curvature, old.curvature),
        force=torch.where(rows, new.force, old.force),
        torque=torch.where(mask, new.torque, old.torque),
        grad_evals=new.grad_evals,
        g_minus=None if old.g_minus is None else torch.where(rows, new.g_minus, old.g_minus),
    )


class _ConjugatePlane:
    """Polak–Ribière conjugate rotation plane (as in the VTST / ASE dimer).

    ``G = F_R + γ·‖G_prev‖·Θ*`` with ``γ = max(0, F_R·(F_R − F_prev)/‖F_prev‖²)`` and Θ* the previous
    rotation direction carried along the rotation (the tangent at φ_min). γ is reset to 0 (plain
    F_R) on loss of conjugacy: ``|F_R·F_prev| > ½‖F_R‖²`` (Powell), or when G is not a descent
    direction of the curvature (G·F_R ≤ 0).
    """

    def __init__(self) -> None:
        self.prev_force: Tensor | None = None
        self.prev_norm: Tensor | None = None
        self.prev_tangent: Tensor | None = None

    def direction(self, n: Tensor, force: Tensor) -> Tensor:
        if self.prev_force is None:
            return force
        ff_prev = batched_dot(self.prev_force, self.prev_force)
        safe = torch.where(ff_prev > 0, ff_prev, torch.ones_like(ff_prev))
        gamma = (batched_dot(force, force - self.prev_force) / safe).clamp(min=0.0)
        powell = batched_dot(force, self.prev_force).abs() > 0.5 * batched_dot(force, force)
        gamma = torch.where((ff_prev > 0) & ~powell, gamma, torch.zeros_like(gamma))
        conjugate = perp(force + (gamma * self.prev_norm).unsqueeze(-1) * self.prev_tangent, n)
        descent = batched_dot(conjugate, force) > 0
        return torch.where(descent.unsqueeze(-1), conjugate, force)

    def update(self, n: Tensor, force: Tensor, direction: Tensor, info: dict, new_force: Tensor) -> None:
        self.prev_force = force
        norm = torch.linalg.vector_norm(perp(direction, n), dim=-1)
        self.prev_norm = torch.where(info["skipped"], torch.zeros_like(norm), norm)  # skipped: restart
        self.prev_tangent = info["tangent"]


class _LBFGSPlane:
    """L-BFGS rotation plane in the tangent space of the unit sphere.

    Minimises the curvature C(N) = NᵀHN on the sphere, whose Riemannian gradient is ``−2F_R``
    (the factor 2 does not change the direction). Steps ``s = φ_min·Θ*`` and gradient changes
    ``y = −F_R,new + (−F_R,old)*`` are kept for the last ``LBFGS_MEMORY`` iterations, every stored
    vector parallel-transported along each rotation (``v ← v + (v·Θ)(Θ* − Θ)``, norm-preserving).
    A pair with ``s·y ≤ 0`` gets ρ = 0 (it acts as the identity), so each row of a batch behaves
    like a separate run. Falls back to F_R when the two-loop direction is not a descent direction.
    """

    def __init__(self) -> None:
        self.pairs: list[tuple[Tensor, Tensor, Tensor]] = []
        self.scale: Tensor | None = None

    def direction(self, n: Tensor, force: Tensor) -> Tensor:
        if not self.pairs:
            return force
        q = -force
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * batched_dot(s, q)
            q = q - alpha.unsqueeze(-1) * y
            alphas.append(alpha)
        r = self.scale.unsqueeze(-1) * q
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas)):
            beta = rho * batched_dot(y, r)
            r = r + (alpha - beta).unsqueeze(-1) * s
        direction = perp(-r, n)
        descent = batched_dot(direction, force) > 0
        return torch.where(descent.unsqueeze(-1), direction, force)

    def update(self, n: Tensor, force: Tensor, direction: Tensor, info: dict, new_force: Tensor) -> None:
        theta = normalize(perp(direction, n))
        tangent = info["tangent"]

        def transport(v: Tensor) -> Tensor:
            return v + batched_dot(v, theta).unsqueeze(-1) * (tangent - theta)

        self.pairs = [(transport(s), transport(y), rho) for s, y, rho in self.pairs]
        s = info["angle"].unsqueeze(-1) * tangent
        y = -new_force + transport(force)
        sy, yy = batched_dot(s, y), batched_dot(y, y)
        valid = (sy > 1e-12 * torch.sqrt(batched_dot(s, s) * yy)) & (yy > 0)
        ones = torch.ones_like(sy)
        rho = torch.where(valid, 1.0 / torch.where(valid, sy, ones), torch.zeros_like(sy))
        scale = torch.where(valid, sy / torch.where(valid, yy, ones), ones)
        self.scale = scale if self.scale is None else torch.where(valid, scale, self.scale)
        self.pairs = [*self.pairs, (s, y, rho)][-LBFGS_MEMORY:]
        restart = info["skipped"]  # no rotation along this direction: forget, next direction is F_R
        self.pairs = [(s, y, torch.where(restart, torch.zeros_like(rho), rho)) for s, y, rho in self.pairs]
        self.scale = torch.where(restart, torch.ones_like(self.scale), self.scale)


def lanczos_rotation(
    shift_grad: ShiftGradFn,
    n: Tensor,
    length: float,
    g0: Tensor | None = None,
    max_iterations: int = 50,
    scheme: str = "forward",
    torque_tol: float = 1e-6,
    record: bool = False,
    phi_tol: float = PHI_TOL,
) -> tuple[Tensor, Tensor, dict]:
    """Lanczos on finite-difference Hessian-vector products from the unit vector N (``(..., d)``),
    for a caller that moves θ itself: ``shift_grad(v, s)`` = ∇L(θ + s·v) and ``g0`` = ∇L(θ) (needed
    by the forward scheme, free: not counted; not used by the central one).
    ``min_mode(rotation="lanczos")`` is this with θ = x and g0 evaluated (and counted).

    The Krylov space ``span{N₀, HN₀, …}`` is built from products ``Hv ≈ (g(θ+ΔR·v) − g₀)/ΔR``
    (forward) or ``(g(θ+ΔR·v) − g(θ−ΔR·v))/(2ΔR)`` (central), as the Lanczos variant of ARTn
    does; every new vector is reorthogonalised against the whole basis, twice (full
    reorthogonalisation: the basis stays orthonormal in float32 too, no ghost eigenvalues).
    After k products N is the Ritz vector of the smallest eigenvalue θ₁ of the tridiagonal T_k, the
    curvature is θ₁, and the torque is the Ritz residual ``‖HN − θ₁N‖ = β_{k+1}·|s_k|`` (s the
    eigenvector of T_k), known without another product. A row stops with the criteria of the
    Fourier rotation (torque < ``torque_tol``, or ``½·arctan(torque/|C|) < phi_tol``) or when its
    Krylov space is invariant (β ≈ 0: the Ritz pair is exact). Stopped rows keep their N and C; the
    batch goes on while any row is active (one call of grad_fn per product for the whole batch).

    Memory: the basis, up to ``max_iterations + 1`` vectors of shape ``(..., d)``. Cost: the first
    product is iteration 0, each iteration one more product: ``grad_evals = iterations + 1``
    calls of shift_grad forward, ``2·(iterations + 1)`` central. A DEO rotation event with
    ``rotations = r`` is ``max_iterations = r, torque_tol = 0, phi_tol = 0``: the same r + 1
    products as a probe and r Fourier iterations, with N warm-started (fewer only when the Krylov
    space is exhausted, e.g. d ≤ r on 2-D surfaces, where more products add nothing).

    Returns ``(n, curvature, info)`` like :func:`min_mode` (``grad_evals``, ``iterations``,
    ``converged``, ``torque`` and, with ``record``, ``history``).
    """
    _check_length(length)
    _check_scheme(scheme)
    if scheme == "forward" and g0 is None:
        raise ValueError("lanczos_rotation with scheme='forward' needs g0, the gradient at θ")
    shift = shift_grad
    per_product = 1 if scheme == "forward" else 2
    grad_evals = 0
    eps = torch.finfo(n.dtype).eps
    batch_shape = n.shape[:-1]

    def product(v: Tensor) -> Tensor:
        g1, g_minus = _end_gradients(shift, v, length, scheme)
        return _finite_difference(g0, g1, g_minus, length)

    def ritz_vector(coefficients: Tensor) -> Tensor:  # Σ s_j v_j over the basis, (..., d)
        u = basis[0] * coefficients[..., 0:1]
        for j in range(1, coefficients.shape[-1]):
            u.addcmul_(basis[j], coefficients[..., j : j + 1])
        return normalize(u)

    basis = [n]
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    scale = torch.zeros(batch_shape, dtype=n.dtype, device=n.device)  # max |T| entry so far, per row
    stopped = torch.zeros(batch_shape, dtype=torch.bool, device=n.device)
    failed = torch.zeros(batch_shape, dtype=torch.bool, device=n.device)  # a non-finite product seen
    n_out, curvature, torque = n, None, None
    coefficients = torch.ones((*batch_shape, 1), dtype=n.dtype, device=n.device)  # of n_out in the basis
    history: list[dict] = []
    iterations = 0
    while True:
        v = basis[-1]
        w = product(v)
        grad_evals += per_product
        alpha = batched_dot(w, v)
        alphas.append(alpha)
        w = torch.addcmul(w, alpha.unsqueeze(-1), v, value=-1)
        if len(basis) > 1:
            w = torch.addcmul(w, betas[-1].unsqueeze(-1), basis[-2], value=-1)
        for _ in range(2):  # full reorthogonalisation, twice is enough (Kahan–Parlett)
            for u in basis:
                w = torch.addcmul(w, batched_dot(w, u).unsqueeze(-1), u, value=-1)
        beta = row_norm(w)
        scale = torch.maximum(scale, torch.maximum(alpha.abs(), beta))
        k = len(alphas)
        tridiagonal = torch.diag_embed(torch.stack(alphas, -1))
        if k > 1:
            off = torch.stack(betas, -1)
            tridiagonal = tridiagonal + torch.diag_embed(off, offset=1) + torch.diag_embed(off, offset=-1)
        # A non-finite product (an end outside the function's domain) fails its row, not the batch:
        # eigh of a NaN matrix raises, so such rows get a harmless zero matrix and NaN results.
        bad = ~(torch.isfinite(tridiagonal).all(-1).all(-1) & torch.isfinite(beta))
        failed = failed | (bad & ~stopped)
        if bool(bad.any()):
            tridiagonal = torch.where(bad[..., None, None], torch.zeros_like(tridiagonal), tridiagonal)
        ritz_values, ritz_vectors = torch.linalg.eigh(tridiagonal)
        theta, s = ritz_values[..., 0], ritz_vectors[..., :, 0]
        residual = beta * s[..., -1].abs()
        theta = torch.where(failed, torch.full_like(theta, math.nan), theta)
        residual = torch.where(failed, torch.full_like(residual, math.nan), residual)
        invariant = beta <= 10 * k * eps * scale
        residual = torch.where(invariant, torch.zeros_like(residual), residual)
        active = ~stopped
        if curvature is None:
            curvature, torque = theta, residual
        else:
            curvature = torch.where(active, theta, curvature)
            torque = torch.where(active, residual, torque)
        pad = torch.nn.functional.pad(coefficients, (0, k - coefficients.shape[-1]))
        coefficients = torch.where(active.unsqueeze(-1), s, pad)
        if record and iterations > 0:
            n_before = n_out
            n_out = ritz_vector(coefficients)
            plane = perp(n_out, n_before)
            angle = torch.atan2(row_norm(plane), batched_dot(n_out, n_before))
            nan = torch.full_like(curvature, math.nan)
            history.append(
                {
                    "n": n_out,
                    "curvature": curvature,
                    "torque": torque,
                    "theta": normalize(plane),
                    "trial_angle": torch.zeros_like(angle),
                    "angle": torch.where(active, angle, torch.zeros_like(angle)),
                    "a0": nan,
                    "a1": nan,
                    "b1": nan,
                    "grad_evals": grad_evals,
                }
            )
        resolvable = 0.5 * torch.atan2(residual, theta.abs()) >= phi_tol  # the fourier stop, same angle
        finite = torch.isfinite(theta) & torch.isfinite(residual)  # a NaN row never counts as converged
        converged_now = (invariant | (residual < torque_tol) | ~resolvable) & finite
        stopped = stopped | (active & converged_now) | failed
        if iterations >= max_iterations or bool(stopped.all()):
            break
        iterations += 1
        betas.append(beta)
        safe = torch.where(invariant, torch.ones_like(beta), beta)
        basis.append((w / safe.unsqueeze(-1)) * (~invariant).unsqueeze(-1))  # a stopped row's 0 is harmless
    if not (record and iterations > 0):
        n_out = ritz_vector(coefficients)
    converged = stopped & ~failed
    info = {"grad_evals": grad_evals, "iterations": iterations, "converged": converged, "torque": torque}
    if record:
        info["history"] = history
    return n_out, curvature, info


def min_mode(
    grad_fn: GradFn,
    x: Tensor,
    n0: Tensor | None = None,
    length: float = 1e-3,
    max_iterations: int = 50,
    rotation: str = "lanczos",
    scheme: str = "forward",
    plane: str = "cg",
    torque_tol: float = 1e-6,
    seed: int | None = None,
    record: bool = False,
    rotation_step: float | None = None,
    phi_tol: float = PHI_TOL,
) -> tuple[Tensor, Tensor, dict]:
    """Rotate a dimer at θ = ``x`` until N is the minimum-curvature eigenvector of H.

    ``x`` ``(..., d)``: each leading index is an independent problem, ``grad_fn`` maps
    ``(..., d) -> (..., d)`` and is called once per probe on the whole batch. N starts at ``n0``
    (normalised) or at a random unit vector drawn from ``seed`` (dtype/device of x).

    - ``rotation="lanczos"`` (default): Lanczos with full reorthogonalisation on finite-difference
      Hessian-vector products (the Lanczos variant of ARTn); N is the lowest Ritz vector, C its
      Ritz value, the torque its residual ``‖HN − CN‖``. One gradient per iteration (2 central), the
      Krylov optimum for that many products; ``plane`` is not used; keeps up to
      ``max_iterations + 1`` basis vectors. ``benchmarks/engine_accuracy.py``: products to
      |cos| > 0.99 = exact-HVP Lanczos + 1 (the gradient at x).
    - ``rotation="fourier"``: :func:`rotate_fourier` in the plane chosen by ``plane``: ``"sd"``
      (N and F_R), ``"cg"`` (Polak–Ribière conjugate directions) or ``"lbfgs"`` (L-BFGS on the
      sphere). The end gradient is interpolated, so an iteration costs 1 gradient (2 central).
    - ``rotation="sd"``: :func:`rotate_sd` with ``rotation_step`` (required; stable for
      ``0 < rotation_step < 2/(λ_max − λ_min)``), then a fresh probe; ``plane`` is not used.

    A row stops (masks; the others go on) when its torque ‖F_R‖ < ``torque_tol`` or, fourier and
    lanczos, when the trial angle along F_R, ``½·arctan(‖F_R‖/|C|)``, is below ``phi_tol`` (default
    ``PHI_TOL`` = 1e-3; ``DEO.md``'s skip rule). A cg / lbfgs direction whose own trial angle is
    below it is skipped and the plane restarts from F_R. The loop ends when every row has stopped or
    after ``max_iterations``. The angle is measured against |C|, as ARPACK measures a Ritz residual
    against the Ritz value: it says C is within about ``phi_tol`` of λ_min *relative to |C|*, not
    that N is the eigenvector. Where the spectrum sits far from zero next to its spread (λ in
    [999, 1001]) a random N already passes it (C = 999.8, |cos| 0.54, ``converged`` True after 0
    iterations): use ``rotation="lanczos", phi_tol=0`` there, and ``torque_tol`` and
    ``max_iterations`` decide (18 iterations to |cos| = 1 − 5·10⁻¹³ on that spectrum). The Fourier
    rotation cannot: its trial angle is this same angle, too small there to fit C(φ) (with
    ``phi_tol=0`` it does not converge). Pinned by
    ``tests/test_dimer.py::test_the_angle_stop_is_relative_to_the_curvature``. Near a saddle (|C|
    small against the spread, DEO's setting) the rule stops where no rotation is resolvable.

    Returns ``(n (..., d), curvature (...), info)``; info: ``grad_evals`` (int, one call of
    grad_fn on the batch = 1, the gradient at x included; forward: ``2 + iterations`` for lanczos
    and fourier; central: ``2 + 2·iterations`` lanczos, which needs no gradient at x, and
    ``3 + 2·iterations`` fourier), ``iterations``, ``converged`` (bool
    ``(...)``), ``torque`` ``(...)`` and, with ``record=True``, ``history``: one dict per iteration
    with ``n``, ``curvature``, ``torque`` after it, ``grad_evals`` (counted up to and including it,
    as ``info["grad_evals"]`` counts them), and its rotation plane ``theta`` (Θ, unit,
    ``(..., d)``: ``N(φ) = N_before cos φ + Θ sin φ``), ``trial_angle``, ``angle`` (φ_min) and
    Fourier model ``a0``, ``a1``, ``b1`` of C(φ) about the orientation before it (NaN for "sd"
    and "lanczos", whose step is not a rotation in one plane's model; ``trial_angle`` 0 there;
    rows that had already stopped: angles 0 and the flat model ``a0 = 2C``, ``a1 = b1 = 0``).
    """
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    if rotation == "sd" and (rotation_step is None or not rotation_step > 0):
        raise ValueError(f"rotation='sd' needs rotation_step > 0, got {rotation_step}")
    if isinstance(max_iterations, bool) or not hasattr(max_iterations, "__index__") or max_iterations < 0:
        raise ValueError(f"max_iterations must be an integer >= 0, got {max_iterations!r}")
    if isinstance(phi_tol, bool) or not isinstance(phi_tol, int | float) or not 0 <= phi_tol < math.pi / 4:
        raise ValueError(f"phi_tol must be an angle in [0, π/4), got {phi_tol!r}")
    _check_length(length)
    _check_scheme(scheme)
    # deo.budget imports the presets, which import the optimizer, which imports this module: the
    # budget check is imported here, when min_mode runs, not when deo.dimer loads.
    from deo.budget import check_min_mode

    check_min_mode(max_iterations, rows=math.prod(x.shape[:-1]), scheme=scheme)
    scale = max(1.0, float(x.detach().abs().max()) if x.numel() else 1.0)
    if bool(torch.tensor(scale, dtype=x.dtype) + length == scale):
        raise ValueError(
            f"length={length:g} is below the resolution of {x.dtype} at |x| = {scale:g}: the dimer ends "
            "would round onto the midpoint (curvature 0/ΔR). Use a larger length."
        )
    if n0 is not None:
        n0_norm = row_norm(torch.as_tensor(n0).to(dtype=x.dtype, device=x.device).expand_as(x))
        if not bool(torch.isfinite(n0_norm).all()) or not bool((n0_norm > 0).all()):
            raise ValueError("n0 must be a finite, nonzero direction in every row (it is normalised)")

    if n0 is None:
        generator = torch.Generator(device=x.device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        n0 = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    n = normalize(n0.to(dtype=x.dtype, device=x.device).expand_as(x))
    if rotation == "lanczos":
        g0 = grad_fn(x) if scheme == "forward" else None
        n, curvature, info = lanczos_rotation(
            _shift_of(grad_fn, x), n, length, g0, max_iterations, scheme, torque_tol, record, phi_tol
        )
        info["grad_evals"] += 1 if scheme == "forward" else 0  # the gradient at x
        for entry in info.get("history", ()):
            entry["grad_evals"] += 1 if scheme == "forward" else 0
        return n, curvature, info
    current = probe(grad_fn, x, n, length, scheme=scheme)
    grad_evals = current.grad_evals
    resolved = torch.isfinite(current.curvature) & torch.isfinite(current.torque)
    converged = (current.torque < torque_tol) & resolved
    chooser = {"sd": None, "cg": _ConjugatePlane(), "lbfgs": _LBFGSPlane()}[plane]
    history: list[dict] = []
    iterations = 0
    while iterations < max_iterations and not bool(converged.all()):
        iterations += 1
        active = ~converged
        if rotation == "sd":
            n_new = rotate_sd(n, current, rotation_step)
            new = probe(grad_fn, x, n_new, length, g0=current.g0, scheme=scheme)
            nan = torch.full_like(current.curvature, math.nan)
            angle = torch.atan2(torch.linalg.vector_norm(perp(n_new, n), dim=-1), batched_dot(n_new, n))
            angle = torch.where(active, angle, torch.zeros_like(angle))
            model = {"trial_angle": torch.zeros_like(angle), "angle": angle, "a0": nan, "a1": nan, "b1": nan}
            model["theta"] = normalize(current.force)
            stopped = new.torque < torque_tol
        else:
            direction = current.force if chooser is None else chooser.direction(n, current.force)
            n_new, _, info = rotate_fourier(
                grad_fn, x, n, current, length, phi_tol=phi_tol, scheme=scheme, search_dir=direction
            )
            new = assemble_probe(
                current.g0, info["g1_interp"], info.get("g_minus_interp"), n_new, length, info["grad_evals"]
            )
            if chooser is not None:
                chooser.update(n, current.force, direction, info, new.force)
            zero = torch.zeros_like(current.curvature)
            model = {
                "trial_angle": torch.where(active, info["trial_angle"], zero),
                "angle": torch.where(active, info["angle"], zero),
                "a0": torch.where(active, info["a0"], 2.0 * current.curvature),
                "a1": torch.where(active, info["a1"], zero),
                "b1": torch.where(active, info["b1"], zero),
                "theta": info["theta"],
            }
            steepest_trial_angle = 0.5 * torch.atan2(new.torque, new.curvature.abs())
            stopped = (new.torque < torque_tol) | (steepest_trial_angle < phi_tol)
        grad_evals += new.grad_evals
        n = torch.where(active.unsqueeze(-1), n_new, n)
        current = _select_probe(active, new, current)
        resolved = torch.isfinite(current.curvature) & torch.isfinite(current.torque)
        converged = converged | (active & stopped & resolved)
        if record:
            history.append(
                {
                    "n": n,
                    "curvature": current.curvature,
                    "torque": current.torque,
                    "grad_evals": grad_evals,
                    **model,
                }
            )
    info = {
        "grad_evals": grad_evals,
        "iterations": iterations,
        "converged": converged,
        "torque": current.torque,
    }
    if record:
        info["history"] = history
    return n, current.curvature, info
