"""Dimer — the method itself at one point θ of a surface (UX.md §2).

Pick θ (number inputs or a click on the contour) and an initial orientation N₀; the engine
(``deo.min_mode(record=True)``) rotates the dimer toward the minimum-curvature eigenvector and the
page shows each rotation iteration, the Fourier curvature model against the exact curvature, the
cost of sd vs fourier rotation and of forward vs central probes, the finite-difference error
against the dimer length ΔR, and the dimer saddle search (α = 2) on Müller–Brown.

Every study is a library call (``deo.dimer_studies``: the rotation run, sd vs fourier, the
finite-difference errors; ``deo.race`` for the saddle search) cached here; the page draws the
dataclasses they return with ``viz.dimer_figs``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import streamlit as st

import landscapes
from deo import dimer_studies as studies
from deo.dimer import SCHEMES
from deo.presets import DIMER_LENGTH, PRESETS
from pages.common import (
    URL,
    cached_surface_race,
    chart_config,
    compact_layout,
    controls,
    copy_link_button,
    download_buttons,
    hyperparameter_inputs,
    large_fonts,
    progress_reporter,
    require_app_navigation,
    safe_block,
)
from pages.dimer_charts import (
    DEFAULT_ANGLE,
    DEFAULT_ITERATIONS,
    DEFAULT_LENGTH,
    DEFAULT_PLANE,
    DEFAULT_ROTATION,
    DEFAULT_SCHEME,
    DEFAULT_STEP_REL,
    DEFAULT_SURFACE,
    DEFAULT_ZOOM,
    MAX_ITERATIONS,
    PLANES,
    SADDLE_DEFAULTS,
    SADDLE_PRESET,
    SADDLE_STEPS,
    SADDLE_SURFACE,
    convergence_chart,
    finite_difference_chart,
    finite_difference_errors,
    overview_chart,
    rotation_chart,
    rotation_convergence,
    rotation_run,
    saddle_search_chart,
    saddle_search_race,
    saddle_search_spec,
    saddle_search_start,
    zoom_window,
)

require_app_navigation()

P = "dm."  # widget keys and URL parameters of this page
DIMER_LENGTHS = DIMER_LENGTH.decades()  # the presets' ΔR bounds, one stop per power of ten


# ------------------------------------------------------------------------------------------ widgets


def _reset_point() -> None:
    """A new surface: θ back to its first listed start (the old θ may lie outside its window)."""
    surface = landscapes.SURFACES[st.session_state[f"{P}surface"]]
    st.session_state[f"{P}x"], st.session_state[f"{P}y"] = map(float, surface.starts[0])


def _pick_point() -> None:
    """A click on the overview contour sets θ (snapped to the click grid)."""
    event = st.session_state.get(f"{P}pick")
    points = (event or {}).get("selection", {}).get("points", [])
    if points:
        st.session_state[f"{P}x"] = float(points[0]["x"])
        st.session_state[f"{P}y"] = float(points[0]["y"])


def _show(fig, key: str, **kwargs):
    """A chart without the Plotly logo, and on a phone or a projector without the toolbar (it covered
    legends)."""
    return st.plotly_chart(fig, key=key, config=chart_config(), **kwargs)


def _history_table(data: studies.RotationRun) -> list[dict]:
    rows = []
    abs_cos = data.abs_cos
    for k in range(data.iterations + 1):
        rows.append(
            {
                "iteration": k,
                "N": f"({data.orientations[k][0]:+.4f}, {data.orientations[k][1]:+.4f})",
                "curvature C": data.curvatures[k],
                "torque ‖F_R‖": data.torques[k],
                "|cos∠(N, v_min)|": float(abs_cos[k]),
                "trial angle φ₁ (°)": math.degrees(data.trial_angles[k - 1]) if k else None,
                "fitted angle φ_min (°)": math.degrees(data.angles[k - 1]) if k else None,
            }
        )
    return rows


def _rotation_json(data: studies.RotationRun, summary: dict, config: dict) -> str:
    """Everything the rotation view shows, full precision; NaN (sd has no Fourier model) → null."""

    def plain(a: np.ndarray) -> list:
        a = np.asarray(a, dtype=np.float64)
        return np.where(np.isfinite(a), a, None).tolist()

    arrays = {
        name: plain(getattr(data, name))
        for name in (
            "point",
            "orientations",
            "forces",
            "curvatures",
            "torques",
            "trial_angles",
            "angles",
            "a0",
            "a1",
            "b1",
            "eigenvalues",
            "eigenvectors",
        )
    }
    return json.dumps({"config": config, "summary": summary, "rotation": arrays}, allow_nan=False)


# ---------------------------------------------------------------------------------------------- page

st.title("The dimer at one point")
st.caption(
    "Two points a dimer length ΔR apart probe the curvature C = D·N along the orientation N with two "
    "gradients, D = (g₁ − g₀)/ΔR ≈ HN. The rotational force F_R = −perp_N(D) turns N toward the "
    "minimum-curvature direction; its norm is the torque."
)

with controls("Dimer"):
    surface_key = st.selectbox(
        "Surface",
        list(landscapes.SURFACES),
        index=list(landscapes.SURFACES).index(DEFAULT_SURFACE),
        format_func=lambda k: landscapes.SURFACES[k].name,
        key=f"{P}surface",
        bind=URL,
        on_change=_reset_point,
        help="The analytic landscape; the dimer sits at the point θ below.",
    )
    surface = landscapes.SURFACES[surface_key]
    (bx0, bx1), (by0, by1) = surface.bounds
    default_x, default_y = map(float, surface.starts[0])
    if f"{P}x" in st.session_state and not bx0 <= st.session_state[f"{P}x"] <= bx1:
        _reset_point()
    if f"{P}y" in st.session_state and not by0 <= st.session_state[f"{P}y"] <= by1:
        _reset_point()
    col_x, col_y = st.columns(2)
    x = col_x.number_input(
        "θ x",
        float(bx0),
        float(bx1),
        default_x,
        0.01,
        format="%.5f",
        key=f"{P}x",
        bind=URL,
        help="Midpoint of the dimer (or click the contour).",
    )
    y = col_y.number_input(
        "θ y",
        float(by0),
        float(by1),
        default_y,
        0.01,
        format="%.5f",
        key=f"{P}y",
        bind=URL,
        help="Midpoint of the dimer (or click the contour).",
    )
    angle = st.slider(
        "Initial orientation N₀ (degrees)",
        -180,
        180,
        DEFAULT_ANGLE,
        5,
        key=f"{P}angle",
        bind=URL,
        help="N₀ = (cos, sin) of this angle; the rotation starts here.",
    )
    length = st.select_slider(
        "Dimer length ΔR",
        DIMER_LENGTHS,
        value=DEFAULT_LENGTH,
        format_func=lambda v: f"{v:.0e}",
        key=f"{P}length",
        bind=URL,
        help=DIMER_LENGTH.help,
    )
    rotation = st.radio(
        "Rotation",
        studies.STUDY_ROTATIONS,
        index=studies.STUDY_ROTATIONS.index(DEFAULT_ROTATION),
        horizontal=True,
        key=f"{P}rotation",
        bind=URL,
        help="fourier: one trial orientation, a model C(φ), jump to its minimum. "
        "sd: a fixed step along the rotational force.",
    )
    scheme = st.radio(
        "Finite difference",
        SCHEMES,
        index=SCHEMES.index(DEFAULT_SCHEME),
        horizontal=True,
        key=f"{P}scheme",
        bind=URL,
        help="forward: ends θ, θ+ΔR·N (1 extra gradient, error O(ΔR)); "
        "central: θ±ΔR·N (2 extra gradients, error O(ΔR²)).",
    )
    plane = st.selectbox(
        "Rotation plane (fourier)",
        PLANES,
        index=PLANES.index(DEFAULT_PLANE),
        key=f"{P}plane",
        bind=URL,
        help="Plane of N and the search direction: conjugate gradient, the rotational "
        "force itself, or L-BFGS (identical in 2-D).",
    )
    step_rel = st.slider(
        "sd rotation step × (λ_max − λ_min)",
        0.05,
        2.5,
        DEFAULT_STEP_REL,
        0.05,
        key=f"{P}step",
        bind=URL,
        help="sd rotation step η_rot in units of 1/(λ_max − λ_min) from the exact "
        "Hessian: below 2 it converges, above 2 it oscillates.",
    )
    iterations = st.slider(
        "Max rotation iterations",
        1,
        MAX_ITERATIONS,
        DEFAULT_ITERATIONS,
        key=f"{P}iters",
        bind=URL,
        help="Rotation iterations of min_mode (it stops earlier when the trial angle "
        "or the torque is negligible).",
    )
    zoom = st.slider(
        "Zoom window (fraction of the surface)",
        0.01,
        0.5,
        DEFAULT_ZOOM,
        0.01,
        key=f"{P}zoom",
        bind=URL,
        help="Half-width of the window drawn around θ.",
    )
    copy_link_button()

point = (float(x), float(y))
config = {
    "surface": surface_key,
    "point": list(point),
    "initial_angle_deg": angle,
    "dimer_length": length,
    "rotation": rotation,
    "scheme": scheme,
    "plane": plane,
    "sd_step_relative": step_rel,
    "max_iterations": iterations,
    "zoom": zoom,
}
window = zoom_window(surface, point, zoom)
large = large_fonts()
compact = compact_layout()

with safe_block("The overview"):
    st.subheader("Pick θ")
    st.caption("Click the contour to move θ (the dashed square is the zoom window of the rotation view).")
    _show(
        overview_chart(surface_key, point, window, large, compact),
        key=f"{P}pick",
        on_select=_pick_point,
        selection_mode="points",
    )

tab_rotation, tab_compare, tab_length, tab_saddle = st.tabs(
    ["Rotation", "sd vs fourier", "Dimer length ΔR", "Saddle search (α = 2)"]
)

with tab_rotation, safe_block("The rotation view"):
    run = (point, float(angle), float(length), rotation, scheme, plane, float(step_rel), int(iterations))
    data = rotation_run(surface_key, *run)
    summary = {
        "iterations": data.iterations,
        "grad_evals": data.grad_evals,
        "converged": data.converged,
        "rotation_step": data.rotation_step,
    }
    lam = data.eigenvalues
    # a wrapping row: four columns cut the values to "-75…" beside the sidebar in large fonts
    row = st.container(horizontal=True, gap="medium")
    row.metric("exact λ_min", f"{lam[0]:.5g}", width="content")
    row.metric(
        "dimer curvature C",
        f"{data.curvatures[-1]:.5g}",
        help="The engine's final curvature estimate.",
        width="content",
    )
    row.metric("|cos∠(N, v_min)|", f"{float(data.abs_cos[-1]):.6f}", width="content")
    row.metric(
        "gradient evaluations",
        summary["grad_evals"],
        help=f"{summary['iterations']} rotation iterations, the gradient at θ included.",
        width="content",
    )
    if summary["rotation_step"] is not None:
        st.caption(
            f"sd rotation step η_rot = {summary['rotation_step']:.4g}; λ = ({lam[0]:.4g}, {lam[1]:.4g})."
        )
    fig = rotation_chart(surface_key, run, window, large, compact)
    _show(fig, key=f"{P}rotation_fig")
    st.caption(
        "Press ▶ or drag the slider: frame k shows the dimer N_k (not to scale: its true length is ΔR "
        f"= {length:.0e}), the rotational force F_R at its end (length ∝ torque), the trial orientation "
        "N(φ₁) and the fitted orientation the engine returned. Right: the Fourier model C(φ) = a₀/2 + "
        "a₁cos2φ + b₁sin2φ of that iteration against the exact N(φ)ᵀHN(φ); on a quadratic they coincide."
    )
    if not summary["converged"]:
        count = summary["iterations"]
        noun = "iteration" if count == 1 else "iterations"
        st.info(f"Not converged within {count} {noun} (torque still above 1e-6).")
    history = pd.DataFrame(_history_table(data))
    st.dataframe(history, hide_index=True)
    row = st.container(horizontal=True, gap="small")
    row.download_button(
        "⬇ Rotation history (CSV)",
        history.to_csv(index=False),
        file_name="dimer-rotation.csv",
        mime="text/csv",
        on_click="ignore",
    )
    row.download_button(
        "⬇ Rotation history (JSON)",
        _rotation_json(data, summary, config),
        file_name="dimer-rotation.json",
        mime="application/json",
        on_click="ignore",
    )
    download_buttons("dimer-rotation", config, html=lambda: fig.to_html(include_plotlyjs=True))

with tab_compare, safe_block("The sd vs fourier comparison"):
    study = (point, float(angle), float(length), plane, float(step_rel), int(iterations))
    runs = rotation_convergence(surface_key, *study)
    compare_fig, series = convergence_chart(surface_key, study, large, compact)
    _show(compare_fig, key=f"{P}compare_fig")
    st.caption(
        "Same θ, N₀ and ΔR for all four. fourier jumps to the minimum of its curvature model (one "
        "iteration on a quadratic); sd creeps along the rotational force. central costs two gradients "
        "per probe instead of one but its curvature error is O(ΔR²) instead of O(ΔR)."
    )
    st.dataframe(
        [
            {
                "variant": s.label,
                "iterations": r.iterations,
                "gradient evaluations": float(r.grad_evals[-1]),
                "final |C − λ_min|": float(r.curvature_error[-1]),
                "final |cos|": float(r.abs_cos[-1]),
            }
            for s, r in zip(series, runs)
        ],
        hide_index=True,
    )
    download_buttons("dimer-compare", config, html=lambda: compare_fig.to_html(include_plotlyjs=True))

with tab_length, safe_block("The finite-difference view"):
    sweeps = finite_difference_errors(surface_key, point, float(angle))
    fd_fig = finite_difference_chart(surface_key, point, float(angle), large, compact)
    _show(fd_fig, key=f"{P}fd_fig")
    best = {f"{s.scheme}, {s.dtype}": s.best_length for s in sweeps}
    st.caption(
        "One probe along N₀ at θ for each ΔR. Too small a ΔR: round-off (the gradients' rounding error "
        "ε·‖g‖ divided by ΔR, far worse in float32); too large: truncation (slope 1 forward, slope 2 "
        "central). Best ΔR here: " + ", ".join(f"{k} {v:.0e}" for k, v in best.items()) + "."
    )
    download_buttons("dimer-length", config, html=lambda: fd_fig.to_html(include_plotlyjs=True))

with tab_saddle:
    st.caption(
        "The chemists' use of the dimer: reflect the gradient's component along the min mode "
        "(g − 2(g·N)N, α = 2). Gradient descent on that climbs along the softest direction and descends "
        "in all others, so it walks from a minimum to a transition state (a first-order saddle)."
    )
    mb = landscapes.SURFACES[SADDLE_SURFACE]
    minima = [p for p in mb.stationary_points if p.kind == "min"]
    saddles = [p for p in mb.stationary_points if p.kind == "saddle"]
    col_a, col_b, col_c = st.columns(3)
    start_index = col_a.selectbox(
        "Start at the minimum",
        list(range(len(minima))),
        index=[tuple(m.xy) for m in minima].index(saddle_search_start()),
        format_func=lambda i: f"min {i + 1} ({minima[i].xy[0]:.2f}, {minima[i].xy[1]:.2f})",
        key=f"{P}ss.start",
        bind=URL,
        help="Müller–Brown's listed minima.",
    )
    steps = col_b.number_input(
        "Steps",
        10,
        2000,
        SADDLE_STEPS,
        10,
        key=f"{P}ss.steps",
        bind=URL,
        help="Step budget; the run stops when ‖g‖ < 1e-6.",
    )
    seed = col_c.number_input(
        "Seed", 0, 10_000, 0, 1, key=f"{P}ss.seed", bind=URL, help="Seeds the initial dimer orientation."
    )
    preset = PRESETS[SADDLE_PRESET]
    with st.expander(f"{preset.label} — hyperparameters", expanded=False):
        st.caption(preset.description)
        overrides = hyperparameter_inputs(
            SADDLE_PRESET, {**preset.defaults, **SADDLE_DEFAULTS}, st, prefix=f"{P}ss."
        )
    spec = saddle_search_spec(overrides)
    start = saddle_search_start(start_index)
    with safe_block("The saddle search"):
        report, close = progress_reporter("Climbing…")
        race = saddle_search_race(start, spec, steps, seed)
        traces = cached_surface_race(*race, _progress=report)
        close()
        trace = traces[0]
        path = trace.position if trace.position is not None else trace.position_2d
        reached = path[-1]
        nearest = min(saddles, key=lambda s: math.dist(s.xy, reached))
        distance = math.dist(nearest.xy, reached)
        st.dataframe(
            [
                {
                    "reached x": float(reached[0]),
                    "reached y": float(reached[1]),
                    "nearest listed saddle": f"({nearest.xy[0]}, {nearest.xy[1]})",
                    "distance": distance,
                    "f reached": float(trace.loss[-1]),
                    "f saddle": nearest.value,
                    "final ‖g‖": float(trace.grad_norm[-1]),
                    "steps": int(trace.steps[-1]),
                    "gradient evaluations": int(trace.grad_evals[-1]),
                    "status": trace.status,
                }
            ],
            hide_index=True,
        )
        if trace.status == "diverged":
            st.warning(f"The search diverged at step {trace.stop_step}: lower the learning rate.")
        elif distance < 1e-3:
            st.success(
                f"Reached the listed saddle ({nearest.xy[0]}, {nearest.xy[1]}) (f = {nearest.value}) "
                f"within {distance:.1e}; final ‖g‖ = {trace.grad_norm[-1]:.1e}."
            )
        else:
            st.info(
                f"Not at a listed saddle after {int(trace.steps[-1])} steps (nearest: {nearest.xy}, "
                f"{distance:.3g} away; final ‖g‖ = {trace.grad_norm[-1]:.2g}). From this minimum the "
                "softest direction may lead out of the window."
            )
        ss_fig = saddle_search_chart(race, large, compact)
        _show(ss_fig, key=f"{P}ss_fig")
        st.caption(
            "Contour colours clipped (Müller–Brown's walls reach thousands). Crosses: the listed "
            "saddles; stars: the minima; the black segment is the dimer N (not to scale)."
        )
        download_buttons(
            "dimer-saddle-search",
            {
                **config,
                "saddle_search": {
                    "start": list(start),
                    "steps": int(steps),
                    "seed": int(seed),
                    "optimizer": spec.hyperparams,
                },
            },
            traces=traces,
            html=lambda: ss_fig.to_html(include_plotlyjs=True),
        )
