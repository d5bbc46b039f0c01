"""What a request will cost before it runs: the algorithm's gradient-evaluation count
(:mod:`deo.budget`) times a *measured* seconds-per-gradient-evaluation of that problem.

The count is exact for GD/Adam/DEO (an upper bound for PGD and the published dimer). The seconds
per evaluation are not a constant: :func:`calibrate_race` and :func:`calibrate_escape_map` time a
few GD steps of the same engine on the same problem (for an escape map: on the same number of
starts, since a batched evaluation's cost per row depends on the batch) and divide by the
gradient evaluations those steps spent. Work outside the gradient count (recording rows, the exact
Hessian of small networks, an optimizer's own arithmetic beyond GD's) is not in the figure, so the
time is a rough guide ("roughly X s"), not a promise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deo.budget import escape_map_cost, race_cost

CALIBRATION_STEPS = 3  # GD steps timed per calibration (after one untimed warm-up)
CALIBRATION_REPEATS = 2  # the fastest of at least this many timings (the least disturbed by other load)
CALIBRATION_MAX_REPEATS = 10  # ... and of more, up to this many, while they take under
CALIBRATION_TIME_S = 0.3  # this many seconds together


@dataclass(frozen=True)
class Estimate:
    """``grad_evals`` (gradient evaluations; row-gradient evaluations for an escape map) and the
    measured ``seconds_per_eval`` of the problem; ``seconds`` is their product."""

    grad_evals: float
    seconds_per_eval: float
    unit: str = "gradient evaluations"
    loss_evals: float = 0.0  # plain loss evaluations (no gradient), e.g. a loss slice's grid points
    seconds_per_loss_eval: float = 0.0

    @property
    def seconds(self) -> float:
        return self.grad_evals * self.seconds_per_eval + self.loss_evals * self.seconds_per_loss_eval

    def plus_loss_evals(self, count: float, seconds_per_loss_eval: float) -> Estimate:
        """This estimate and ``count`` more loss evaluations at the measured rate
        (:func:`calibrate_loss`)."""
        total = self.loss_evals + count
        rate = seconds_per_loss_eval if count else self.seconds_per_loss_eval
        return dataclasses.replace(self, loss_evals=total, seconds_per_loss_eval=rate)

    def describe(self) -> str:
        """``"about 12,300 gradient evaluations, roughly 4 s on this server"`` (with ``"and 961 loss
        evaluations"`` when there are some)."""
        parts = [f"{self.grad_evals:,.0f} {self.unit}"] if self.grad_evals else []
        if self.loss_evals:
            parts.append(f"{self.loss_evals:,.0f} loss evaluations")
        counts = " and ".join(parts) or f"0 {self.unit}"
        return f"about {counts}, roughly {format_seconds(self.seconds)} on this server"


def format_seconds(seconds: float) -> str:
    """A duration in words a person reads at a glance: "< 1 s", "3.2 s", "14 s", "2.5 min" (one
    decimal below 10 s: a request held for Run because it takes more than 3 s read "roughly 3 s")."""
    if not math.isfinite(seconds):
        return "an unknown time"
    if seconds < 1:
        return "< 1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def race_estimate(optimizers: Sequence[Any], steps: int, seconds_per_eval: float) -> Estimate:
    """The cost of ``deo.race.race(problem, optimizers, steps)``: :func:`deo.budget.race_cost`
    gradient evaluations × ``seconds_per_eval`` (from :func:`calibrate_race`)."""
    return Estimate(race_cost(optimizers, int(steps)), float(seconds_per_eval))


def escape_map_estimate(
    optimizers: Sequence[Any], steps: int, starts: int, seconds_per_row_eval: float
) -> Estimate:
    """The cost of an escape map: :func:`deo.budget.escape_map_cost` row-gradient evaluations ×
    ``seconds_per_row_eval`` (from :func:`calibrate_escape_map` on the same number of starts)."""
    cost = escape_map_cost(optimizers, int(steps), int(starts))
    return Estimate(cost, float(seconds_per_row_eval), "row-gradient evaluations")


def _fastest(run: Callable[[], None], repeats: int) -> float:
    """The fastest of at least ``repeats`` timings of ``run()``, and of more (up to
    ``CALIBRATION_MAX_REPEATS``) while they take less than ``CALIBRATION_TIME_S`` together: a cheap
    problem is timed often enough that a burst of load on a shared CPU does not set its rate."""
    run()  # warm-up: first-call costs (imports, allocator, autograd graph caches) are not the rate
    best, spent, count = math.inf, 0.0, 0
    while count < max(1, repeats) or (count < CALIBRATION_MAX_REPEATS and spent < CALIBRATION_TIME_S):
        t0 = time.perf_counter()
        run()
        elapsed = time.perf_counter() - t0
        best, spent, count = min(best, elapsed), spent + elapsed, count + 1
    return best


def calibrate_race(problem, steps: int = CALIBRATION_STEPS, repeats: int = CALIBRATION_REPEATS) -> float:
    """Seconds per gradient evaluation of ``problem`` in ``deo.race.race``: the fastest of
    ``repeats`` timings of a ``steps``-step GD race, divided by its gradient evaluations."""
    from deo.race import OptimizerSpec, race

    specs = [OptimizerSpec("gd")]
    problem = dataclasses.replace(problem, exact_hessian=False)  # the gradient rate, not the diagnostics
    seconds = _fastest(lambda: race(problem, specs, steps, record_every=max(1, steps)), repeats)
    return seconds / race_cost(specs, steps)


def calibrate_escape_map(
    surface, grid: int, window=None, steps: int = CALIBRATION_STEPS, repeats: int = CALIBRATION_REPEATS
) -> float:
    """Seconds per row-gradient evaluation of :func:`deo.escapes.surface_escape_map` on ``surface``
    (duck-typed) with a ``grid``×``grid`` grid of starts in ``window``: the fastest of ``repeats``
    timings of a ``steps``-step GD map, divided by its row-gradient evaluations."""
    from deo.escapes import surface_escape_map
    from deo.race import OptimizerSpec

    specs = [OptimizerSpec("gd")]
    seconds = _fastest(lambda: surface_escape_map(surface, grid, specs, steps, window=window), repeats)
    return seconds / escape_map_cost(specs, steps, grid * grid)


def calibrate_loss(problem, repeats: int = CALIBRATION_REPEATS) -> float:
    """Seconds per plain loss evaluation (no gradient) of ``problem`` at its start, on its first
    batch: the fastest of at least ``repeats`` timings (see :func:`calibrate_race`)."""
    import torch

    batch = problem.batch(0) if problem.batch is not None else None

    def run() -> None:
        with torch.no_grad():
            problem.loss(problem.params0, batch)

    return _fastest(run, repeats)
