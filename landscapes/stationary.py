"""Stationary points of a 2-D function found numerically: Newton's method on ∇f = 0 from a grid of
starts over the window, every start at once (rows of one float64 tensor, autograd's exact gradient
and Hessian), then the points classified by their Hessian's eigenvalues.

The typed-formula surface (:func:`landscapes.formula.parse_formula`) lists what this finds, so a
typed saddle such as ``x**2 - y**2`` gets what the catalogue's surfaces have: an escape criterion,
the saddle's marker, the offset control. The catalogue's own lists were derived by hand
(``landscapes/surfaces.py``); ``tests/test_stationary.py`` checks that this finds them.

What counts:

* converged: ‖∇f‖ ≤ ``GRAD_TOL`` · (1 + |f|) / scale, with ``scale`` the window's larger side, inside
  the window (a margin of 10⁻⁹ · scale), f, ∇f and the Hessian finite;
* isolated: a point with a (near-)zero Hessian eigenvalue ("flat") is kept only if no other flat
  point was found within ``NEIGHBOURS`` of the window (the starts' spacing is 1/16 of it): ``x**2``
  (a line of minima x = 0) and ``(x² + y² − 1)²`` (a ring of minima) list no point there; the
  monkey saddle's flat origin, where every start ends, is kept, "degenerate";
* kinds: both eigenvalues > 0 "min", both < 0 "max", opposite signs "saddle"; a flat point (an
  eigenvalue within tol = ``EIG_TOL`` · the largest |eigenvalue| over the points, 1 at least) by f
  on a small circle around it: "min" or "max" when f is above or below it all round, else
  "degenerate";
* duplicates (within 10⁻⁶ · scale) are one point; at most ``MAX_POINTS``, those nearest the window's
  centre first.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from landscapes.surfaces import StationaryPoint

SEEDS = 15  # starts per side of the window
ITERATIONS = 60
GRAD_TOL = 1e-9
EIG_TOL = 1e-7
MAX_POINTS = 50
PROBES = 16  # points on the circle that classifies a flat point
NEIGHBOURS = 0.1  # flat points closer than this (× the window) are on a curve of stationary points


def _grad_and_hessian(f: Callable[[Tensor], Tensor], p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(f, ∇f, H) at each row of ``p`` (rows are independent points of f)."""
    p = p.detach().requires_grad_(True)
    with torch.enable_grad():
        value = f(p)
        (grad,) = torch.autograd.grad(value.sum(), p, create_graph=True)
        rows = []
        for i in range(2):
            if grad.requires_grad:
                (row,) = torch.autograd.grad(grad[:, i].sum(), p, retain_graph=True, allow_unused=True)
            else:
                row = None
            rows.append(torch.zeros_like(p) if row is None else row)
    hessian = torch.stack(rows, dim=1)  # (S, 2, 2): H[s, i, j] = ∂²f/∂x_i∂x_j
    return value.detach(), grad.detach(), hessian.detach()


def _newton_step(grad: Tensor, hessian: Tensor, limit: float) -> Tensor:
    """H⁺∇f per row (the pseudo-inverse, so a singular direction takes no step), at most ``limit`` long."""
    step = (torch.linalg.pinv(hessian, hermitian=True, rtol=1e-12) @ grad.unsqueeze(-1)).squeeze(-1)
    size = step.norm(dim=1, keepdim=True)
    return torch.where(size > limit, step * (limit / size), step)


def find_stationary_points(
    f: Callable[[Tensor], Tensor], window: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[StationaryPoint, ...]:
    """The isolated stationary points of ``f`` ((..., 2) → (...)) in ``window``, classified; see the
    module docstring. Deterministic (a fixed grid of starts); () when none is found."""
    (x0, x1), (y0, y1) = window
    scale = max(x1 - x0, y1 - y0)
    centre = torch.tensor([0.5 * (x0 + x1), 0.5 * (y0 + y1)], dtype=torch.float64)
    xs = torch.linspace(x0, x1, SEEDS + 2, dtype=torch.float64)[1:-1]  # inside the window, off its edges
    ys = torch.linspace(y0, y1, SEEDS + 2, dtype=torch.float64)[1:-1]
    p = torch.cartesian_prod(xs, ys)
    alive = torch.ones(len(p), dtype=torch.bool)
    for _ in range(ITERATIONS):
        _, grad, hessian = _grad_and_hessian(f, p)
        finite = torch.isfinite(grad).all(1) & torch.isfinite(hessian).flatten(1).all(1)
        alive &= finite
        grad = torch.where(finite[:, None], grad, 0.0)
        step = _newton_step(grad, torch.where(finite[:, None, None], hessian, 0.0), 0.25 * scale)
        p = torch.where(alive[:, None], p - step, p)
        alive &= ((p - centre).abs() <= 1.5 * scale).all(1)  # wandered far off: not a point of this window
        if not alive.any() or float(step[alive].abs().max()) <= 1e-15 * scale:
            break
    value, grad, hessian = _grad_and_hessian(f, p)
    inside = (
        (p[:, 0] >= x0 - 1e-9 * scale) & (p[:, 0] <= x1 + 1e-9 * scale)
        & (p[:, 1] >= y0 - 1e-9 * scale) & (p[:, 1] <= y1 + 1e-9 * scale)
    )  # fmt: skip
    finite = torch.isfinite(value) & torch.isfinite(grad).all(1) & torch.isfinite(hessian).flatten(1).all(1)
    converged = grad.norm(dim=1) <= GRAD_TOL * (1.0 + value.abs()) / scale
    keep = (alive & inside & finite & converged).nonzero().flatten().tolist()
    if not keep:
        return ()
    eigenvalues = torch.linalg.eigvalsh(0.5 * (hessian + hessian.transpose(1, 2)))
    tol = EIG_TOL * max(1.0, float(eigenvalues[keep].abs().max()))
    candidates: list[tuple[int, tuple[float, float]]] = []
    for i in sorted(keep, key=lambda i: float((p[i] - centre).norm())):
        xy = (float(p[i, 0]), float(p[i, 1]))
        if not any(math.dist(xy, q) <= 1e-6 * scale for _, q in candidates):
            candidates.append((i, xy))
    flat = {i for i, _ in candidates if float(eigenvalues[i].abs().min()) <= tol}
    # flat points close to one another lie on a curve of stationary points (the ring of minima of
    # (x² + y² − 1)², the line x = 0 of x**2): none of them is isolated
    crowded = {
        i for i, xy in candidates if i in flat
        and any(j != i and j in flat and math.dist(xy, q) <= NEIGHBOURS * scale for j, q in candidates)
    }  # fmt: skip
    points: list[StationaryPoint] = []
    for i, xy in candidates:
        if i in crowded:
            continue
        low, high = float(eigenvalues[i, 0]), float(eigenvalues[i, 1])
        if i in flat:
            kind = _flat_kind(f, p[i], float(value[i]), scale)
        elif low > 0:
            kind = "min"
        elif high < 0:
            kind = "max"
        else:
            kind = "saddle"
        points.append(StationaryPoint(xy, kind, float(value[i]), (low, high)))
        if len(points) == MAX_POINTS:
            break
    return tuple(sorted(points, key=lambda q: (q.xy[0], q.xy[1])))


def _flat_kind(f, point: Tensor, value: float, scale: float) -> str:
    """The kind of a point whose Hessian does not tell (a near-zero eigenvalue), from f on a circle of
    ``PROBES`` points at 10⁻³ of the window around it: above f everywhere "min" (|x| + |y| at its
    kink, where autograd's gradient is 0 and its Hessian 0), below everywhere "max", else
    "degenerate" (the monkey saddle x³ − 3xy²: up and down in turn)."""
    angles = torch.arange(PROBES, dtype=torch.float64) * (2 * math.pi / PROBES)
    circle = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * (1e-3 * scale)
    with torch.no_grad():
        change = f(point + circle) - value
    eps = 1e-13 * (1.0 + abs(value))
    if bool((change > eps).all()):
        return "min"
    if bool((change < -eps).all()):
        return "max"
    return "degenerate"
