"""Which drawn curves another curve hides, so a chart can show them (a band) and say so.

Two optimizers can follow each other so closely that the one drawn first disappears under the
other (Adam under DEO (paper) on two_moons, GD under DEO-escape on the degenerate saddle): a
reader then looks for a curve that seems missing. :func:`hidden_curves` finds them from what a
chart draws — polylines in the axis's units — by how far apart the lines are *drawn*: the largest
distance from a point of either line to the other, in units of the plot's height, the plot taken
:data:`PLOT_ASPECT` times as wide as high. A run a fraction of a step ahead on a steep drop is not
apart by its vertical gap. The charts draw a hidden curve :data:`BAND_SCALE` times as wide, so its
colour shows on both sides of the one on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy import ndarray

# a curve drawn this close (a fraction of the plot's height) to one drawn later, everywhere, lies
# under it: a line of 2.5 px on a ≈ 280 px plot is ≈ 1 % of its height
COVERED_FRACTION = 0.01
PLOT_ASPECT = 1.5  # a half-width chart's plot, width / height (≈ 430 × 280 px)
BAND_SCALE = 2.8  # a hidden curve's line width over its usual one


@dataclass(frozen=True)
class Drawn:
    """One curve as a chart draws it: ``y`` in the axis's units (log₁₀ on a log axis; NaN a gap),
    ``value`` the quantity itself (for the gap reported), ``solid`` whether its line is unbroken
    (a dotted or dashed curve on top leaves the one below visible between its dashes)."""

    name: str
    x: ndarray
    y: ndarray
    value: ndarray
    solid: bool = True


def _near_polyline(points: ndarray, line: ndarray, reach: float) -> ndarray:
    """Whether each point (k, 2) lies within ``reach`` of the polyline through ``line`` (m, 2), whose
    x never decreases (steps, cumulative gradient evaluations). Only the segments that overlap the
    point's x ± reach can be that close, so each point is measured against those few (a loop over
    all of them cost 125 ms a chart)."""
    if len(line) == 1:
        return np.linalg.norm(points - line[0], axis=1) <= reach
    a, b = line[:-1], line[1:]
    lo = np.searchsorted(b[:, 0], points[:, 0] - reach, side="left")  # first segment ending past x − reach
    hi = np.searchsorted(a[:, 0], points[:, 0] + reach, side="right")  # segments starting before x + reach
    width = max(int((hi - lo).max(initial=0)), 1)
    index = lo[:, None] + np.arange(width)[None, :]
    valid = index < hi[:, None]
    index = np.minimum(index, len(a) - 1)
    start, along = a[index], (b - a)[index]
    length_sq = np.maximum((along**2).sum(axis=2), 1e-300)
    t = np.clip(((points[:, None, :] - start) * along).sum(axis=2) / length_sq, 0.0, 1.0)
    distance = np.linalg.norm(points[:, None, :] - (start + t[..., None] * along), axis=2)
    return np.where(valid, distance, np.inf).min(axis=1) <= reach


def _spans(x_low: ndarray, y_low: ndarray, x_high: ndarray, y_high: ndarray):
    """The finite parts of both curves when the upper one spans the lower one's finite x-range."""
    low, high = np.isfinite(y_low), np.isfinite(y_high)
    if not low.any() or not high.any():
        return None
    xl, xh = x_low[low], x_high[high]
    if xl[0] < xh[0] or xl[-1] > xh[-1]:
        return None
    return xl, y_low[low], xh, y_high[high]


def drawn_within(
    x_low: ndarray,
    y_low: ndarray,
    x_high: ndarray,
    y_high: ndarray,
    x_span: float,
    y_span: float,
    reach: float = COVERED_FRACTION,
) -> bool | None:
    """Whether two curves are drawn within ``reach`` of each other (in units of the plot's height)
    everywhere: every point of either line, within the lower one's x-range, that close to the other
    line. None when the upper one does not span the lower one's finite x-range."""
    parts = _spans(x_low, y_low, x_high, y_high)
    if parts is None:
        return None
    xl, yl, xh, yh = parts
    scale = np.array([PLOT_ASPECT / x_span if x_span > 0 else 0.0, 1.0 / y_span])
    lower, upper = np.column_stack((xl, yl)) * scale, np.column_stack((xh, yh)) * scale
    inside = upper[(xh >= xl[0]) & (xh <= xl[-1])]
    return bool(_near_polyline(lower, upper, reach).all() and _near_polyline(inside, lower, reach).all())


def largest_gap(x_low: ndarray, y_low: ndarray, x_high: ndarray, y_high: ndarray) -> float | None:
    """The largest vertical distance between two polylines over the lower one's finite x-range, at
    the rows of both (each interpolated at the other's x, as drawn); None as in
    :func:`drawn_within`."""
    parts = _spans(x_low, y_low, x_high, y_high)
    if parts is None:
        return None
    xl, yl, xh, yh = parts
    inside = (xh >= xl[0]) & (xh <= xl[-1])
    gaps = np.abs(yl - np.interp(xl, xh, yh))
    return float(max(gaps.max(), np.abs(yh[inside] - np.interp(xh[inside], xl, yl)).max(initial=0.0)))


def hidden_curves(curves: Sequence[Drawn]) -> list[tuple[str, str, float]]:
    """``(hidden, on top, largest gap)`` for each curve that a later *solid* one (drawn over it)
    spans and stays within :data:`COVERED_FRACTION` of the plot's height of, everywhere; each hidden
    curve named once, with the first such curve on top. The spans are those of all the curves'
    finite points (the chart's autorange). The gap is :func:`largest_gap` of the ``value``s."""
    finite = [c.y[np.isfinite(c.y)] for c in curves]
    ys = np.concatenate(finite) if finite else np.empty(0)
    if ys.size == 0 or not ys.max() > ys.min():
        return []
    xs = np.concatenate([c.x[np.isfinite(c.y)] for c in curves])
    x_span, y_span = float(xs.max() - xs.min()), float(ys.max() - ys.min())
    hidden = []
    for index, low in enumerate(curves):
        for high in curves[index + 1 :]:
            if not high.solid:
                continue
            if drawn_within(low.x, low.y, high.x, high.y, x_span, y_span):
                gap = largest_gap(low.x, low.value, high.x, high.value)
                hidden.append((low.name, high.name, gap))
                break
    return hidden


STACKED = {"left": "upper", "right": "lower"}  # the charts' names when one is under the other


def hidden_sentences(by_chart: dict[str, list[tuple[str, str, float]]], stacked: bool = False) -> str:
    """The caption's words for :func:`hidden_curves` of each chart (``{"left": …, "right": …}``):
    one sentence per hidden curve, or "" when none is. ``stacked``: the charts are one under the
    other (the compact layout), "upper" and "lower"."""
    return "".join(
        f" {hidden} lies under {top} on the {STACKED.get(chart, chart) if stacked else chart} chart (the "
        f"losses differ by at most {gap:.2g}); "
        "its colour is the band on both sides."
        for chart, hidden_list in by_chart.items()
        for hidden, top, gap in hidden_list
    )
