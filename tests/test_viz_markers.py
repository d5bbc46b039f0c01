"""One marker table: a listed stationary point has the same symbol in the race figure, the dimer
figures and the escape maps (a minimum was a star in one and a circle in another)."""

from __future__ import annotations

import numpy as np

import landscapes
from deo.escapes import EscapeResult
from deo.race import OptimizerSpec, race, surface_problem
from deo.trace import Trace
from viz.dimer_figs import Marker, marker_traces
from viz.escape_figs import escape_maps_figure
from viz.palette import STATIONARY_SYMBOLS
from viz.surface_figs import race_figure

KIND_NAMES = {"min": "minima", "saddle": "saddles", "max": "maxima", "degenerate": "degenerate points"}


def test_every_figure_draws_a_kind_of_stationary_point_with_one_symbol():
    surface = landscapes.SURFACES["himmelblau"]  # minima, saddles and a maximum
    traces: list[Trace] = race(surface_problem(surface, surface.starts[0]), [OptimizerSpec("gd")], 5)
    in_race = {
        t.name: t.marker.symbol for t in race_figure(surface, traces).data if t.name in STATIONARY_SYMBOLS
    }
    assert set(in_race) == {"min", "saddle", "max"}
    markers = [Marker(p.xy, p.kind, p.kind) for p in surface.stationary_points]
    in_dimer = {t.name: t.marker.symbol for t in marker_traces(markers)}
    for kind, symbol in in_race.items():
        assert symbol == STATIONARY_SYMBOLS[kind] == in_dimer[KIND_NAMES[kind]]
    assert in_dimer["minima"] == "star"

    results = {"GD": _one_result()}
    minima = [p.xy for p in surface.stationary_points if p.kind == "min"]
    fig = escape_maps_figure(
        np.array([2.5, 3.5]), np.array([1.5, 2.5]), results, saddle=(3.0, 2.0), minima=minima
    )
    in_map = {t.name: t.marker.symbol for t in fig.data if t.name in ("saddle", "minima")}
    assert in_map == {"saddle": STATIONARY_SYMBOLS["saddle"], "minima": STATIONARY_SYMBOLS["min"]}


def _one_result() -> EscapeResult:
    return EscapeResult(
        key="gd",
        label="GD",
        hyperparams={},
        steps_to_escape=np.array([1.0, 2.0, np.nan, 4.0]),
        grad_evals_to_escape=np.array([1.0, 2.0, np.nan, 4.0]),
        final=np.zeros((4, 2)),
        basin=np.array([0, 0, -1, 0]),
        diverged=np.zeros(4, dtype=bool),
        wall_time=0.0,
    )
