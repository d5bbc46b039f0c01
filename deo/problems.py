"""Race problems: what an optimizer is run on, and the surface helpers that build them.

A :class:`Problem` holds named start parameters, a loss ``loss(params, batch)``, an optional batch
schedule, an escape criterion (:class:`EscapeCriterion`), a divergence bound and a convergence
tolerance. :func:`surface_problem` builds one on a 2-D surface, :func:`network_problem` on a small
network; both are duck-typed (``deo`` never imports ``landscapes``).

Escape criterion (``DEO.md``): row t has escaped when ``‖θ_t − center‖ > radius`` or
``L(θ_t) ≤ loss_below`` (either one given; "≤" as in DEO.md's "f ≤ −1"). Defaults for a surface
(:func:`surface_escape`): centred on the nearest saddle (kind "saddle" or "degenerate") to the start;
``loss_below`` is the surface's own ``escape_loss`` when it sets one, else ``f_saddle − 1`` when no
listed minimum lies below the saddle (unbounded below: x²−y², monkey saddle, x²+y³), else
``f_saddle − 0.9·(f_saddle − f_min)`` with f_min the value of the nearest such minimum (so
``f ≤ −0.9`` on x²−y²+y⁴/4 and ``f ≤ 0.1`` on the double well's saddle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deo.hessian import exact_min_eig

EXACT_HESSIAN_MAX_PARAMS = 128  # networks: exact Hessian each recorded row up to this d
SURFACE_BOUND_FACTOR = 10.0  # a surface run diverges beyond 10× the window's largest |coordinate|
SURFACE_CONVERGE_TOL = 1e-6
UNBOUNDED_ESCAPE_DROP = 1.0  # loss_below = f_saddle − 1 without a lower minimum
LOWER_MINIMUM_FRACTION = 0.9  # loss_below = f_saddle − 0.9 (f_saddle − f_min)
NETWORK_ESCAPE_FRACTION = 0.5  # networks without their own escape_loss: escaped when L ≤ ½ plateau
SADDLE_KINDS = ("saddle", "degenerate")


@dataclass
class EscapeCriterion:
    """Escaped when ``‖θ − center‖ > radius`` or ``L(θ) ≤ loss_below`` (whichever is given)."""

    center: Tensor  # (d,)
    radius: float | None = None
    loss_below: float | None = None

    def __post_init__(self) -> None:
        if self.radius is None and self.loss_below is None:
            raise ValueError("an escape criterion needs a radius or a loss_below (or both), got neither")
        if self.radius is not None and not self.radius > 0:
            raise ValueError(f"escape radius must be > 0, got {self.radius}")
        if self.loss_below is not None and not -math.inf <= self.loss_below <= math.inf:  # NaN
            raise ValueError(f"loss_below must be a number (not NaN) or None, got {self.loss_below}")

    def met(self, theta: Tensor, loss: Tensor) -> Tensor:
        """Boolean ``(...)`` for ``theta (..., d)`` and ``loss (...)``."""
        out = torch.zeros(loss.shape, dtype=torch.bool)
        if self.radius is not None:
            center = self.center.to(theta.dtype).reshape(-1)
            out |= torch.linalg.vector_norm(theta - center, dim=-1) > self.radius
        if self.loss_below is not None:
            out |= loss <= self.loss_below
        return out


@dataclass
class Problem:
    """What the race needs; :func:`surface_problem` and :func:`network_problem` build these.

    ``loss`` may also carry a method ``loss.value_and_grad(params, batch)``: the loss and the gradient
    of every parameter without autograd (a list of tensors), equal to autograd's to float rounding, or
    None at a point where it cannot say (the race then runs autograd there). It belongs to that loss:
    a problem whose ``loss`` is replaced (e.g. by a wrapper) runs autograd on the new one.
    """

    name: str
    params0: dict[str, Tensor]
    loss: Callable[[dict[str, Tensor], object], Tensor]
    batch: Callable[[int], object] | None = None
    exact_hessian: bool = False
    project_2d: Callable[[Tensor], Tensor] | None = None
    bound: float | None = None
    escape: EscapeCriterion | None = None
    converge_tol: float | None = None


# ---------------------------------------------------------------------------------------------
# adapters (duck-typed: deo never imports landscapes)


def nearest_saddle(surface, point: Sequence[float]):
    """The stationary point of kind "saddle"/"degenerate" nearest to ``point`` (None if none)."""
    saddles = [s for s in surface.stationary_points if s.kind in SADDLE_KINDS]
    if not saddles:
        return None
    return min(saddles, key=lambda s: math.dist(s.xy, point))


def surface_minima(surface) -> list[tuple[float, float]]:
    """Positions of the surface's listed minima (the basins of :func:`deo.escapes.escape_map`)."""
    return [tuple(s.xy) for s in surface.stationary_points if s.kind == "min"]


def surface_escape(surface, point: Sequence[float]) -> EscapeCriterion | None:
    """The escape criterion near ``point``: centred on the nearest saddle, ``loss_below`` from the
    surface's own ``escape_loss`` when it sets one, else the default rule of the module docstring;
    None when the surface lists no saddle."""
    saddle = nearest_saddle(surface, point)
    if saddle is None:
        return None
    center = torch.tensor(saddle.xy, dtype=torch.float64)
    if getattr(surface, "escape_loss", None) is not None:
        return EscapeCriterion(center=center, loss_below=float(surface.escape_loss))
    lower = [s for s in surface.stationary_points if s.kind == "min" and s.value < saddle.value]
    if lower:
        nearest = min(lower, key=lambda s: math.dist(s.xy, saddle.xy))
        loss_below = saddle.value - LOWER_MINIMUM_FRACTION * (saddle.value - nearest.value)
    else:
        loss_below = saddle.value - UNBOUNDED_ESCAPE_DROP
    return EscapeCriterion(center=center, loss_below=loss_below)


def surface_bound(surface) -> float:
    """``‖θ‖_∞`` beyond which a run on this surface counts as diverged (10× the window)."""
    return SURFACE_BOUND_FACTOR * max(abs(v) for pair in surface.bounds for v in pair)


def _unstable_direction(surface, saddle) -> Tensor:
    """Unit eigenvector of the saddle's most negative Hessian eigenvalue, oriented so that its largest
    component is positive (x²−y²: +y); the y axis if λ_min ≥ 0."""
    lam, v = exact_min_eig(surface.f, torch.tensor(saddle.xy, dtype=torch.float64))
    if float(lam) >= 0:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    v = v.to(torch.float64)
    return -v if float(v[v.abs().argmax()]) < 0 else v


def identity_projection(theta: Tensor) -> Tensor:
    """A surface's ``project_2d``: θ is already (x, y) (the race records θ itself, no call per row)."""
    return theta


def surface_problem(surface, start: Sequence[float], offset: float | None = None) -> Problem:
    """A race problem on a 2-D surface (duck-typed ``landscapes.Surface``: f, bounds, stationary_points).

    ``start`` (x, y) in float64. ``offset``, when given, sets the start's distance from the nearest
    saddle's stable manifold: the component of ``start − saddle`` along the saddle's unstable
    eigenvector v (most negative Hessian eigenvalue; the y axis for a saddle without negative
    curvature, e.g. the monkey saddle) is replaced by ``offset``. So ``(1, 0.5)`` with
    ``offset=1e-3`` on x²−y² starts at ``(1, 1e-3)``. Exact Hessian on; escape criterion from
    :func:`surface_escape`; bound from :func:`surface_bound`.
    """
    if len(start) != 2:
        raise ValueError(f"a surface start must be (x, y), got {start!r}")
    xy = torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64)
    saddle = nearest_saddle(surface, xy.tolist())
    if offset is not None:
        if saddle is None:
            raise ValueError(f"offset needs a saddle to measure from; surface {surface.key!r} lists none")
        center = torch.tensor(saddle.xy, dtype=torch.float64)
        v = _unstable_direction(surface, saddle)
        xy = xy - torch.dot(xy - center, v) * v + float(offset) * v
    return Problem(
        name=getattr(surface, "key", "surface"),
        params0={"xy": xy},
        loss=_SurfaceLoss(surface, xy),
        exact_hessian=True,
        project_2d=identity_projection,
        bound=surface_bound(surface),
        escape=surface_escape(surface, xy.tolist()),
        converge_tol=SURFACE_CONVERGE_TOL,
    )


class _SurfaceLoss:
    """A surface problem's loss ``f(params["xy"])``, with the surface's own f and ∇f at one point when
    it has them (``surface.value_and_grad(x, y)`` → Python floats or None, e.g. ``landscapes.Surface``'s
    tape of floats) as ``value_and_grad`` (see :class:`Problem`), for a float64 CPU θ of
    shape (2,). Without them, or when f uses an operation they do not cover (a TypeError at
    the start), ``value_and_grad`` is None."""

    def __init__(self, surface, xy: Tensor):
        self.f = surface.f
        self.point = getattr(surface, "value_and_grad", None)
        if self.point is not None:
            try:
                self.point(*xy.tolist())
            except TypeError:
                self.point = None
        if self.point is None:
            self.value_and_grad = None

    def __call__(self, params: dict[str, Tensor], batch) -> Tensor:
        return self.f(params["xy"])

    def value_and_grad(self, params: dict[str, Tensor], batch) -> tuple[Tensor, list[Tensor]] | None:
        theta = params["xy"]
        if theta.dtype != torch.float64 or not theta.is_cpu or theta.shape != (2,):
            return None
        out = self.point(*theta.tolist())
        if out is None:
            return None
        f, dx, dy = out
        return torch.from_numpy(np.array(f)), [torch.from_numpy(np.array((dx, dy)))]


def network_escape_level(net) -> float | None:
    """The loss at or below which a run on the network has left its plateau: its ``escape_loss``,
    else ``NETWORK_ESCAPE_FRACTION`` × its ``plateau``; None (no escape criterion) without either."""
    level = getattr(net, "escape_loss", None)
    plateau = getattr(net, "plateau", None)
    if level is None and plateau is not None:
        level = NETWORK_ESCAPE_FRACTION * float(plateau)
    return None if level is None else float(level)


def network_problem(net, init_scale: float | None = None, seed: int = 0) -> Problem:
    """A race problem from a small network (duck-typed ``landscapes.NetworkProblem``).

    Reads ``key``, ``params0(init_scale, seed)``, ``loss(params, batch)``, ``batch(step)``,
    ``plateau`` and (optional) ``escape_loss``. Escaped when the loss is ≤ ``escape_loss`` (the
    problem's own "left the plateau" level, e.g. MSE < 0.25 on two_moons), else ≤ ½ plateau;
    centred on the origin (the saddle of small inits); no criterion without a plateau. Exact Hessian
    when d ≤ 128. ``project_2d`` is left None: the caller sets it (e.g. from
    ``landscapes.project_onto_plane``) for a 2-D view.
    """
    params0 = {k: v.detach().clone() for k, v in net.params0(init_scale=init_scale, seed=seed).items()}
    d = sum(p.numel() for p in params0.values())
    dtype = next(iter(params0.values())).dtype
    level = network_escape_level(net)
    escape = None
    if level is not None:
        escape = EscapeCriterion(center=torch.zeros(d, dtype=dtype), loss_below=float(level))
    return Problem(
        name=net.key,
        params0=params0,
        loss=net.loss,
        batch=net.batch,
        exact_hessian=d <= EXACT_HESSIAN_MAX_PARAMS,
        escape=escape,
    )
