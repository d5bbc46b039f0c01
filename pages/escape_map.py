"""Escape map: every optimizer from a whole grid of starts around a saddle at once (UX.md §4)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from deo.entrants import clip_note
from deo.estimate import escape_map_estimate
from pages.common import (
    DEFAULT_SURFACE,
    URL,
    cache_runner,
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
    specs_to_json,
)
from pages.estimates import escape_map_seconds_per_row_eval, should_run
from pages.plotly_wire import wire_ready
from pages.request_budget import check_map
from viz.escape_figs import escape_histogram, escape_maps_figure
from viz.palette import legend_label

P = "em."  # widget keys and URL parameters of this page (Surfaces has the unprefixed ones)
# the names this page's parameters had before they took the prefix: old links still open
LEGACY_KEYS = ("surface", "saddle", "half_width", "resolution", "opt", "steps", "seed", "clip", "mode")
require_app_navigation(renamed={key: P + key for key in LEGACY_KEYS})

# DEO-escape with its control (the same step and cost, a random N never rotated) beside it
DEFAULT_OPTIMIZERS = ["gd", "adam", "deo_escape", "deo_escape_random"]
SADDLE_KINDS = ("saddle", "degenerate")
RESOLUTION_MIN, RESOLUTION_MAX, RESOLUTION_DEFAULT = 5, 100, 30
STEPS_MIN, STEPS_MAX, STEPS_DEFAULT = 10, 2000, 300


@cache_runner(max_entries=16)
def escape_charts(map_args: tuple, mode: str, minima: tuple, large: bool, compact: bool):
    """``(maps, histogram)``: the figures of ``cached_escape_map(*map_args)`` (a cache hit: the page
    asks for it first, with its progress bar) in this view, built once per map and view, frozen and
    their JSON encoded once (``pages.plotly_wire.wire_ready``), for every rerun and visitor."""
    xs, ys, results = cached_escape_map(*map_args)
    steps, saddle = map_args[6], map_args[2]
    maps = escape_maps_figure(
        xs, ys, results, mode=mode, steps_budget=steps, saddle=saddle, minima=list(minima), large=large,
        compact=compact,
    )  # fmt: skip
    histogram = escape_histogram(results, steps_budget=steps, large=large, compact=compact)
    return wire_ready(maps.freeze()), wire_ready(histogram.freeze())


def _surfaces_with_saddles() -> dict:
    import landscapes

    return {
        k: s
        for k, s in landscapes.SURFACES.items()
        if any(p.kind in SADDLE_KINDS for p in s.stationary_points)
    }


st.title("Escape map")
st.caption(
    "Each pixel is one start; every optimizer runs from all of them at once. "
    "Colour = steps until the loss fell below the escape threshold of the saddle, or the minimum reached."
)
large = large_fonts()
compact = compact_layout()  # a phone: two maps per row, the colour bar flat under them, no toolbar
surfaces = _surfaces_with_saddles()
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
saddles = [p for p in surface.stationary_points if p.kind in SADDLE_KINDS]
(bx0, bx1), (by0, by1) = surface.bounds
window_max = 0.5 * max(bx1 - bx0, by1 - by0)

with panel:
    saddle_index = st.selectbox(
        "Saddle",
        list(range(len(saddles))),
        format_func=lambda i: (
            f"{saddles[i].kind} at ({saddles[i].xy[0]:.3g}, {saddles[i].xy[1]:.3g}), "
            f"f = {saddles[i].value:.4g}"
        ),
        key=f"{P}saddle",
        bind=URL,
    )
    half_width = st.number_input(
        "Half-width of the window",
        1e-3,
        float(window_max),
        float(min(1.0, window_max)),
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
        ("steps", "basin"),
        horizontal=True,
        key=f"{P}mode",
        bind=URL,
        format_func=lambda m: "steps to escape" if m == "steps" else "minimum reached",
    )

saddle = saddles[saddle_index]
sx, sy = saddle.xy
window = ((sx - half_width, sx + half_width), (sy - half_width, sy + half_width))
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

map_args = (surface_key, "", tuple(saddle.xy), window, int(resolution), specs_to_json(specs), int(steps))
map_args += (int(seed), config["clip"])
try:  # the map's own budget check refuses an oversized request below, with its message
    check_map(specs, int(steps), int(resolution) ** 2)
    rate = escape_map_seconds_per_row_eval(surface, surface_key, "", int(resolution), window)
    estimate = escape_map_estimate(specs, int(steps), int(resolution) ** 2, rate)
except ValueError:
    estimate = None
if estimate is not None and not should_run(
    estimate, repr(map_args), cached_escape_map.contains(*map_args), "This escape map", f"{P}map"
):
    st.stop()
report, close = progress_reporter(f"Running {len(specs)} optimizers from {int(resolution) ** 2} starts…")
outcome = safe_call(cached_escape_map, *map_args, _progress=report, what="The escape map")
close()
if outcome is None:
    st.stop()
xs, ys, results = outcome
minima = [p.xy for p in surface.stationary_points if p.kind == "min"]

# on a phone or a projector the toolbar would sit on the titles and the legend; pinch-zoom remains
plot_config = chart_config()
maps_fig, histogram = escape_charts(map_args, mode, tuple(map(tuple, minima)), large, compact)
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
