"""The Dimer page's studies and charts, cached, and its request as data: the widgets' defaults,
defined once for the page (which builds its widgets from them) and for ``serve.py`` (which computes
the plain link's studies and charts into the shared caches before the first visitor arrives:
:func:`precompute`).

``tests/test_serve.py`` checks the two agree: after :func:`precompute`, a visit of the plain link
computes no study and builds no chart.
"""

from __future__ import annotations

import landscapes
from deo import dimer_studies as studies
from deo.dimer import SCHEMES
from deo.presets import PRESETS
from deo.race import OptimizerSpec
from landscapes.surfaces import f_on_grid
from pages.common import DEFAULT_VIEWS, cache_runner, cached_surface_race, specs_to_json
from pages.plotly_wire import wire_ready
from viz import dimer_figs as figs
from viz.palette import color_for

GRID = 121
SADDLE_SURFACE = "muller_brown"
SADDLE_PRESET = "dimer_saddle_search"
SADDLE_DEFAULTS = {"lr": 1e-3}  # MB gradients are O(100): the preset's lr 0.01 overshoots
MAX_ITERATIONS = 50
PLANES = ("cg", "sd", "lbfgs")
# the widgets' defaults: what the plain link shows
DEFAULT_SURFACE = SADDLE_SURFACE
DEFAULT_ANGLE = 0  # degrees
DEFAULT_LENGTH = 1e-3
DEFAULT_ROTATION = studies.STUDY_ROTATIONS[0]
DEFAULT_SCHEME = SCHEMES[0]
DEFAULT_PLANE = PLANES[0]
DEFAULT_STEP_REL = 0.5
DEFAULT_ITERATIONS = 10
DEFAULT_ZOOM = 0.08
SADDLE_STEPS = 300


# ------------------------------------------------------------------------------ engine glue (cached)


@cache_runner
def surface_grid(surface_key: str, window: tuple[tuple[float, float], tuple[float, float]], n: int = GRID):
    """``(xs (n,), ys (n,), z (n, n))``: f on a grid over ``window`` (rows along y)."""
    return f_on_grid(landscapes.SURFACES[surface_key].f, window, n)


@cache_runner
def rotation_run(
    surface_key: str,
    point: tuple[float, float],
    angle_deg: float,
    length: float,
    rotation: str,
    scheme: str,
    plane: str,
    step_rel: float,
    iterations: int,
) -> studies.RotationRun:
    """``deo.dimer_studies.rotation_run`` on the surface at θ from N₀ at ``angle_deg``."""
    f = landscapes.SURFACES[surface_key].f
    return studies.rotation_run(
        f, point, studies.orientation_2d(angle_deg), length, rotation, scheme, plane, step_rel, iterations
    )


@cache_runner
def rotation_convergence(
    surface_key: str,
    point: tuple[float, float],
    angle_deg: float,
    length: float,
    plane: str,
    step_rel: float,
    iterations: int,
) -> tuple[studies.RotationConvergence, ...]:
    """``deo.dimer_studies.rotation_convergence``: sd vs fourier × forward vs central from N₀."""
    f = landscapes.SURFACES[surface_key].f
    return studies.rotation_convergence(
        f, point, studies.orientation_2d(angle_deg), length, plane, step_rel, iterations
    )


@cache_runner
def finite_difference_errors(
    surface_key: str, point: tuple[float, float], angle_deg: float
) -> tuple[studies.FiniteDifferenceErrors, ...]:
    """``deo.dimer_studies.finite_difference_errors`` along N₀, both schemes, float64 and float32."""
    f = landscapes.SURFACES[surface_key].f
    return studies.finite_difference_errors(f, point, studies.orientation_2d(angle_deg))


def zoom_window(surface, point: tuple[float, float], zoom: float):
    """The zoom window around θ: half-width ``zoom`` × the surface window's smaller side."""
    (x0, x1), (y0, y1) = surface.bounds
    half = zoom * min(x1 - x0, y1 - y0)
    return (point[0] - half, point[0] + half), (point[1] - half, point[1] + half)


def markers(surface) -> list[figs.Marker]:
    return [figs.Marker(tuple(p.xy), p.kind, p.kind) for p in surface.stationary_points]


# ------------------------------------------------------------------------------------ charts (cached)
# Each chart is built once per configuration and view, frozen and its JSON encoded once
# (``pages.plotly_wire.wire_ready``): a rerun that changes another control, and every later visitor
# of the same link, sends it again without building it (Plotly's validation of a figure with
# contours took most of the page's 1.2 s of server CPU per visit).


@cache_runner(max_entries=16)
def overview_chart(
    surface_key: str,
    point: tuple[float, float],
    window: tuple[tuple[float, float], tuple[float, float]],
    large: bool,
    compact: bool,
):
    """``viz.dimer_figs.overview_figure`` of the whole surface with θ and the zoom ``window``."""
    surface = landscapes.SURFACES[surface_key]
    xs, ys, z = surface_grid(surface_key, surface.bounds)
    fig = figs.overview_figure(
        xs, ys, z, point, window, markers(surface), surface.color_scale, surface.clip,
        large=large, compact=compact,
    )  # fmt: skip
    return wire_ready(fig.freeze())


@cache_runner(max_entries=16)
def rotation_chart(
    surface_key: str,
    run: tuple,
    window: tuple[tuple[float, float], tuple[float, float]],
    large: bool,
    compact: bool,
):
    """``viz.dimer_figs.rotation_figure`` of :func:`rotation_run` (``run``: its arguments after the
    surface) in the zoom ``window``."""
    surface = landscapes.SURFACES[surface_key]
    zx, zy, zz = surface_grid(surface_key, window)
    fig = figs.rotation_figure(
        rotation_run(surface_key, *run), zx, zy, zz, figs.DIMER_COLOR, surface.color_scale,
        surface.clip, click_grid=False, large=large, compact=compact,
    )  # fmt: skip
    return wire_ready(fig.freeze())


@cache_runner(max_entries=16)
def convergence_chart(surface_key: str, study: tuple, large: bool, compact: bool):
    """``viz.dimer_figs.convergence_figure`` of :func:`rotation_convergence` (``study``: its arguments
    after the surface) and the series it draws, in the runs' order."""
    runs = rotation_convergence(surface_key, *study)
    series = [
        figs.ConvergenceSeries(
            label=f"{r.rotation}, {r.scheme}",
            color=figs.ROTATION_COLORS[r.rotation],
            dash=figs.SCHEME_DASHES[r.scheme],
            grad_evals=r.grad_evals,
            curvature_error=r.curvature_error,
            abs_cos=r.abs_cos,
        )
        for r in runs
    ]
    return wire_ready(figs.convergence_figure(series, large=large, compact=compact).freeze()), series


@cache_runner(max_entries=16)
def finite_difference_chart(
    surface_key: str, point: tuple[float, float], angle_deg: float, large: bool, compact: bool
):
    """``viz.dimer_figs.finite_difference_figure`` of :func:`finite_difference_errors`."""
    sweeps = finite_difference_errors(surface_key, point, angle_deg)
    series = [
        figs.FiniteDifferenceSeries(
            label=f"{s.scheme}, {s.dtype}",
            color=figs.SCHEME_COLORS[s.scheme],
            dash=figs.DTYPE_DASHES[s.dtype],
            hn_error=s.hn_error,
            curvature_error=s.curvature_error,
        )
        for s in sweeps
    ]
    fig = figs.finite_difference_figure(sweeps[0].lengths, series, large=large, compact=compact)
    return wire_ready(fig.freeze())


@cache_runner(max_entries=16)
def saddle_search_chart(race: tuple, large: bool, compact: bool):
    """``viz.dimer_figs.saddle_search_figure`` of the saddle search on Müller–Brown (``race``: the
    arguments of ``pages.common.cached_surface_race``, whose cached traces it draws)."""
    trace = cached_surface_race(*race)[0]
    mb = landscapes.SURFACES[SADDLE_SURFACE]
    gx, gy, gz = surface_grid(SADDLE_SURFACE, mb.bounds)
    path = trace.position if trace.position is not None else trace.position_2d
    fig = figs.saddle_search_figure(
        path, gx, gy, gz, color_for(SADDLE_PRESET), markers(mb), trace.direction, mb.color_scale,
        mb.clip, large=large, compact=compact,
    )  # fmt: skip
    return wire_ready(fig.freeze())


def saddle_search_start(index: int | None = None) -> tuple[float, float]:
    """The saddle search's start: Müller–Brown's listed minimum ``index`` (default: the second)."""
    minima = [p for p in landscapes.SURFACES[SADDLE_SURFACE].stationary_points if p.kind == "min"]
    return tuple(minima[min(1, len(minima) - 1) if index is None else index].xy)


def saddle_search_race(start, spec, steps: int, seed: int) -> tuple:
    """The arguments of the saddle search's cached race (``pages.common.cached_surface_race``)."""
    return (SADDLE_SURFACE, "", tuple(start), None, specs_to_json([spec]), int(steps), int(seed), None)


def saddle_search_spec(overrides: dict | None = None) -> OptimizerSpec:
    """The saddle search's optimizer: the preset with :data:`SADDLE_DEFAULTS` and ``overrides``."""
    hyperparams = {**SADDLE_DEFAULTS, **(overrides or {})}
    return OptimizerSpec(SADDLE_PRESET, hyperparams, PRESETS[SADDLE_PRESET].label)


def default_request(surface_key: str = DEFAULT_SURFACE) -> dict:
    """The plain link's arguments of every study and chart (the page's widgets untouched)."""
    surface = landscapes.SURFACES[surface_key]
    point = tuple(map(float, surface.starts[0]))
    angle, length = float(DEFAULT_ANGLE), float(DEFAULT_LENGTH)
    step_rel, iterations = float(DEFAULT_STEP_REL), int(DEFAULT_ITERATIONS)
    return {
        "point": point,
        "angle": angle,
        "window": zoom_window(surface, point, DEFAULT_ZOOM),
        "run": (point, angle, length, DEFAULT_ROTATION, DEFAULT_SCHEME, DEFAULT_PLANE, step_rel, iterations),
        "study": (point, angle, length, DEFAULT_PLANE, step_rel, iterations),
        "race": saddle_search_race(saddle_search_start(), saddle_search_spec(), SADDLE_STEPS, 0),
    }


def precompute(surface_key: str = DEFAULT_SURFACE, views=DEFAULT_VIEWS, between=lambda: None) -> None:
    """Compute what a visitor of the plain link is shown — the studies, the saddle search and, for
    each of ``views``, the five charts — into the shared caches; ``between()`` before each piece."""
    request = default_request(surface_key)
    between()
    cached_surface_race(*request["race"])
    for large, compact in views:
        pieces = (
            (overview_chart, surface_key, request["point"], request["window"]),
            (rotation_chart, surface_key, request["run"], request["window"]),
            (convergence_chart, surface_key, request["study"]),
            (finite_difference_chart, surface_key, request["point"], request["angle"]),
            (saddle_search_chart, request["race"]),
        )
        for chart, *args in pieces:
            between()
            chart(*args, large, compact)
