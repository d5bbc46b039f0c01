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

Gradients: the closure runs ``problem.loss`` and ``backward``, except where the problem's loss has a
``value_and_grad`` (a surface: f and ∇f at one point on a tape of floats with autograd's formulas, no
graph; equal to autograd's to float rounding): its gradients are set as ``.grad`` directly, and
autograd answers only at points where it gives None (a non-finite value or slope).

Gradient clipping (``clip``): on the update only, never on a dimer probe (:mod:`deo.entrants`).
Every trace shows ``clip`` and ``seed`` in its hyperparams.

Gradient evaluations: the optimizer's own ``diagnostics()["grad_evals"]`` where it keeps one (DEO:
``T + E·(rotations + 1)·c`` after T steps with E rotation events; PGD counts its re-evaluation
after a kick), else closure calls (one per step). Ground-truth work is counted separately in
``diagnostic_evals``: one exact Hessian per recorded row (batched after the run) and the one
gradient that records the final row.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
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
    import_optimizer_internals,
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
    identity_projection,
    nearest_saddle,
    network_problem,
    surface_bound,
    surface_escape,
    surface_minima,
    surface_problem,
)
from deo.trace import Trace

VECTOR_MAX_DIM = 4096  # record position / gradients / directions only up to this d


@dataclass(slots=True)
class _Row:
    """One recorded row of a run; ``lam``, ``v`` and ``cos`` are filled after the run."""

    step: int
    loss: float
    theta: Tensor | np.ndarray | None  # kept for d ≤ VECTOR_MAX_DIM or when the exact Hessian is due
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
    its loss, raw gradient and clipped gradient are kept (``first``; without ``clip`` the clipped
    gradient is the raw one, the same tensor). ``clip`` (non-dimer presets only) rescales the
    gradient of every call (PGD's re-evaluation after a kick included).
    """

    def __init__(self, problem: Problem, leaves: list[Tensor], clip: float | None):
        self.problem, self.leaves, self.clip = problem, leaves, clip
        self.names = list(problem.params0)
        self.params = dict(zip(self.names, leaves))  # the same leaves every call (updated in place)
        self.calls = 0
        self.batch = None
        self.value_and_grad = getattr(problem.loss, "value_and_grad", None)
        self.first: tuple[float, Tensor, Tensor] | None = None

    def start_step(self, step: int) -> None:
        self.batch = self.problem.batch(step) if self.problem.batch is not None else None
        self.first = None

    def evaluate(self) -> tuple[float, Tensor]:
        """Loss and raw flat gradient at the current parameters (not counted as the algorithm's)."""
        known = self.value_and_grad(self.params, self.batch) if self.value_and_grad is not None else None
        if known is not None:
            return float(known[0]), _flat(known[1])
        with torch.enable_grad():
            loss = self.problem.loss(self.params, self.batch)
            grads = torch.autograd.grad(loss, self.leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.leaves)]
        return float(loss.detach()), _flat(grads)

    def _grad(self) -> Tensor:
        """The flat gradient of the leaves, a copy (one leaf: reshaped and cloned, no concatenation)."""
        leaves = self.leaves
        if len(leaves) == 1:
            return leaves[0].grad.detach().reshape(-1).clone()
        return _flat([p.grad for p in leaves])  # torch.cat: already a new tensor

    def __call__(self) -> Tensor:
        leaves = self.leaves
        first = self.first is None
        known = self.value_and_grad(self.params, self.batch) if self.value_and_grad is not None else None
        if known is not None:  # finite loss and gradients without autograd (a surface's tape)
            loss, grads = known
            for p, g in zip(leaves, grads):
                p.grad = g
        else:
            for p in leaves:
                p.grad = None
            loss = self.problem.loss(self.params, self.batch)
            if first and not math.isfinite(loss.item()):
                raise _Diverged
            loss.backward()
            for p in leaves:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        self.calls += 1
        if not first:
            if self.clip is not None:
                _clip_grads_(leaves, self.clip)
            return loss
        value = loss.item()
        if known is not None and len(grads) == 1 and grads[0].device.type == "cpu":
            raw = torch.from_numpy(grads[0].numpy().reshape(-1).copy())  # a fresh tensor's cheap clone
        else:
            raw = self._grad()
        if not _finite_square_sum(raw):
            raise _Diverged  # f finite but ∇f (or ‖∇f‖²) not at θ_t (sqrt(y) at y = 0): the run stops
        clipped = raw
        if self.clip is not None:
            _clip_grads_(leaves, self.clip)
            clipped = self._grad()
        self.first = (value, raw, clipped)
        return loss


def _finite_square_sum(g: Tensor) -> bool:
    """Whether ``(g·g)`` (the sum of squares, as ``(g * g).sum()``) is finite; for a small CPU vector
    as numpy's ``g.dot(g)`` (the same squares; only a sum within rounding of the overflow threshold
    could tell the two orders apart), fewer calls."""
    if g.device.type == "cpu" and g.numel() <= 16 and g.dtype in (torch.float64, torch.float32):
        a = g.numpy()
        return math.isfinite(float(a.dot(a)))
    return bool(torch.isfinite((g * g).sum()))


def _flat_loss_fn(problem: Problem, shapes: list[tuple[str, torch.Size]], batch) -> Callable:
    sizes = [math.prod(s) for _, s in shapes]

    def f(theta: Tensor) -> Tensor:
        parts = torch.split(theta, sizes)
        return problem.loss({n: p.reshape(s) for (n, s), p in zip(shapes, parts)}, batch)

    return f


def _exact_min_eigs(problem: Problem, shapes, runs: list[list[_Row]], chunk: int | None = None) -> None:
    """Fill ``lam``, ``v`` (sign kept continuous along each run) and ``cos`` of the recorded rows of
    every run.

    Rows sharing a batch object (every row of a surface race, all runs together) are solved together,
    ``chunk`` at a time (one vmapped exact Hessian, :func:`deo.hessian.exact_min_eig`; by default as
    many rows as hold 2²⁰ Hessian entries, at least 256); without ``problem.exact_hessian`` they stay
    NaN.
    """
    rows = [row for run in runs for row in run]
    for row in rows:
        row.lam, row.v, row.cos = math.nan, None, math.nan
    if not problem.exact_hessian or not rows:
        return
    if chunk is None:
        d = sum(math.prod(shape) for _, shape in shapes)
        chunk = max(256, (1 << 20) // max(d * d, 1))
    start = 0
    while start < len(rows):
        batch = rows[start].batch
        stop = start + 1
        while stop < len(rows) and stop - start < chunk and rows[stop].batch is batch:
            stop += 1
        thetas = torch.from_numpy(np.stack([_theta64(r.theta) for r in rows[start:stop]]))
        lam, v = exact_min_eig(_flat_loss_fn(problem, shapes, batch), thetas)
        for row, lam_i, v_i in zip(rows[start:stop], lam.tolist(), v.detach().numpy()):
            row.lam, row.v = lam_i, v_i
        start = stop
    for run in runs:
        previous: dict[str, np.ndarray] = {}
        for row in run:
            row.v = _continuous(previous, "v", row.v)
            if row.direction is not None:
                row.cos = _cos(row.direction, row.v)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = _norm(a), _norm(b)
    return float(abs(a @ b) / (na * nb)) if na > 0 and nb > 0 else math.nan


def _theta64(theta: Tensor | np.ndarray) -> np.ndarray:
    """A recorded θ as float64 numpy (rows keep a float64 numpy copy, or the tensor in its dtype)."""
    return theta if isinstance(theta, np.ndarray) else theta.to(torch.float64).numpy()


def _unhooked_step(opt) -> Callable:
    """``opt.step`` without ``torch.optim``'s per-call profiler wrapper (``record_function`` and the
    hook loops) when no step hook is registered, anywhere: the same update, less Python per step.
    Any hook (global or on ``opt``), or an optimizer whose step is not wrapped, keeps ``opt.step``."""
    from torch.optim import optimizer as torch_optimizer

    step = getattr(type(opt), "step", None)
    inner = getattr(step, "__wrapped__", None)
    hooks = (
        getattr(torch_optimizer, "_global_optimizer_pre_hooks", None),
        getattr(torch_optimizer, "_global_optimizer_post_hooks", None),
        getattr(opt, "_optimizer_step_pre_hooks", None),
        getattr(opt, "_optimizer_step_post_hooks", None),
    )
    if inner is None or not getattr(step, "hooked", False) or any(h is None or len(h) for h in hooks):
        return opt.step
    return lambda closure: inner(opt, closure)


@dataclass(slots=True)
class _Step:
    """What :meth:`_Run.steps` yields for step t: θ_t (``theta``: a tensor, or None when only the
    float64 numpy copy ``theta64`` is kept), the first call's loss and raw gradient (``g``, ``grad_norm``:
    as float64 numpy), what the base optimizer received (``modified``), the gradient count before the
    update, the dimer fields, and whether this step escaped first / converged / is the final evaluation."""

    t: int
    theta: Tensor | None
    theta64: np.ndarray
    loss: float
    raw: Tensor
    g: np.ndarray
    grad_norm: float
    modified: Tensor | None
    evals_before: int
    dimer_state: dict
    newly_escaped: bool
    converged: bool
    final: bool


class _Run:
    """One optimizer's run on ``problem``, step by step: the race's loop (θ checks, the update through
    the recording closure, gradient counts, escape, convergence) without its recording.

    :meth:`steps` yields one :class:`_Step` per step t = ``self.t`` … ``steps`` (the last one only
    evaluates) and sets ``status`` / ``stop_step`` / ``escape_step`` as the module docstring says.
    Resume hook: :meth:`state_dict` taken in ``steps(before=...)`` (the state at the top of step t)
    and :meth:`load_state_dict` on a fresh run continue it bit for bit (``deo.sweeps.run_cell``'s
    checkpoints).
    """

    def __init__(self, problem: Problem, spec: OptimizerSpec, steps: int, seed: int = 0,
                 clip: float | None = None, stop_on_escape: bool = False):  # fmt: skip
        self.problem, self.spec, self.steps_total, self.stop_on_escape = problem, spec, steps, stop_on_escape
        self.preset, self.shown = _optimizer_setup(spec, clip, seed)
        clip = self.shown["clip"]  # the clip applied (None for a preset that cannot clip)
        self.leaves = [p.detach().clone().requires_grad_(True) for p in problem.params0.values()]
        self.d = sum(p.numel() for p in self.leaves)
        torch.manual_seed(seed)
        self.opt = self.preset.build(self.leaves, seed=seed, **spec.hyperparams)
        if self.preset.uses_dimer:
            _clip_update(self.opt, clip)  # DEO's own max_grad_norm on g_mod; the closure never clips a probe
        self.recorder = _Recorder(problem, self.leaves, None if self.preset.uses_dimer else clip)
        self.t, self.evals = 0, 0
        self.status, self.stop_step, self.escape_step = "running", None, None
        self.dimer_state: dict = {}
        self.final_evals = 0  # 1 once the final row's gradient was evaluated (finite or not)

    def state_dict(self) -> dict:
        """The run between steps: parameters, optimizer state, closure calls, torch's RNG, counters (a
        snapshot: ``torch.optim``'s ``state_dict`` holds the live state tensors, so it is deep-copied)."""
        return {
            "leaves": [leaf.detach().clone() for leaf in self.leaves],
            "optimizer": copy.deepcopy(self.opt.state_dict()),
            "calls": self.recorder.calls,
            "rng": torch.get_rng_state(),
            "t": self.t,
            "evals": self.evals,
            "escape_step": self.escape_step,
            "dimer_state": dict(self.dimer_state),
        }

    def load_state_dict(self, saved: dict) -> None:
        """Continue from :meth:`state_dict` (on a run built with the same problem, spec, seed, clip)."""
        with torch.no_grad():
            for leaf, value in zip(self.leaves, saved["leaves"]):
                leaf.copy_(value)
        self.opt.load_state_dict(saved["optimizer"])
        self.recorder.calls = saved["calls"]
        torch.set_rng_state(saved["rng"])
        self.t, self.evals, self.escape_step = saved["t"], saved["evals"], saved["escape_step"]
        self.dimer_state = dict(saved.get("dimer_state", {}))

    def steps(self, before: Callable[[int], None] | None = None) -> Iterator[_Step]:
        problem, leaves, recorder, opt = self.problem, self.leaves, self.recorder, self.opt
        steps, d = self.steps_total, self.d
        step_fn = _unhooked_step(opt)
        has_diagnostics, uses_dimer = hasattr(opt, "diagnostics"), self.preset.uses_dimer
        # A single float64 CPU leaf (a surface): θ_t is kept as a float64 numpy copy, no torch clone.
        plain = len(leaves) == 1 and leaves[0].dtype == torch.float64 and leaves[0].device.type == "cpu"
        # Per-step checks on a float64 numpy copy of θ: a handful of torch calls on a (d,) tensor
        # cost more than the 2-D surface's own step (same arithmetic, same float64 results).
        escape = problem.escape
        center = None
        if escape is not None and escape.radius is not None:
            center = escape.center.detach().to(torch.float64).reshape(-1).numpy()
        bound, converge_tol = problem.bound, problem.converge_tol

        def in_bounds(theta64: np.ndarray) -> bool:
            if d <= 8:  # a few Python floats: the same comparisons, no numpy call per check
                values = theta64.tolist()
                if not all(map(math.isfinite, values)):
                    return False
                return bound is None or max(map(abs, values)) <= bound
            if not np.isfinite(theta64).all():
                return False
            return bound is None or float(np.abs(theta64).max()) <= bound

        def escaped(theta64: np.ndarray, loss: float) -> bool:
            """``problem.escape.met`` for one row, in numpy (the same float64 comparisons)."""
            if escape is None:
                return False
            if center is not None and float(np.sqrt(np.sum((theta64 - center) ** 2))) > escape.radius:
                return True
            return escape.loss_below is not None and loss <= escape.loss_below

        for t in range(self.t, steps + 1):
            self.t = t
            if before is not None:
                before(t)
            if plain:
                theta, theta64 = None, leaves[0].detach().numpy().reshape(-1).copy()
            else:
                theta = leaves[0].detach().reshape(-1).clone() if len(leaves) == 1 else _flat(leaves).clone()
                theta64 = theta.to(torch.float64).numpy()
            evals_before = self.evals
            recorder.start_step(t)
            if not in_bounds(theta64):
                self.status, self.stop_step = "diverged", t
                return
            if t < steps:
                try:
                    step_fn(recorder)
                except _Diverged:
                    self.status, self.stop_step = "diverged", t
                    return
                loss, raw, modified = recorder.first
                if has_diagnostics:
                    diagnostics = opt.diagnostics()
                    self.evals = int(diagnostics["grad_evals"])
                    if uses_dimer:
                        self.dimer_state = _dimer_fields(diagnostics)
                        modified = diagnostics.get("modified_grad")  # what the base optimizer received
                else:
                    self.evals = recorder.calls
            else:
                loss, raw = recorder.evaluate()
                self.final_evals += 1  # a ground-truth gradient (the final row's), not the algorithm's
                modified = None
                if not math.isfinite(loss):
                    self.status, self.stop_step = "diverged", t
                    return
            newly_escaped = self.escape_step is None and escaped(theta64, loss)
            if newly_escaped:
                self.escape_step = t
            g = raw.to(torch.float64).numpy()
            grad_norm = _norm(g)
            # ‖g‖ below the tolerance, by torch's norm as always; numpy's ‖g‖ (a few ulps apart)
            # rules out the common case (‖g‖ ≥ 2·tol) without the torch call
            converged = (
                converge_tol is not None
                and grad_norm < 2 * converge_tol
                and float(raw.norm()) < converge_tol
                and (escape is None or self.escape_step is not None)
            )
            yield _Step(t, theta, theta64, loss, raw, g, grad_norm, modified, evals_before,
                        self.dimer_state, newly_escaped, converged, t == steps)  # fmt: skip
            if converged:
                self.status = "converged"
                return
            if self.stop_on_escape and self.escape_step is not None:
                return

    def final_status(self) -> str:
        """``status`` after :meth:`steps` ended: "escaped" for a run that escaped and kept running."""
        return "escaped" if self.status == "running" and self.escape_step is not None else self.status


def _run_one(
    problem: Problem,
    spec: OptimizerSpec,
    steps: int,
    seed: int,
    clip: float | None,
    record_every: int,
    report: Callable[[int], None],
    stop_on_escape: bool = False,
) -> tuple[list[_Row], Callable[[float], Trace], float]:
    """One optimizer's run: its recorded rows (exact eigenpairs not yet filled), the function that
    makes its Trace once they are (given the run's wall time) and the seconds the run took."""
    t0 = time.perf_counter()
    run = _Run(problem, spec, steps, seed, clip, stop_on_escape)
    d, recorder = run.d, run.recorder
    rows: list[_Row] = []
    counters = {"diagnostic_evals": 0}
    continuity: dict[str, np.ndarray] = {}
    small = d <= VECTOR_MAX_DIM
    keep_theta = small or problem.exact_hessian
    leaf = run.leaves[0]
    plain = len(run.leaves) == 1 and leaf.dtype == torch.float64 and leaf.device.type == "cpu"
    project, identity_2d = problem.project_2d, problem.project_2d is identity_projection
    exact = problem.exact_hessian

    def make_row(s: _Step) -> _Row:
        """One recorded row; the exact Hessian (a diagnostic evaluation) only for recorded rows.

        Vectors (θ, g, g_mod, N) are kept only for d ≤ VECTOR_MAX_DIM (θ also when the exact Hessian
        is due), so a long race on a large network holds scalars and 2-D projections only.
        """
        g, grad_norm, modified, theta, state = s.g, s.grad_norm, s.modified, s.theta, s.dimer_state
        if modified is s.raw:
            gm, modified_norm = g, grad_norm
        else:
            gm = modified.to(torch.float64).numpy() if modified is not None else np.full(d, np.nan)
            modified_norm = _norm(gm)
        direction = _continuous(continuity, "direction", state.get("direction"))
        projected = None
        if identity_2d:
            projected = s.theta64
        elif project is not None:
            if theta is None:
                theta = torch.from_numpy(s.theta64)
            projected = project(theta).detach().to(torch.float64).numpy()
        if exact:
            counters["diagnostic_evals"] += 1
        return _Row(
            step=s.t,
            loss=s.loss,
            theta=(s.theta64 if plain else theta) if keep_theta else None,
            position_2d=projected,
            grad=g if small else None,
            grad_norm=grad_norm,
            modified_grad=gm if small else None,
            modified_grad_norm=modified_norm,
            direction=direction if small else None,
            grad_evals=s.evals_before,
            curvature=state.get("curvature", math.nan),
            torque=state.get("torque", math.nan),
            removed_fraction=state.get("removed_fraction", math.nan),
            diagnostic_evals=counters["diagnostic_evals"] + run.final_evals,
            batch=recorder.batch if exact else None,
        )

    pending: _Step | None = None
    for s in run.steps():
        stops = s.converged or (stop_on_escape and run.escape_step is not None)
        if s.t % record_every == 0 or s.final or stops or s.newly_escaped:
            rows.append(make_row(s))
            pending = None
        else:
            pending = s
        if not stops:
            report(s.t)
    if pending is not None:
        rows.append(make_row(pending))

    def trace(wall_time: float) -> Trace:
        return _trace_from_rows(
            spec, run.preset, run.shown, run.final_status(), run.stop_step, run.escape_step, rows, problem, d,
            run.dimer_state.get("dimer_length"), wall_time,
        )  # fmt: skip

    return rows, trace, time.perf_counter() - t0


def _norm(a: np.ndarray) -> float:
    """``float(np.linalg.norm(a))`` for a 1-D float64 array, without its checks (the same
    ``sqrt(a·a)``, bit for bit)."""
    return math.sqrt(float(a.dot(a)))


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
    if isinstance(direction, Tensor) and direction.dtype == torch.float64 and direction.device.type == "cpu":
        out["direction"] = direction.detach().numpy().reshape(-1).copy()
    elif direction is not None:
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
        positions = np.stack([_theta64(r.theta) for r in rows])
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
    import_optimizer_internals()
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if not optimizers:
        raise ValueError("race needs at least one optimizer")
    runs = []
    every = max(1, steps // 100)
    for i, spec in enumerate(optimizers):
        name = _label(spec)

        def report(t: int, i: int = i, name: str = name) -> None:
            if progress is not None and t % every == 0:
                progress((i + t / max(steps, 1)) / len(optimizers), f"{name}: step {t}/{steps}")

        runs.append(_run_one(problem, spec, steps, seed, clip, record_every, report, stop_on_escape))
    # the ground truth of every run's rows in one batched call; each trace's wall time gets its share
    t0 = time.perf_counter()
    shapes = [(key, p.shape) for key, p in problem.params0.items()]
    _exact_min_eigs(problem, shapes, [rows for rows, _, _ in runs])
    share = (time.perf_counter() - t0) / max(sum(len(rows) for rows, _, _ in runs), 1)
    traces = [trace(seconds + share * len(rows)) for rows, trace, seconds in runs]
    if progress is not None:
        progress(1.0, "done")
    return traces


class _CallableModule(types.ModuleType):
    """``deo.race`` is both this module and its function :func:`race`. Python binds the module on
    the package whenever ``deo.race`` is imported as a submodule (``from deo.race import …``), so the
    module calls :func:`race`: ``deo.race(problem, specs, steps)`` works either way."""

    def __call__(self, *args, **kwargs):
        return race(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
