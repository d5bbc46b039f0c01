"""Surfaces: optimizers racing from the same start on an analytic saddle surface (UX.md §1)."""

from __future__ import annotations

import math

import streamlit as st

from pages.common import (
    DEFAULT_SURFACE,
    URL,
    cached_hidden_losses,
    cached_race_figure,
    cached_surface_race,
    cached_trace_figure,
    chart_columns,
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
from pages.surface_defaults import (
    ARROWS,
    DEFAULT_OPTIMIZERS,
    DEFAULT_SPEED,
    SPEEDS,
    ZOOMS,
    loss_options,
    preset_defaults,
    race_chart_arguments,
    race_defaults,
    race_figure_options,
    race_start,
    surface_race_key,
)
from pages.url_params import escape_markdown, explained
from viz.export import standalone_html
from viz.overlap import hidden_sentences
from viz.palette import color_for, legend_label
from viz.surface_figs import (
    EXPORT_OPTIONS,
    VIEW_OPTIONS,
    arrow_scale,
    divergence_notes,
    fate_line,
    race_layers,
    results_rows,
    stack_below_width,
    surface_grid,
)
from viz.surface_figs import race_view as draw_race_view

require_app_navigation()

DEFAULT_FORMULA = "x**2 - y**2 + y**4/4"
STEPS_MIN, STEPS_MAX = 10, 5000
LAST_GOOD_FORMULA = "_last_good_formula"  # session state: the race stays on it while a typed one is bad


def _surfaces() -> dict:
    import landscapes

    return landscapes.SURFACES


def _surface_label(key: str) -> str:
    return "✏️ Type a formula" if key == "custom" else _surfaces()[key].name


def _reset_start() -> None:
    """On a new surface: its default start, learning rates and steps; no offset."""
    key = st.session_state.get("surface", DEFAULT_SURFACE)
    race = race_defaults(key)
    start = race.start if race.start is not None else _surfaces()[key].starts[0]
    st.session_state["x0"], st.session_state["y0"] = float(start[0]), float(start[1])
    st.session_state["offset"] = None
    st.session_state["steps"] = int(race.steps)
    for preset_key in st.session_state.get("opt") or []:  # the inputs on screen (others start there)
        for name, value in preset_defaults(key).get(preset_key, {}).items():
            st.session_state[f"{preset_key}.{name}"] = value


def _on_click() -> None:
    """A click on the contour selects a point: it becomes the start (and the offset is cleared)."""
    points = st.session_state["race_chart"].selection.get("points", [])
    if not points:
        return
    point = points[0]
    x, y = point.get("x"), point.get("y")
    if x is None or y is None:
        return
    surface = safe_call(
        get_surface, st.session_state.get("surface", DEFAULT_SURFACE), st.session_state.get("formula", "")
    )
    if surface is None:
        return
    (x_lo, x_hi), (y_lo, y_hi) = surface.bounds
    st.session_state["x0"] = min(max(float(x), x_lo), x_hi)
    st.session_state["y0"] = min(max(float(y), y_lo), y_hi)
    st.session_state["offset"] = None
    st.session_state["_new_start"] = True  # the chart's fragment reruns the whole page (a new race)


if "formula" in st.query_params and "surface" not in st.query_params and "surface" not in st.session_state:
    # a link opened with a formula and no surface (?formula=x**2-y**2) means the typed-formula surface;
    # the widgets seed from the link the run started with: rerun with the completed link
    st.query_params["surface"] = _surface_label("custom")
    st.rerun()
link_start = {name: st.query_params.get(name) for name in ("x0", "y0")}  # before the widgets vet them
st.title("Surfaces")
# A compact top so that the whole race figure, Play button and slider included, fits under the title
# in a 1400×900 window and on a 1280×720 projector (tests/test_browser.py measures it).
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 3rem; }</style>")
large = large_fonts()
if large:  # projector: the title shares the height of the toolbar row, the chart gets the rest
    st.html(
        "<style>[data-testid='stMainBlockContainer'] { padding-top: 0.6rem; }"
        " [data-testid='stMainBlockContainer'] h1 { font-size: 2.1rem; padding: 0.4rem 0 0.2rem 3.5rem; }"
        " [data-testid='stHeader'] { background: transparent; }"
        "</style>"
    )
compact = compact_layout()
panel = controls()

with panel:
    surface_key = st.selectbox(
        "Surface",
        [*_surfaces(), "custom"],
        index=[*_surfaces(), "custom"].index(DEFAULT_SURFACE),
        format_func=_surface_label,
        key="surface",
        bind=URL,
        on_change=_reset_start,
        help="Analytic landscapes with known stationary points, or your own formula f(x, y).",
    )

formula = ""
surface = None
if surface_key == "custom":  # typed in the main area, its message (if any) right under it
    formula = st.text_input(
        "f(x, y) =",
        DEFAULT_FORMULA,
        max_chars=500,
        key="formula",
        bind=URL,
        help="Numbers, x, y, + − * / ** (or ^), parentheses, sin cos tan exp log sqrt abs tanh sinh "
        "cosh, pi, e.",
    )
    try:
        surface = get_surface(surface_key, formula)
        st.session_state[LAST_GOOD_FORMULA] = formula
    except ValueError as exc:  # landscapes.FormulaError is a ValueError: its message, verbatim
        st.error("Formula not understood — fix it above:", icon=":material/edit:")
        st.code(str(exc), language=None, wrap_lines=True)
        formula = st.session_state.get(LAST_GOOD_FORMULA, DEFAULT_FORMULA)
        st.caption(f"Meanwhile the page shows the last formula that worked: `{formula}`")
if surface is None:
    surface = get_surface(surface_key, formula)
if surface_key == "custom":
    from landscapes.formula import defined_somewhere

    if not defined_somewhere(surface):
        st.warning(
            "f is not defined (not finite) anywhere in the window: every run stops at its start. "
            "Check the formula's domain, e.g. log(u) needs u > 0 and sqrt(u) needs u ≥ 0."
        )

(x_lo, x_hi), (y_lo, y_hi) = surface.bounds
default_start = surface.default_start
has_saddle = any(p.kind in ("saddle", "degenerate") for p in surface.stationary_points)

with panel:
    st.markdown("**Start**")
    c1, c2 = st.columns(2)
    x0 = c1.number_input(
        "x₀",
        x_lo,
        x_hi,
        float(default_start[0]),
        0.01,
        format="%g",
        key="x0",
        bind=URL,
        help=f"Start x, inside the window [{x_lo:g}, {x_hi:g}]. Or click the contour.",
    )
    y0 = c2.number_input(
        "y₀",
        y_lo,
        y_hi,
        float(default_start[1]),
        0.01,
        format="%g",
        key="y0",
        bind=URL,
        help=f"Start y, inside the window [{y_lo:g}, {y_hi:g}]. Or click the contour.",
    )
    offset = st.number_input(
        "Offset from the saddle (empty = off)",
        -1.0,
        1.0,
        None,
        1e-3,
        format="%g",
        key="offset",
        bind=URL,
        disabled=not has_saddle,
        help="Replaces the start's component along the nearest saddle's unstable direction by this "
        "distance (e.g. 1e-6). GD's escape time grows like ln(1/offset); Adam's hardly changes.",
    )
    specs = optimizer_picker(st, DEFAULT_OPTIMIZERS, preset_defaults=preset_defaults(surface_key))
    steps = st.number_input(
        "Steps",
        STEPS_MIN,
        STEPS_MAX,
        race_defaults(surface_key).steps,
        10,
        key="steps",
        bind=URL,
        help=f"The same budget for every optimizer ({STEPS_MIN}–{STEPS_MAX}).",
    )
    c1, c2 = st.columns(2)
    seed = c1.number_input(
        "Seed", 0, 2**31 - 1, 0, 1, key="seed", bind=URL, help="Dimer's initial N, PGD noise."
    )
    clip = c2.number_input(
        "Clip ‖g‖ (empty = off)",
        1e-6,
        1e6,
        None,
        0.1,
        format="%g",
        key="clip",
        bind=URL,
        help="Gradient clipping changes escape behaviour: off by default, shown when on.",
    )

start = (float(x0), float(y0))
offset_value = None if (offset is None or not has_saddle) else float(offset)
for name, value, lo, hi in (("x0", x0, x_lo, x_hi), ("y0", y0, y_lo, y_hi)):
    raw = link_start[name]
    if raw is not None:
        try:
            outside = not lo <= float(raw) <= hi
        except ValueError:  # not a number: the link notice names it
            outside = False
        if outside:
            explained(name)  # said here, with the window: not again in the link notice
            st.warning(
                f"The link's start {name} = {escape_markdown(raw)} is outside the window "
                f"[{lo:g}, {hi:g}]; using {value:g}."
            )

# The race figure keeps its legend beside a square plot, so its plot is as tall as the window allows
# only where its column is at least that height plus the legend wide. Where the row is narrower (the
# sidebar left open on a 1280-px projector: the plot was 268 px, 185 px short of the window; a
# 1 024-px window, or a 1280-px one zoomed to 150 %: 115 px), the story goes under the chart and the
# chart takes the row's whole width: a CSS container query on the row, so the browser decides as
# the sidebar opens and folds (no rerun). Projector: below a full-height plot; desktop: below half
# of it (``viz.surface_figs.stack_below_width``). The compact figures always have the story under them
# (a narrow column wider than a phone's, where Streamlit would keep the columns side by side).
ROW_KEY, ROW_SHARES = "race_row", (3, 1)  # the chart uses the width; its story beside it
stacked = (
    f".st-key-{ROW_KEY} > [data-testid='stLayoutWrapper'] > [data-testid='stHorizontalBlock']"
    " > [data-testid='stColumn'] { flex: 1 1 100%; }"
)
if not compact:
    stack_below_px = stack_below_width(surface, ROW_SHARES[0] / sum(ROW_SHARES), large=large)
    stacked = (
        f".st-key-{ROW_KEY} {{ container-type: inline-size; }}"
        f" @container (max-width: {stack_below_px}px) {{ {stacked} }}"
    )
st.html(f"<style>{stacked}</style>")
with st.container(key=ROW_KEY):
    main, side = st.columns(list(ROW_SHARES), gap="small")
with side:
    watch = st.container()  # what to watch and each run's fate (filled after the race)
    show_formula(surface.latex)
    st.caption(surface.note)
    copy_link_button()

config = {
    "page": "surfaces",
    "surface": surface_key,
    "formula": formula if surface_key == "custom" else None,
    "start": list(start),
    "offset": offset_value,
    "optimizers": [{"key": s.key, "hyperparams": s.hyperparams} for s in specs],
    "steps": int(steps),
    "seed": int(seed),
    "clip": None if clip is None else float(clip),
}

race_key = surface_race_key(surface_key, formula, start, offset_value, specs, steps, seed, config["clip"])
traces = []
if not specs:
    st.info("Choose at least one optimizer in the controls to start a race.")
else:
    report, close = progress_reporter("Racing…")
    traces = safe_call(cached_surface_race, *race_key, _progress=report, what="The race") or []
    close()

shown_start = race_start(traces, start)
export_options: dict = {}  # the view options of the chart on screen (the HTML download draws the same)


@st.fragment
def race_view(traces: list, shown_start: list, export_options: dict) -> None:
    """The animated chart and its view-only controls. A view change (speed, dimer zoom, arrows,
    what is drawn) reruns only this fragment: the race comes from the cache, never recomputed."""
    if st.session_state.pop("_new_start", False):
        st.rerun(scope="app")  # a click on the contour picked a new start: a new race
    chart = st.container()
    with st.expander("View", expanded=False):
        c1, c2, c3 = st.columns(3)
        speed = c1.select_slider(
            "Playback speed",
            SPEEDS,
            value=DEFAULT_SPEED,
            format_func=lambda s: f"{s:g}×",
            key="speed",
            bind=URL,
        )
        zoom_choice = c2.selectbox(
            "Dimer zoom ×k",
            ZOOMS,
            key="zoom",
            bind=URL,
            help="The dimer length ΔR is tiny; draw it k times longer (auto: ≈4 % of the window).",
        )
        arrows = c3.radio(
            "Arrows",
            ARROWS,
            horizontal=True,
            key="arrows",
            bind=URL,
            format_func=lambda a: "same length" if a == "direction" else "to scale",
            help="Same length: −g always has one length and −g_mod, the removed part are to its scale.",
        )
        c1, c2, c3 = st.columns(3)
        show_dimer = c1.checkbox("Dimer", True, key="show_dimer", bind=URL)
        show_arrows = c2.checkbox("Gradient arrows", True, key="show_arrows", bind=URL)
        show_min_mode = c3.checkbox("Exact min mode", True, key="show_vmin", bind=URL)
    figure_options = race_figure_options(
        shown_start,
        speed=speed,
        zoom=zoom_choice,
        arrows=arrows,
        show_dimer=show_dimer,
        show_arrows=show_arrows,
        show_min_mode=show_min_mode,
        large=large,
        compact=compact,
    )
    export_options.clear()
    export_options.update(figure_options)
    with chart, safe_block("The race figure"):
        if traces:
            fig = cached_race_figure(*race_key, tuple(sorted(figure_options.items())))
        else:
            view = {k: v for k, v in figure_options.items() if k in VIEW_OPTIONS}
            layout = {k: v for k, v in figure_options.items() if k not in VIEW_OPTIONS}
            fig = draw_race_view(race_layers(surface, [], grid=surface_grid(surface), **layout), **view)
        st.plotly_chart(fig, on_select=_on_click, **race_chart_arguments(large, compact))
        notes = [
            "▶ Play / ❚❚ Pause, drag the slider to scrub; click a legend entry to hide or show it. "
            "Arrows point downhill from the current point; the dimer is centred on it."
        ]
        if arrows == "scale" and traces:
            notes.append(f"Arrow = {arrow_scale(surface, traces):.3g} × vector.")
        from deo.entrants import clip_note

        if clipping := clip_note(config["clip"], specs):
            notes.append(clipping)
        st.caption(" ".join(notes))


with main:
    race_view(traces, shown_start, export_options)


def _tells_the_story(traces: list) -> bool:
    """The default race as the caption tells it (tests/test_surface_defaults.py checks it): Adam and
    DEO-escape escape, DEO (paper) does not, GD does not or much later, and DEO-escape's control
    (its random N points where the curvature is positive, so it never acts) runs exactly as GD."""
    runs = {t.key: t for t in traces}
    if [t.key for t in traces] != DEFAULT_OPTIMIZERS:
        return False
    gd, adam, paper, escape, control = (runs[k] for k in DEFAULT_OPTIMIZERS)
    return (
        paper.escape_step is None
        and adam.escape_step is not None
        and escape.escape_step is not None
        and (gd.escape_step is None or gd.escape_step > escape.escape_step)
        and control.escape_step == gd.escape_step
    )


CONTROL_WORDS = (
    "A *control* (dotted) is its DEO preset with a random direction N drawn once and never rotated: "
    "the same step, the same gradient cost, no dimer. Where the DEO preset does better than its "
    "control, the rotation toward the min mode earned it; where not, any direction would do."
)

with watch:
    told = surface_key == DEFAULT_SURFACE and _tells_the_story(traces)
    st.markdown(
        "**What to watch** — press **▶ Play** by the slider: "
        + (
            "who leaves the saddle ✕ first, who stalls, and whether DEO-escape beats its dotted control."
            if told
            else "where each path leaves the saddle (or does not), and which minimum it reaches."
            if has_saddle
            else "where each path goes and how low it gets. "
            + ("No saddle was found in this window" if surface_key == "custom" else "It has no saddle")
            + ", so no escape is timed: a run that is still moving when the steps run out reads “out of "
            "steps”."
        )
    )
    if traces:  # each run's fate, one line each, in its colour
        st.markdown(
            "  \n".join(
                f"<span style='color:{color_for(t.key)}'>■</span> **{t.label}**: "
                + fate_line(t, int(steps), has_saddle)
                for t in traces
            ),
            unsafe_allow_html=True,
        )
    if told:
        st.caption(
            "GD creeps up the escape direction y; Adam's normalised steps leave first; DEO-escape "
            "doubles the step along the dimer direction N (rotated to y) and leaves well before GD; "
            "DEO (paper) removes the step along N, so it stalls on the slope short of the minimum "
            "(Adam turns the sliver the removal misses into a slow drift first). DEO-escape's "
            "**control** (dotted: the same step and cost, a random N never rotated) drew an N close "
            "to x, where the curvature is positive: it never acts and runs on GD's path step for "
            "step. Over 10 seeds on this surface (from (1, 10⁻⁶), benchmarks/results/controls.md) "
            "DEO-escape escapes in a median 389 steps, its fixed control in 734 (GD's time; lower "
            "quartile 111, when N falls near y; the difference is not significant, Mann–Whitney "
            "p = 0.45), and a control re-drawn every step in 192 (significantly faster, p = 0.0001): "
            "here the dimer beats GD, not its random controls — doubling the step along a direction "
            "that catches y is what helps."
        )
    elif any("_random" in t.key for t in traces):
        st.caption(CONTROL_WORDS)
    else:
        st.caption("Click the contour to start elsewhere.")

if traces:
    # pandas (≈ 0.4 s to import in a cold process) only here, below the race chart: a visitor who
    # arrives while serve.py warms up gets the chart without waiting for it
    import pandas as pd

    st.subheader("Results")
    rows = results_rows(traces, has_escape=has_saddle)
    table = pd.DataFrame(rows)
    colors = table.pop("color")
    table = table.drop(columns=["key"])
    if compact:  # a phone: the columns that tell the race, as a table that wraps in the screen's width
        table = table[["optimizer", "status", "escape step", "final loss"]]
        table["optimizer"] = [legend_label(label) for label in table["optimizer"]]

    def _missing(v) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    def _count(v) -> str:
        return "—" if _missing(v) else f"{int(v)}"

    styled = table.style.apply(
        lambda col: [f"background-color: {c}; color: white; font-weight: bold" for c in colors],
        subset=["optimizer"],
    ).format(
        {
            name: formatter
            for name, formatter in {
                "final loss": lambda v: "—" if _missing(v) else f"{v:.4g}",
                "escape step": _count,
                "grad evals to escape": _count,
                "diverged at step": _count,
            }.items()
            if name in table.columns
        }
    )
    if compact:
        st.table(styled.hide(axis="index"))
    else:
        st.dataframe(styled, hide_index=True, width="stretch", placeholder="—")
    st.caption(
        "Escape: the loss fell below the surface's threshold near the saddle (its escape_loss in "
        "landscapes/surfaces.py, else f_saddle − 1 or 90 % of the way down to the nearest minimum). "
        "Diverged runs stop; the others go on."
    )
    for note in divergence_notes(traces, surface):  # why each diverged run stopped, in one sentence
        st.caption(f"⚠️ {note}")

    @st.fragment
    def detail_tabs(traces: list) -> None:
        """Loss, curvature and 3-D views: a tab switch or the log axis reruns only this fragment."""
        log_loss = st.checkbox("Log loss axis", False, key="log_loss", bind=URL)
        tab_loss, tab_curv, tab_3d = st.tabs(["Loss", "Curvature", "3-D view"], key="view", bind=URL)
        # on a phone or a projector the toolbar would sit on the legends (above the plots), as on the
        # race chart
        bar = chart_config()
        if tab_loss.open:
            with tab_loss, safe_block("The loss curves"):
                c1, c2 = chart_columns(2, compact)
                opts = loss_options(large, log_loss, compact)  # built once per race, shared (cached)
                steps_fig = cached_trace_figure(*race_key, "loss_steps", opts)
                c1.plotly_chart(steps_fig, key="loss_steps", config=bar)
                evals = cached_trace_figure(*race_key, "loss_evals", opts)
                c2.plotly_chart(evals, key="loss_evals", config=bar)
                st.caption(
                    ("Below" if compact else "Right")
                    + ": cost in gradient evaluations — a dimer step spends extra gradients on its "
                    "rotations."
                    + hidden_sentences(cached_hidden_losses(*race_key, log_loss), stacked=compact)
                )
        if tab_curv.open:
            with tab_curv, safe_block("The curvature view"):
                st.plotly_chart(
                    cached_trace_figure(*race_key, "curvature", (("compact", compact), ("large", large))),
                    key="curvature",
                    config=bar,
                )
                why = (
                    "C = D·N, the dimer's curvature estimate along N, against the exact λ_min at the "
                    "same point. The dimer measures where the run is, so C follows the *local* "
                    "curvature as the run moves, not the saddle's. |cos| = 1 when N is the exact "
                    "min-mode eigenvector. It can fall after an escape: rotation turns N only by its "
                    "torque, and the torque vanishes on *any* eigenvector, the largest included."
                )
                if surface_key == "saddle_plateau":
                    why += (
                        " Here DEO-escape's N stays along y; past y ≈ 1.15 the smaller curvature is "
                        "along x (λ_min = 2), so C reads the curvature along y (→ 4) and |cos| drops "
                        "to 0 (tests/test_surface_defaults.py)."
                    )
                st.caption(why)
        if tab_3d.open:
            with tab_3d, safe_block("The 3-D view"):
                st.plotly_chart(
                    cached_trace_figure(*race_key, "surface3d", (("large", large),)),
                    key="surface3d",
                    config=bar,
                )
                st.caption("Static view of the full paths (drag to rotate).")

    detail_tabs(traces)

    def _html() -> str:
        options = {**export_options, **EXPORT_OPTIONS, "large": False}  # the view on screen, lighter
        view = {k: v for k, v in options.items() if k in VIEW_OPTIONS}
        layout = {k: v for k, v in options.items() if k not in VIEW_OPTIONS}
        lite = draw_race_view(race_layers(surface, traces, grid=surface_grid(surface), **layout), **view)
        return standalone_html(lite, f"DEO Lab — {surface.name}")

    download_buttons("deo-lab-surfaces", config, traces=traces, html=_html)
