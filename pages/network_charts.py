"""The Networks page's charts, built once per race (and slice) and view, shared by every rerun and
visitor.

Each function draws what ``pages.estimates.network_race`` / ``network_slice`` computed (a cache hit:
the page asks for them first, with its progress bars), freezes the figures and encodes their JSON
once (``pages.plotly_wire.wire_ready``). Building the page's seven Plotly figures took most of its
0.5–0.8 s of server CPU per visit; a change of another control, or another visitor of the same
link, now sends them as they are.
"""

from __future__ import annotations

from pages.common import LOSS_SIDES, cache_runner
from pages.estimates import network_race, network_slice
from pages.plotly_wire import wire_ready
from viz import network_figs as figs


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
