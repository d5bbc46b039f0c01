"""Figures of the Escape map page: per optimizer a map over a grid of starts, and the distribution of
escape times.

Input: the grid axes ``xs (nx,)``, ``ys (ny,)`` and ``deo.race.escape_map``'s results (one
``EscapeResult`` per optimizer, rows in grid order: y outer, x inner, so row b is
``(xs[b % nx], ys[b // nx])``). Every map of one figure shares one colour scale.

- ``mode="steps"``: colour = steps to escape (Viridis, colour-blind safe); white, in a black frame
  = never escaped within the budget (its own legend entry "never escaped", not the grey of the
  background); black = diverged.
- ``mode="basin"``: colour = the minimum the run ended in (one Okabe–Ito colour per listed
  minimum); light grey = none of them; black = diverged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from numpy import ndarray
from plotly.subplots import make_subplots

from viz.palette import (
    COLORBAR_BELOW,
    LEGEND_ABOVE,
    LEGEND_AT_BOTTOM,
    SADDLE_COLOR,
    STATIONARY_SYMBOLS,
    color_for,
    legend_label,
    line_width,
    marker_size,
    style_figure,
)
from viz.surface_figs import FrozenFigure

NEVER_COLOR = "#ffffff"  # steps mode: never escaped (drawn as cells, never the background)
FRAME_COLOR = "#bdbdbd"  # the background under the maps (and, in basin mode, "no listed minimum")
FRAME_LINE = "#000000"  # each map's frame
DIVERGED_COLOR = "#000000"
BASIN_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#882255", "#999933")
MAX_COLUMNS = 3
PANEL_HEIGHT = 380  # a single row of maps
ROWS_PANEL_HEIGHT = 260  # each of two or more rows: the 2 × 2 default fits under the page's header
COMPACT_COLUMNS = 2  # a phone: two maps per row
COMPACT_PANEL_HEIGHT = 210
COMPACT_BELOW_PX = 90
COMPACT_TITLE_SIZE = 13
COMPACT_COLORBAR = {**COLORBAR_BELOW, "y": -0.1}


def _grid(values: ndarray, nx: int, ny: int) -> ndarray:
    return np.asarray(values, dtype=np.float64).reshape(ny, nx)


def _discrete_scale(colors: Sequence[str]) -> list:
    """A step colour scale: value k of 0..n−1 (zmin 0, zmax n−1) gets ``colors[k]``."""
    n = len(colors)
    if n == 1:
        return [[0.0, colors[0]], [1.0, colors[0]]]
    scale = []
    for k, c in enumerate(colors):
        scale += [[k / n, c], [(k + 1) / n, c]]
    return scale


def escape_maps_figure(
    xs: ndarray,
    ys: ndarray,
    results: dict,
    mode: str = "steps",
    steps_budget: int | None = None,
    saddle: Sequence[float] | None = None,
    minima: Sequence[Sequence[float]] = (),
    large: bool = False,
    panel_height: int | None = None,
    compact: bool = False,
) -> go.Figure:
    """Maps side by side, one per optimizer, equal aspect: in as few rows of at most ``MAX_COLUMNS``
    as they need, the rows as even as they can be (four maps: two rows of two). Panel titles are
    the runs' short names (a random-direction control: "DEO-escape: random N"). ``panel_height``
    (px per row) defaults to ``PANEL_HEIGHT`` for one row, ``ROWS_PANEL_HEIGHT`` for more. ``compact`` (a
    phone): at most two maps per row, ``COMPACT_PANEL_HEIGHT`` high, the colour bar laid flat under
    them and the legend under it, so the maps get the screen's width."""
    if mode not in ("steps", "basin"):
        raise ValueError(f"mode must be 'steps' or 'basin', got {mode!r}")
    if not results:
        raise ValueError("escape_maps_figure needs at least one optimizer's results")
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    nx, ny = len(xs), len(ys)
    names = list(results)
    per_row = COMPACT_COLUMNS if compact else MAX_COLUMNS
    rows = math.ceil(len(names) / per_row)
    cols = math.ceil(len(names) / rows)
    if panel_height is None:  # one row: 380 px; more rows: lower, so two rows fit a 900 px screen
        panel_height = COMPACT_PANEL_HEIGHT if compact else (PANEL_HEIGHT if rows == 1 else ROWS_PANEL_HEIGHT)
    fig = make_subplots(
        figure=FrozenFigure(),  # a go.Figure until frozen (pages.escape_map caches it frozen)
        rows=rows,
        cols=cols,
        subplot_titles=[legend_label(name) for name in names],
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    # the titles clear the frame of a map that fills its panel's height (rows of two: square panels)
    fig.update_annotations(yshift=8)
    if mode == "steps":
        finite = [r.steps_to_escape[np.isfinite(r.steps_to_escape)] for r in results.values()]
        top = steps_budget or max((float(f.max()) for f in finite if f.size), default=1.0)
    basin_colors = [BASIN_COLORS[k % len(BASIN_COLORS)] for k in range(len(minima))]
    for k, name in enumerate(names):
        r = results[name]
        row, col = k // cols + 1, k % cols + 1
        diverged = _grid(r.diverged, nx, ny) > 0
        if mode == "steps":
            z = _grid(r.steps_to_escape, nx, ny)
            z[diverged] = np.nan
            fig.add_trace(
                go.Heatmap(
                    x=xs,
                    y=ys,
                    z=z,
                    coloraxis="coloraxis",
                    name=name,
                    hovertemplate="start (%{x:.3g}, %{y:.3g})<br>escaped after %{z} steps<extra>"
                    + name
                    + "</extra>",
                ),
                row=row,
                col=col,
            )
            never = np.isnan(_grid(r.steps_to_escape, nx, ny)) & ~diverged
            if never.any():  # its own colour, so it cannot be mistaken for the background
                fig.add_trace(
                    go.Heatmap(
                        x=xs,
                        y=ys,
                        z=np.where(never, 1.0, np.nan),
                        colorscale=[[0, NEVER_COLOR], [1, NEVER_COLOR]],
                        showscale=False,
                        name=f"{name} never escaped",
                        hovertemplate="start (%{x:.3g}, %{y:.3g})<br>never escaped<extra>"
                        + name
                        + "</extra>",
                    ),
                    row=row,
                    col=col,
                )
        else:
            basin = _grid(r.basin, nx, ny)
            z = np.where((basin >= 0) & ~diverged, basin, np.nan)
            if basin_colors:
                fig.add_trace(
                    go.Heatmap(
                        x=xs,
                        y=ys,
                        z=z,
                        zmin=-0.5,
                        zmax=len(basin_colors) - 0.5,
                        colorscale=_discrete_scale(basin_colors),
                        showscale=False,
                        name=name,
                        hovertemplate="start (%{x:.3g}, %{y:.3g})<br>minimum %{z}<extra>" + name + "</extra>",
                    ),
                    row=row,
                    col=col,
                )
        if diverged.any():
            fig.add_trace(
                go.Heatmap(
                    x=xs,
                    y=ys,
                    z=np.where(diverged, 1.0, np.nan),
                    colorscale=[[0, DIVERGED_COLOR], [1, DIVERGED_COLOR]],
                    showscale=False,
                    hovertemplate="start (%{x:.3g}, %{y:.3g})<br>diverged<extra></extra>",
                ),
                row=row,
                col=col,
            )
        if saddle is not None:
            fig.add_trace(
                go.Scatter(
                    x=[saddle[0]],
                    y=[saddle[1]],
                    mode="markers",
                    name="saddle",
                    showlegend=k == 0,
                    marker={
                        "symbol": STATIONARY_SYMBOLS["saddle"],
                        "size": marker_size(large),
                        "color": SADDLE_COLOR,
                        "line": {"width": 1, "color": "#ffffff"},
                    },
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        inside = [m for m in minima if xs[0] <= m[0] <= xs[-1] and ys[0] <= m[1] <= ys[-1]]
        if inside:
            fig.add_trace(
                go.Scatter(
                    x=[m[0] for m in inside],
                    y=[m[1] for m in inside],
                    mode="markers",
                    name="minima",
                    showlegend=k == 0,
                    hoverinfo="skip",
                    marker={
                        "symbol": STATIONARY_SYMBOLS["min"],
                        "size": marker_size(large) + 2,
                        "color": "#ffffff",
                        "line": {"width": 1.5, "color": "#000000"},
                    },
                ),
                row=row,
                col=col,
            )
        axis = "" if k == 0 else str(k + 1)
        fig.update_xaxes(range=[xs[0], xs[-1]], constrain="domain", row=row, col=col)
        fig.update_yaxes(
            range=[ys[0], ys[-1]], scaleanchor=f"x{axis}", scaleratio=1, constrain="domain", row=row, col=col
        )
    if mode == "basin":
        for k, (m, c) in enumerate(zip(minima, basin_colors)):
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=f"minimum {k} ({m[0]:.3g}, {m[1]:.3g})",
                    marker={"symbol": "square", "size": marker_size(large), "color": c},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="no listed minimum",
                marker={"symbol": "square", "size": marker_size(large), "color": FRAME_COLOR},
            )
        )
    else:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="never escaped",
                marker={
                    "symbol": "square",
                    "size": marker_size(large),
                    "color": NEVER_COLOR,
                    "line": {"width": 1.5, "color": FRAME_LINE},
                },
            )
        )
        fig.update_layout(
            coloraxis={
                "colorscale": "Viridis",
                "cmin": 0,
                "cmax": top,
                "colorbar": (
                    {
                        "title": {"text": "steps to escape (white: never escaped)", "side": "top"},
                        **COMPACT_COLORBAR,
                    }
                    if compact
                    else {"title": {"text": "steps to escape<br>(white: never escaped)"}}
                ),
            }
        )
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name="diverged",
            marker={"symbol": "square", "size": marker_size(large), "color": DIVERGED_COLOR},
        )
    )
    frame = {"showline": True, "mirror": True, "linecolor": FRAME_LINE, "linewidth": 1}
    fig.update_xaxes(showgrid=False, zeroline=False, **frame)
    fig.update_yaxes(showgrid=False, zeroline=False, **frame)
    # on a phone the flat colour bar (steps mode; basins have a legend only) goes under the maps
    below = COMPACT_BELOW_PX if compact and mode == "steps" else 0
    if compact:
        legend = {"orientation": "h", "y": -(0.12 + below / (panel_height * rows)), "yanchor": "top"}
        margin = {"l": 40, "r": 10, "b": below or None}
    else:  # under the tick labels, anchored to the figure's bottom in a margin that holds its rows: at
        # 8 % of the plot's height below it, a projector's legend lay on the bottom row's tick labels
        entries = sum(
            1 for t in fig.data if t.showlegend or (t.showlegend is None and t.type == "scatter" and t.name)
        )
        legend_rows = entries if large else math.ceil(entries / 4)  # a projector's: one a row
        below = max(0, (36 if large else 22) + legend_rows * (32 if large else 20) + 6 - 50)  # past 50
        legend = {**LEGEND_AT_BOTTOM}
        margin = {"b": 50 + below}
    fig.update_layout(
        height=panel_height * rows + 60 + below, plot_bgcolor=FRAME_COLOR, legend=legend, margin=margin
    )  # style_figure below keeps these margins
    # one window for every map: its tick labels once, left of the first column and under the
    # bottom row (beside every map, a projector's large labels were drawn over the map to their left)
    for col in range(2, cols + 1):
        fig.update_yaxes(showticklabels=False, col=col)
    for row in range(1, rows):
        fig.update_xaxes(showticklabels=False, row=row)
    fig = style_figure(fig, large)
    if compact:
        fig.update_annotations(font={"size": COMPACT_TITLE_SIZE})
    return fig


def escape_histogram(
    results: dict,
    steps_budget: int | None = None,
    large: bool = False,
    height: int = 340,
    compact: bool = False,
) -> go.Figure:
    """Overlaid histograms of the steps to escape, one per optimizer (its preset colour); the
    legend (the runs' short names) says how many of the starts escaped within the budget.
    ``compact`` (a phone) and ``large`` (projector fonts, where "DEO-escape: random N (900/900
    escaped)" beside the plot left it ≈ 140 px of a 780 px chart): the legend in rows above the
    plot, which then gets the chart's width, and the figure a row taller per run."""
    fig = FrozenFigure()  # a go.Figure until frozen (pages.escape_map caches it frozen)
    for name, r in results.items():
        steps = r.steps_to_escape[np.isfinite(r.steps_to_escape)]
        fig.add_trace(
            go.Histogram(
                x=steps,
                name=f"{legend_label(name)} ({steps.size}/{r.steps_to_escape.size} escaped)",
                opacity=0.6,
                marker={
                    "color": color_for(r.key),
                    "line": {"width": line_width(large) * 0.3, "color": "#ffffff"},
                },
                xbins={
                    "start": 0,
                    "end": float(steps_budget) if steps_budget else None,
                    "size": max(1.0, float(steps_budget or (steps.max() if steps.size else 1)) / 50),
                },
            )
        )
    fig.update_layout(
        barmode="overlay",
        height=height,
        xaxis={"title": {"text": "steps to escape"}},
        yaxis={"title": {"text": "starts"}},
    )
    fig = style_figure(fig, large)
    if compact or large:
        fig.update_layout(legend=LEGEND_ABOVE, height=height + (40 if large else 30) * len(results))
    return fig
