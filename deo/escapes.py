"""The batched escape map: every optimizer from B starting points of a 2-D surface at once.

:func:`escape_map` runs each optimizer once with ``batch_dims=1`` (row b an independent problem) and
reports per start the steps and gradient evaluations to escape, the final point and the basin
reached (:class:`EscapeResult`); :func:`escape_map_to_csv` writes them in long format.
:func:`surface_escape_map` is the one definition of a surface's map that the app's Escape map page
and ``python -m deo escape-map`` both call: an n×n grid of starts at the cell centres of a window
(:func:`grid_axes`, :func:`grid_starts`), the map's escape criterion (:func:`map_escape`), the
surface's minima as basins and its divergence bound.

(The module is ``deo.escapes``, not ``deo.escape_map``: a submodule of that name would replace the
function ``deo.escape_map`` on the package as soon as it is imported.)
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deo.budget import check_escape_map
from deo.entrants import (
    OptimizerSpec,
    ProgressFn,
    _algorithm_evals,
    _clip_grads_,
    _clip_update,
    _label,
    _optimizer_setup,
    import_optimizer_internals,
)
from deo.presets import make_optimizer
from deo.problems import UNBOUNDED_ESCAPE_DROP, EscapeCriterion, surface_bound, surface_escape, surface_minima

BASIN_TOL = 0.1
MAX_GRID = 1000  # grid_axes / grid_starts: at most 1000 × 1000 starts (deo.budget refuses earlier)


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


def map_escape(surface, window=None) -> EscapeCriterion:
    """The escape criterion of an escape map over ``window`` (default: the surface's ``bounds``):
    :func:`surface_escape` at the window centre (centred on the saddle nearest to it); for a surface
    that lists no saddle (a user formula), ``f ≤ f(c) − 1`` around the window centre c (x²−y² typed
    as a formula gets the same criterion as the catalogue's saddle)."""
    window = surface.bounds if window is None else window
    (x0, x1), (y0, y1) = window
    centre = (0.5 * (x0 + x1), 0.5 * (y0 + y1))
    criterion = surface_escape(surface, centre)
    if criterion is not None:
        return criterion
    c = torch.tensor(centre, dtype=torch.float64)
    value = float(surface.f(c))
    if not math.isfinite(value):  # f undefined at the centre (log(x), 1/x): the nearest finite grid point
        grid = torch.as_tensor(grid_starts(window, 21))
        values = surface.f(grid)
        distance = torch.where(torch.isfinite(values), torch.linalg.vector_norm(grid - c, dim=1), math.inf)
        if not bool(torch.isfinite(distance).any()):
            raise ValueError(
                "f is not finite anywhere on a 21×21 grid of the window: there is nothing to map"
            )
        c = grid[distance.argmin()]
        value = float(values[distance.argmin()])
    return EscapeCriterion(center=c, loss_below=value - UNBOUNDED_ESCAPE_DROP)


def grid_axes(window, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(xs (n,), ys (n,))``: the cell centres of an n×n grid over ``window`` ((xmin, xmax),
    (ymin, ymax)) — each start is the centre of the pixel it colours."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= MAX_GRID:
        raise ValueError(f"grid size must be an integer between 1 and {MAX_GRID}, got {n!r}")
    (x0, x1), (y0, y1) = window
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    return xs, ys


def grid_starts(bounds, n: int) -> np.ndarray:
    """An n×n grid of starts at the cell centres of the window ``((xmin, xmax), (ymin, ymax))``,
    shape ``(n·n, 2)``, y outer and x inner: ``starts.reshape(n, n, 2)[j, i] = (x_i, y_j)``, so a
    per-start result reshaped to ``(n, n)`` is a contour ``z`` with rows along y."""
    xs, ys = grid_axes(bounds, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


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
    preset, shown = _optimizer_setup(spec, clip, seed)
    clip = shown["clip"]  # the clip applied (None for a preset that cannot clip)
    t0 = time.perf_counter()
    theta = starts.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    opt = make_optimizer(spec.key, [theta], batch_dims=1, seed=seed, **spec.hyperparams)
    if preset.uses_dimer:
        _clip_update(opt, clip)  # DEO's own max_grad_norm, per row; the closure never clips a probe
    clip_in_closure = clip if not preset.uses_dimer else None
    calls = 0
    at_theta = False  # the next closure call is a step's first, at θ_t (not a dimer end or a re-evaluation)

    def closure() -> Tensor:
        # Rows where f or ∇f is not finite at θ_t (outside a formula's domain) are marked diverged and
        # frozen; they enter the sum as 0 with a zero gradient, so they cannot poison the other rows.
        # A row whose value is finite but so large that the sum over rows would overflow (no
        # ``bound`` on a run that blows up) counts as diverged too, before the sum is taken.
        nonlocal calls, at_theta, diverged
        theta.grad = None
        values = f(theta)
        if at_theta:
            v = values.detach()
            diverged = diverged | ~torch.isfinite(v) | (v.abs() > torch.finfo(v.dtype).max / (4 * v.numel()))
        loss = torch.where(diverged, torch.zeros_like(values), values).sum()
        loss.backward()
        if at_theta:
            at_theta = False
            diverged = diverged | ~torch.isfinite((theta.grad * theta.grad).sum(dim=1))
        if bool(diverged.any()):
            theta.grad = torch.where(diverged[:, None], torch.zeros_like(theta.grad), theta.grad)
        calls += 1
        if clip_in_closure is not None:
            _clip_grads_([theta], clip_in_closure, batch_dims=1)
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
    check_escape_map(optimizers, steps, starts.shape[0])
    import_optimizer_internals()
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


CSV_COLUMNS = (
    "optimizer", "key", "x0", "y0", "steps_to_escape", "grad_evals_to_escape",
    "final_x", "final_y", "basin", "diverged",
)  # fmt: skip


def escape_map_to_csv(starts, results: dict[str, EscapeResult]) -> str:
    """Long format: one row per (optimizer, start): x0, y0, steps/evals to escape, final, basin.

    RFC 4180 through the ``csv`` module: a label with a comma ("… random direction, re-drawn every
    …") is quoted, so every row has the header's ten fields."""
    starts = np.asarray(starts, dtype=np.float64)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, r in results.items():
        for b in range(starts.shape[0]):
            writer.writerow(
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
    return out.getvalue()


@dataclass
class SurfaceEscapeMap:
    """What :func:`surface_escape_map` computed: the grid, the settings it resolved and the results."""

    xs: np.ndarray  # (n,) cell centres along x
    ys: np.ndarray  # (n,) cell centres along y
    starts: np.ndarray  # (n·n, 2), y outer and x inner (grid_starts)
    window: tuple[tuple[float, float], tuple[float, float]]
    criterion: EscapeCriterion
    minima: list[tuple[float, float]]
    bound: float | None
    results: dict[str, EscapeResult]  # by display label, in the order of the optimizers


def surface_escape_map(
    surface,
    grid: int,
    optimizers: Sequence[OptimizerSpec],
    steps: int,
    window=None,
    criterion: EscapeCriterion | None = None,
    seed: int = 0,
    clip: float | None = None,
    bound: float | None = None,
    progress: ProgressFn | None = None,
    stop_when_escaped: bool = False,
) -> SurfaceEscapeMap:
    """The escape map of a 2-D surface: the one definition the app's Escape map page and
    ``python -m deo escape-map`` both use.

    ``surface`` is duck-typed (``f``, ``bounds``, ``stationary_points``). Starts: a ``grid``×``grid``
    grid at the cell centres of ``window`` (default ``surface.bounds``; :func:`grid_axes`), y outer
    and x inner. Escape criterion: ``criterion``, else :func:`map_escape` over the window (centred on
    the saddle nearest to the window's centre). Basins: the surface's listed minima
    (:func:`~deo.problems.surface_minima`). Divergence: ``‖θ‖_∞ > bound``, default
    :func:`~deo.problems.surface_bound`. The run itself is :func:`escape_map`.
    """
    window = surface.bounds if window is None else window
    (x0, x1), (y0, y1) = ((float(a), float(b)) for a, b in window)
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"window must be ((xmin, xmax), (ymin, ymax)) with min < max, got {window!r}")
    window = ((x0, x1), (y0, y1))
    xs, ys = grid_axes(window, grid)
    gx, gy = np.meshgrid(xs, ys)
    starts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    criterion = map_escape(surface, window) if criterion is None else criterion
    minima = surface_minima(surface)
    bound = surface_bound(surface) if bound is None else bound
    results = escape_map(
        surface.f,
        starts,
        optimizers,
        steps,
        criterion,
        minima=minima,
        clip=clip,
        seed=seed,
        bound=bound,
        progress=progress,
        stop_when_escaped=stop_when_escaped,
    )
    return SurfaceEscapeMap(xs, ys, starts, window, criterion, minima, bound, results)
