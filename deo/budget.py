"""Compute budgets: the cost of a race, an escape map or a ``min_mode`` call, estimated before it runs.

Every entry point that can be asked for unbounded work (``deo.race.race``, ``deo.race.escape_map``,
the CLI, the app's pages) estimates the work first, in **gradient evaluations**, and refuses a
request above a limit with a :class:`BudgetError` (a ``ValueError``) whose message names the limit
and says what to lower. The estimate is the algorithm's own count (``DEO.md``: one gradient per step,
plus ``(rotations + 1)·c`` per rotation event, c = 2 for central differences), not a timing: it is
exact for GD/Adam/DEO and an upper bound for PGD and the published dimer.

Limits (module constants; a caller may pass a tighter ``limit``):

- ``MAX_STEPS`` = 1 000 000 steps per run; ``MAX_ROTATIONS`` = 100 rotation iterations per event;
  ``MAX_STARTS`` = 250 000 starts in one escape map (a 500×500 grid).
- ``MAX_RACE_GRAD_EVALS`` = 20 000 000 gradient evaluations per race (all optimizers together).
- ``MAX_RACE_RECORDED_VALUES`` = 100 000 000 recorded numbers per race (≈ 0.8 GB of float64: rows
  × the recorded vectors' length; ``race(steps=10**9)`` would keep terabytes).
- ``MAX_MAP_GRAD_EVALS`` = 2 000 000 000 row-gradient evaluations per escape map (starts × steps ×
  evaluations per step, all optimizers together; ≈ 1.3 µs each for a 2-D surface on one core).
- ``MAX_MIN_MODE_GRAD_EVALS`` = 100 000 000 row-gradient evaluations per ``min_mode`` call.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from deo.presets import PRESETS

MAX_STEPS = 1_000_000
MAX_ROTATIONS = 100
MAX_STARTS = 250_000
MAX_RACE_GRAD_EVALS = 20_000_000
MAX_RACE_RECORDED_VALUES = 100_000_000
MAX_MAP_GRAD_EVALS = 2_000_000_000
MAX_MIN_MODE_GRAD_EVALS = 100_000_000

RECORDED_VECTORS = 4  # θ, g, g_mod, N per recorded row (deo.race keeps them up to VECTOR_MAX_DIM)
RECORDED_SCALARS = 16  # loss, norms, curvature, torque, counters, 2-D projection, ...


class BudgetError(ValueError):
    """A request above a compute limit; the message names the limit and what to lower."""


def _count(value: Any, name: str, limit: int, minimum: int = 0, hint: str = "", limit_name: str = "") -> int:
    """``value`` as an int in [minimum, limit], else a ValueError / BudgetError naming the limit."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not math.isfinite(float(value)) or value > limit:
        where = f" (deo.budget.{limit_name})" if limit_name else ""
        raise BudgetError(f"{name} = {value!r} is above the limit of {limit:,}{where}{hint}")
    if not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _interval(value: Any) -> float:
    """An event interval (rotate_every, t_thres, ...) as a float >= 1 (1 when not a usable number:
    the optimizer itself refuses it; the estimate stays an upper bound)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and value >= 1 else 1.0


def _rotation_events(key: str, hp: Mapping[str, Any]) -> tuple[int, float]:
    """A DEO preset's (``rotate_every``, gradient evaluations per rotation event
    ``(rotations + 1)·c``, c = 2 for ``scheme="central"``). Raises :class:`BudgetError` for
    ``rotations`` above ``MAX_ROTATIONS``."""
    rotations = hp["rotations"]
    if isinstance(rotations, float) and rotations.is_integer():
        rotations = int(rotations)
    rotations = _count(
        rotations,
        f"rotations ({key})",
        MAX_ROTATIONS,
        0,  # 0: each event only re-probes the curvature along N, as DEO allows
        ": lower the rotations per event",
        "MAX_ROTATIONS",
    )
    c = 2.0 if hp.get("scheme") == "central" else 1.0
    return _interval(hp.get("rotate_every", 1)), (rotations + 1) * c


def _resolved(key: str, hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    preset = PRESETS.get(key)
    return {**(preset.defaults if preset is not None else {}), **(hyperparams or {})}


def evals_per_step(key: str, hyperparams: Mapping[str, Any] | None = None) -> float:
    """Gradient evaluations one step of preset ``key`` costs on average (``DEO.md``).

    GD, momentum, Adam, AdamW: 1. PGD: at most 1 + 1/t_thres (a kick re-evaluates). DEO presets:
    ``1 + (rotations + 1)·c/rotate_every`` (c = 2 for ``scheme="central"``). The published dimer:
    at most ``1 + 3/rotation_interval``. Raises :class:`BudgetError` for ``rotations`` above
    ``MAX_ROTATIONS``.
    """
    hp = _resolved(key, hyperparams)
    if "rotations" in hp:
        every, per_event = _rotation_events(key, hp)
        return 1.0 + per_event / every
    if "rotation_interval" in hp:
        every = _interval(hp["rotation_interval"])
        return 1.0 + 3.0 / every
    if "t_thres" in hp:
        every = _interval(hp["t_thres"])
        return 1.0 + 1.0 / every
    return 1.0


def run_cost(key: str, hyperparams: Mapping[str, Any] | None, steps: int) -> float:
    """Gradient evaluations of one run of ``steps`` steps: a DEO preset's events come at steps 0, k,
    2k, …: ``steps + ⌈steps/k⌉·(rotations + 1)·c`` (exact; ``steps`` × :func:`evals_per_step`
    undercounted a last, partial period: deo_paper, 15 steps, 19 for 20); the others ``steps`` ×
    :func:`evals_per_step`."""
    hp = _resolved(key, hyperparams)
    if "rotations" in hp:
        every, per_event = _rotation_events(key, hp)
        return steps + math.ceil(steps / every) * per_event
    return steps * evals_per_step(key, hyperparams)


def _spec_parts(spec: Any) -> tuple[str, Mapping[str, Any]]:
    return getattr(spec, "key", str(spec)), getattr(spec, "hyperparams", None) or {}


def race_cost(optimizers: Sequence[Any], steps: int) -> float:
    """Gradient evaluations of ``race(problem, optimizers, steps)``: Σ over optimizers of
    :func:`run_cost` plus one final evaluation each."""
    return sum(run_cost(*_spec_parts(s), steps) + 1 for s in optimizers)


def escape_map_cost(optimizers: Sequence[Any], steps: int, starts: int) -> float:
    """Row-gradient evaluations of an escape map: starts × :func:`race_cost`."""
    return starts * race_cost(optimizers, steps)


def min_mode_cost(
    max_iterations: int, rows: int = 1, scheme: str = "forward", rotation: str = "lanczos"
) -> float:
    """Row-gradient evaluations of ``min_mode`` run to ``max_iterations`` (``deo.dimer.min_mode``'s
    own count): forward, every rotation: ``2 + max_iterations`` (the gradient at x, the first
    end, one per iteration); central: ``2 + 2·max_iterations`` for lanczos (no gradient at x is
    needed), ``3 + 2·max_iterations`` for fourier and sd; times ``rows``."""
    if scheme == "central":
        per_call = (2 if rotation == "lanczos" else 3) + 2 * max_iterations
    else:
        per_call = 2 + max_iterations
    return rows * per_call


def _refuse(cost: float, limit: float, unit: str, lower: str, limit_name: str, default: float) -> None:
    if cost > limit:
        where = f"deo.budget.{limit_name}" if limit == default else "this request's budget"
        raise BudgetError(
            f"this run would cost about {cost:,.0f} {unit}, above the limit of {limit:,.0f} "
            f"({where}): lower {lower}"
        )


def check_race(
    optimizers: Sequence[Any],
    steps: Any,
    dim: int = 2,
    record_every: int = 1,
    limit: float = MAX_RACE_GRAD_EVALS,
) -> float:
    """Refuse a race above the limits (steps, rotations, gradient evaluations, recorded values) with
    a :class:`BudgetError` naming the limit; return its cost in gradient evaluations.

    ``dim`` is the number of parameters (recorded vectors are kept up to
    ``deo.race.VECTOR_MAX_DIM``; pass the recorded length), ``record_every`` the recording stride.
    """
    steps = _count(steps, "steps", MAX_STEPS, 0, ": lower the steps", "MAX_STEPS")
    every = max(1, int(record_every)) if isinstance(record_every, numbers.Real) and record_every >= 1 else 1
    cost = race_cost(optimizers, steps)
    lower = "the steps, the number of optimizers or their rotations"
    _refuse(cost, limit, "gradient evaluations", lower, "MAX_RACE_GRAD_EVALS", MAX_RACE_GRAD_EVALS)
    rows = (steps // every + 2) * max(1, len(optimizers))
    values = rows * (RECORDED_VECTORS * max(0, int(dim)) + RECORDED_SCALARS)
    if values > MAX_RACE_RECORDED_VALUES:
        raise BudgetError(
            f"this race would record about {values:,} numbers, above the limit of "
            f"{MAX_RACE_RECORDED_VALUES:,} (deo.budget.MAX_RACE_RECORDED_VALUES): lower the steps or "
            "raise record_every"
        )
    return cost


def check_escape_map(
    optimizers: Sequence[Any], steps: Any, starts: Any, limit: float = MAX_MAP_GRAD_EVALS
) -> float:
    """Refuse an escape map above the limits (steps, starts, rotations, row-gradient evaluations)
    with a :class:`BudgetError` naming the limit; return its cost in row-gradient evaluations."""
    steps = _count(steps, "steps", MAX_STEPS, 0, ": lower the steps", "MAX_STEPS")
    starts = _count(starts, "the number of starts", MAX_STARTS, 0, ": use a coarser grid", "MAX_STARTS")
    cost = escape_map_cost(optimizers, steps, starts)
    lower = "the grid, the steps, the optimizers or their rotations"
    _refuse(cost, limit, "row-gradient evaluations", lower, "MAX_MAP_GRAD_EVALS", MAX_MAP_GRAD_EVALS)
    return cost


def check_min_mode(
    max_iterations: Any,
    rows: int = 1,
    scheme: str = "forward",
    limit: float = MAX_MIN_MODE_GRAD_EVALS,
    rotation: str = "lanczos",
) -> float:
    """Refuse a ``min_mode`` call above ``limit`` row-gradient evaluations; return its cost."""
    iterations = _count(max_iterations, "max_iterations", int(limit), 0, ": lower max_iterations")
    cost = min_mode_cost(iterations, rows, scheme, rotation)
    lower = "max_iterations or the number of rows"
    _refuse(
        cost, limit, "row-gradient evaluations", lower, "MAX_MIN_MODE_GRAD_EVALS", MAX_MIN_MODE_GRAD_EVALS
    )
    return cost
