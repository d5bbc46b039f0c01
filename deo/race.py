"""The race: several optimizers on one problem, same start, seed, batches, budget and clipping.

:func:`race` runs each optimizer (a preset of :mod:`deo.presets` with overrides) from the same
cloned start and returns one :class:`~deo.trace.Trace` per optimizer. The problems it runs on are in
:mod:`deo.problems`, the entrants (spec, clipping, gradient count) in :mod:`deo.entrants`, the
batched escape map over many starts in :mod:`deo.escapes`; their public names are re-exported here.

Fairness. Before each optimizer is built, ``torch.manual_seed(seed)`` is called and ``seed`` is
passed to the preset's :meth:`~deo.presets.Preset.build` (dimer's initial N, PGD's noise); the parameters are
clones of ``problem.params0``; step t uses ``problem.batch(t)`` for every optimizer (and both dimer
ends see that same batch, because they are evaluated by the same closure).

Status of a run: "diverged" (non-finite loss or ``‖θ‖_∞ > bound``: the run stops, ``stop_step`` is
that step, the trace keeps the finite rows before it), "converged" (``‖g_t‖ < converge_tol`` once the
run has escaped, or at any time when the problem has no escape criterion: the run stops), else
"escaped" when the criterion was met, else "running" (the budget ended first). A run that escaped
and later left the bound (x²−y² is unbounded below) is "diverged" with its ``escape_step`` kept.

Gradient clipping (``clip``): on the update only, never on a dimer probe (:mod:`deo.entrants`).
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
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deo.budget import check_race
from deo.entrants import (  # noqa: F401  (re-exported: deo.race.OptimizerSpec, ...)
    OptimizerSpec,
    ProgressFn,
    _algorithm_evals,
    _clip_grads_,
    _clip_update,
    _flat,
    _label,
    _optimizer_setup,
)
from deo.escapes import (  # noqa: F401  (re-exported: deo.race.escape_map, ...)
    BASIN_TOL,
    EscapeResult,
    SurfaceEscapeMap,
    escape_map,
    escape_map_to_csv,
    grid_axes,
    grid_starts,
    map_escape,
    surface_escape_map,
)
from deo.hessian import exact_min_eig
from deo.problems import (  # noqa: F401  (re-exported: deo.race.Problem, deo.race.surface_problem, ...)
    EXACT_HESSIAN_MAX_PARAMS,
    LOWER_MINIMUM_FRACTION,
    NETWORK_ESCAPE_FRACTION,
    SADDLE_KINDS,
    SURFACE_BOUND_FACTOR,
    SURFACE_CONVERGE_TOL,
    UNBOUNDED_ESCAPE_DROP,
    EscapeCriterion,
    Problem,
    nearest_saddle,
    network_problem,
    surface_bound,
    surface_escape,
    surface_minima,
    surface_problem,
)
from deo.trace import Trace

VECTOR_MAX_DIM = 4096  # record position / gradients / directions only up to this d


@dataclass
class _Row:
    """One recorded row of a run; ``lam``, ``v`` and ``cos`` are filled after the run."""

    step: int
    loss: float
    theta: Tensor | None  # kept for d ≤ VECTOR_MAX_DIM or when the exact Hessian is due
    position_2d: np.ndarray | None
    grad: np.ndarray | None
    grad_norm: float
    modified_grad: np.ndarray | None
    modified_grad_norm: float
    direction: np.ndarray | None
    grad_evals: int
    curvature: float
    torque: float
    removed_fraction: float
    diagnostic_evals: int = 0
    batch: object = None  # the problem's batch at this step (rows sharing one share an exact Hessian)
    lam: float = math.nan
    v: np.ndarray | None = None
    cos: float = math.nan


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
            _clip_grads_(self.leaves, self.clip)
        if self.first is None:
            self.first = (float(loss.detach()), raw, _flat([p.grad for p in self.leaves]).clone())
        return loss


def _flat_loss_fn(problem: Problem, shapes: list[tuple[str, torch.Size]], batch) -> Callable:
    sizes = [math.prod(s) for _, s in shapes]

    def f(theta: Tensor) -> Tensor:
        parts = torch.split(theta, sizes)
        return problem.loss({n: p.reshape(s) for (n, s), p in zip(shapes, parts)}, batch)

    return f


def _exact_min_eigs(problem: Problem, shapes, rows: list[_Row], chunk: int = 256) -> None:
    """Fill ``lam``, ``v`` (sign kept continuous) and ``cos`` of the recorded rows.

    Rows sharing a batch object are solved together, ``chunk`` at a time (one vmapped exact
    Hessian, :func:`deo.hessian.exact_min_eig`); without ``problem.exact_hessian`` they stay NaN.
    """
    for row in rows:
        row.lam, row.v, row.cos = math.nan, None, math.nan
    if not problem.exact_hessian or not rows:
        return
    start = 0
    while start < len(rows):
        batch = rows[start].batch
        stop = start + 1
        while stop < len(rows) and stop - start < chunk and rows[stop].batch is batch:
            stop += 1
        thetas = torch.stack([r.theta for r in rows[start:stop]]).to(torch.float64)
        lam, v = exact_min_eig(_flat_loss_fn(problem, shapes, batch), thetas)
        for row, lam_i, v_i in zip(rows[start:stop], lam.tolist(), v.detach().numpy()):
            row.lam, row.v = lam_i, v_i
        start = stop
    previous: dict[str, np.ndarray] = {}
    for row in rows:
        row.v = _continuous(previous, "v", row.v)
        if row.direction is not None:
            row.cos = _cos(row.direction, row.v)


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
    preset, shown = _optimizer_setup(spec, clip, seed)
    t0 = time.perf_counter()
    shapes = [(name, p.shape) for name, p in problem.params0.items()]
    leaves = [p.detach().clone().requires_grad_(True) for p in problem.params0.values()]
    d = sum(p.numel() for p in leaves)
    torch.manual_seed(seed)
    opt = preset.build(leaves, seed=seed, **spec.hyperparams)
    if preset.uses_dimer:
        _clip_update(opt, clip)  # DEO's own max_grad_norm on g_mod; the closure never clips a probe
    recorder = _Recorder(problem, leaves, None if preset.uses_dimer else clip)
    rows: list[_Row] = []
    counters = {"diagnostic_evals": 0}
    continuity: dict[str, np.ndarray] = {}
    status, stop_step, escape_step = "running", None, None
    dimer_state: dict = {}

    def make_row(t, theta, loss, raw, modified, evals, state) -> _Row:
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
        if problem.exact_hessian:
            counters["diagnostic_evals"] += 1
        return _Row(
            step=t,
            loss=loss,
            theta=theta if small or problem.exact_hessian else None,
            position_2d=projected,
            grad=g if small else None,
            grad_norm=float(np.linalg.norm(g)),
            modified_grad=gm if small else None,
            modified_grad_norm=float(np.linalg.norm(gm)),
            direction=direction if small else None,
            grad_evals=evals,
            curvature=state.get("curvature", math.nan),
            torque=state.get("torque", math.nan),
            removed_fraction=state.get("removed_fraction", math.nan),
            diagnostic_evals=counters["diagnostic_evals"],
            batch=recorder.batch if problem.exact_hessian else None,
        )

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
                modified = diagnostics.get("modified_grad")  # what the base optimizer received
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
        return np.array([getattr(r, name) for r in rows], dtype=np.float64)

    def vecs(name):
        if not small or n == 0 or any(getattr(r, name) is None for r in rows):
            return None
        return np.stack([getattr(r, name) for r in rows])

    positions = None
    if small and n:
        positions = np.stack([r.theta.to(torch.float64).numpy() for r in rows])
    position_2d = np.stack([r.position_2d for r in rows]) if problem.project_2d is not None and n else None
    return Trace(
        key=spec.key,
        label=spec.label or preset.label,
        hyperparams=shown,
        status=status,
        stop_step=stop_step,
        escape_step=escape_step,
        steps=np.array([r.step for r in rows], dtype=np.int64),
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
        grad_evals=np.array([r.grad_evals for r in rows], dtype=np.int64),
        diagnostic_evals=np.array([r.diagnostic_evals for r in rows], dtype=np.int64),
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
