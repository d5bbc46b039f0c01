"""The Escape map page's request as data: its defaults, the cached map's arguments and its charts,
defined once for the page (which builds its widgets from them) and for ``serve.py`` (which computes
the plain link's map and charts into the shared caches before the first visitor arrives:
:func:`precompute`).

``tests/test_serve.py`` checks the two agree: after :func:`precompute`, a visit of the plain link
computes no map and no chart (and asks for no Run press, whatever the server's load).
"""

from __future__ import annotations

from pages.common import (
    DEFAULT_SURFACE,
    DEFAULT_VIEWS,
    cache_runner,
    cached_escape_map,
    get_surface,
    picker_specs,
    specs_to_json,
)
from pages.plotly_wire import wire_ready

# DEO-escape with its control (the same step and cost, a random N never rotated) beside it
DEFAULT_OPTIMIZERS = ["gd", "adam", "deo_escape", "deo_escape_random"]
SADDLE_KINDS = ("saddle", "degenerate")
RESOLUTION_MIN, RESOLUTION_MAX, RESOLUTION_DEFAULT = 5, 100, 30
STEPS_MIN, STEPS_MAX, STEPS_DEFAULT = 10, 2000, 300
MODES = ("steps", "basin")  # colour by steps to escape, or by the minimum reached


def saddles(surface) -> list:
    """The surface's stationary points a map can start around (saddles and degenerate points)."""
    return [p for p in surface.stationary_points if p.kind in SADDLE_KINDS]


def surfaces_with_saddles() -> dict:
    """The surfaces the page offers: those with a point of :func:`saddles`."""
    import landscapes

    return {k: s for k, s in landscapes.SURFACES.items() if saddles(s)}


def window_max(surface) -> float:
    """The largest half-width of the window of starts: half the surface's larger side."""
    (bx0, bx1), (by0, by1) = surface.bounds
    return 0.5 * max(bx1 - bx0, by1 - by0)


def default_half_width(surface) -> float:
    return float(min(1.0, window_max(surface)))


def map_window(saddle_xy, half_width: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The square of starts: the saddle ± ``half_width`` in x and y."""
    sx, sy = saddle_xy
    return (sx - half_width, sx + half_width), (sy - half_width, sy + half_width)


def map_arguments(surface_key, saddle_xy, window, resolution, specs, steps, seed, clip) -> tuple:
    """The arguments of the page's cached map (``pages.common.cached_escape_map``)."""
    grid = (tuple(saddle_xy), window, int(resolution))
    run = (specs_to_json(specs), int(steps), int(seed), None if clip is None else float(clip))
    return (surface_key, "", *grid, *run)


def minima(surface) -> tuple:
    """The surface's minima, the basins the "minimum reached" colouring names."""
    return tuple(tuple(p.xy) for p in surface.stationary_points if p.kind == "min")


@cache_runner(max_entries=16)
def escape_charts(map_args: tuple, mode: str, minima: tuple, large: bool, compact: bool):
    """``(maps, histogram)``: the figures of ``cached_escape_map(*map_args)`` (a cache hit: the page
    asks for it first, with its progress bar) in this view, built once per map and view, frozen and
    their JSON encoded once (``pages.plotly_wire.wire_ready``), for every rerun and visitor."""
    from viz.escape_figs import escape_histogram, escape_maps_figure

    xs, ys, results = cached_escape_map(*map_args)
    steps, saddle = map_args[6], map_args[2]
    maps = escape_maps_figure(
        xs, ys, results, mode=mode, steps_budget=steps, saddle=saddle, minima=list(minima), large=large,
        compact=compact,
    )  # fmt: skip
    histogram = escape_histogram(results, steps_budget=steps, large=large, compact=compact)
    return wire_ready(maps.freeze()), wire_ready(histogram.freeze())


def default_map_arguments(surface_key: str = DEFAULT_SURFACE) -> tuple:
    """The plain link's map arguments (the first saddle of ``surface_key`` and every default)."""
    surface = get_surface(surface_key)
    saddle = saddles(surface)[0]
    window = map_window(saddle.xy, default_half_width(surface))
    specs = picker_specs(DEFAULT_OPTIMIZERS)
    return map_arguments(surface_key, saddle.xy, window, RESOLUTION_DEFAULT, specs, STEPS_DEFAULT, 0, None)


def precompute(surface_key: str = DEFAULT_SURFACE, views=DEFAULT_VIEWS, between=lambda: None) -> None:
    """Compute what a visitor of the plain link is shown — the map (in the worker pool) and, for each
    of ``views``, its charts — into the shared caches; ``between()`` before each piece."""
    args = default_map_arguments(surface_key)
    between()
    cached_escape_map(*args)
    for large, compact in views:
        between()
        escape_charts(args, MODES[0], minima(get_surface(surface_key)), large, compact)
