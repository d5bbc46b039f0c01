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

from viz.palette import style_figure

NAN_COLOR = "#bdbdbd"
MAX_COLUMNS = 3


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


def sweep_heatmaps(
    panels: Mapping[str, tuple[Sequence, Sequence, np.ndarray]],
    x_title: str,
    y_title: str = "seed",
    value_title: str = "steps to escape",
    large: bool = False,
) -> go.Figure:
    """One heatmap per panel (e.g. per optimizer), a shared colour bar; axes as categories (a
    log-spaced lr grid reads evenly). Hover shows x, y and the value ("never" for NaN)."""
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
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels), horizontal_spacing=0.08)
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
                colorbar={"title": {"text": value_title}},
                hovertemplate=(
                    f"{x_title} %{{x}}<br>{y_title} %{{y}}<br>{value_title} %{{text}}<extra>{title}</extra>"
                ),
                name=title,
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(type="category", title_text=x_title, row=row, col=col)
        fig.update_yaxes(type="category", title_text=y_title if col == 1 else None, row=row, col=col)
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    fig.update_layout(plot_bgcolor=NAN_COLOR, height=max(320, 300 * rows))
    return style_figure(fig, large)
