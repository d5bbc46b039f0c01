"""One colour per optimizer preset, and the shared look of every DEO Lab figure.

Colours are the Okabe–Ito palette (distinguishable with every common form of colour blindness;
Okabe & Ito 2008), extended with Paul Tol's "muted" scheme for the other presets and the
random-direction controls. Yellow is left out: it vanishes on the light contour backgrounds. The
same key gets the same colour in every figure and table of the app, and the line dash adds a
second, colour-free cue.

``style_figure(fig, large=True)`` is the projector mode: bigger fonts, thicker lines and markers.
"""

from __future__ import annotations

import plotly.graph_objects as go

PRESET_COLORS: dict[str, str] = {
    "gd": "#000000",  # black
    "momentum": "#56B4E9",  # sky blue
    "adam": "#E69F00",  # orange
    "adamw": "#CC79A7",  # reddish purple
    "pgd": "#009E73",  # bluish green
    "deo_paper": "#0072B2",  # blue
    "deo_escape": "#D55E00",  # vermillion
    "dimer_saddle_search": "#882255",  # Tol wine
    "deo_published": "#999933",  # Tol olive
    # The random-direction controls: a colour of their DEO preset's family (Tol muted), drawn dotted
    # (fixed N) or dash-dotted (re-drawn N), so a control reads as "the same run without the dimer".
    # Tol cyan, a lighter blue beside DEO (paper)'s: Tol indigo (#332288) read as black beside GD
    # where both are thin dotted lines (the Networks page's exact λ_min of GD and of this control)
    "deo_paper_random": "#88CCEE",
    "deo_paper_random_redrawn": "#332288",  # Tol indigo
    "deo_escape_random": "#CC6677",  # Tol rose, beside DEO-escape's vermillion
    "deo_escape_random_redrawn": "#AA4499",  # Tol purple
    "dimer_saddle_search_random": "#44AA99",  # Tol teal
    "dimer_saddle_search_random_redrawn": "#117733",  # Tol green
}

PRESET_DASHES: dict[str, str] = {
    "gd": "solid",
    "momentum": "dot",
    "adam": "solid",
    "adamw": "dash",
    "pgd": "dashdot",
    "deo_paper": "solid",
    "deo_escape": "solid",
    "dimer_saddle_search": "longdash",
    "deo_published": "dot",
    "deo_paper_random": "dot",
    "deo_paper_random_redrawn": "dashdot",
    "deo_escape_random": "dot",
    "deo_escape_random_redrawn": "dashdot",
    "dimer_saddle_search_random": "dot",
    "dimer_saddle_search_random_redrawn": "dashdot",
}

# Colours for keys that are not presets (a custom label, a future preset).
_EXTRA_COLORS = ("#661100", "#6699CC", "#004488", "#888888")

# Reference colours for things that are not optimizers.
EXACT_COLOR = "#555555"  # the exact min-mode eigenvector / exact λ_min
SADDLE_COLOR = "#D55E00"
MINIMUM_COLOR = "#009E73"

# One symbol per kind of listed stationary point, in every figure (contours, dimer views, escape maps).
STATIONARY_SYMBOLS = {"min": "star", "saddle": "x", "max": "triangle-up", "degenerate": "diamond"}

FONT_SIZE = {False: 14, True: 22}
LINE_WIDTH = {False: 2.5, True: 4.5}
MARKER_SIZE = {False: 10, True: 16}
# Legends of line charts sit above the plot area in rows (Plotly widens the top margin to fit them):
# beside the plot, a long run name ("DEO-escape — control: random fixed direction") squeezed a
# half-width chart's plot to ~60 px; below it, at a fixed fraction of the plot's height, a short
# chart's legend covered the x-axis title "step".
LEGEND_ABOVE = {"orientation": "h", "x": 0.0, "y": 1.02, "yanchor": "bottom"}
# ... or in rows at the bottom of the figure, under the x-axis title, in a margin sized for its rows
# (at a fraction of the plot's height, projector fonts put a legend on the axis titles)
LEGEND_AT_BOTTOM = {"orientation": "h", "x": 0.0, "xanchor": "left", "yref": "container", "y": 0.0,
                    "yanchor": "bottom"}  # fmt: skip
# Plotly's toolbar shows in a figure's top right while the pointer is over a desktop's chart (23 px
# tall, 10 px from the top in plotly.js 3): over a legend in rows above the plot it covered the first
# row's right-hand entries. A chart whose toolbar shows hangs that legend this far below its top.
TOOLBAR_ROOM_PX = 36
# On a phone a colour bar lies flat under its plot (beside it, it took half of a ≈ 390 px chart);
# ``y`` (the bar's top, a fraction of the plot area's height below it) is each figure's own.
COLORBAR_BELOW = {"orientation": "h", "x": 0.5, "xanchor": "center", "yanchor": "top", "len": 1.0,
                  "thickness": 12}  # fmt: skip


def shows_toolbar(large: bool, compact: bool) -> bool:
    """Whether a chart drawn for this view shows Plotly's toolbar: on a desktop, not on a phone
    (``compact``) nor in projector fonts (``large``), where it sat on legends and titles
    (``pages.common.chart_config`` applies it)."""
    return not (large or compact)


def legend_above(height: int, large: bool, compact: bool) -> tuple[int, dict]:
    """``(figure height, legend)`` for a legend in rows above the plot of a figure whose plot needs
    ``height`` px: :data:`LEGEND_ABOVE` where the view shows no toolbar (:func:`shows_toolbar`); where
    it does, the same rows hung :data:`TOOLBAR_ROOM_PX` below the figure's top (a container-anchored
    legend: Plotly still starts the plot below its rows) and the figure that much taller, so that
    the toolbar covers none of its entries and the plot keeps its height."""
    if not shows_toolbar(large, compact):
        return height, LEGEND_ABOVE
    height += TOOLBAR_ROOM_PX
    return height, {**LEGEND_ABOVE, "xanchor": "left", "yref": "container",
                    "y": 1.0 - TOOLBAR_ROOM_PX / height, "yanchor": "top"}  # fmt: skip


def color_for(key: str) -> str:
    """The colour of preset ``key`` (``"#rrggbb"``); unknown keys get a stable extra colour."""
    if key in PRESET_COLORS:
        return PRESET_COLORS[key]
    return _EXTRA_COLORS[sum(map(ord, key)) % len(_EXTRA_COLORS)]


def dash_for(key: str) -> str:
    """The Plotly line dash of preset ``key`` (``"solid"`` for unknown keys)."""
    return PRESET_DASHES.get(key, "solid")


def legend_label(label: str) -> str:
    """A run's name short enough for a legend column or a panel title: a random-direction
    control's preset label ("DEO-escape — control: random fixed direction") becomes
    "DEO-escape: random N" (or "DEO-escape: re-drawn N"); other labels are kept."""
    base, sep, rest = label.partition(" — control: ")
    if not sep:
        return label
    return f"{base}: {'re-drawn' if 're-drawn' in rest else 'random'} N"


def line_width(large: bool = False) -> float:
    """Path / curve line width in px, thicker in projector mode."""
    return LINE_WIDTH[bool(large)]


def marker_size(large: bool = False) -> float:
    """Current-point marker size in px, bigger in projector mode."""
    return MARKER_SIZE[bool(large)]


def rgba(color: str, alpha: float) -> str:
    """``"#rrggbb"`` with opacity ``alpha`` in [0, 1] as a Plotly ``"rgba(r,g,b,a)"`` string."""
    if not (color.startswith("#") and len(color) == 7):
        raise ValueError(f"color must look like '#rrggbb', got {color!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def layout_defaults(large: bool = False) -> dict:
    """Layout keys shared by every figure: fonts, margins, legend; ``large`` = projector mode."""
    size = FONT_SIZE[bool(large)]
    return {
        "font": {"size": size, "family": "Arial, Helvetica, sans-serif"},
        "title": {"font": {"size": size + 4}},
        "legend": {"font": {"size": size}, "bgcolor": "rgba(255,255,255,0.75)"},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "hoverlabel": {"font": {"size": size}},
        "template": "plotly_white",
    }


def _set_template(fig: go.Figure, name: str) -> None:
    """``fig.layout.template = name`` without re-validating the registered template: Plotly's
    validator deep-copies a named template through ``Template.__init__`` (≈ 25 ms, half of a small
    figure's build); a registered template is valid already, so it is stored as its plain JSON, as
    Plotly itself does for the default template (``BaseFigure._initialize_layout_template``)."""
    import plotly.io as pio

    layout = fig.layout
    validate = layout._validate
    layout._validate = False
    try:
        layout.template = pio.templates[name]
    finally:
        layout._validate = validate


def style_figure(fig: go.Figure, large: bool = False) -> go.Figure:
    """Apply :func:`layout_defaults` to ``fig`` in place (and return it).

    In projector mode also every axis title and tick label grows, and line widths of scatter traces
    that set one are scaled to :func:`line_width`.
    """
    margin = fig.layout.margin.to_plotly_json() if fig.layout.margin else {}
    defaults = layout_defaults(large)
    _set_template(fig, defaults.pop("template"))
    fig.update_layout(**defaults)
    if margin:
        fig.update_layout(margin=margin)
    size = FONT_SIZE[bool(large)]
    fig.update_xaxes(title_font={"size": size}, tickfont={"size": size - 2})
    fig.update_yaxes(title_font={"size": size}, tickfont={"size": size - 2})
    if large:
        scale = LINE_WIDTH[True] / LINE_WIDTH[False]
        for trace in fig.data:
            line = getattr(trace, "line", None)
            if trace.type in ("scatter", "scattergl") and line is not None and line.width:
                line.width = line.width * scale
    return fig
