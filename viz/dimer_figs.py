"""Figures of the Dimer page: one dimer at one point θ, its rotation toward the min mode, its
finite-difference error, and a dimer saddle search drawn on a contour.

Pure functions: numpy arrays in, ``go.Figure`` out (no streamlit, no torch). Notation of
``DEO.md``: N the unit dimer orientation, ΔR the dimer length, F_R the rotational force, torque
‖F_R‖, Θ = F_R/‖F_R‖ the rotation direction, ``N(φ) = N cos φ + Θ sin φ`` the rotation circle,
``C(φ) = a₀/2 + a₁ cos 2φ + b₁ sin 2φ`` the Fourier curvature model of one rotation iteration.

Plotly practice (UX.md): the contour is ``fig.data[0]`` and never inside frames; moving parts are
small scatter traces updated by frames ``{"traces": [...]}`` kept as plain dicts, floats
rounded to 5 significant digits; fixed axis ranges with ``scaleanchor`` so the dimer and the
force arrows are not distorted; at most ``MAX_FRAMES`` frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from numpy import ndarray
from plotly.subplots import make_subplots

from viz.frames import MAX_FRAMES, frame_rows, slider_stops
from viz.palette import (
    COLORBAR_BELOW,
    EXACT_COLOR,
    LEGEND_AT_BOTTOM,
    PRESET_COLORS,
    STATIONARY_SYMBOLS,
    style_figure,
)
from viz.surface_figs import AnimatedFigure, FrozenFigure, _png_data_uri

if TYPE_CHECKING:  # the study's result type only: viz imports no torch
    from deo.dimer_studies import RotationRun

BACKGROUND_PIXELS = 360  # per side of a contour's background image in an animated figure

SIGNIFICANT = 5
GUIDE_COLOR = EXACT_COLOR
COLOR_SCALES = ("linear", "log", "clip")
# Variant styles of the comparison figures: rotation method → colour, scheme / dtype → dash.
ROTATION_COLORS = {"fourier": PRESET_COLORS["deo_paper"], "sd": PRESET_COLORS["deo_escape"]}
SCHEME_COLORS = {"forward": PRESET_COLORS["deo_paper"], "central": PRESET_COLORS["pgd"]}
SCHEME_DASHES = {"forward": "solid", "central": "dash"}
DTYPE_DASHES = {"float64": "solid", "float32": "dot"}
DIMER_COLOR = PRESET_COLORS["deo_paper"]


def rounded(values: ndarray | Sequence[float] | float, sig: int = SIGNIFICANT) -> list | float | None:
    """Plain Python floats rounded to ``sig`` significant digits (nested lists for arrays).

    Non-finite values become ``None`` (a gap in a Plotly line), so a figure's JSON never holds NaN.
    """
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    safe = np.where(finite & (a != 0), np.abs(a), 1.0)
    decimals = sig - 1 - np.floor(np.log10(safe))
    scale = 10.0**decimals
    out = np.where(finite, np.round(a * scale) / scale, np.nan)
    if out.ndim == 0:
        return float(out) if finite else None
    return np.where(finite, out, None).tolist()


def display_z(z: ndarray, color_scale: str = "linear", clip: float | None = None) -> tuple[ndarray, str]:
    """The values drawn by the contour and the colour-bar title.

    ``"linear"``: z itself; ``"log"``: ``log10(z − min z + 1)``; ``"clip"``: ``min(z, clip)`` so a few
    huge values (Müller–Brown's walls) do not crowd out the basins.

    The title is on two short lines where it is long: above a colour bar right of the plot, one
    line ("f (clipped at 100)" in projector fonts) ran past the figure's right edge.
    """
    z = np.asarray(z, dtype=np.float64)
    if color_scale == "linear":
        return z, "f"
    if color_scale == "log":
        return np.log10(z - np.nanmin(z) + 1.0), "log₁₀ of<br>f − min f + 1"
    if color_scale == "clip":
        if clip is None:
            raise ValueError("color_scale 'clip' needs a clip value, got None")
        return np.minimum(z, clip), f"f (clipped<br>at {clip:g})"
    raise ValueError(f"color_scale must be one of {COLOR_SCALES}, got {color_scale!r}")


def contour_trace(
    xs: ndarray,
    ys: ndarray,
    z: ndarray,
    color_scale: str = "linear",
    clip: float | None = None,
    *,
    title: str | None = None,
    name: str = "f",
    hovertemplate: str = "x=%{x:.4g}<br>y=%{y:.4g}<br>f=%{z:.4g}<extra></extra>",
) -> go.Contour:
    """The static background: a filled contour of ``z`` (shape ``(len(ys), len(xs))``).

    ``title`` overrides the colour bar's title (default: the one ``color_scale`` implies).
    """
    shown, scale_title = display_z(z, color_scale, clip)
    return go.Contour(
        x=rounded(xs),
        y=rounded(ys),
        z=rounded(shown),
        colorscale="Viridis",
        ncontours=30,
        line={"width": 0.5},
        opacity=0.85,
        colorbar={"title": {"text": scale_title if title is None else title}, "len": 0.8, "thickness": 14},
        hovertemplate=hovertemplate,
        name=name,
        showlegend=False,
    )


def click_grid_trace(xs: ndarray, ys: ndarray, n: int = 41) -> go.Scatter:
    """An invisible ``n × n`` marker grid over the window: a click on it selects a point θ."""
    gx, gy = np.meshgrid(np.linspace(xs[0], xs[-1], n), np.linspace(ys[0], ys[-1], n))
    return go.Scatter(
        x=rounded(gx.ravel()),
        y=rounded(gy.ravel()),
        mode="markers",
        marker={"size": 14, "opacity": 0.0, "color": GUIDE_COLOR},
        hovertemplate="click: start at (%{x:.3g}, %{y:.3g})<extra></extra>",
        name="click grid",
        showlegend=False,
    )


MARKER_NAMES = {"min": "minima", "saddle": "saddles", "max": "maxima", "degenerate": "degenerate points"}


@dataclass(frozen=True)
class Marker:
    """A listed stationary point drawn on the contour."""

    xy: tuple[float, float]
    kind: str  # "min" | "saddle" | "max" | "degenerate"
    label: str


def marker_traces(markers: Sequence[Marker]) -> list[go.Scatter]:
    """One white-filled scatter trace per kind of listed stationary point (with text labels)."""
    traces = []
    for kind, symbol in STATIONARY_SYMBOLS.items():  # the race figure's symbols (viz.palette)
        points = [m for m in markers if m.kind == kind]
        if points:
            traces.append(
                go.Scatter(
                    x=rounded([m.xy[0] for m in points]),
                    y=rounded([m.xy[1] for m in points]),
                    mode="markers+text",
                    text=[m.label for m in points],
                    textposition="top right",
                    # dark text with a light halo: readable over any colour of the contour
                    textfont={"color": "#222222", "shadow": "auto"},
                    name=MARKER_NAMES[kind],
                    hoverinfo="name+x+y",
                    marker={
                        "symbol": symbol,
                        "size": 12,
                        "color": "white",
                        "line": {"color": "black", "width": 2},
                    },
                )
            )
    return traces


# a phone's overview: the flat colour bar (its title on top) this far under the plot area (a
# fraction of its 380 px: below the x tick labels and title), and the px added for the bar
OVERVIEW_BAR_Y = 0.13
OVERVIEW_BELOW_PX = 70


def overview_figure(
    xs: ndarray,
    ys: ndarray,
    z: ndarray,
    point: Sequence[float],
    window: tuple[tuple[float, float], tuple[float, float]],
    markers: Sequence[Marker] = (),
    color_scale: str = "linear",
    clip: float | None = None,
    large: bool = False,
    compact: bool = False,
) -> go.Figure:
    """The whole surface with the chosen point θ, the zoom ``window`` as a rectangle, the listed
    stationary points and an invisible click grid (a click on the contour picks θ). ``compact`` (a
    phone): the colour bar lies flat under the plot, which then gets the chart's width."""
    fig = FrozenFigure()  # a go.Figure until frozen (pages.dimer caches it frozen)
    contour = contour_trace(xs, ys, z, color_scale, clip)
    if compact:
        title = contour.colorbar.title.text
        contour.colorbar = {"title": {"text": title, "side": "top"}, **COLORBAR_BELOW, "y": -OVERVIEW_BAR_Y}
    fig.add_trace(contour)
    fig.add_trace(click_grid_trace(xs, ys, n=61))
    for trace in marker_traces(markers):
        fig.add_trace(trace)
    (x0, x1), (y0, y1) = window
    fig.add_trace(
        go.Scatter(
            x=rounded([x0, x1, x1, x0, x0]),
            y=rounded([y0, y0, y1, y1, y0]),
            mode="lines",
            name="zoom window",
            legendgroup="zoom window",
            showlegend=False,
            line={"color": "white", "width": 1.5, "dash": "dash"},
            hoverinfo="skip",
        )
    )
    fig.add_trace(  # its legend entry: a white swatch would not show on the white legend
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            name="zoom window",
            legendgroup="zoom window",
            line={"color": "#555555", "width": 1.5, "dash": "dash"},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rounded([point[0]]),
            y=rounded([point[1]]),
            mode="markers",
            name="θ",
            marker={"color": "black", "size": 12, "symbol": "x-thin", "line": {"width": 3, "color": "black"}},
        )
    )
    fig.update_xaxes(range=rounded([xs[0], xs[-1]]), title_text="x", constrain="domain")
    fig.update_yaxes(
        range=rounded([ys[0], ys[-1]]), title_text="y", scaleanchor="x", scaleratio=1, constrain="domain"
    )
    return finish(
        fig,
        large,
        height=470 + (OVERVIEW_BELOW_PX if compact else 0),
        margin={"l": 50, "r": 20, "t": 40, "b": 40 + (OVERVIEW_BELOW_PX if compact else 0)},
        clickmode="event+select",
        legend={"orientation": "h", "x": 0.0, "y": 1.02, "yanchor": "bottom"},
        dragmode=False,
    )


def _segment(center: ndarray, direction: ndarray, half: float, both: bool = True) -> dict:
    """x/y of a segment through ``center`` along ``direction`` (``both=False``: from the center)."""
    start = center - half * direction if both else center
    end = center + half * direction
    return {"x": rounded([start[0], end[0]]), "y": rounded([start[1], end[1]])}


CONTROLS_MARGIN = 150  # px below the plot area for the play buttons and the frame slider
CONTROLS_MARGIN_LARGE = 200  # the same with projector fonts (larger tick labels, axis title, buttons)


# projector: legend entries at the desktop size (the axes' text grows), so that the rotation view's ten
# entries keep to three rows under the slider
LEGEND_FONT = {False: {}, True: {"font": {"size": 14}}}


def controls_margin(large: bool = False) -> int:
    """Pixels below the plot area that the x axis, the play buttons and the frame slider need."""
    return CONTROLS_MARGIN_LARGE if large else CONTROLS_MARGIN


def legend_below(large: bool = False, compact: bool = False, rows: int | None = None) -> dict:
    """``margin`` and ``legend`` layout for a legend under the x axis of a figure: anchored to the
    bottom of the figure (not at a fraction of the plot's height, where projector fonts put it on
    the x-axis titles), with the margin for ``rows`` rows of entries (default two, three on a
    phone) besides the tick labels and title. A figure adds ``margin["b"]`` − 50 to its height."""
    axis = 75 if large else 50
    rows = (3 if compact else 2) if rows is None else rows
    # the margin holds it (by default a horizontal legend scrolls past half the figure's height)
    legend = {**LEGEND_AT_BOTTOM, "maxheight": 1.0}
    return {
        "margin": {"l": 60, "r": 20, "t": 50, "b": axis + rows * (30 if large else 21) + 10},
        "legend": legend,
    }


def finish(fig: go.Figure, large: bool = False, **layout) -> go.Figure:
    """The shared look (``viz.palette.style_figure``, projector mode when ``large``), then the
    figure's own ``layout`` keys (margins, legend, controls), which win."""
    style_figure(fig, large)
    fig.update_layout(**layout)
    return fig


def _upsample(values: ndarray, old: ndarray, new: ndarray, axis: int) -> ndarray:
    """Linear interpolation of ``values`` along ``axis`` from grid ``old`` to grid ``new``."""
    moved = np.moveaxis(values, axis, -1)
    out = np.stack([np.interp(new, old, row) for row in moved.reshape(-1, moved.shape[-1])])
    return np.moveaxis(out.reshape(*moved.shape[:-1], len(new)), -1, axis)


def contour_image(trace: go.Contour, pixels: int = BACKGROUND_PIXELS) -> dict | None:
    """A filled contour trace as a Plotly layout image (Viridis at the trace's opacity on white,
    dark iso-lines at its ``ncontours`` levels), placed on the trace's axes below the traces, or
    ``None`` for a trace without a regular grid."""
    if trace.z is None or trace.x is None or trace.y is None:
        return None
    z = np.array(trace.z, dtype=np.float64)
    xs, ys = np.asarray(trace.x, dtype=np.float64), np.asarray(trace.y, dtype=np.float64)
    if z.ndim != 2 or z.shape != (len(ys), len(xs)) or min(z.shape) < 2:
        return None
    finite = np.isfinite(z)
    lo, hi = (float(z[finite].min()), float(z[finite].max())) if finite.any() else (0.0, 1.0)
    fine_x, fine_y = np.linspace(xs[0], xs[-1], pixels), np.linspace(ys[0], ys[-1], pixels)
    t = np.clip((np.where(finite, z, lo) - lo) / max(hi - lo, 1e-300), 0.0, 1.0)
    t = _upsample(_upsample(t, xs, fine_x, 1), ys, fine_y, 0)
    bad = _upsample(_upsample((~finite).astype(float), xs, fine_x, 1), ys, fine_y, 0) > 0.5
    stops = np.linspace(0.0, 1.0, len(VIRIDIS))
    rgb = np.stack([np.interp(t, stops, [c[k] for c in VIRIDIS]) for k in range(3)], axis=-1)
    n_levels = int(trace.ncontours or 30)
    level = np.floor(t * n_levels).clip(0, n_levels - 1)
    line = np.zeros(t.shape, dtype=bool)
    line[:, :-1] |= level[:, 1:] != level[:, :-1]
    line[:-1, :] |= level[1:, :] != level[:-1, :]
    rgb[line] *= 0.7
    alpha = 0.85 if trace.opacity is None else float(trace.opacity)
    rgb = alpha * rgb + (1 - alpha) * 255.0
    rgb[bad] = 255.0
    image = np.ascontiguousarray(rgb[::-1].round().astype(np.uint8))  # image rows run from the top
    return {
        "source": _png_data_uri(image),
        "xref": trace.xaxis or "x",
        "yref": trace.yaxis or "y",
        "x": float(xs[0]),
        "y": float(ys[-1]),
        "sizex": float(xs[-1] - xs[0]),
        "sizey": float(ys[-1] - ys[0]),
        "sizing": "stretch",
        "layer": "below",
    }


# plotly's Viridis, as RGB triples
VIRIDIS = [
    tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))
    for c in (
        "#440154",
        "#482878",
        "#3e4989",
        "#31688e",
        "#26828e",
        "#1f9e89",
        "#35b779",
        "#6ece58",
        "#b5de2b",
        "#fde725",
    )
]


def with_frames(fig: go.Figure, frames: list[dict]) -> go.Figure:
    """``fig`` with animation ``frames`` kept as plain dicts (``{"name", "data", "traces"}``): Plotly's
    per-frame validation of hundreds of ``go.Frame`` s takes seconds. Read them back from
    ``fig.to_dict()["frames"]`` (``fig.frames`` stays empty).

    plotly.js drops contour and heatmap traces from the plot as soon as an animation plays
    (plotly/plotly.py#2151), so every filled contour is drawn as a layout image below the traces
    (:func:`contour_image`) and the contour trace itself is kept invisible: it still carries the
    colour bar, the hover values and the axis ranges. plotly.js draws such an image under the grid,
    so its axes lose their grid and zero lines (white lines across the landscape at every tick)."""
    for trace in fig.data:
        if trace.type == "contour":
            image = contour_image(trace)
            if image is not None:
                fig.add_layout_image(image)
                trace.opacity = 0.0
                trace.line.width = 0
                for axis in (image["xref"], image["yref"]):  # "x", "y2", ... → layout.xaxis, .yaxis2
                    fig.layout[f"{axis[0]}axis{axis[1:]}"].update(showgrid=False, zeroline=False)
    if isinstance(fig, AnimatedFigure):  # built as one: framed in place (a copy validates it all again)
        return fig.set_frames(frames)
    return AnimatedFigure(fig, plain_frames=frames)


def play_controls(
    labels: Sequence[str], duration_ms: int, prefix: str, large: bool = False
) -> tuple[list, list]:
    """Play/pause buttons and a frame slider for frames named by ``labels``, below the x axis's tick
    labels and title (``large``: projector fonts, so everything sits lower). The buttons sit on a row
    of their own with the slider's "step …" label at its right end, the slider under them across
    the plot's whole width: beside the buttons, at a fraction of a width the page decides, the
    slider's grip at step 0 lay under the Pause button on a desktop, a projector and a phone."""
    # px from the plot's bottom to the "step …" label and the buttons (8 px lower: plotly.js draws a
    # button row that much above a label at the same pad); with room for x tick labels that tilt
    # when the plot is narrow (a loaded CI once measured the x title 20 px lower than usual)
    below_axis = 92 if large else 64
    # the label's height plus this offset puts the rail under the buttons (33 px high on a desktop,
    # with projector fonts too; tests/test_viz_panels_browser.py checks they stay apart)
    label_offset = 18 if large else 26
    frame_args = {
        "frame": {"duration": duration_ms, "redraw": False},
        "mode": "immediate",
        "transition": {"duration": 0},
    }
    buttons = [
        {
            "type": "buttons",
            "direction": "left",
            "x": 0.0,
            "y": 0.0,
            "xanchor": "left",
            "yanchor": "top",
            "pad": {"t": below_axis + 8, "r": 10},
            "showactive": False,
            "buttons": [
                {"label": "▶ Play", "method": "animate", "args": [None, {**frame_args, "fromcurrent": True}]},
                {
                    "label": "❚❚ Pause",  # not ⏸: no glyph for it without an emoji font
                    "method": "animate",
                    "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}],
                },
            ],
        }
    ]
    slider = [
        {
            "active": 0,
            "x": 0.0,
            "y": 0.0,
            "len": 1.0,
            "xanchor": "left",
            "yanchor": "top",
            "pad": {"t": below_axis},
            "font": {"color": "rgba(0,0,0,0)"},
            "currentvalue": {
                "prefix": prefix,
                "font": {"color": "#333333"},
                "xanchor": "right",
                "offset": label_offset,
            },
            "steps": [
                {
                    "label": label,
                    "method": "animate",
                    "args": [[label], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}],
                }
                for label in slider_stops(labels)
            ],
        }
    ]
    return buttons, slider


def orientation_on_circle(n: ndarray, theta: ndarray, phi: ndarray | float) -> ndarray:
    """``N(φ) = N cos φ + Θ sin φ`` for each φ: ``(2,), (2,), (m,) -> (m, 2)`` (a float: ``(2,)``)."""
    phi = np.asarray(phi, dtype=np.float64)
    return np.multiply.outer(np.cos(phi), n) + np.multiply.outer(np.sin(phi), theta)


def true_curvature_on_circle(
    eigenvalues: ndarray, eigenvectors: ndarray, n: ndarray, theta: ndarray, phis: ndarray
) -> ndarray:
    """Exact curvature ``C_true(φ) = N(φ)ᵀ H N(φ)`` with ``H = V diag(λ) Vᵀ``: ``(m,)``."""
    coords = orientation_on_circle(n, theta, phis) @ eigenvectors
    return (coords**2) @ eigenvalues


def fourier_model(a0: float, a1: float, b1: float, phis: ndarray) -> ndarray:
    """The rotation's curvature model ``C(φ) = a₀/2 + a₁ cos 2φ + b₁ sin 2φ``: ``(m,)``."""
    phis = np.asarray(phis, dtype=np.float64)
    return a0 / 2 + a1 * np.cos(2 * phis) + b1 * np.sin(2 * phis)


def rotation_figure(
    data: RotationRun,
    xs: ndarray,
    ys: ndarray,
    z: ndarray,
    color: str,
    color_scale: str = "linear",
    clip: float | None = None,
    click_grid: bool = True,
    duration_ms: int = 700,
    large: bool = False,
    compact: bool = False,
) -> go.Figure:
    """The dimer at θ rotating toward the min mode, one frame per rotation iteration.

    Left: a zoomed contour window (``xs``, ``ys``, ``z``) around θ with the dimer drawn through θ
    (half-length 35 % of the window, not to scale: ΔR is far smaller), the rotational force F_R as
    an arrow at the dimer end (length ∝ torque: 0.8 × the dimer at the largest torque the Hessian
    allows, (λ_max − λ_min)/2), the trial orientation N(φ₁) (dashed), the fitted
    orientation N(φ_min) (dotted) and the exact min-mode eigenvector v_min (thin grey, static).
    Right: the curvature along the rotation circle of the frame's iteration: the Fourier model
    C(φ), the exact ``N(φ)ᵀHN(φ)``, and markers at φ = 0, the trial angle and the fitted angle.
    Frame k < K shows the dimer N_k, its force, and iteration k+1 (trial N(φ₁), fitted N_{k+1} as
    the engine returned it, the model about N_k); the last frame shows the final N_K alone.
    ``compact`` (a phone): the curvature panel sits under the contour, each the chart's width.
    """
    point = data.point
    half = 0.35 * min(xs[-1] - xs[0], ys[-1] - ys[0])
    phis = np.linspace(-np.pi / 2, np.pi / 2, 181)
    v_min = data.eigenvectors[:, 0]
    # the arrow's scale: the largest torque any orientation can feel, (λ_max − λ_min)/2 of the exact
    # Hessian (the frames' largest drew a torque of 2·10⁻¹⁶ as a full-length arrow)
    spread = 0.5 * float(np.ptp(data.eigenvalues)) if np.all(np.isfinite(data.eigenvalues)) else 0.0
    observed = float(np.nanmax(data.torques)) if np.any(data.torques > 0) else 0.0
    max_torque = max(spread, observed) or 1.0

    right = {"row": 2, "col": 1} if compact else {"row": 1, "col": 2}
    fig = make_subplots(
        figure=AnimatedFigure(),  # framed in place by with_frames
        rows=2 if compact else 1,
        cols=1 if compact else 2,
        horizontal_spacing=0.2 if large else 0.16,  # projector tick labels ("−800") and the y title
        vertical_spacing=0.1,
        subplot_titles=("dimer at θ (zoomed window)", "curvature along the rotation circle"),
    )
    background = contour_trace(xs, ys, z, color_scale, clip)
    background.showscale = False
    fig.add_trace(background, row=1, col=1)
    fig.add_trace(
        go.Scatter(
            **_segment(point, v_min, 1.2 * half),
            mode="lines",
            name="exact v_min",
            line={"color": GUIDE_COLOR, "width": 1.5},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[float(point[0])],
            y=[float(point[1])],
            mode="markers",
            name="θ",
            marker={"color": "black", "size": 8, "symbol": "x"},
        ),
        row=1,
        col=1,
    )
    if click_grid:
        fig.add_trace(click_grid_trace(xs, ys), row=1, col=1)
    first_moving = len(fig.data)

    def frame_traces(k: int) -> list[dict]:
        """Moving traces of frame k: the dimer N_k with its force, and iteration k+1 (if any)."""
        n_k = data.orientations[k]
        theta = data.rotation_direction(k)
        if not np.any(theta):
            theta = np.array([-n_k[1], n_k[0]])
        arrow_len = 0.8 * half * float(np.linalg.norm(data.forces[k])) / max_torque
        tip = point + half * n_k
        c_true = true_curvature_on_circle(data.eigenvalues, data.eigenvectors, n_k, theta, phis)
        # a single null point, not empty lists: an animation frame with empty arrays leaves the
        # previous frame's curve on screen (the last frame showed iteration K−1's model)
        empty = {"x": [None], "y": [None]}
        trial = fitted = model_curve = empty
        markers = {"x": [0.0], "y": rounded([data.curvatures[k]])}
        if k < data.iterations:
            phi1, phi_min = data.trial_angles[k], data.angles[k]
            fitted = _segment(point, data.orientations[k + 1], half)
            a0, a1, b1 = data.a0[k], data.a1[k], data.b1[k]
            if np.isfinite([a0, a1, b1]).all():
                trial = _segment(point, orientation_on_circle(n_k, theta, phi1), half)
                model_curve = {"x": rounded(np.degrees(phis)), "y": rounded(fourier_model(a0, a1, b1, phis))}
                at = np.array([0.0, phi1, phi_min])
                markers = {"x": rounded(np.degrees(at)), "y": rounded(fourier_model(a0, a1, b1, at))}
            else:
                markers = {
                    "x": rounded(np.degrees([0.0, phi_min])),
                    "y": rounded([data.curvatures[k], data.curvatures[k + 1]]),
                }
        return [
            _segment(point, n_k, half),
            {"x": rounded([tip[0]]), "y": rounded([tip[1]])},
            {
                "x": rounded([tip[0], tip[0] + arrow_len * theta[0]]),
                "y": rounded([tip[1], tip[1] + arrow_len * theta[1]]),
            },
            trial,
            fitted,
            model_curve,
            {"x": rounded(np.degrees(phis)), "y": rounded(c_true)},
            markers,
        ]

    start = frame_traces(0)
    fourier = bool(np.isfinite(data.a0).any()) if len(data.a0) else True  # sd: NaN Fourier coefficients
    moving = [
        go.Scatter(**start[0], mode="lines", name="dimer N", line={"color": color, "width": 4}),
        go.Scatter(
            **start[1],
            mode="markers",
            name="dimer end θ+ΔR·N",
            marker={"color": color, "size": 11, "line": {"color": "white", "width": 1.5}},
        ),
        go.Scatter(
            **start[2],
            mode="lines+markers",
            name="rotational force F_R",
            line={"color": "#D55E00", "width": 3},
            marker={"symbol": "arrow", "angleref": "previous", "size": [0, 14], "color": "#D55E00"},
        ),
        go.Scatter(
            **start[3],
            mode="lines",
            name="trial orientation N(φ₁)",
            line={"color": color, "width": 2, "dash": "dash"},
            showlegend=fourier,  # sd rotation has no trial orientation nor a model: not in its legend
        ),
        go.Scatter(
            **start[4],
            mode="lines",
            name="fitted orientation N(φ_min)",
            line={"color": "black", "width": 2, "dash": "dot"},
        ),
    ]
    for trace in moving:
        fig.add_trace(trace, row=1, col=1)
    circle = [
        go.Scatter(
            **start[5], mode="lines", name="model C(φ)", line={"color": color, "width": 3}, showlegend=fourier
        ),
        go.Scatter(
            **start[6],
            mode="lines",
            name="exact N(φ)ᵀHN(φ)",
            line={"color": GUIDE_COLOR, "width": 2, "dash": "dot"},
        ),
        go.Scatter(
            **start[7],
            mode="markers+text",
            name="C(0), C(φ₁), C(φ_min)",
            text=["N", "trial", "fit"],
            textposition="top center",
            marker={"color": color, "size": 11, "symbol": ["circle", "diamond", "star"]},
        ),
    ]
    for trace in circle:
        fig.add_trace(trace, **right)
    moving_indices = list(range(first_moving, len(fig.data)))

    labels = [str(k) for k in range(data.iterations + 1)]
    frames = [
        {"name": labels[k], "data": frame_traces(k), "traces": moving_indices}
        for k in range(data.iterations + 1)
    ]
    # a phone: the label right of Play/Pause in ≈ 270 px of plot ("rotation iteration 0" ran under Pause)
    prefix = "iteration " if compact else "rotation iteration "
    buttons, slider = play_controls(labels, duration_ms, prefix, large)

    curves = []
    for k in range(data.iterations):
        if np.isfinite([data.a0[k], data.a1[k], data.b1[k]]).all():
            curves.append(fourier_model(data.a0[k], data.a1[k], data.b1[k], phis))
    values = np.concatenate([*curves, data.curvatures, data.eigenvalues])
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * (hi - lo) if hi > lo else 1.0

    fig.update_xaxes(range=rounded([xs[0], xs[-1]]), title_text="x", constrain="domain", row=1, col=1)
    fig.update_yaxes(
        range=rounded([ys[0], ys[-1]]),
        title_text="y",
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
        row=1,
        col=1,
    )
    fig.update_xaxes(
        range=[-90, 90], title_text="rotation angle φ (degrees)", dtick=45 if large else 30, **right
    )
    fig.update_yaxes(range=rounded([lo - pad, hi + pad]), title_text="curvature C", **right)
    return with_frames(
        finish(
            fig,
            large,
            updatemenus=buttons,
            sliders=slider,
            # large: the whole chart, legend included, fits a 720 px projector; compact: two panels of
            # the phone's width, one above the other, and the nine legend rows
            height=1100 if compact else 680 if large else 760,
            margin={"l": 60, "r": 20, "t": 60, "b": controls_margin(large) + (70 if large else 110)},
            legend={**LEGEND_FONT[large], **LEGEND_AT_BOTTOM},
        ),
        frames,
    )


@dataclass
class ConvergenceSeries:
    """One rotation variant's convergence (K+1 points: the start and each iteration)."""

    label: str
    color: str
    dash: str
    grad_evals: ndarray  # (K+1,) cumulative gradient evaluations
    curvature_error: ndarray  # (K+1,) |C − λ_min|
    abs_cos: ndarray  # (K+1,) |cos∠(N, v_min)|


ERROR_FLOOR = 1e-16


def convergence_figure(
    series: Sequence[ConvergenceSeries], large: bool = False, compact: bool = False
) -> go.Figure:
    """Curvature error |C − λ_min| (log) and |cos∠(N, v_min)| against rotation iteration and
    against cumulative gradient evaluations, one line per variant (e.g. sd/fourier × forward/central).

    Errors below ``ERROR_FLOOR`` are drawn at the floor (a log axis has no 0). ``compact`` (a phone):
    the four panels one above the other, the two against iterations first.
    """
    titles = {
        (1, 1): "curvature error vs iteration",
        (1, 2): "curvature error vs gradient evaluations",
        (2, 1): "|cos∠(N, v_min)| vs iteration",
        (2, 2): "|cos∠(N, v_min)| vs gradient evaluations",
    }

    def at(row: int, col: int) -> dict:
        return {"row": 2 * (col - 1) + row, "col": 1} if compact else {"row": row, "col": col}

    order = sorted(titles, key=lambda rc: tuple(at(*rc).values()))
    fig = make_subplots(
        figure=FrozenFigure(),
        rows=4 if compact else 2,
        cols=1 if compact else 2,
        shared_xaxes=False if compact else "columns",
        vertical_spacing=0.1 if compact else 0.08,
        horizontal_spacing=0.08,
        subplot_titles=[titles[rc] for rc in order],
    )
    max_iter, max_evals = 1, 1
    for s in series:
        iterations = np.arange(len(s.abs_cos))
        max_iter = max(max_iter, int(iterations[-1]))
        max_evals = max(max_evals, int(np.max(s.grad_evals)))
        error = np.maximum(np.asarray(s.curvature_error, dtype=np.float64), ERROR_FLOOR)
        style = {
            "line": {"color": s.color, "dash": s.dash, "width": 2.5},
            "mode": "lines+markers",
            "marker": {"size": 5},
            "legendgroup": s.label,
        }
        for col, x in ((1, iterations), (2, s.grad_evals)):
            fig.add_trace(
                go.Scatter(x=rounded(x), y=rounded(error), name=s.label, showlegend=col == 1, **style),
                **at(1, col),
            )
            fig.add_trace(
                go.Scatter(x=rounded(x), y=rounded(s.abs_cos), name=s.label, showlegend=False, **style),
                **at(2, col),
            )
    error_title, cos_title = "|C − λ_min|", "|cos|"
    fig.update_yaxes(type="log", title_text=error_title, exponentformat="power", **at(1, 1))
    fig.update_yaxes(
        type="log", exponentformat="power", title_text=error_title if compact else None, **at(1, 2)
    )
    fig.update_yaxes(range=[0, 1.05], title_text=cos_title, **at(2, 1))
    fig.update_yaxes(range=[0, 1.05], title_text=cos_title if compact else None, **at(2, 2))
    for row in (1, 2):  # side by side the columns share x and the lower panels carry the titles
        last = compact or row == 2
        fig.update_xaxes(
            range=[-0.3, max_iter + 0.3], title_text="rotation iteration" if last else None, **at(row, 1)
        )
        fig.update_xaxes(
            range=[0, max_evals + 0.5], title_text="gradient evaluations" if last else None, **at(row, 2)
        )
    below = legend_below(large, compact)
    return finish(
        fig,
        large,
        height=(1300 if compact else 600) + below["margin"]["b"] - 50,
        **below,
    )


@dataclass
class FiniteDifferenceSeries:
    """One (scheme, dtype) sweep over dimer lengths ΔR."""

    label: str
    color: str
    dash: str
    hn_error: ndarray  # (m,) ‖D − HN‖/‖HN‖
    curvature_error: ndarray  # (m,) |C − NᵀHN|/‖HN‖


def finite_difference_figure(
    lengths: ndarray, series: Sequence[FiniteDifferenceSeries], large: bool = False, compact: bool = False
) -> go.Figure:
    """Finite-difference error of the dimer probe against ΔR on log–log axes.

    Left ``‖D − HN‖/‖HN‖``, right ``|C − NᵀHN|/‖HN‖``. Too small a ΔR: round-off (the error grows
    like ε/ΔR, ε the dtype's machine epsilon); too large: truncation (O(ΔR) forward, O(ΔR²) central).
    Errors below ``ERROR_FLOOR`` are drawn at the floor. ``compact`` (a phone): the right panel
    under the left one.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 1 or lengths.size < 2 or np.any(lengths <= 0):
        raise ValueError(f"lengths must be a 1-D array of >= 2 positive dimer lengths, got {lengths}")

    def at(panel: int) -> dict:
        return {"row": panel, "col": 1} if compact else {"row": 1, "col": panel}

    fig = make_subplots(
        figure=FrozenFigure(),
        rows=2 if compact else 1,
        cols=1 if compact else 2,
        horizontal_spacing=0.1,
        vertical_spacing=0.16,
        subplot_titles=("‖D − HN‖ / ‖HN‖", "|C − NᵀHN| / ‖HN‖"),
    )
    for s in series:
        for col, err in ((1, s.hn_error), (2, s.curvature_error)):
            err = np.asarray(err, dtype=np.float64)
            if err.shape != lengths.shape:
                raise ValueError(f"{s.label}: errors must have shape {lengths.shape}, got {err.shape}")
            fig.add_trace(
                go.Scatter(
                    x=rounded(lengths),
                    y=rounded(np.maximum(err, ERROR_FLOOR)),
                    name=s.label,
                    legendgroup=s.label,
                    showlegend=col == 1,
                    mode="lines+markers",
                    marker={"size": 5},
                    line={"color": s.color, "dash": s.dash, "width": 2.5},
                ),
                **at(col),
            )
    x_range = rounded(np.log10([lengths.min(), lengths.max()]))
    for col in (1, 2):
        fig.update_xaxes(  # a label every second (projector: third) decade: eleven 10⁻ⁿ ran together
            type="log", range=x_range, title_text="dimer length ΔR", exponentformat="power",
            dtick=3 if large else 2, tickangle=0, **at(col),
        )  # fmt: skip
        fig.update_yaxes(type="log", exponentformat="power", range=[-16.5, 1], **at(col))
        if compact or col == 1:
            fig.update_yaxes(title_text="relative error", **at(col))
    below = legend_below(large, compact)
    return finish(fig, large, height=(820 if compact else 460) + below["margin"]["b"] - 50, **below)


def saddle_search_figure(
    path: ndarray,
    xs: ndarray,
    ys: ndarray,
    z: ndarray,
    color: str,
    markers: Sequence[Marker] = (),
    directions: ndarray | None = None,
    color_scale: str = "linear",
    clip: float | None = None,
    max_frames: int = MAX_FRAMES,
    duration_ms: int = 40,
    large: bool = False,
    compact: bool = False,
) -> go.Figure:
    """A dimer saddle search (α = 2) climbing from a minimum, animated on the contour.

    ``path`` (T+1, 2) the iterates; ``directions`` (T+1, 2) the dimer N at each (drawn as a segment
    of 4 % of the window, not to scale) or None; ``markers`` the listed stationary points. The full
    path is static and faint; frames (every ``stride``-th row, at most ``max_frames``) move the
    iterate, its trail and its dimer. ``compact`` (a phone): no colour bar, as on the Surfaces race
    (beside the plot it took half of the chart's width).
    """
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) < 1:
        raise ValueError(f"path must have shape (T+1, 2), got {path.shape}")
    if directions is not None:
        directions = np.asarray(directions, dtype=np.float64)
        if directions.shape != path.shape:
            raise ValueError(f"directions must have the shape of path {path.shape}, got {directions.shape}")
    half = 0.04 * min(xs[-1] - xs[0], ys[-1] - ys[0])
    fig = AnimatedFigure()  # framed in place by with_frames
    background = contour_trace(xs, ys, z, color_scale, clip)
    background.showscale = not compact
    fig.add_trace(background)
    for trace in marker_traces(markers):
        fig.add_trace(trace)
    fig.add_trace(
        go.Scatter(
            x=rounded(path[:, 0]),
            y=rounded(path[:, 1]),
            mode="lines",
            name="full path",
            line={"color": color, "width": 1, "dash": "dot"},
            opacity=0.6,
        )
    )
    first_moving = len(fig.data)

    rows = frame_rows(len(path), max_frames)

    def frame_traces(i: int) -> list[dict]:
        """Frame i: the trail through the frame rows so far (bounded size), the iterate, its dimer."""
        t = rows[i]
        trail = {"x": rounded(path[rows[: i + 1], 0]), "y": rounded(path[rows[: i + 1], 1])}
        here = {"x": rounded([path[t, 0]]), "y": rounded([path[t, 1]])}
        dimer = {"x": [], "y": []}
        if directions is not None and np.all(np.isfinite(directions[t])):
            dimer = _segment(path[t], directions[t], half)
        return [trail, dimer, here]

    start = frame_traces(0)
    fig.add_trace(go.Scatter(**start[0], mode="lines", name="path", line={"color": color, "width": 3}))
    fig.add_trace(go.Scatter(**start[1], mode="lines", name="dimer N", line={"color": "black", "width": 4}))
    fig.add_trace(
        go.Scatter(
            **start[2],
            mode="markers",
            name="iterate",
            marker={"color": color, "size": 13, "line": {"color": "white", "width": 2}},
        )
    )
    moving = list(range(first_moving, len(fig.data)))
    labels = [str(t) for t in rows]
    frames = [{"name": label, "data": frame_traces(i), "traces": moving} for i, label in enumerate(labels)]
    buttons, slider = play_controls(labels, duration_ms, "step ", large)
    fig.update_xaxes(range=rounded([xs[0], xs[-1]]), title_text="x", constrain="domain")
    fig.update_yaxes(
        range=rounded([ys[0], ys[-1]]), title_text="y", scaleanchor="x", scaleratio=1, constrain="domain"
    )
    return with_frames(
        finish(
            fig,
            large,
            updatemenus=buttons,
            sliders=slider,
            # compact: the plot is as high as the phone is wide; large: the legend above the plot and
            # the slider below it both in a 1280×720 window under the page header (700 hid the legend)
            height=540 if compact else (640 if large else 700),
            margin={"l": 50, "r": 20, "t": 50, "b": controls_margin(large)},
            legend={**LEGEND_FONT[large], "orientation": "h", "x": 0.0, "y": 1.02, "yanchor": "bottom"},
        ),
        frames,
    )
