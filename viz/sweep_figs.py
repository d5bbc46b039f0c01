"""Figures of a sweep table (``deo.sweeps``): heatmaps of one metric over two of the table's axes.

Input: panels ``{title: (xs, ys, z)}`` as :func:`deo.sweeps.heatmap_grid` returns them (``z[j, i]``
at ``x = xs[i]``, ``y = ys[j]``; NaN = never escaped within the budget, or no cell). Every panel of
one figure shares one colour scale (Viridis, colour-blind safe); NaN cells are drawn grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.palette import COLORBAR_BELOW, FONT_SIZE, style_figure

NAN_COLOR = "#bdbdbd"
MAX_COLUMNS = 3
PLOT_PX = 230  # the height of one row of heatmaps, besides its title and axis labels


def _labels(values: Sequence) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, float | np.floating) and float(v).is_integer() and abs(v) < 1e6:
            out.append(str(int(v)))
        elif isinstance(v, float | np.floating):
            out.append(f"{float(v):g}")
        else:
            out.append(str(v))
    return out


def _wrapped(label: str) -> str:
    """A category label in lines: a control's "DEO (paper): random N" breaks after its colon."""
    return label.replace(": ", ":<br>")


def _label_px(labels: Sequence[str], large: bool) -> float:
    """Room below a row of heatmaps for its x tick labels: the longest line at up to 45° (plotly.js
    turns labels that do not fit), and a line per extra line of text."""
    lines = [line for label in labels for line in label.split("<br>")]
    extra = max((label.count("<br>") for label in labels), default=0)
    size = FONT_SIZE[bool(large)]
    return 0.6 * size * max((len(line) for line in lines), default=0) * 0.75 + extra * 1.3 * size


def sweep_heatmaps(
    panels: Mapping[str, tuple[Sequence, Sequence, np.ndarray]],
    x_title: str,
    y_title: str = "seed",
    value_title: str = "steps to escape",
    large: bool = False,
    compact: bool = False,
) -> go.Figure:
    """One heatmap per panel (e.g. per optimizer), a shared colour bar; axes as categories (a
    log-spaced lr grid reads evenly). Hover shows x, y and the value ("never" for NaN).

    Each row of panels keeps :data:`PLOT_PX` of heatmap whatever its x labels take (long optimizer
    names, turned, once left a 70 px strip and a colour bar too short for its own labels); a
    control's name breaks after its colon. Two panels a row in projector fonts. ``compact`` (a
    phone): one panel a row and the colour bar flat under the figure."""
    if not panels:
        raise ValueError("sweep_heatmaps needs at least one panel")
    finite = [
        np.asarray(z, dtype=float)[np.isfinite(np.asarray(z, dtype=float))] for _, _, z in panels.values()
    ]
    values = np.concatenate(finite) if finite else np.zeros(0)
    zmin, zmax = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if zmin == zmax:
        zmax = zmin + 1.0
    n = len(panels)
    cols = 1 if compact else min(n, 2 if large else MAX_COLUMNS)  # projector fonts: two a row
    rows = math.ceil(n / cols)
    shown = [_wrapped(label) for _, (xs, _, _) in panels.items() for label in _labels(xs)]
    below_px = _label_px(shown, large) + 2.2 * FONT_SIZE[bool(large)]  # tick labels, then the x title
    row_px = PLOT_PX + below_px + 40  # and the panel's title
    colorbar = {"title": {"text": value_title}}
    if compact:
        plot_px = rows * row_px - below_px  # the plot area's height, the colour bar's unit
        colorbar = {"title": {"text": value_title, "side": "top"}, **COLORBAR_BELOW,
                    "y": -(below_px + 30) / plot_px}  # under the x title, its own title above it  # fmt: skip
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(panels), horizontal_spacing=0.08,
        vertical_spacing=(below_px + 40) / (rows * row_px - below_px) if rows > 1 else 0.0,
    )  # fmt: skip
    fig.update_annotations(yshift=8)  # the panel titles clear the heatmaps' frames
    for k, (title, (xs, ys, z)) in enumerate(panels.items()):
        z = np.asarray(z, dtype=float)
        xl, yl = _labels(xs), _labels(ys)
        text = [["never" if not np.isfinite(v) else f"{v:g}" for v in row] for row in z]
        row, col = k // cols + 1, k % cols + 1
        fig.add_trace(
            go.Heatmap(
                x=xl,
                y=yl,
                z=np.where(np.isfinite(z), z, None).tolist(),
                text=text,
                zmin=zmin,
                zmax=zmax,
                colorscale="Viridis",
                showscale=k == 0,
                colorbar=colorbar,
                hovertemplate=(
                    f"{x_title} %{{x}}<br>{y_title} %{{y}}<br>{value_title} %{{text}}<extra>{title}</extra>"
                ),
                name=title,
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(
            type="category", title_text=x_title, tickmode="array", tickvals=xl,
            ticktext=[_wrapped(label) for label in xl], row=row, col=col,
        )  # fmt: skip
        fig.update_yaxes(type="category", title_text=y_title if col == 1 else None, row=row, col=col)
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    bar_px = 90 if compact else 0  # the flat colour bar and its title under the figure
    fig.update_layout(
        plot_bgcolor=NAN_COLOR,
        height=round(rows * row_px + 60 + bar_px),
        margin={"t": 50, "b": round(below_px + 10 + bar_px)},
    )
    return style_figure(fig, large)
