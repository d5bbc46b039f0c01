"""The Surfaces page's request as data: its defaults, its race key and its figure options, defined
once for the page (which builds its widgets from them) and for ``serve.py`` (which computes the plain
link's request into the shared caches before the first visitor arrives: :func:`precompute`).

``tests/test_serve.py`` checks the two agree: after :func:`precompute`, a visit of the plain link
computes no race and no figure.
"""

from __future__ import annotations

from pages.common import (
    DEFAULT_SURFACE,
    DEFAULT_VIEWS,
    cached_race_figure,
    cached_surface_race,
    cached_trace_figure,
    chart_config,
    get_surface,
    picker_specs,
    specs_to_json,
)

# DEO-escape's control (the same step and cost with a random N, never rotated) runs beside it by
# default: a DEO win is never shown without the control that tells whether the dimer earned it.
DEFAULT_OPTIMIZERS = ["gd", "adam", "deo_paper", "deo_escape", "deo_escape_random"]
CUSTOM_START = (1.0, 1e-3)  # a typed formula's start
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # playback speed, × the base frame time
DEFAULT_SPEED = 1.0
BASE_FRAME_MS = 50.0  # one frame at 1× speed
ZOOMS = ("auto", "1", "10", "100", "1000", "10000")  # dimer zoom ×k; "auto": ≈4 % of the window
ARROWS = ("direction", "scale")  # same length, or to scale


def race_defaults(surface_key: str):
    """The surface's default race (``landscapes.RaceDefaults``: start, learning rates, steps)."""
    import landscapes
    from landscapes.surfaces import RaceDefaults

    if surface_key == "custom":
        return RaceDefaults(start=CUSTOM_START)
    return landscapes.SURFACES[surface_key].race


def preset_defaults(surface_key: str) -> dict[str, dict]:
    """Per preset, the hyperparameters the surface gives it (``RaceDefaults.hyperparams``)."""
    from deo.presets import PRESETS

    race = race_defaults(surface_key)
    return {key: race.hyperparams(key, preset.defaults) for key, preset in PRESETS.items()}


def default_specs(surface_key: str) -> list:
    """``pages.common.optimizer_picker``'s specs with its inputs untouched: the default optimizers
    carrying the surface's values that differ from the preset's own."""
    return picker_specs(DEFAULT_OPTIMIZERS, preset_defaults(surface_key))


def surface_race_key(surface_key, formula, start, offset, specs, steps, seed, clip) -> tuple:
    """The arguments of the page's cached race and figures (``pages.common.cached_surface_race``)."""
    return (surface_key, formula, start, offset, specs_to_json(specs), int(steps), int(seed), clip)


def race_figure_options(
    race_start,
    *,
    speed: float = DEFAULT_SPEED,
    zoom: str = ZOOMS[0],
    arrows: str = ARROWS[0],
    show_dimer: bool = True,
    show_arrows: bool = True,
    show_min_mode: bool = True,
    large: bool = False,
    compact: bool = False,
) -> dict:
    """``viz.surface_figs.race_figure``'s keyword options from the View controls' values."""
    return {
        "start": race_start,
        "dimer_zoom": None if zoom == "auto" else float(zoom),
        "arrows": arrows,
        "show_dimer": show_dimer,
        "show_arrows": show_arrows,
        "show_min_mode": show_min_mode,
        "frame_ms": BASE_FRAME_MS / float(speed),
        "large": large,
        "compact": compact,
    }


def race_start(traces: list, start) -> list:
    """Where the figure marks the start: the first recorded point (an offset moves it), else ``start``."""
    if traces and traces[0].position_2d is not None:
        return traces[0].position_2d[0].tolist()
    return list(start)


def loss_options(large: bool, log: bool = False, compact: bool = False) -> tuple:
    """``pages.common.cached_trace_figure``'s options of the two loss curves."""
    return (("compact", compact), ("large", large), ("log", log))


def race_chart_arguments(large: bool, compact: bool) -> dict:
    """``st.plotly_chart``'s arguments for the race figure (but the figure and the click callback)."""
    return {
        "key": "race_chart",
        "width": "stretch" if compact or large else "content",
        "selection_mode": "points",
        # on a phone or a projector the toolbar would sit on the legend; pinch-zoom and the downloads remain
        "config": {**chart_config(compact or large), "toImageButtonOptions": {"scale": 2}},
    }


def default_race(surface_key: str = DEFAULT_SURFACE) -> tuple[tuple, list]:
    """The plain link's race: its key (:func:`surface_race_key`) and where its figure marks the
    start, computed into (or read from) the shared cache."""
    surface = get_surface(surface_key)
    start = (float(surface.default_start[0]), float(surface.default_start[1]))
    specs, steps = default_specs(surface_key), race_defaults(surface_key).steps
    key = surface_race_key(surface_key, "", start, None, specs, steps, 0, None)
    return key, race_start(cached_surface_race(*key), start)


def default_race_figure(surface_key: str = DEFAULT_SURFACE, large: bool = False, compact: bool = False):
    """The plain link's animated race figure for one view, from the shared cache."""
    key, marked = default_race(surface_key)
    options = race_figure_options(marked, large=large, compact=compact)
    return cached_race_figure(*key, tuple(sorted(options.items())))


def precompute(surface_key: str = DEFAULT_SURFACE, views=DEFAULT_VIEWS) -> None:
    """Compute what a visitor of the plain link (``surface_key`` with its defaults) is shown — the
    race, the animated figure and the loss curves for each of ``views`` — into the shared caches."""
    key, _ = default_race(surface_key)
    for large, compact in views:
        default_race_figure(surface_key, large, compact)
        for view in ("loss_steps", "loss_evals"):
            cached_trace_figure(*key, view, loss_options(large, compact=compact))
