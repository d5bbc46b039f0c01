"""Figures of the Networks page: several optimizers' traces on one small network.

Pure functions from :class:`deo.trace.Trace` lists (and slice arrays) to ``go.Figure``. Each
optimizer keeps one colour and dash everywhere (``viz.palette``). Quantities (``DEO.md``): the loss,
the dimer curvature estimate C against the exact λ_min of the Hessian, ``|cos∠(N, v_min)|``, the
removed fraction ``(g·N)²/‖g‖²``, and the 2-D slice of the loss with every trajectory projected.

A diverged run is drawn up to its last finite row and marked with a cross and "diverged".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from numpy import ndarray

from deo.trace import Trace, fate
from viz.dimer_figs import (
    LEGEND_FONT,
    contour_trace,
    controls_margin,
    finish,
    play_controls,
    rounded,
    with_frames,
)
from viz.frames import MAX_FRAMES, frame_rows
from viz.overlap import BAND_SCALE
from viz.palette import (
    EXACT_COLOR,
    LEGEND_ABOVE,
    color_for,
    dash_for,
    legend_above,
    legend_label,
    line_width,
    rgba,
)
from viz.surface_figs import AnimatedFigure, FrozenFigure, hidden_loss_curves
from viz.surface_figs import loss_figure as surface_loss_figure

X_AXES = {"steps": "step", "grad_evals": "gradient evaluations"}
LINE_PX = line_width()  # the loss charts' width (viz.palette), also on the other charts here
COVERED_WIDTH = BAND_SCALE * LINE_PX  # px: a covered curve is drawn this wide, a band around the one on top
SLICE_CAUTION = (
    "A 2-D slice of a high-dimensional loss can mislead: the contour is the loss on the plane, "
    "a projected point's contour value is not its loss."
)


def _line(trace: Trace, x: ndarray, y: ndarray, **kwargs) -> go.Scatter:
    """A line in the optimizer's colour and dash (``line`` overrides merge into that style), named by
    the run's short name (:func:`viz.palette.legend_label`: a control is "DEO (paper): random N")."""
    style = {"color": color_for(trace.key), "dash": dash_for(trace.key), "width": LINE_PX}
    style.update(kwargs.pop("line", {}))
    kwargs.setdefault("name", legend_label(trace.label))
    return go.Scatter(x=rounded(x), y=rounded(y), mode="lines", legendgroup=trace.label, line=style, **kwargs)


def _positive_floor(values: ndarray) -> ndarray:
    """Values ≤ 0 become NaN (gaps) on a log axis."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan)


def _x_name(x_axis: str) -> str:
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be one of {tuple(X_AXES)}, got {x_axis!r}")
    return x_axis


def covered_curves(
    traces: Sequence[Trace], x_axis: str = "steps", log_y: bool = False
) -> list[tuple[str, str, float]]:
    """The loss curves that a curve drawn later (on top) hides on :func:`loss_figure`'s chart:
    ``(hidden, on top, largest |Δ loss|)`` with the runs' legend names
    (``viz.surface_figs.hidden_loss_curves``)."""
    return hidden_loss_curves(traces, _x_name(x_axis), log_y)


def loss_figure(
    traces: Sequence[Trace],
    x_axis: str = "steps",
    log_y: bool = False,
    plateau: float | None = None,
    large: bool = False,
    covered: list[tuple[str, str, float]] | None = None,
    compact: bool = False,
) -> go.Figure:
    """Training loss of every optimizer against steps or cumulative gradient evaluations: the loss
    chart of ``viz.surface_figs.loss_figure`` (one definition for both pages: a diverged run never
    rescales it, a covered curve is drawn as a band, the legend sits in rows above the plot) with the
    problem's known ``plateau`` (``NETWORKS.md``) as a dotted line, 440 px tall."""
    return surface_loss_figure(
        traces, _x_name(x_axis), log_y, large=large, height=440, compact=compact, plateau=plateau,
        covered=covered,
    )  # fmt: skip


def _finish_above(fig: go.Figure, large: bool, compact: bool, height: int) -> go.Figure:
    """:func:`viz.dimer_figs.finish` with the legend in rows above the plot, below the toolbar where
    the view shows one (``viz.palette.legend_above``)."""
    height, legend = legend_above(height, large, compact)
    return finish(fig, large, height=height, legend=legend)


def _no_data_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 14, "color": EXACT_COLOR},
        bgcolor="rgba(255,255,255,0.8)",
    )


def curvature_figure(traces: Sequence[Trace], large: bool = False, compact: bool = False) -> go.Figure:
    """The dimer curvature estimate C (solid, dimer presets only) and the exact λ_min of the Hessian
    at the same iterate (dotted, same colour) against steps. The legend sits in rows above the plot,
    below the toolbar where the view shows one (``viz.palette.legend_above``; ``compact``: a phone).

    When no trace has an exact λ_min (too many parameters for the exact Hessian), a note says so.
    """
    fig = FrozenFigure()  # a go.Figure until frozen (pages.network_charts caches it frozen)
    has_exact = False
    has_dimer = False
    for trace in traces:
        if np.isfinite(trace.curvature).any():
            has_dimer = True
            # solid whatever the run's own dash (a control's is dotted): solid is C, dotted λ_min
            name = f"{legend_label(trace.label)}: dimer C"
            fig.add_trace(_line(trace, trace.steps, trace.curvature, name=name, line={"dash": "solid"}))
        if np.isfinite(trace.exact_lambda_min).any():
            has_exact = True
            fig.add_trace(
                _line(
                    trace,
                    trace.steps,
                    trace.exact_lambda_min,
                    name=f"{legend_label(trace.label)}: exact λ_min",
                    line={"dash": "dot", "width": 1.5},
                )
            )
    notes = []
    if not has_exact:
        notes.append("exact λ_min not computed (too many parameters for the exact Hessian)")
    if not has_dimer:
        notes.append("no dimer optimizer chosen: no curvature estimate")
    if notes:
        _no_data_note(fig, "<br>".join(notes))
    fig.add_hline(y=0, line={"color": EXACT_COLOR, "width": 1})
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="curvature")
    return _finish_above(fig, large, compact, 440)


def _unit_interval_figure(
    traces: Sequence[Trace], field: str, y_title: str, empty_note: str, large: bool, compact: bool = False
) -> go.Figure:
    fig = FrozenFigure()  # a go.Figure until frozen (pages.network_charts caches it frozen)
    shown = False
    for trace in traces:
        values = getattr(trace, field)
        if np.isfinite(values).any():
            shown = True
            fig.add_trace(_line(trace, trace.steps, values))
    if not shown:
        _no_data_note(fig, empty_note)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=y_title, range=[-0.02, 1.05])
    return _finish_above(fig, large, compact, 400)


def cos_figure(traces: Sequence[Trace], large: bool = False, compact: bool = False) -> go.Figure:
    """``|cos∠(N, v_min)|`` between the dimer orientation N and the exact min eigenvector (1 = found)."""
    return _unit_interval_figure(
        traces,
        "cos_to_vmin",
        "|cos∠(N, v_min)|",
        "needs a dimer optimizer and the exact Hessian (small networks)",
        large,
        compact,
    )


def removed_fraction_figure(traces: Sequence[Trace], large: bool = False, compact: bool = False) -> go.Figure:
    """The removed fraction ``(g·N)²/‖g‖²``: how much of the gradient the dimer projection takes away."""
    return _unit_interval_figure(
        traces, "removed_fraction", "(g·N)² / ‖g‖²", "no dimer optimizer chosen", large, compact
    )


def slice_figure(
    alphas: ndarray,
    betas: ndarray,
    z: ndarray,
    traces: Sequence[Trace],
    paths: Sequence[ndarray],
    description: str,
    log_z: bool = False,
    max_frames: int = MAX_FRAMES,
    duration_ms: int = 50,
    large: bool = False,
    compact: bool = False,
) -> go.Figure:
    """The 2-D loss slice (static contour, ``fig.data[0]``) with every trajectory projected on it.

    ``paths[i]`` (T_i+1, 2) is trace i's projection in the plane's coordinates (α, β). Full paths are
    static and faint; frames (shared step rows, at most ``max_frames``) move one marker per optimizer
    (an optimizer that stopped earlier stays at its last point). ``description`` (radius,
    normalisation, seed) and the caution that a slice can mislead are written on the figure, except
    when ``compact`` (a phone, where that title ran off both edges of the chart and over the legend:
    the page writes them above it); ``compact`` also drops the colour bar (it took a quarter of the
    width; a tap on the contour shows the slice loss), as the Surfaces race does on a phone.
    """
    if len(paths) != len(traces):
        raise ValueError(f"need one path per trace, got {len(paths)} paths for {len(traces)} traces")
    z = np.asarray(z, dtype=np.float64)
    shown = np.log10(np.maximum(z, 1e-12)) if log_z else z
    fig = AnimatedFigure()  # framed in place by with_frames; pages.network_charts freezes it
    background = contour_trace(
        alphas,
        betas,
        shown,
        title="log₁₀ loss" if log_z else "loss",
        name="slice",
        hovertemplate="α=%{x:.3g}<br>β=%{y:.3g}<br>slice loss=%{z:.4g}<extra></extra>",
    )
    background.showscale = not compact
    fig.add_trace(background)
    paths = [np.asarray(p, dtype=np.float64) for p in paths]
    for trace, path in zip(traces, paths):
        if path.ndim != 2 or path.shape[1] != 2 or len(path) != len(trace.steps):
            raise ValueError(f"{trace.label}: path must have shape ({len(trace.steps)}, 2), got {path.shape}")
        fig.add_trace(
            go.Scatter(
                x=rounded(path[:, 0]),
                y=rounded(path[:, 1]),
                mode="lines",
                name=legend_label(trace.label),
                legendgroup=trace.label,
                line={"color": rgba(color_for(trace.key), 0.7), "width": 2, "dash": dash_for(trace.key)},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=rounded(path[:1, 0]),
                y=rounded(path[:1, 1]),
                mode="markers",
                name="start",
                showlegend=False,
                legendgroup=trace.label,
                marker={"symbol": "circle-open", "size": 12, "color": color_for(trace.key)},
            )
        )
    first_moving = len(fig.data)
    all_steps = np.unique(np.concatenate([t.steps for t in traces])) if traces else np.zeros(1, int)
    rows = [int(all_steps[i]) for i in frame_rows(len(all_steps), max_frames)]

    def frame_traces(step: int) -> list[dict]:
        out = []
        for trace, path in zip(traces, paths):
            i = max(int(np.searchsorted(trace.steps, step, side="right")) - 1, 0)
            out.append({"x": rounded([path[i, 0]]), "y": rounded([path[i, 1]])})
        return out

    for trace, start in zip(traces, frame_traces(rows[0])):
        fig.add_trace(
            go.Scatter(
                **start,
                mode="markers",
                name=f"{legend_label(trace.label)} now",
                showlegend=False,
                legendgroup=trace.label,
                marker={"size": 13, "color": color_for(trace.key), "line": {"color": "white", "width": 2}},
            )
        )
    moving = list(range(first_moving, len(fig.data)))
    labels = [str(step) for step in rows]
    frames = [
        {"name": label, "data": frame_traces(step), "traces": moving} for label, step in zip(labels, rows)
    ]
    buttons, slider = play_controls(labels, duration_ms, "step ", large)
    fig.update_xaxes(
        range=rounded([alphas[0], alphas[-1]]), title_text="α (first direction)", constrain="domain"
    )
    fig.update_yaxes(
        range=rounded([betas[0], betas[-1]]),
        title_text="β (second direction)",
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
    )
    top = 30 if compact else (120 if large else 110)  # the title's two lines and the legend's row
    return with_frames(
        finish(
            fig,
            large,
            updatemenus=buttons,
            sliders=slider,
            # large: the whole chart, title and legend included, under the header of a 1280×720
            # projector window (760 px hid the legend behind it when Play and the slider were in view)
            height=570 if compact else 640 if large else 760,
            # a projector: the title's first line a little larger (its caution line is as long as the
            # chart is wide), the legend's font as on the Dimer page's charts (at the page's 22 px its
            # rows ran into the title above them)
            title=None
            if compact
            else {
                "text": f"{description}<br><span style='font-size:12px'><i>{SLICE_CAUTION}</i></span>",
                "x": 0.0,
                "xanchor": "left",
                "font": {"size": 18 if large else 14},
            },
            margin={"l": 60, "r": 20, "t": top, "b": controls_margin(large)},
            legend={**LEGEND_FONT[large], "orientation": "h", "x": 0.0, "y": 1.0, "yanchor": "bottom"},
        ),
        frames,
    )


def trajectory_loss_figure(
    traces: Sequence[Trace],
    on_slice: Sequence[ndarray] | None = None,
    log_y: bool = False,
    large: bool = False,
) -> go.Figure:
    """The true loss along each trajectory (in the run's own line) and, when given, the slice's loss
    at the projected point (thin dashed, same colour): the two differ wherever the trajectory leaves
    the plane. The legend names each run once (its slice line toggles with it) and keys the thin
    dashed line once: eight entries pushed a projector's plot down to ≈ 80 px and scrolled. A run
    that a later one covers is drawn as a band, as on :func:`loss_figure`."""
    fig = FrozenFigure()  # a go.Figure until frozen (pages.network_charts caches it frozen)
    hidden = {name for name, _, _ in covered_curves(traces, "steps", log_y)}
    for i, trace in enumerate(traces):
        name = legend_label(trace.label)
        y = _positive_floor(trace.loss) if log_y else trace.loss
        wide = {"line": {"width": COVERED_WIDTH}} if name in hidden else {}
        fig.add_trace(
            _line(trace, trace.steps, y, hovertemplate=f"{name}: true loss %{{y:.4g}}<extra></extra>", **wide)
        )
        if on_slice is not None:
            s = _positive_floor(on_slice[i]) if log_y else on_slice[i]
            fig.add_trace(
                _line(
                    trace,
                    trace.steps,
                    s,
                    name=f"{name}: slice at projection",
                    showlegend=False,
                    line={"dash": "dash", "width": 1.2},
                )
            )
    if on_slice is not None and len(traces):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name="thin dashed: the slice's loss at the projected point",
                line={"color": EXACT_COLOR, "dash": "dash", "width": 1.2},
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", type="log" if log_y else "linear", exponentformat="power")
    return finish(fig, large, height=480 if large else 400, legend=LEGEND_ABOVE)


def results_rows(traces: Sequence[Trace], has_escape: bool = True) -> list[dict]:
    """One row per optimizer for the results table: status (``deo.trace.FATES``; ``has_escape``: the
    network has a plateau to leave), final / best loss, the step and the gradient evaluations at
    which the plateau was left (the race's escape criterion), totals."""
    rows = []
    for trace in traces:
        finite = np.isfinite(trace.loss)
        escape_evals = None
        if trace.escape_step is not None:
            i = int(np.searchsorted(trace.steps, trace.escape_step))
            if i < len(trace.steps) and trace.steps[i] == trace.escape_step:
                escape_evals = int(trace.grad_evals[i])
        rows.append(
            {
                "optimizer": trace.label,
                "status": fate(trace.status, has_escape),
                "final loss": float(trace.loss[finite][-1]) if finite.any() else None,
                "best loss": float(np.min(trace.loss[finite])) if finite.any() else None,
                "steps run": int(trace.steps[-1]) if len(trace.steps) else 0,
                "gradient evaluations": int(trace.grad_evals[-1]) if len(trace.grad_evals) else 0,
                "escape step": trace.escape_step,
                "escape grad evals": escape_evals,
                "diverged at": trace.stop_step,
                "wall time (s)": round(trace.wall_time, 3),
            }
        )
    return rows
