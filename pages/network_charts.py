"""The Networks page's charts, built once per race (and slice) and view, shared by every rerun and
visitor, and its request as data: the widgets' defaults and the cached race's and slice's arguments,
defined once for the page and for ``serve.py``, which computes the plain link's race, slice and charts
into the shared caches before the first visitor arrives (:func:`precompute`; ``tests/test_serve.py``
checks that its first visitor then computes nothing).

Each function draws what ``pages.estimates.network_race`` / ``network_slice`` computed (a cache hit:
the page asks for them first, with its progress bars), freezes the figures and encodes their JSON
once (``pages.plotly_wire.wire_ready``). Building the page's seven Plotly figures took most of its
0.5–0.8 s of server CPU per visit; a change of another control, or another visitor of the same
link, now sends them as they are.
"""

from __future__ import annotations

from pages.common import DEFAULT_VIEWS, LOSS_SIDES, cache_runner, picker_specs, specs_to_json
from pages.estimates import network_race, network_slice
from pages.plotly_wire import wire_ready
from viz import network_figs as figs

DEFAULT_NETWORK = "two_moons"
# DEO (paper) with its control beside it: the same step and cost with a random N that is never rotated
DEFAULT_OPTIMIZERS = ["gd", "adam", "deo_paper", "deo_paper_random"]
INIT_SCALES = ("default", 1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
MAX_STEPS = 3000
MAX_RECORDED_ROWS = 100
DEFAULT_STEPS = 200
DEFAULT_PLANE = "random"
DEFAULT_RADIUS = 0.0  # fit the trajectories
GRID_MIN, GRID_MAX, DEFAULT_GRID = 11, 61, 31


def race_arguments(network_key, init_scale, specs, steps, seed, clip, projection) -> tuple:
    """The arguments of the page's cached race (``pages.estimates.network_race``): every
    ``steps // MAX_RECORDED_ROWS``-th step recorded; ``clip`` 0 is off."""
    record_every = max(1, int(steps) // MAX_RECORDED_ROWS)
    run = (int(steps), int(seed), float(clip) or None, record_every, projection)
    return (network_key, init_scale, specs_to_json(specs), *run)


def slice_arguments(race_args, plane, plane_seed, filter_normalize, radius, resolution) -> tuple:
    """The arguments of the page's cached slice (``pages.estimates.network_slice``) of the race
    ``race_args``, which its ``race_key`` names."""
    network_key, init_scale, _, _, seed = race_args[:5]
    race_key = "|".join(map(str, race_args))
    plane_args = (plane, int(plane_seed), bool(filter_normalize), float(radius), int(resolution))
    return (network_key, init_scale, int(seed), *plane_args, race_key)


def default_request(network_key: str = DEFAULT_NETWORK) -> tuple[tuple, tuple, float | None]:
    """The plain link's ``(race arguments, slice arguments, plateau)``."""
    import landscapes
    from deo.race import VECTOR_MAX_DIM
    from landscapes.trajectory_slices import slice_plan

    net = landscapes.make_network(network_key)
    plan = slice_plan(DEFAULT_PLANE, net.n_params, VECTOR_MAX_DIM, 0, True)
    specs = picker_specs(DEFAULT_OPTIMIZERS)
    race_args = race_arguments(network_key, None, specs, DEFAULT_STEPS, 0, 0.0, plan.projection)
    slice_args = slice_arguments(race_args, plan.plane, 0, True, DEFAULT_RADIUS, DEFAULT_GRID)
    return race_args, slice_args, net.plateau


def precompute(network_key: str = DEFAULT_NETWORK, views=DEFAULT_VIEWS, between=lambda: None) -> None:
    """Compute what a visitor of the plain link is shown — the race and the slice (in the worker
    pool) and, for each of ``views``, the charts — into the shared caches; ``between()`` before
    each piece."""
    race_args, slice_args, plateau = default_request(network_key)
    between()
    traces = network_race(*race_args)
    between()
    network_slice(*slice_args, _traces=traces)
    for large, compact in views:
        pieces = (
            (loss_charts, race_args, False, plateau),
            (diagnostics_charts, race_args),
            (slice_charts, race_args, slice_args, False),
        )
        for chart, *args in pieces:
            between()
            chart(*args, large, compact)


@cache_runner(max_entries=16)
def loss_charts(race_args: tuple, log_y: bool, plateau: float | None, large: bool, compact: bool):
    """``(against steps, against gradient evaluations, covered)``: the two loss figures of the race
    ``race_args`` (``network_race``'s arguments) and, per side (``LOSS_SIDES``), the curves that a
    later one covers (``viz.network_figs.covered_curves``, for the caption)."""
    traces = network_race(*race_args)
    covered = {side: figs.covered_curves(traces, x_axis, log_y) for side, x_axis in LOSS_SIDES}
    steps, evals = (
        wire_ready(
            figs.loss_figure(
                traces, x_axis, log_y, plateau, large=large, covered=covered[side], compact=compact
            ).freeze()
        )
        for side, x_axis in LOSS_SIDES
    )
    return steps, evals, covered


@cache_runner(max_entries=16)
def diagnostics_charts(race_args: tuple, large: bool, compact: bool):
    """``(curvature, |cos|, removed fraction)`` figures of the race ``race_args``."""
    traces = network_race(*race_args)
    view = {"large": large, "compact": compact}
    builders = (figs.curvature_figure, figs.cos_figure, figs.removed_fraction_figure)
    return tuple(wire_ready(build(traces, **view).freeze()) for build in builders)


@cache_runner(max_entries=16)
def slice_charts(race_args: tuple, slice_args: tuple, log_y: bool, large: bool, compact: bool):
    """``(slice, true loss along the paths)`` figures of the slice ``slice_args`` of the race
    ``race_args``."""
    traces = network_race(*race_args)
    sl = network_slice(*slice_args, _traces=traces)
    fig = figs.slice_figure(
        sl.alphas, sl.betas, sl.z, traces, sl.paths, sl.description, log_z=log_y, large=large,
        compact=compact,
    )  # fmt: skip
    true_loss = figs.trajectory_loss_figure(traces, sl.path_losses, log_y, large=large)
    return wire_ready(fig.freeze()), wire_ready(true_loss.freeze())
