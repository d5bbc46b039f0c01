"""deo.estimate: a request's cost before it runs = its gradient-evaluation count × a measured rate.

The count must be what the run actually spends: here the loss (or surface) is wrapped by a counter
of the calls that build a gradient, and a small race / escape map is run.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

import landscapes
from deo.escapes import surface_escape_map
from deo.estimate import (
    Estimate,
    calibrate_escape_map,
    calibrate_loss,
    calibrate_race,
    escape_map_estimate,
    format_seconds,
    race_estimate,
)
from deo.problems import network_problem, surface_problem
from deo.race import OptimizerSpec, race

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEYS = ("gd", "adam", "deo_paper", "deo_escape")  # 1, 1, 1 + 4/10 and 1 + 2 gradients per step
STEPS = 40


def test_race_estimate_counts_the_gradients_the_race_evaluates():
    problem = surface_problem(landscapes.SURFACES["saddle_plateau"], (0.1, 0.2))
    calls = [0]

    def loss(params, batch):
        out = problem.loss(params, batch)
        calls[0] += out.requires_grad  # a call that builds a gradient
        return out

    counted = dataclasses.replace(problem, loss=loss)
    specs = [OptimizerSpec(k) for k in KEYS]
    traces = race(counted, specs, STEPS, record_every=STEPS)
    estimate = race_estimate(specs, STEPS, seconds_per_eval=0.5)
    assert estimate.grad_evals == calls[0] == 41 + 41 + 49 + 121
    # the algorithm's own count per trace, plus the one gradient at the final row
    assert estimate.grad_evals == sum(int(t.grad_evals[-1]) + 1 for t in traces)
    assert estimate.seconds == pytest.approx(0.5 * calls[0])


class _Counting:
    """A surface whose ``f`` counts the rows of every call that builds a gradient."""

    def __init__(self, surface):
        self.surface, self.rows = surface, 0
        self.bounds, self.stationary_points = surface.bounds, surface.stationary_points

    def f(self, xy):
        self.rows += xy.shape[0] if xy.requires_grad else 0
        return self.surface.f(xy)


def test_escape_map_estimate_counts_the_row_gradients_plus_one_per_start_and_optimizer():
    surface = _Counting(landscapes.SURFACES["saddle_plateau"])
    specs = [OptimizerSpec(k) for k in KEYS]
    grid = 4
    surface_escape_map(surface, grid, specs, STEPS, window=((-1, 1), (-1, 1)))
    estimate = escape_map_estimate(specs, STEPS, grid * grid, seconds_per_row_eval=1e-6)
    assert estimate.unit == "row-gradient evaluations"
    # the map evaluates no final gradient: deo.budget's count (the race's) is one more per start and run
    assert surface.rows == grid * grid * (40 + 40 + 48 + 120)
    assert estimate.grad_evals == surface.rows + grid * grid * len(specs)


def test_calibrations_measure_a_positive_rate_that_grows_with_the_network():
    xor, transformer = (network_problem(landscapes.make_network(k)) for k in ("xor", "tiny_transformer"))
    small = calibrate_race(xor, steps=2, repeats=1)
    large = calibrate_race(transformer, steps=2, repeats=1)
    assert 0 < small < large < 10  # 9 parameters vs 12 992: a transformer's gradient costs more
    assert 0 < calibrate_loss(xor) < calibrate_loss(transformer) < large  # a forward pass is cheaper
    rate = calibrate_escape_map(landscapes.SURFACES["saddle_plateau"], 6, ((-1, 1), (-1, 1)), 2, 1)
    assert 0 < rate < 0.01 and math.isfinite(rate)


def test_the_estimate_reads_as_words():
    assert (
        Estimate(12_345, 0.001).describe() == "about 12,345 gradient evaluations, roughly 12 s on this server"
    )
    assert Estimate(100, 1e-4).describe().endswith("roughly < 1 s on this server")
    both = Estimate(643, 0.01).plus_loss_evals(961, 0.001)
    assert both.seconds == pytest.approx(6.43 + 0.961)
    assert (
        both.describe()
        == "about 643 gradient evaluations and 961 loss evaluations, roughly 7.4 s on this server"
    )
    assert Estimate(0, 0.01).plus_loss_evals(121, 0.1).describe().startswith("about 121 loss evaluations, ")
    assert format_seconds(300) == "5.0 min"
    assert format_seconds(3.2) == "3.2 s" and format_seconds(14.4) == "14 s"  # not "3 s" above 3 s
    assert format_seconds(math.nan) == "an unknown time"
