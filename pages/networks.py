"""Networks — optimizers side by side on a small network problem (UX.md §3, NETWORKS.md).

The race (``deo.race.race`` on ``deo.race.network_problem``) gives one Trace per optimizer: same
initial parameters, seed, batches and budget. The page shows the loss against steps and against
gradient evaluations, the dimer curvature C against the exact λ_min, ``|cos∠(N, v_min)|``, the
removed fraction ``(g·N)²/‖g‖²``, and a 2-D slice of the loss with every trajectory projected on the
same plane, plus the true loss along each trajectory (``landscapes.trajectory_slices``: the plane is
chosen before the race by ``slice_plan``, the slice computed after it by ``trajectory_slice``).
"""

from __future__ import annotations

import streamlit as st

import landscapes
from deo.entrants import clip_note
from deo.estimate import race_estimate
from deo.problems import network_escape_level
from deo.race import EXACT_HESSIAN_MAX_PARAMS, VECTOR_MAX_DIM
from landscapes.trajectory_slices import SLICE_PLANES, slice_plan
from pages.common import (
    URL,
    chart_columns,
    chart_config,
    compact_layout,
    controls,
    copy_link_button,
    download_buttons,
    large_fonts,
    optimizer_picker,
    progress_reporter,
    require_app_navigation,
    safe_block,
)
from pages.estimates import (
    network_race,
    network_seconds_per_eval,
    network_seconds_per_loss_eval,
    network_slice,
    should_run,
)
from pages.network_charts import (
    DEFAULT_GRID,
    DEFAULT_NETWORK,
    DEFAULT_OPTIMIZERS,
    DEFAULT_PLANE,
    DEFAULT_RADIUS,
    DEFAULT_STEPS,
    GRID_MAX,
    GRID_MIN,
    INIT_SCALES,
    MAX_STEPS,
    diagnostics_charts,
    loss_charts,
    race_arguments,
    slice_arguments,
    slice_charts,
)
from pages.request_budget import check_network_race
from viz import network_figs as figs
from viz.overlap import hidden_sentences

require_app_navigation()

P = "nw."  # widget keys and URL parameters of this page
PLANE_LABELS = {"random": "random", "min_curvature": "min curvature", "pca": "PCA"}


# ---------------------------------------------------------------------------------------------- page

st.title("Optimizers on small networks")
st.caption(
    "Every optimizer starts from the same initial weights with the same seed, batches and step budget. "
    "Small initial weights put the network near a saddle or plateau of its loss (the problems and "
    "their plateaus are defined in landscapes/networks.py)."
)

with controls("Networks"):
    network_key = st.selectbox(
        "Network problem",
        list(landscapes.NETWORKS),
        index=list(landscapes.NETWORKS).index(DEFAULT_NETWORK),
        key=f"{P}problem",
        bind=URL,
        help="Data generated in code from a seed; each problem has a known plateau (landscapes/networks.py).",
    )
    init_choice = st.select_slider(
        "Initial weight scale",
        INIT_SCALES,
        value="default",
        format_func=lambda v: v if isinstance(v, str) else f"{v:g}",
        key=f"{P}init",
        bind=URL,
        help="Standard deviation of the initial weights; smaller starts closer to the saddle at the origin.",
    )
    steps = st.number_input(
        "Steps",
        10,
        MAX_STEPS,
        DEFAULT_STEPS,
        10,
        key=f"{P}steps",
        bind=URL,
        help="Training steps per optimizer.",
    )
    seed = st.number_input(
        "Seed", 0, 10_000, 0, 1, key=f"{P}seed", bind=URL, help="Initial weights, data and dimer N₀."
    )
    clip = st.number_input(
        "Gradient clip (0 = off)",
        0.0,
        1e3,
        0.0,
        0.5,
        key=f"{P}clip",
        bind=URL,
        help="Maximum global gradient norm of the update (the dimer always probes raw gradients).",
    )
    specs = optimizer_picker(st, DEFAULT_OPTIMIZERS, key=f"{P}opt", prefix=P)
    st.divider()
    plane = st.radio(
        "Slice plane",
        list(SLICE_PLANES),
        index=SLICE_PLANES.index(DEFAULT_PLANE),
        format_func=PLANE_LABELS.get,
        horizontal=True,
        key=f"{P}plane",
        bind=URL,
        help="random: filter-normalised random directions (the same for every optimizer); min curvature: "
        "the plane of the two lowest Hessian eigenvectors at the start (where the dimer looks); PCA of "
        "all trajectories together.",
    )
    radius = st.slider(
        "Slice radius (0 = fit the trajectories)",
        0.0,
        50.0,
        DEFAULT_RADIUS,
        0.5,
        key=f"{P}radius",
        bind=URL,
        help="Half-width of the slice in plane coordinates.",
    )
    resolution = st.slider(
        "Slice grid", GRID_MIN, GRID_MAX, DEFAULT_GRID, 2, key=f"{P}grid", bind=URL, help="Points per side."
    )
    plane_seed = st.number_input(
        "Plane seed", 0, 10_000, 0, 1, key=f"{P}plane_seed", bind=URL, help="Seed of the random directions."
    )
    filter_normalize = st.checkbox(
        "Filter-normalise the random directions",
        True,
        key=f"{P}filter",
        bind=URL,
        help="Li et al. 2018: each row rescaled to the matching weights' norm.",
    )
    st.divider()
    log_y = st.checkbox("Log loss axis", False, key=f"{P}log", bind=URL)
    copy_link_button()

large = large_fonts()
compact = compact_layout()
init_scale = None if init_choice == "default" else float(init_choice)
config = {
    "network": network_key,
    "init_scale": init_scale,
    "steps": int(steps),
    "seed": int(seed),
    "clip": float(clip) or None,
    "optimizers": [{"key": s.key, "hyperparams": s.hyperparams} for s in specs],
    "slice": {
        "plane": plane,
        "radius": float(radius),
        "grid": int(resolution),
        "plane_seed": int(plane_seed),
        "filter_normalize": bool(filter_normalize),
    },
}

if not specs:
    st.warning("Choose at least one optimizer in the sidebar.")
    st.stop()

net = landscapes.make_network(network_key)
n_params = net.n_params
plan = slice_plan(plane, n_params, VECTOR_MAX_DIM, int(plane_seed), bool(filter_normalize))
plateau = "—" if net.plateau is None else f"{net.plateau:.4g}"
st.markdown(f"**{net.label}** — {n_params} parameters; plateau {plateau}. {net.note}")
if not plan.recorded:
    st.info(
        f"{n_params} parameters: slow on a CPU (start with few steps); whole trajectories are not "
        "recorded, so the 2-D slice uses the random plane, fixed before the race."
    )

traces = None
race_args = race_arguments(network_key, init_scale, specs, steps, seed, clip, plan.projection)
slice_args = slice_arguments(race_args, plan.plane, plane_seed, filter_normalize, radius, resolution)
# cached, or being computed for another session (a class opening one link): shown (or waited for)
# without an estimate, so no Run button and no calibration of the estimate's rates
race_cached, slice_cached = network_race.available(*race_args), network_slice.available(*slice_args)
estimate = None
if not (race_cached and slice_cached):
    try:
        check_network_race(specs, int(steps))
        # what is not cached yet: the race's gradient evaluations, the slice's loss evaluations
        pending = [] if race_cached else specs
        estimate = race_estimate(pending, int(steps), network_seconds_per_eval(network_key))
        if not slice_cached:
            loss_rate = network_seconds_per_loss_eval(network_key)
            estimate = estimate.plus_loss_evals(int(resolution) ** 2, loss_rate)
    except ValueError:  # the race's own budget check refuses an oversized request below, with its message
        pass
what = "This race and its 2-D slice" if not race_cached else "This 2-D slice"
if estimate is not None and not should_run(estimate, repr((race_args, slice_args)), False, what, f"{P}race"):
    st.stop()
with safe_block("The race"):
    report, close = progress_reporter("Training…")
    traces = network_race(*race_args, _progress=report)
    close()

if traces:
    diverged = [t for t in traces if t.status == "diverged"]
    if diverged:
        st.warning(
            "Diverged (stopped cleanly, marked ✕ in the figures): "
            + ", ".join(f"{t.label} at step {t.stop_step}" for t in diverged)
            + ". Lower its learning rate"
            + ("." if config["clip"] else " or set a gradient clip.")
        )
    if clipping := clip_note(config["clip"], specs):
        st.caption(clipping)

    tab_loss, tab_dimer, tab_slice, tab_table = st.tabs(
        ["Loss", "Curvature and the dimer", "2-D loss slice", "Results"]
    )
    with tab_loss, safe_block("The loss curves"):
        col_a, col_b = chart_columns(2, compact)
        loss_steps, loss_evals, covered = loss_charts(race_args, log_y, net.plateau, large, compact)
        col_a.plotly_chart(loss_steps, key=f"{P}loss_steps", config=chart_config())
        col_b.plotly_chart(loss_evals, key=f"{P}loss_evals", config=chart_config())
        st.caption(
            ("Above against steps, below" if compact else "Left against steps, right")
            + " against gradient evaluations (a dimer optimizer pays extra gradients at its rotation "
            "events). Dotted: the problem's plateau loss (landscapes/networks.py); ×: a run's escape step "
            "(its loss first below half the plateau)."
            + hidden_sentences(covered, stacked=compact)
        )
        download_buttons(
            "networks", config, traces=traces, html=lambda: loss_steps.to_html(include_plotlyjs=True)
        )

    with tab_dimer, safe_block("The dimer diagnostics"):
        if n_params > EXACT_HESSIAN_MAX_PARAMS:
            st.info(
                f"{n_params} parameters: the exact Hessian (and so λ_min, v_min and |cos|) is computed "
                f"only up to {EXACT_HESSIAN_MAX_PARAMS} parameters. The dimer's own curvature C is shown."
            )
        curvature_fig, cos_fig, removed_fig = diagnostics_charts(race_args, large, compact)
        st.plotly_chart(curvature_fig, key=f"{P}curvature", config=chart_config())
        st.caption(
            "Solid: the dimer's curvature estimate C = D·N at each step; dotted: the exact smallest "
            "Hessian eigenvalue λ_min at the same weights. C ≈ λ_min means the dimer found the min mode."
        )
        col_a, col_b = chart_columns(2, compact)
        col_a.plotly_chart(cos_fig, key=f"{P}cos", config=chart_config())
        col_a.caption("|cos∠(N, v_min)|: 1 when the dimer orientation N is the exact min eigenvector.")
        col_b.plotly_chart(removed_fig, key=f"{P}removed", config=chart_config())
        col_b.caption("(g·N)²/‖g‖²: the share of the squared gradient along N that DEO removes (α = 1).")

    with tab_slice, safe_block("The 2-D slice"):
        if plan.replaced:
            st.info(
                f"{n_params} parameters: trajectories are projected during the race, on the random "
                "plane only; showing the random plane."
            )
        slice_report, slice_close = progress_reporter("Evaluating the loss on the plane…")
        sl = network_slice(*slice_args, _traces=traces, _progress=slice_report)
        slice_close()
        slice_fig, true_loss_fig = slice_charts(race_args, slice_args, log_y, large, compact)
        if compact:  # the figure's own title ran off a phone's chart: the same words above it
            st.caption(f"**{sl.description}**  \n*{figs.SLICE_CAUTION}*")
        st.plotly_chart(slice_fig, key=f"{P}slice", config=chart_config())
        st.plotly_chart(true_loss_fig, key=f"{P}true_loss", config=chart_config())
        st.caption(
            "Solid: the true training loss along each trajectory. Dashed: the slice's loss at the "
            "projected point. Where they differ the trajectory has left the plane: the 2-D picture is "
            "only a shadow of the path."
        )
        download_buttons(  # the export carries its title, whatever the screen
            "networks-slice",
            config,
            html=lambda: slice_charts(race_args, slice_args, log_y, large, False)[0].to_html(
                include_plotlyjs=True
            ),
        )

    with tab_table:
        has_escape = network_escape_level(net) is not None
        st.dataframe(figs.results_rows(traces, has_escape), hide_index=True, placeholder="—")
        st.caption(
            "escape step: first step with loss below half the plateau (the race's criterion); "
            "gradient evaluations count every gradient the algorithm used, dimer probes included."
        )
