"""Stationary points found numerically (landscapes.stationary): the catalogue's hand-derived lists
are found again, with their kinds; curves of stationary points and kinks are not called saddles."""

from __future__ import annotations

import math

import pytest

import landscapes
from landscapes.formula import parse_formula
from landscapes.stationary import MAX_POINTS, find_stationary_points

# every listed point of these surfaces, and nothing else, is found (rastrigin has 441: more than
# MAX_POINTS; ackley's list has its global minimum only, and it has many local ones; the mexican hat
# lists four points of its ring of minima, which is not isolated)
EXACT = [k for k in landscapes.SURFACES if k not in ("rastrigin", "ackley", "mexican_hat")]


def _inside(surface, xy) -> bool:
    (x0, x1), (y0, y1) = surface.bounds
    return x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1


def _match(found, listed, scale):
    return [q for q in found if math.dist(q.xy, listed.xy) <= 1e-6 * scale]


@pytest.mark.parametrize("key", EXACT)
def test_the_catalogues_stationary_points_are_found_with_their_kinds(key):
    surface = landscapes.SURFACES[key]
    (x0, x1), (y0, y1) = surface.bounds
    scale = max(x1 - x0, y1 - y0)
    found = find_stationary_points(surface.f, surface.bounds)
    listed = [p for p in surface.stationary_points if _inside(surface, p.xy)]
    assert len(found) == len(listed), ([q.xy for q in found], [p.xy for p in listed])
    for point in listed:
        (match,) = _match(found, point, scale)
        assert match.kind == point.kind, (point, match)
        assert match.value == pytest.approx(point.value, rel=1e-4, abs=1e-4)  # the list rounds some


def test_many_points_are_capped_and_a_subset_of_the_list():
    surface = landscapes.SURFACES["rastrigin"]
    found = find_stationary_points(surface.f, surface.bounds)
    assert len(found) == MAX_POINTS
    for q in found:
        (listed,) = _match(surface.stationary_points, q, 10.24)
        assert listed.kind == q.kind


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("x**2 - y**2", [((0, 0), "saddle")]),
        ("x*y", [((0, 0), "saddle")]),
        ("x**4 - 2*x**2 + y**2", [((-1, 0), "min"), ((0, 0), "saddle"), ((1, 0), "min")]),
        ("x**3 - 3*x*y**2", [((0, 0), "degenerate")]),  # the monkey saddle: Hessian 0, up and down
        ("abs(x) + abs(y)", [((0, 0), "min")]),  # a kink, autograd's gradient 0 there: not a saddle
        ("exp(-x**2 - y**2)", [((0, 0), "max")]),
        ("x**2", []),  # a line of minima: no isolated point
        ("x**3", []),  # a line of inflections
        ("(x**2 + y**2 - 1)**2", [((0, 0), "max")]),  # the ring of minima is not listed
        ("log(x**2 + y**2)", []),
        ("log(-1 - x**2)", []),  # defined nowhere
    ],
)
def test_a_typed_formula_lists_its_isolated_stationary_points(formula, expected):
    found = parse_formula(formula).stationary_points
    assert [(tuple(round(c, 9) + 0.0 for c in q.xy), q.kind) for q in found] == [
        (tuple(float(c) for c in xy), kind) for xy, kind in expected
    ]
