"""Escape map: every optimizer from a whole grid of starts around a saddle at once (UX.md §4)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deo.entrants import clip_note
from deo.estimate import escape_map_estimate
from pages.common import (
    DEFAULT_SURFACE,
    URL,
    cached_escape_map,
    chart_config,
    compact_layout,
    controls,
    copy_link_button,
    download_buttons,
    get_surface,
    large_fonts,
    optimizer_picker,
    progress_reporter,
    require_app_navigation,
    safe_block,
    safe_call,
    show_formula,
)
from pages.escape_map_defaults import (
    DEFAULT_OPTIMIZERS,
    MODES,
    RESOLUTION_DEFAULT,
    RESOLUTION_MAX,
    RESOLUTION_MIN,
    STEPS_DEFAULT,
    STEPS_MAX,
    STEPS_MIN,
    default_half_width,
    escape_charts,
    map_arguments,
    map_window,
    minima,
    saddles,
    surfaces_with_saddles,
    window_max,
)
from pages.estimates import escape_map_seconds_per_row_eval, should_run
from pages.request_budget import check_map
from viz.palette import legend_label

P = "em."  # widget keys and URL parameters of this page (Surfaces has the unprefixed ones)
# the names this page's parameters had before they took the prefix: old links still open
LEGACY_KEYS = ("surface", "saddle", "half_width", "resolution", "opt", "steps", "seed", "clip", "mode")
require_app_navigation(renamed={key: P + key for key in LEGACY_KEYS})

st.title("Escape map")
st.caption(
    "Each pixel is one start; every optimizer runs from all of them at once. "
    "Colour = steps until the loss fell below the escape threshold of the saddle, or the minimum reached."
)
large = large_fonts()
compact = compact_layout()  # a phone: two maps per row, the colour bar flat under them, no toolbar
surfaces = surfaces_with_saddles()
panel = controls()

with panel:
    surface_key = st.selectbox(
        "Surface",
        list(surfaces),
        index=list(surfaces).index(DEFAULT_SURFACE),
        format_func=lambda k: surfaces[k].name,
        key=f"{P}surface",
        bind=URL,
        help="Surfaces with a listed saddle (or degenerate stationary point) to escape from.",
    )
surface = get_surface(surface_key)
points = saddles(surface)

with panel:
    saddle_index = st.selectbox(
        "Saddle",
        list(range(len(points))),
        format_func=lambda i: (
            f"{points[i].kind} at ({points[i].xy[0]:.3g}, {points[i].xy[1]:.3g}), f = {points[i].value:.4g}"
        ),
        key=f"{P}saddle",
        bind=URL,
    )
    half_width = st.number_input(
        "Half-width of the window",
        1e-3,
        float(window_max(surface)),
        default_half_width(surface),
        0.1,
        format="%g",
        key=f"{P}half_width",
        bind=URL,
        help="The grid of starts covers the saddle ± this in x and y.",
    )
    resolution = st.slider(
        "Grid points per side",
        RESOLUTION_MIN,
        RESOLUTION_MAX,
        RESOLUTION_DEFAULT,
        key=f"{P}resolution",
        bind=URL,
        help=f"Up to {RESOLUTION_MAX}×{RESOLUTION_MAX} starts.",
    )
    specs = optimizer_picker(st, DEFAULT_OPTIMIZERS, key=f"{P}opt", prefix=P)
    steps = st.number_input("Steps", STEPS_MIN, STEPS_MAX, STEPS_DEFAULT, 10, key=f"{P}steps", bind=URL)
    c1, c2 = st.columns(2)
    seed = c1.number_input("Seed", 0, 2**31 - 1, 0, 1, key=f"{P}seed", bind=URL)
    clip = c2.number_input(
        "Clip ‖g‖ (empty = off)",
        1e-6,
        1e6,
        None,
        0.1,
        format="%g",
        key=f"{P}clip",
        bind=URL,
        help="Per-start gradient clipping; off by default.",
    )
    mode = st.radio(
        "Colour by",
        MODES,
        horizontal=True,
        key=f"{P}mode",
        bind=URL,
        format_func=lambda m: "steps to escape" if m == "steps" else "minimum reached",
    )

saddle = points[saddle_index]
window = map_window(saddle.xy, half_width)
head, link = st.columns([3, 1], vertical_alignment="center")
show_formula(surface.latex, head)
head.caption(surface.note)
with link:
    copy_link_button()

config = {
    "page": "escape_map",
    "surface": surface_key,
    "saddle": list(saddle.xy),
    "window": [list(w) for w in window],
    "resolution": int(resolution),
    "optimizers": [{"key": s.key, "hyperparams": s.hyperparams} for s in specs],
    "steps": int(steps),
    "seed": int(seed),
    "clip": None if clip is None else float(clip),
}

if not specs:
    st.info("Choose at least one optimizer in the controls to draw its escape map.")
    st.stop()

map_args = map_arguments(surface_key, saddle.xy, window, resolution, specs, steps, seed, clip)
# a map in the cache, or being computed for another session (a class opening one link), is shown
# (or waited for) without an estimate: no Run button, and no calibration of the estimate's rate
estimate = None
if not cached_escape_map.available(*map_args):
    try:
        check_map(specs, int(steps), int(resolution) ** 2)
        rate = escape_map_seconds_per_row_eval(surface, surface_key, "", int(resolution), window)
        estimate = escape_map_estimate(specs, int(steps), int(resolution) ** 2, rate)
    except ValueError:  # the map's own budget check refuses an oversized request below, with its message
        pass
if estimate is not None and not should_run(estimate, repr(map_args), False, "This escape map", f"{P}map"):
    st.stop()
report, close = progress_reporter(f"Running {len(specs)} optimizers from {int(resolution) ** 2} starts…")
outcome = safe_call(cached_escape_map, *map_args, _progress=report, what="The escape map")
close()
if outcome is None:
    st.stop()
xs, ys, results = outcome

# on a phone or a projector the toolbar would sit on the titles and the legend; pinch-zoom remains
plot_config = chart_config()
maps_fig, histogram = escape_charts(map_args, mode, minima(surface), large, compact)
with safe_block("The escape maps"):
    st.plotly_chart(maps_fig, key="escape_maps", config=plot_config)
    control_names = [short for name in results if (short := legend_label(name)) != name]
    if control_names:
        st.caption(
            f"{', '.join(control_names)}: a control — the same step and gradient cost as the preset it is "
            "named after, with a random unit N (one per start) in place of the dimer's rotated one. Where "
            "its map matches the preset's, the dimer's direction is not what made the difference."
        )
    if clipping := clip_note(config["clip"], specs):
        st.caption(clipping)
with safe_block("The histogram"):
    st.plotly_chart(histogram, key="escape_hist", config=plot_config)
    st.caption(
        "Steps to escape over all starts; starts that never escaped within the budget are not counted."
    )

summary = []
for name, r in results.items():
    finite = r.steps_to_escape[np.isfinite(r.steps_to_escape)]
    summary.append(
        {
            "optimizer": name,
            "escaped": f"{finite.size}/{r.steps_to_escape.size}",
            "median steps": float(np.median(finite)) if finite.size else None,
            "diverged": int(np.sum(r.diverged)),
            "time (s)": round(r.wall_time, 2),
        }
    )
st.dataframe(summary, hide_index=True, placeholder="—")


def _csv() -> str:
    from deo.race import escape_map_to_csv

    gx, gy = np.meshgrid(xs, ys)
    return escape_map_to_csv(np.stack([gx.ravel(), gy.ravel()], axis=1), results)


st.download_button(
    "⬇ Escape map (CSV)",
    data=_csv,
    file_name="deo-lab-escape-map.csv",
    mime="text/csv",
    on_click="ignore",
    help="One row per (optimizer, start).",
)
download_buttons("deo-lab-escape-map", config)
