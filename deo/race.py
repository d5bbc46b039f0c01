"""The race: several optimizers on one problem, same start, seed, batches, budget and clipping.

:func:`race` runs each optimizer (a preset of :mod:`deo.presets` with overrides) from the same
cloned start and returns one :class:`~deo.trace.Trace` per optimizer. :func:`escape_map` runs every
optimizer from B starting points of a 2-D surface at once (``batch_dims=1``) and reports, per start,
the steps and gradient evaluations to escape, the final point and the basin reached.

Fairness. Before each optimizer is built, ``torch.manual_seed(seed)`` is called and ``seed`` is
passed to :func:`deo.presets.make_optimizer` (dimer's initial N, PGD's noise); the parameters are
clones of ``problem.params0``; step t uses ``problem.batch(t)`` for every optimizer (and both dimer
ends see that same batch, because they are evaluated by the same closure).

Escape criterion (``DEO.md``): row t has escaped when ``‖θ_t − center‖ > radius`` or
``L(θ_t) ≤ loss_below`` (either one given; "≤" as in DEO.md's "f ≤ −1"). Defaults for a surface
(:func:`surface_escape`): centred on the nearest saddle (kind "saddle" or "degenerate") to the start;
``loss_below`` is the surface's own ``escape_loss`` when it sets one, else ``f_saddle − 1`` when no
listed minimum lies below the saddle (unbounded below: x²−y², monkey saddle, x²+y³), else
``f_saddle − 0.9·(f_saddle − f_min)`` with f_min the value of the nearest such minimum (so
``f ≤ −0.9`` on x²−y²+y⁴/4 and ``f ≤ 0.1`` on the double well's saddle).

Status of a run: "diverged" (non-finite loss or ``‖θ‖_∞ > bound``: the run stops, ``stop_step`` is
that step, the trace keeps the finite rows before it), "converged" (``‖g_t‖ < converge_tol`` once the
run has escaped, or at any time when the problem has no escape criterion: the run stops), else
"escaped" when the criterion was met, else "running" (the budget ended first). A run that escaped
and later left the bound (x²−y² is unbounded below) is "diverged" with its ``escape_step`` kept.

Gradient clipping (``clip``, a maximum global norm ``‖g‖ ≤ clip``, per row when batched) acts on the
*update* only, never on a dimer probe:

* presets without a dimer (GD, momentum, Adam, AdamW, PGD): the closure rescales ``p.grad`` after
  every backward, so the optimizer only ever sees clipped gradients;
* DEO presets: the closure never clips (the dimer ends must be raw gradients, ``DEO.md``). DEO
  writes g_mod into ``p.grad`` and calls its base optimizer's ``step``; the race wraps that one
  bound method of the DEO instance (``opt.base.step``) to clip g_mod just before the base step.
  The same wrapper records what the base optimizer received (the trace's ``modified_grad``);
* the published-code reproduction has no separate base optimizer: ``clip`` is refused for it.

Every trace shows ``clip`` and ``seed`` in its hyperparams.

Gradient evaluations: the optimizer's own ``diagnostics()["grad_evals"]`` where it keeps one (DEO:
``T + E·(rotations + 1)·c`` after T steps with E rotation events; PGD counts its re-evaluation
after a kick), else closure calls (one per step). Ground-truth work is counted separately in
``diagnostic_evals``: one exact Hessian per recorded row (batched after the run) and the one
gradient that records the final row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from deo.trace import Trace, jsonable

VECTOR_MAX_DIM = 4096  # record position / gradients / directions only up to this d
EXACT_HESSIAN_MAX_PARAMS = 128  # networks: exact Hessian each recorded row up to this d
SURFACE_BOUND_FACTOR = 10.0  # a surface run diverges beyond 10× the window's largest |coordinate|
SURFACE_CONVERGE_TOL = 1e-6
UNBOUNDED_ESCAPE_DROP = 1.0  # loss_below = f_saddle − 1 without a lower minimum
LOWER_MINIMUM_FRACTION = 0.9  # loss_below = f_saddle − 0.9 (f_saddle − f_min)
NETWORK_ESCAPE_FRACTION = 0.5  # networks without their own escape_loss: escaped when L ≤ ½ plateau
SADDLE_KINDS = ("saddle", "degenerate")

ProgressFn = Callable[[float, str], None]


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
    """What the race needs; :func:`surface_problem` and :func:`network_problem` build these."""

    name: str
    params0: dict[str, Tensor]
    loss: Callable[[dict[str, Tensor], object], Tensor]
    batch: Callable[[int], object] | None = None
    exact_hessian: bool = False
    project_2d: Callable[[Tensor], Tensor] | None = None
    bound: float | None = None
    escape: EscapeCriterion | None = None
    converge_tol: float | None = None


@dataclass
class OptimizerSpec:
    """A preset key, overrides of its defaults, and an optional display label."""

    key: str
    hyperparams: dict = field(default_factory=dict)
    label: str | None = None


@dataclass
class EscapeResult:
    """Per start (B rows) of one optimizer in :func:`escape_map`."""

    key: str
    label: str
    hyperparams: dict
    steps_to_escape: np.ndarray  # (B,) float, NaN = never within the budget
    grad_evals_to_escape: np.ndarray  # (B,) float, NaN = never
    final: np.ndarray  # (B, 2) last finite point
    basin: np.ndarray  # (B,) int index into minima, −1 = none
    diverged: np.ndarray  # (B,) bool
    wall_time: float

    def to_dict(self) -> dict:
        """JSON-able (NaN → None)."""
        return {
            "key": self.key,
            "label": self.label,
            "hyperparams": self.hyperparams,
            "steps_to_escape": _nan_to_none(self.steps_to_escape),
            "grad_evals_to_escape": _nan_to_none(self.grad_evals_to_escape),
            "final": self.final.tolist(),
            "basin": self.basin.tolist(),
            "diverged": self.diverged.tolist(),
            "wall_time": self.wall_time,
        }


def _nan_to_none(a: np.ndarray) -> list:
    return [None if math.isnan(v) else v for v in a.tolist()]


# ---------------------------------------------------------------------------------------------
# adapters (duck-typed: deo never imports landscapes)


def nearest_saddle(surface, point: Sequence[float]):
    """The stationary point of kind "saddle"/"degenerate" nearest to ``point`` (None if none)."""
    saddles = [s for s in surface.stationary_points if s.kind in SADDLE_KINDS]
    if not saddles:
        return None
    return min(saddles, key=lambda s: math.dist(s.xy, point))


def surface_minima(surface) -> list[tuple[float, float]]:
    """Positions of the surface's listed minima (the basins of :func:`escape_map`)."""
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


def map_escape(surface) -> EscapeCriterion:
    """The escape criterion of an escape map over the whole window: :func:`surface_escape` at the
    window centre; for a surface that lists no saddle (a user formula), ``f ≤ f(c) − 1`` around the
    window centre c (x²−y² typed as a formula gets the same criterion as the catalogue's saddle)."""
    (x0, x1), (y0, y1) = surface.bounds
    centre = (0.5 * (x0 + x1), 0.5 * (y0 + y1))
    criterion = surface_escape(surface, centre)
    if criterion is not None:
        return criterion
    c = torch.tensor(centre, dtype=torch.float64)
    value = float(surface.f(c))
    if not math.isfinite(value):  # f undefined at the centre (log(x), 1/x): the nearest finite grid point
        grid = torch.as_tensor(grid_starts(surface.bounds, 21))
        values = surface.f(grid)
        distance = torch.where(torch.isfinite(values), torch.linalg.vector_norm(grid - c, dim=1), math.inf)
        if not bool(torch.isfinite(distance).any()):
            raise ValueError(
                "f is not finite anywhere on a 21×21 grid of the window: there is nothing to map"
            )
        c = grid[distance.argmin()]
        value = float(values[distance.argmin()])
    return EscapeCriterion(center=c, loss_below=value - UNBOUNDED_ESCAPE_DROP)


def grid_starts(bounds, n: int) -> np.ndarray:
    """An n×n grid of starts at the cell centres of the window ``((xmin, xmax), (ymin, ymax))``,
    shape ``(n·n, 2)``, y outer and x inner: ``starts.reshape(n, n, 2)[j, i] = (x_i, y_j)``, so a
    per-start result reshaped to ``(n, n)`` is a contour ``z`` with rows along y."""
    if not 1 <= n <= 1000:
        raise ValueError(f"grid size must be between 1 and 1000, got {n}")
    (x0, x1), (y0, y1) = bounds
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def surface_bound(surface) -> float:
    """``‖θ‖_∞`` beyond which a run on this surface counts as diverged (10× the window)."""
    return SURFACE_BOUND_FACTOR * max(abs(v) for pair in surface.bounds for v in pair)


def _unstable_direction(surface, saddle) -> Tensor:
    """Unit eigenvector of the saddle's most negative Hessian eigenvalue, oriented so that its largest
    component is positive (x²−y²: +y); the y axis if λ_min ≥ 0."""
    from deo.hessian import exact_min_eig

    lam, v = exact_min_eig(surface.f, torch.tensor(saddle.xy, dtype=torch.float64))
    if float(lam) >= 0:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    v = v.to(torch.float64)
    return -v if float(v[v.abs().argmax()]) < 0 else v


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
    f = surface.f
    return Problem(
        name=getattr(surface, "key", "surface"),
        params0={"xy": xy},
        loss=lambda params, batch: f(params["xy"]),
        exact_hessian=True,
        project_2d=lambda theta: theta,
        bound=surface_bound(surface),
        escape=surface_escape(surface, xy.tolist()),
        converge_tol=SURFACE_CONVERGE_TOL,
    )


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
    plateau = getattr(net, "plateau", None)
    level = getattr(net, "escape_loss", None)
    if level is None and plateau is not None:
        level = NETWORK_ESCAPE_FRACTION * float(plateau)
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


# ---------------------------------------------------------------------------------------------
# the race


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _clip_(grads: list[Tensor], max_norm: float, batch_dims: int = 0) -> None:
    """Rescale gradients in place to a global norm ≤ ``max_norm`` (per row of dim 0 when batched)."""
    if batch_dims == 0:
        total = torch.sqrt(sum((g.to(torch.float64) ** 2).sum() for g in grads))
        scale = torch.clamp(max_norm / torch.clamp(total, min=torch.finfo(torch.float64).tiny), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
        return
    rows = grads[0].shape[0]
    total = torch.sqrt(sum((g.reshape(rows, -1).to(torch.float64) ** 2).sum(1) for g in grads))
    scale = torch.clamp(max_norm / torch.clamp(total, min=torch.finfo(torch.float64).tiny), max=1.0)
    for g in grads:
        g.mul_(scale.reshape(rows, *([1] * (g.dim() - 1))).to(g.dtype))


def _label(spec: OptimizerSpec) -> str:
    """The display label: the spec's own, else the preset's (the key when unknown)."""
    from deo.presets import PRESETS

    return spec.label or (PRESETS[spec.key].label if spec.key in PRESETS else spec.key)


def _optimizer_setup(spec: OptimizerSpec, clip: float | None, seed: int):
    """(preset, hyperparams shown in the trace: preset defaults, overrides, clip and seed)."""
    from deo.presets import PRESETS

    if spec.key not in PRESETS:
        raise ValueError(f"unknown optimizer {spec.key!r}; allowed: {sorted(PRESETS)}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (a maximum gradient norm) or None, got {clip}")
    preset = PRESETS[spec.key]
    shown = jsonable({**preset.defaults, **spec.hyperparams, "clip": clip, "seed": seed})
    return preset, shown


class _BaseStepTap:
    """Sees (and clips) what a dimer optimizer's base optimizer receives.

    DEO writes g_mod into ``p.grad`` and calls ``opt.base.step()``; the dimer ends were evaluated
    before, from raw gradients. Wrapping that one call clips the *update* only and records the
    gradient the base optimizer really received (g_mod, or g for ``target="update"``).
    """

    def __init__(self, opt, clip: float | None, batch_dims: int):
        self.received: Tensor | None = None
        if not isinstance(getattr(opt, "base", None), torch.optim.Optimizer):
            if clip is not None:
                raise ValueError(
                    f"clip is not supported for {type(opt).__name__}: it has no base optimizer to clip "
                    "the update before, and clipping in the closure would clip the dimer ends"
                )
            return
        base = opt.base
        inner = base.step

        def step(*args, **kwargs):
            grads = [p.grad for group in base.param_groups for p in group["params"] if p.grad is not None]
            if clip is not None:
                _clip_(grads, clip, batch_dims)
            if batch_dims == 0:
                self.received = _flat(grads).clone()
            return inner(*args, **kwargs)

        base.step = step


def _algorithm_evals(opt, closure_calls: int) -> int:
    """The algorithm's gradient evaluations so far: the optimizer's own ``diagnostics()["grad_evals"]``
    where it keeps one (DEO, PGD, the published dimer, whose forward-only calls are not gradients),
    else the closure calls (torch's optimizers: one per step)."""
    if hasattr(opt, "diagnostics"):
        return int(opt.diagnostics()["grad_evals"])
    return closure_calls


class _Diverged(Exception):
    """Raised by the race closure when the loss at θ_t is not finite (the run stops there)."""


class _Recorder:
    """The closure handed to ``opt.step``: counts calls, records the first call of each step.

    The first call of step t is at θ_t (every optimizer evaluates g_t before moving or probing):
    its loss, raw gradient and clipped gradient are kept. ``clip`` (non-dimer presets only) rescales
    the gradient of every call (PGD's re-evaluation after a kick included).
    """

    def __init__(self, problem: Problem, leaves: list[Tensor], clip: float | None):
        self.problem, self.leaves, self.clip = problem, leaves, clip
        self.names = list(problem.params0)
        self.calls = 0
        self.batch = None
        self.first: tuple[float, Tensor, Tensor] | None = None

    def start_step(self, step: int) -> None:
        self.batch = self.problem.batch(step) if self.problem.batch is not None else None
        self.first = None

    def evaluate(self) -> tuple[float, Tensor]:
        """Loss and raw flat gradient at the current parameters (not counted as the algorithm's)."""
        params = dict(zip(self.names, self.leaves))
        with torch.enable_grad():
            loss = self.problem.loss(params, self.batch)
            grads = torch.autograd.grad(loss, self.leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.leaves)]
        return float(loss.detach()), _flat(grads)

    def __call__(self) -> Tensor:
        for p in self.leaves:
            p.grad = None
        loss = self.problem.loss(dict(zip(self.names, self.leaves)), self.batch)
        if self.first is None and not math.isfinite(float(loss.detach())):
            raise _Diverged
        loss.backward()
        self.calls += 1
        for p in self.leaves:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        raw = _flat([p.grad for p in self.leaves]).clone() if self.first is None else None
        if raw is not None and not bool(torch.isfinite((raw * raw).sum())):
            raise _Diverged  # f finite but ∇f (or ‖∇f‖²) not at θ_t (sqrt(y) at y = 0): the run stops
        if self.clip is not None:
            _clip_([p.grad for p in self.leaves], self.clip)
        if self.first is None:
            self.first = (float(loss.detach()), raw, _flat([p.grad for p in self.leaves]).clone())
        return loss


def _flat_loss_fn(problem: Problem, shapes: list[tuple[str, torch.Size]], batch) -> Callable:
    sizes = [math.prod(s) for _, s in shapes]

    def f(theta: Tensor) -> Tensor:
        parts = torch.split(theta, sizes)
        return problem.loss({n: p.reshape(s) for (n, s), p in zip(shapes, parts)}, batch)

    return f


def _exact_min_eigs(problem: Problem, shapes, rows: list[dict], chunk: int = 256) -> None:
    """Fill ``lam``, ``v`` (sign kept continuous) and ``cos`` of the recorded rows.

    Rows sharing a batch object are solved together, ``chunk`` at a time (one vmapped exact
    Hessian, :func:`deo.hessian.exact_min_eig`); without ``problem.exact_hessian`` they stay NaN.
    """
    from deo.hessian import exact_min_eig

    for row in rows:
        row["lam"], row["v"], row["cos"] = math.nan, None, math.nan
    if not problem.exact_hessian or not rows:
        return
    start = 0
    while start < len(rows):
        batch = rows[start]["batch"]
        stop = start + 1
        while stop < len(rows) and stop - start < chunk and rows[stop]["batch"] is batch:
            stop += 1
        thetas = torch.stack([r["theta"] for r in rows[start:stop]]).to(torch.float64)
        lam, v = exact_min_eig(_flat_loss_fn(problem, shapes, batch), thetas)
        for row, lam_i, v_i in zip(rows[start:stop], lam.tolist(), v.detach().numpy()):
            row["lam"], row["v"] = lam_i, v_i
        start = stop
    previous: dict[str, np.ndarray] = {}
    for row in rows:
        row["v"] = _continuous(previous, "v", row["v"])
        if row["direction"] is not None:
            row["cos"] = _cos(row["direction"], row["v"])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(abs(a @ b) / (na * nb)) if na > 0 and nb > 0 else math.nan


def _run_one(
    problem: Problem,
    spec: OptimizerSpec,
    steps: int,
    seed: int,
    clip: float | None,
    record_every: int,
    report: Callable[[int], None],
    stop_on_escape: bool = False,
) -> Trace:
    from deo.presets import make_optimizer

    preset, shown = _optimizer_setup(spec, clip, seed)
    t0 = time.perf_counter()
    shapes = [(name, p.shape) for name, p in problem.params0.items()]
    leaves = [p.detach().clone().requires_grad_(True) for p in problem.params0.values()]
    d = sum(p.numel() for p in leaves)
    torch.manual_seed(seed)
    opt = make_optimizer(spec.key, leaves, seed=seed, **spec.hyperparams)
    tap = _BaseStepTap(opt, clip, batch_dims=0) if preset.uses_dimer else None
    recorder = _Recorder(problem, leaves, None if preset.uses_dimer else clip)
    rows: list[dict] = []
    counters = {"diagnostic_evals": 0}
    continuity: dict[str, np.ndarray] = {}
    status, stop_step, escape_step = "running", None, None
    dimer_state: dict = {}

    def make_row(t, theta, loss, raw, modified, evals, state) -> dict:
        """One recorded row; the exact Hessian (a diagnostic evaluation) only for recorded rows.

        Vectors (θ, g, g_mod, N) are kept only for d ≤ VECTOR_MAX_DIM (θ also when the exact Hessian
        is due), so a long race on a large network holds scalars and 2-D projections only.
        """
        g = raw.to(torch.float64).numpy()
        gm = modified.to(torch.float64).numpy() if modified is not None else np.full(d, np.nan)
        direction = _continuous(continuity, "direction", state.get("direction"))
        small = d <= VECTOR_MAX_DIM
        projected = None
        if problem.project_2d is not None:
            projected = problem.project_2d(theta).detach().to(torch.float64).numpy()
        row = {
            "step": t,
            "loss": loss,
            "theta": theta if small or problem.exact_hessian else None,
            "position_2d": projected,
            "grad": g if small else None,
            "grad_norm": float(np.linalg.norm(g)),
            "modified_grad": gm if small else None,
            "modified_grad_norm": float(np.linalg.norm(gm)),
            "direction": direction if small else None,
            "grad_evals": evals,
        }
        for name in ("curvature", "torque", "removed_fraction"):
            row[name] = state.get(name, math.nan)
        if problem.exact_hessian:
            counters["diagnostic_evals"] += 1
            row["batch"] = recorder.batch
        row["diagnostic_evals"] = counters["diagnostic_evals"]
        return row

    # Per-step checks on a float64 numpy copy of θ: a handful of torch calls on a (d,) tensor cost
    # more than the 2-D surface's own step (same arithmetic, same float64 results).
    escape = problem.escape
    center = None
    if escape is not None and escape.radius is not None:
        center = escape.center.detach().to(torch.float64).reshape(-1).numpy()

    def in_bounds(theta64: np.ndarray) -> bool:
        if not np.isfinite(theta64).all():
            return False
        return problem.bound is None or float(np.abs(theta64).max()) <= problem.bound

    def escaped(theta64: np.ndarray, loss: float) -> bool:
        """``problem.escape.met`` for one row, in numpy (the same float64 comparisons)."""
        if escape is None:
            return False
        if center is not None and float(np.sqrt(np.sum((theta64 - center) ** 2))) > escape.radius:
            return True
        return escape.loss_below is not None and loss <= escape.loss_below

    pending: tuple | None = None
    evals = 0
    for t in range(steps + 1):
        theta = leaves[0].detach().reshape(-1).clone() if len(leaves) == 1 else _flat(leaves).clone()
        theta64 = theta.to(torch.float64).numpy()
        evals_before = evals
        recorder.start_step(t)
        if not in_bounds(theta64):
            status, stop_step = "diverged", t
            break
        if t < steps:
            try:
                opt.step(recorder)
            except _Diverged:
                status, stop_step = "diverged", t
                break
            loss, raw, modified = recorder.first
            diagnostics = opt.diagnostics() if hasattr(opt, "diagnostics") else None
            evals = recorder.calls if diagnostics is None else int(diagnostics["grad_evals"])
            if preset.uses_dimer:
                dimer_state = _dimer_fields(diagnostics)
                modified = tap.received
        else:
            loss, raw = recorder.evaluate()
            counters["diagnostic_evals"] += 1
            modified = None
            if not math.isfinite(loss):
                status, stop_step = "diverged", t
                break
        newly_escaped = escape_step is None and escaped(theta64, loss)
        if newly_escaped:
            escape_step = t
        converged = (
            problem.converge_tol is not None
            and float(raw.norm()) < problem.converge_tol
            and (problem.escape is None or escape_step is not None)
        )
        args = (t, theta, loss, raw, modified, evals_before, dict(dimer_state))
        last = t == steps or converged or (stop_on_escape and escape_step is not None)
        if t % record_every == 0 or last or newly_escaped:
            rows.append(make_row(*args))
            pending = None
        else:
            pending = args
        if converged:
            status = "converged"
            break
        if stop_on_escape and escape_step is not None:
            break
        report(t)
    if pending is not None:
        rows.append(make_row(*pending))
    if status == "running" and escape_step is not None:
        status = "escaped"
    _exact_min_eigs(problem, shapes, rows)
    return _trace_from_rows(
        spec, preset, shown, status, stop_step, escape_step, rows, problem, d,
        dimer_state.get("dimer_length"), time.perf_counter() - t0,
    )  # fmt: skip


def _continuous(previous: dict[str, np.ndarray], name: str, v: np.ndarray | None) -> np.ndarray | None:
    """Flip ``v`` when ``v·v_prev < 0`` (N and −N are the same mode; keeps the display continuous)."""
    if v is None:
        return None
    if name in previous and v @ previous[name] < 0:
        v = -v
    previous[name] = v
    return v


def _dimer_fields(diag: dict) -> dict:
    """The per-step dimer quantities of ``opt.diagnostics()`` as numpy / floats."""
    out = {}
    direction = diag.get("direction")
    if direction is not None:
        out["direction"] = torch.as_tensor(direction).detach().reshape(-1).to(torch.float64).numpy().copy()
    for name in ("curvature", "torque", "removed_fraction"):
        if diag.get(name) is not None:
            out[name] = float(diag[name])
    if diag.get("dimer_length") is not None:
        out["dimer_length"] = float(diag["dimer_length"])
    return out


def _trace_from_rows(
    spec, preset, shown, status, stop_step, escape_step, rows, problem, d, dimer_length, wall_time
) -> Trace:
    n = len(rows)
    small = d <= VECTOR_MAX_DIM

    def col(name):
        return np.array([r[name] for r in rows], dtype=np.float64)

    def vecs(name):
        if not small or n == 0 or any(r[name] is None for r in rows):
            return None
        return np.stack([r[name] for r in rows])

    positions = None
    if small and n:
        positions = np.stack([r["theta"].to(torch.float64).numpy() for r in rows])
    position_2d = np.stack([r["position_2d"] for r in rows]) if problem.project_2d is not None and n else None
    return Trace(
        key=spec.key,
        label=spec.label or preset.label,
        hyperparams=shown,
        status=status,
        stop_step=stop_step,
        escape_step=escape_step,
        steps=np.array([r["step"] for r in rows], dtype=np.int64),
        loss=col("loss"),
        position=positions,
        position_2d=position_2d,
        grad=vecs("grad"),
        modified_grad=vecs("modified_grad"),
        grad_norm=col("grad_norm"),
        modified_grad_norm=col("modified_grad_norm"),
        removed_fraction=col("removed_fraction"),
        direction=vecs("direction"),
        dimer_length=dimer_length,
        curvature=col("curvature"),
        torque=col("torque"),
        exact_lambda_min=col("lam"),
        exact_v_min=vecs("v"),
        cos_to_vmin=col("cos"),
        grad_evals=np.array([r["grad_evals"] for r in rows], dtype=np.int64),
        diagnostic_evals=np.array([r["diagnostic_evals"] for r in rows], dtype=np.int64),
        wall_time=wall_time,
    )


def race(
    problem: Problem,
    optimizers: Sequence[OptimizerSpec],
    steps: int,
    seed: int = 0,
    clip: float | None = None,
    record_every: int = 1,
    progress: ProgressFn | None = None,
    stop_on_escape: bool = False,
) -> list[Trace]:
    """Run every optimizer on ``problem`` for ``steps`` updates; one Trace each, in order.

    Rows are recorded every ``record_every`` steps, plus the escape step's row and the final (or last
    finite) row, so ``grad_evals`` at ``escape_step`` is always in the trace. ``progress``
    (optional) is called as ``progress(fraction, message)`` with fraction in [0, 1].
    ``stop_on_escape``: end each run at its escape step (its last row), for benchmarks that only
    need the escape time.
    """
    from deo.budget import check_race  # compute budget: refuse above deo.budget's limits, naming them

    recorded_dim = min(sum(p.numel() for p in problem.params0.values()), VECTOR_MAX_DIM)
    check_race(optimizers, steps, recorded_dim, record_every)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if not optimizers:
        raise ValueError("race needs at least one optimizer")
    traces = []
    every = max(1, steps // 100)
    for i, spec in enumerate(optimizers):
        name = _label(spec)

        def report(t: int, i: int = i, name: str = name) -> None:
            if progress is not None and t % every == 0:
                progress((i + t / max(steps, 1)) / len(optimizers), f"{name}: step {t}/{steps}")

        traces.append(_run_one(problem, spec, steps, seed, clip, record_every, report, stop_on_escape))
    if progress is not None:
        progress(1.0, "done")
    return traces


# ---------------------------------------------------------------------------------------------
# many starts at once

BASIN_TOL = 0.1


def _basins(final: Tensor, minima: Sequence[Sequence[float]], tol: float) -> np.ndarray:
    """Index of the nearest listed minimum within ``tol`` of each final point, −1 for none."""
    if not minima:
        return np.full(final.shape[0], -1, dtype=np.int64)
    mins = torch.tensor([list(m) for m in minima], dtype=final.dtype)
    dist = torch.cdist(final, mins)
    nearest = dist.argmin(dim=1)
    close = dist.gather(1, nearest[:, None])[:, 0] <= tol
    return torch.where(close, nearest, torch.full_like(nearest, -1)).numpy().astype(np.int64)


def _escape_run(
    f: Callable[[Tensor], Tensor],
    starts: Tensor,
    spec: OptimizerSpec,
    steps: int,
    escape: EscapeCriterion,
    minima,
    clip: float | None,
    seed: int,
    bound: float | None,
    basin_tol: float,
    report: Callable[[int], None],
    stop_when_escaped: bool = False,
) -> EscapeResult:
    from deo.presets import make_optimizer

    preset, shown = _optimizer_setup(spec, clip, seed)
    t0 = time.perf_counter()
    theta = starts.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    opt = make_optimizer(spec.key, [theta], batch_dims=1, seed=seed, **spec.hyperparams)
    if preset.uses_dimer:
        _BaseStepTap(opt, clip, batch_dims=1)
    clip_in_closure = clip if not preset.uses_dimer else None
    calls = 0
    at_theta = False  # the next closure call is a step's first, at θ_t (not a dimer end or a re-evaluation)

    def closure() -> Tensor:
        # Rows where f or ∇f is not finite at θ_t (outside a formula's domain) are marked diverged and
        # frozen; they enter the sum as 0 with a zero gradient, so they cannot poison the other rows.
        nonlocal calls, at_theta, diverged
        theta.grad = None
        values = f(theta)
        loss = torch.where(diverged, torch.zeros_like(values), values).sum()
        loss.backward()
        if at_theta:
            at_theta = False
            bad = ~torch.isfinite(values.detach()) | ~torch.isfinite((theta.grad * theta.grad).sum(dim=1))
            diverged = diverged | bad
        if bool(diverged.any()):
            theta.grad = torch.where(diverged[:, None], torch.zeros_like(theta.grad), theta.grad)
        calls += 1
        if clip_in_closure is not None:
            _clip_([theta.grad], clip_in_closure, batch_dims=1)
        return loss

    n = starts.shape[0]
    steps_to_escape = torch.full((n,), math.nan, dtype=torch.float64)
    evals_to_escape = torch.full((n,), math.nan, dtype=torch.float64)
    diverged = torch.zeros(n, dtype=torch.bool)
    last_good = theta.detach().clone()
    for t in range(steps + 1):
        with torch.no_grad():
            current = theta.detach().clone()
            loss = f(current)
            bad = ~torch.isfinite(loss) | ~torch.isfinite(current).all(dim=1)
            if bound is not None:
                bad |= current.abs().amax(dim=1) > bound
            diverged |= bad
            good = ~diverged
            # torch.where, not boolean-mask assignment (an index_put on (B, 2) costs ~100× more)
            last_good = torch.where(good[:, None], current, last_good)
            if bool(diverged.any()):
                theta.copy_(last_good)
            hit = escape.met(current.to(torch.float64), loss.to(torch.float64)) & good
            hit &= steps_to_escape.isnan()
            steps_to_escape.masked_fill_(hit, float(t))
            evals_to_escape.masked_fill_(hit, float(_algorithm_evals(opt, calls)))
        if stop_when_escaped and not bool((steps_to_escape.isnan() & good).any()):
            break
        if t < steps:
            at_theta = True
            opt.step(closure)
        report(t)
    return EscapeResult(
        key=spec.key,
        label=spec.label or preset.label,
        hyperparams=shown,
        steps_to_escape=steps_to_escape.numpy(),
        grad_evals_to_escape=evals_to_escape.numpy(),
        final=last_good.to(torch.float64).numpy(),
        basin=np.where(diverged.numpy(), -1, _basins(last_good.to(torch.float64), minima, basin_tol)),
        diverged=diverged.numpy(),
        wall_time=time.perf_counter() - t0,
    )


def escape_map(
    f: Callable[[Tensor], Tensor],
    starts,
    optimizers: Sequence[OptimizerSpec],
    steps: int,
    escape: EscapeCriterion,
    minima: Sequence[Sequence[float]] = (),
    clip: float | None = None,
    seed: int = 0,
    bound: float | None = None,
    basin_tol: float = BASIN_TOL,
    progress: ProgressFn | None = None,
    stop_when_escaped: bool = False,
) -> dict[str, EscapeResult]:
    """Every optimizer from every start of ``starts (B, 2)`` at once, on the surface ``f``.

    ``f`` maps ``(..., 2) -> (...)``. One batched run (``batch_dims=1``) per optimizer: row b is an
    independent problem (the closure returns ``Σ_b f(θ_b)``, so row b's gradient is ∇f(θ_b)).
    Per start: the first step t whose θ_t meets ``escape`` (NaN if none within ``steps``), the
    algorithm gradient evaluations spent before it (closure calls; a batched call counts once, as
    it is one call per row), the last finite point, the basin (index of the nearest of ``minima``
    within ``basin_tol``, −1 none or diverged) and whether the row diverged (non-finite loss or
    ``‖θ‖_∞ > bound``; a diverged row is frozen at its last finite point). ``clip`` is a per-row
    maximum gradient norm. ``stop_when_escaped`` ends a run once every row has escaped or diverged
    (``final`` is then the point at that step; for benchmarks of escape times). Results are keyed by
    the display label (``spec.label``, else the preset's
    label, e.g. "GD"); labels must be distinct.
    """
    starts = torch.as_tensor(np.asarray(starts, dtype=np.float64))
    if starts.ndim != 2 or starts.shape[1] != 2:
        raise ValueError(f"starts must have shape (B, 2), got {tuple(starts.shape)}")
    from deo.budget import check_escape_map  # compute budget: refuse above deo.budget's limits

    check_escape_map(optimizers, steps, starts.shape[0])
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    names = [_label(spec) for spec in optimizers]
    if len(set(names)) != len(names):
        raise ValueError(f"optimizer labels must be distinct, got {names}; set OptimizerSpec.label")
    results = {}
    every = max(1, steps // 50)
    for i, (name, spec) in enumerate(zip(names, optimizers)):

        def report(t: int, i: int = i, name: str = name) -> None:
            if progress is not None and t % every == 0:
                progress((i + t / max(steps, 1)) / len(optimizers), f"{name}: step {t}/{steps}")

        results[name] = _escape_run(
            f, starts, spec, steps, escape, minima, clip, seed, bound, basin_tol, report, stop_when_escaped
        )
    if progress is not None:
        progress(1.0, "done")
    return results


def escape_map_to_csv(starts, results: dict[str, EscapeResult]) -> str:
    """Long format: one row per (optimizer, start): x0, y0, steps/evals to escape, final, basin."""
    starts = np.asarray(starts, dtype=np.float64)
    lines = ["optimizer,key,x0,y0,steps_to_escape,grad_evals_to_escape,final_x,final_y,basin,diverged"]
    for name, r in results.items():
        for b in range(starts.shape[0]):
            lines.append(
                ",".join(
                    [
                        name,
                        r.key,
                        repr(float(starts[b, 0])),
                        repr(float(starts[b, 1])),
                        repr(float(r.steps_to_escape[b])),
                        repr(float(r.grad_evals_to_escape[b])),
                        repr(float(r.final[b, 0])),
                        repr(float(r.final[b, 1])),
                        str(int(r.basin[b])),
                        str(bool(r.diverged[b])),
                    ]
                )
            )
    return "\n".join(lines) + "\n"
