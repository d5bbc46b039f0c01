"""Specifications of the Surfaces figures (viz/surface_figs.py, viz/export.py, viz/palette.py).

Traces are built directly (no race): straight or known paths on f = x² − y², whose gradient is
(2x, −2y) and whose Hessian diag(2, −2) has the exact min mode v_min = (0, 1), λ_min = −2.
"""

from __future__ import annotations

import base64
import gc
import json
import math
import re
import struct
import zlib

import numpy as np
import pytest

import landscapes
from deo.trace import Trace
from viz import surface_figs as sf
from viz.export import standalone_html
from viz.frames import MAX_SLIDER_STOPS
from viz.palette import PRESET_COLORS, color_for, rgba

SADDLE = landscapes.SURFACES["saddle"]  # x² − y² on [−2, 2]²


def make_trace(
    key: str,
    steps: int,
    dimer: bool = True,
    start=(1.0, 1e-3),
    status="running",
    escape_step=None,
    stop_step=None,
    loss_shift=0.0,
) -> Trace:
    """A GD-like run on x² − y² with lr 0.01: x shrinks by 0.98, y grows by 1.02 per step."""
    t = np.arange(steps + 1)
    pos = np.stack([start[0] * 0.98**t, start[1] * 1.02**t], axis=1)
    grad = np.stack([2 * pos[:, 0], -2 * pos[:, 1]], axis=1)
    n = np.tile([0.0, 1.0], (steps + 1, 1))
    modified = grad - (grad * n).sum(1, keepdims=True) * n if dimer else grad
    nan = np.full(steps + 1, np.nan)
    return Trace(
        key=key,
        label=key.upper(),
        hyperparams={"lr": 0.01},
        status=status,
        stop_step=stop_step,
        escape_step=escape_step,
        steps=t,
        loss=pos[:, 0] ** 2 - pos[:, 1] ** 2 + loss_shift,
        position=pos,
        position_2d=pos,
        grad=grad,
        modified_grad=modified,
        grad_norm=np.linalg.norm(grad, axis=1),
        modified_grad_norm=np.linalg.norm(modified, axis=1),
        removed_fraction=np.full(steps + 1, 1.0) if dimer else nan,
        direction=n if dimer else None,
        dimer_length=1e-3 if dimer else None,
        curvature=np.full(steps + 1, -2.0) if dimer else nan,
        torque=np.zeros(steps + 1) if dimer else nan,
        exact_lambda_min=np.full(steps + 1, -2.0),
        exact_v_min=n.copy(),
        cos_to_vmin=np.ones(steps + 1) if dimer else nan,
        grad_evals=t * (2 if dimer else 1),
        diagnostic_evals=t,
        wall_time=0.1,
    )


@pytest.fixture(scope="module")
def grid():
    return sf.surface_grid(SADDLE, 101)


def frames_of(fig) -> list[dict]:
    return fig.to_dict()["frames"]


def test_contour_is_first_and_static_and_frames_update_only_moving_traces(grid):
    traces = [make_trace("gd", 50, dimer=False), make_trace("deo_paper", 50)]
    fig = sf.race_figure(SADDLE, traces, start=(1.0, 1e-3), grid=grid)
    assert fig.data[0].type == "contour"
    frames = frames_of(fig)
    moving = frames[0]["traces"]
    assert 0 not in moving
    assert moving == list(range(len(fig.data) - len(moving), len(fig.data)))  # the last traces
    for frame in frames:
        assert frame["traces"] == moving
        assert len(frame["data"]) == len(moving)
        assert all(set(d) == {"x", "y"} for d in frame["data"])
    # GD: path, point, −g, v_min; DEO: path, point, dimer, −g, −g_mod, removed, v_min
    assert len(moving) == 4 + 7


def test_one_frame_per_step_for_short_runs_and_at_most_301_frames_for_long_ones(grid):
    short = sf.race_figure(SADDLE, [make_trace("gd", 50, dimer=False)], grid=grid)
    assert [f["name"] for f in frames_of(short)] == [str(s) for s in range(51)]
    long = sf.race_figure(SADDLE, [make_trace("gd", 1000, dimer=False)], grid=grid)
    names = [int(f["name"]) for f in frames_of(long)]
    assert names == list(range(0, 1001, 4)) and len(names) <= sf.MAX_FRAMES == 301  # every 4th step
    slider = long.to_dict()["layout"]["sliders"][0]
    stops = [s["label"] for s in slider["steps"]]  # the slider stands on the frames at 0, 20, 40, …
    assert stops == [str(s) for s in range(0, 1001, 20)] and len(stops) <= MAX_SLIDER_STOPS
    assert set(stops) <= {str(n) for n in names} and stops == sorted(stops, key=int)
    assert all(s["args"][0] == [s["label"]] for s in slider["steps"])  # each stop shows its frame
    short_stops = [s["label"] for s in short.to_dict()["layout"]["sliders"][0]["steps"]]
    assert short_stops == [str(s) for s in range(51)]  # a short race: a stop at every frame


def test_a_phone_s_slider_has_fewer_stops_on_round_steps(grid):
    """On a phone's ≈ 330 px slider, 100 stops made plotly.js label every 7th: 0, 35, 70, …; at
    most PHONE_SLIDER_STOPS stops (≈ 10 px apart) stand on multiples of 10 for a 300-step race."""
    from viz.frames import PHONE_SLIDER_STOPS

    traces = [make_trace("gd", 300, dimer=False)]
    desktop = sf.race_figure(SADDLE, traces, grid=grid).to_dict()["layout"]["sliders"][0]["steps"]
    phone = sf.race_figure(SADDLE, traces, grid=grid, compact=True).to_dict()["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in desktop] == [str(s) for s in range(0, 301, 5)]
    assert [s["label"] for s in phone] == [str(s) for s in range(0, 301, 10)]
    assert len(phone) <= PHONE_SLIDER_STOPS


def test_axis_ranges_are_fixed_to_the_window_with_equal_aspect(grid):
    fig = sf.race_figure(SADDLE, [make_trace("adam", 20, dimer=False)], grid=grid)
    assert list(fig.layout.xaxis.range) == [-2.0, 2.0]
    assert list(fig.layout.yaxis.range) == [-2.0, 2.0]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


def test_play_and_pause_buttons_do_not_redraw(grid):
    fig = sf.race_figure(SADDLE, [make_trace("gd", 20, dimer=False)], grid=grid, frame_ms=200)
    play, pause = fig.layout.updatemenus[0].buttons
    assert play.label == "▶ Play" and play.args[1]["frame"] == {"duration": 200, "redraw": False}
    assert pause.label == "❚❚ Pause" and list(pause.args[0]) == [None]


def test_a_run_that_stopped_early_stays_at_its_last_point(grid):
    stopped = make_trace("gd", 10, dimer=False, status="diverged", stop_step=11)
    fig = sf.race_figure(
        SADDLE,
        [stopped, make_trace("adam", 100, dimer=False)],
        grid=grid,
        show_arrows=False,
        show_min_mode=False,
    )
    last = frames_of(fig)[-1]
    point = last["data"][1]  # gd: path, point
    assert point["x"][0] == pytest.approx(stopped.position_2d[-1, 0], abs=1e-4)
    assert point["y"][0] == pytest.approx(stopped.position_2d[-1, 1], abs=1e-4)


def test_the_diverged_label_stays_inside_the_plot_at_its_edges(grid):
    """A run that leaves the window is marked where it left, at the edge; its "diverged" label
    turns toward the plot there (half of a centred label was cut off at the left edge: "rged")."""
    bounds = (-2.0, 2.0, -2.0, 2.0)
    assert sf.text_inside(0.0, 0.0, bounds) == "top center"
    assert sf.text_inside(-2.0, 0.0, bounds) == "top right"
    assert sf.text_inside(2.0, 0.5, bounds) == "top left"
    assert sf.text_inside(0.3, 2.0, bounds) == "bottom center"
    assert sf.text_inside(-2.0, 2.0, bounds) == "bottom right"
    assert sf.text_inside(1.9, -2.0, bounds) == "top left"

    left = make_trace("gd", 60, dimer=False, status="diverged", stop_step=61)
    left.position_2d[:, 0] = np.linspace(-1.0, -3.0, 61)  # leaves through the left edge
    left.position_2d[:, 1] = 0.1
    middle = make_trace("adam", 60, dimer=False, status="diverged", stop_step=61)
    middle.position_2d[:] = [0.2, -0.3]
    fig = sf.race_figure(SADDLE, [left, middle], grid=grid, show_arrows=False, show_min_mode=False)
    marks = {t.name: t for t in fig.data if t.text == ("diverged",)}
    assert marks["GD diverged"].x == (-2.0,) and marks["GD diverged"].textposition == "top right"
    assert marks["ADAM diverged"].textposition == "top center"


def test_dimer_is_a_segment_through_the_iterate_of_length_2k_dimer_length(grid):
    fig = sf.race_figure(
        SADDLE,
        [make_trace("deo_paper", 30)],
        grid=grid,
        dimer_zoom=100.0,
        show_arrows=False,
        show_min_mode=False,
    )
    trace = make_trace("deo_paper", 30)
    frame = frames_of(fig)[30]
    dimer = frame["data"][2]
    theta = trace.position_2d[30]
    half = 100.0 * 1e-3  # k·ΔR along N = (0, 1)
    assert dimer["x"] == pytest.approx([theta[0], theta[0]], abs=1e-4)
    assert dimer["y"] == pytest.approx([theta[1] - half, theta[1] + half], abs=1e-4)
    assert sf.race_dimer_zoom(SADDLE, [trace], 100.0) == 100.0


def test_auto_dimer_zoom_is_a_round_factor_drawing_a_legible_dimer():
    for length in (1e-3, 3e-4, 1e-5):
        k = sf.auto_dimer_zoom(SADDLE, length)
        mantissa = k / 10 ** math.floor(math.log10(k))
        assert round(mantissa, 9) in (1, 2, 5)
        assert 0.08 * 4 <= 2 * k * length <= 0.2 * 4  # 8–20 % of the window width 4


def test_the_legend_names_each_kind_of_drawing_and_toggles_it_for_every_run(grid):
    traces = [make_trace("deo_paper", 10), make_trace("deo_escape", 10)]
    fig = sf.race_figure(SADDLE, traces, grid=grid)
    zoom = sf.race_dimer_zoom(SADDLE, traces)
    assert zoom == sf.auto_dimer_zoom(SADDLE, 1e-3)
    named = {t.legendgroup: t.name for t in fig.data if t.showlegend and t.x == (None,)}
    assert named == {
        "dimer": f"dimer (ΔR ×{zoom:g})",
        "g": "−g (gradient)",
        "g_mod": "−g_mod (DEO's step)",
        "removed": "removed part",
        "vmin": "exact min mode",
    }
    for group in named:  # one legend click hides that kind for both runs
        members = [t for t in fig.data if t.legendgroup == group and t.x != (None,)]
        assert len(members) == 2 and not any(t.showlegend for t in members)


def test_removed_arrow_closes_the_triangle_of_raw_and_modified_gradient(grid):
    trace = make_trace("deo_paper", 10)
    fig = sf.race_figure(SADDLE, [trace], grid=grid, show_dimer=False, show_min_mode=False)
    g_arrow, g_mod_arrow, removed = frames_of(fig)[5]["data"][2:5]
    assert g_arrow["x"][0] == g_mod_arrow["x"][0]  # both start at θ
    assert removed["x"][0] == pytest.approx(g_mod_arrow["x"][1], abs=2e-4)  # from the tip of −g_mod
    assert removed["y"][0] == pytest.approx(g_mod_arrow["y"][1], abs=2e-4)
    assert removed["x"][1] == pytest.approx(g_arrow["x"][1], abs=2e-4)  # to the tip of −g
    assert removed["y"][1] == pytest.approx(g_arrow["y"][1], abs=2e-4)
    # direction mode: −g has ARROW_FRACTION of the window width
    length = math.dist((g_arrow["x"][0], g_arrow["y"][0]), (g_arrow["x"][1], g_arrow["y"][1]))
    assert length == pytest.approx(sf.ARROW_FRACTION * 4, rel=1e-3)


def test_exact_min_mode_line_is_vertical_on_the_saddle(grid):
    fig = sf.race_figure(SADDLE, [make_trace("gd", 10, dimer=False)], grid=grid, show_arrows=False)
    vmin = frames_of(fig)[3]["data"][2]
    assert vmin["x"][0] == vmin["x"][1]  # v_min = (0, 1)
    assert vmin["y"][1] - vmin["y"][0] == pytest.approx(2 * sf.MIN_MODE_FRACTION * 4, abs=1e-3)


def test_figure_json_has_no_nan_and_stays_under_2_mb_for_three_optimizers_and_300_steps(grid):
    traces = [
        make_trace("gd", 300, dimer=False),
        make_trace("adam", 300, dimer=False),
        make_trace("deo_paper", 300),
    ]
    traces[0].curvature[:] = np.nan
    fig = sf.race_figure(SADDLE, traces, start=(1.0, 1e-3), grid=grid)
    text = fig.to_json()
    assert len(text.encode()) <= 2_000_000

    def refuse(token):
        raise AssertionError(f"non-finite number {token} in the figure JSON")

    json.loads(text, parse_constant=refuse)
    assert len(frames_of(fig)) == 301  # every row: the start and 300 steps


def test_every_part_of_a_run_has_its_preset_colour(grid):
    fig = sf.race_figure(
        SADDLE, [make_trace("adam", 10, dimer=False), make_trace("deo_escape", 10)], grid=grid
    )
    for trace in fig.data:
        if trace.name == "exact min mode":
            continue  # the exact eigenvector is the one grey reference line
        if trace.legendgroup in ("adam", "deo_escape") and trace.line is not None and trace.line.color:
            assert trace.line.color.lower() in (
                color_for(trace.legendgroup).lower(),
                rgba(color_for(trace.legendgroup), 0.35),
            )
    loss = sf.loss_figure([make_trace("adam", 10, dimer=False)])
    assert loss.data[0].line.color == color_for("adam")


def test_palette_gives_distinct_colours_to_all_presets():
    from deo.presets import PRESETS

    assert set(PRESETS) <= set(PRESET_COLORS)
    assert len(set(PRESET_COLORS.values())) == len(PRESET_COLORS)
    assert color_for("not-a-preset") == color_for("not-a-preset")
    assert rgba("#0072B2", 0.5) == "rgba(0,114,178,0.5)"
    with pytest.raises(ValueError, match="alpha"):
        rgba("#000000", 2.0)


def test_background_image_is_a_png_of_the_grid(grid):
    image = sf.background_image(SADDLE, grid)
    assert (image["x"], image["y"], image["sizex"], image["sizey"]) == (-2.0, 2.0, 4.0, 4.0)
    png = base64.b64decode(image["source"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (101, 101)
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert len(raw) == 101 * (1 + 3 * 101)


def test_surface_grid_evaluates_f_and_log_scale_for_a_deep_narrow_valley():
    g = sf.surface_grid(SADDLE, 5)
    assert g.z[0, 0] == pytest.approx((-2) ** 2 - (-2) ** 2)
    assert g.z[2, 0] == pytest.approx(4.0)  # (x, y) = (−2, 0)
    assert g.mode == "linear"  # x² − y² takes negative values: linear
    rosenbrock = sf.surface_grid(landscapes.SURFACES["rosenbrock"], 50)
    assert rosenbrock.mode == "log"
    assert rosenbrock.display.min() == pytest.approx(np.log10(1.0))


def test_loss_figure_log_scale_shifts_negative_losses():
    fig = sf.loss_figure([make_trace("gd", 50, dimer=False, loss_shift=-5.0)], log=True)
    ys = [y for y in fig.data[0].y if y is not None]
    assert min(ys) > 0
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.title.text == "loss − min over runs"
    by_evals = sf.loss_figure([make_trace("deo_paper", 50)], x="grad_evals")
    assert list(by_evals.data[0].x)[-1] == 100  # two gradients per step in this trace


def test_escape_is_marked_on_the_loss_curve():
    fig = sf.loss_figure([make_trace("adam", 50, dimer=False, escape_step=20, status="escaped")])
    marks = [t for t in fig.data if t.mode == "markers"]
    assert len(marks) == 1 and list(marks[0].x) == [20]


def test_the_loss_charts_diverged_label_stays_inside_the_plot():
    """A run that diverges early is marked at the top edge near the left one: its label "diverged"
    hangs below the marker and starts at it (placed left of it, it was cut off by the plot's left
    and top edges, leaving a sliver of its lower half in the corner)."""
    steady = make_trace("gd", 100, dimer=False)
    early = make_trace("adam", 5, dimer=False, status="diverged", stop_step=6)
    early.loss[-1] = 1e9  # far above the others: drawn at the window's top
    late = make_trace("deo_paper", 95, dimer=False, status="diverged", stop_step=96)
    late.loss[-1] = 1e9
    for log in (False, True):
        fig = sf.loss_figure([steady, early, late], log=log)
        marks = {t.name: t.textposition for t in fig.data if t.text}
        assert marks == {"ADAM diverged": "bottom right", "DEO_PAPER diverged": "bottom left"}, log


def test_curvature_figure_shows_estimate_truth_and_cosine_or_says_there_is_no_dimer():
    fig = sf.curvature_figure([make_trace("deo_paper", 20), make_trace("gd", 20, dimer=False)])
    names = [t.name for t in fig.data]
    assert names == ["DEO_PAPER: dimer C", "DEO_PAPER: exact λ_min", "DEO_PAPER: |cos|"]
    legend = fig.layout.legend  # in rows above the plot, hung below a desktop's toolbar
    assert legend.yref == "container" and legend.yanchor == "top" and legend.y < 1
    phone = sf.curvature_figure([make_trace("deo_paper", 20)], compact=True).layout.legend
    assert phone.yanchor == "bottom" and phone.y > 1 and phone.yref != "container"  # no toolbar there
    empty = sf.curvature_figure([make_trace("gd", 20, dimer=False)])
    assert "No dimer optimizer" in empty.layout.annotations[0].text


def test_results_rows_report_escape_cost_and_divergence():
    rows = sf.results_rows(
        [
            make_trace("deo_paper", 30, escape_step=10, status="escaped"),
            make_trace("gd", 5, dimer=False, status="diverged", stop_step=6),
        ]
    )
    assert rows[0]["escape step"] == 10 and rows[0]["grad evals to escape"] == 20
    assert rows[0]["status"] == "escaped" and rows[0]["color"] == color_for("deo_paper")
    assert rows[1]["status"] == "diverged" and rows[1]["diverged at step"] == 6
    assert rows[1]["escape step"] is None


def test_3d_view_is_static_with_one_path_per_run():
    fig = sf.surface3d_figure(
        SADDLE, [make_trace("gd", 20, dimer=False), make_trace("adam", 20, dimer=False)]
    )
    assert fig.data[0].type == "surface"
    assert [t.name for t in fig.data[1:]] == ["GD", "ADAM"]
    assert not fig.frames
    # twelve contour levels over the surface's range, whatever the (few) z ticks
    levels = fig.data[0].contours.z
    assert levels.show and (levels.end - levels.start) / levels.size == pytest.approx(12)
    assert all(
        axis.nticks <= 5 for axis in (fig.layout.scene.xaxis, fig.layout.scene.yaxis, fig.layout.scene.zaxis)
    )


def test_standalone_html_embeds_plotly_and_the_frames_and_stays_under_5_mb(grid):
    traces = [
        make_trace("gd", 300, dimer=False),
        make_trace("adam", 300, dimer=False),
        make_trace("deo_paper", 300),
    ]
    fig = sf.race_figure(SADDLE, traces, grid=grid, **sf.EXPORT_OPTIONS)
    html = standalone_html(fig, "test <race>")
    assert re.search(r"<script[^>]*\bsrc=", html) is None  # plotly.js inline: works offline
    assert "test &lt;race&gt;" in html
    assert '"name":"300"' in html.replace(" ", "")  # the last frame is inside
    assert len(html.encode()) <= 5 * 1024 * 1024


def test_projector_layout_keeps_the_plot_tall_with_play_beside_the_slider(grid):
    """Large fonts (not a phone): Play/Pause sit right of the plot at the slider's height, so the
    bottom margin holds only the x axis and the slider; the chart takes its container's width."""
    traces = [make_trace("gd", 20, dimer=False), make_trace("deo_escape_random", 20)]
    fig = sf.race_figure(SADDLE, traces, grid=grid, large=True)
    layout = fig.layout
    plot_height = layout.height - layout.margin.b - layout.margin.t
    assert layout.height == sf.RACE_HEIGHT_LARGE and plot_height >= 0.6 * 720  # a 1280×720 projector
    menu, slider = layout.updatemenus[0], fig.to_dict()["layout"]["sliders"][0]
    assert menu.x > 1.0 and menu.y < 0  # right of the plot, below its bottom edge ...
    assert slider["y"] < 0 and abs(menu.y - slider["y"]) * plot_height < 40  # ... beside the slider
    assert layout.width is None  # the container's width (Streamlit's stretch)
    desktop = sf.race_figure(SADDLE, traces, grid=grid)
    assert desktop.layout.updatemenus[0].x == 0.0 and desktop.layout.width is not None


@pytest.mark.parametrize("key", ["saddle", "six_hump_camel"])
def test_full_height_width_is_the_plot_at_its_full_height_plus_the_margins(grid, key):
    """``full_height_width``: the chart width below which a projector's plot (square in data units)
    loses height; the Surfaces page stacks its story under the chart below it (tests/test_browser.py)."""
    surface = landscapes.SURFACES[key]
    traces = [make_trace("gd", 5, dimer=False)]
    layout = sf.race_figure(surface, traces, grid=sf.surface_grid(surface, 41), large=True).layout
    (x0, x1), (y0, y1) = surface.bounds
    plot_height = layout.height - layout.margin.b - layout.margin.t
    plot_width = sf.full_height_width(surface, large=True) - layout.margin.l - layout.margin.r
    assert plot_width == math.ceil(plot_height * (x1 - x0) / (y1 - y0))


@pytest.mark.parametrize("key", ["saddle", "six_hump_camel"])
@pytest.mark.parametrize("large", [True, False])
def test_the_story_goes_under_the_race_figure_below_the_width_its_plot_needs(grid, key, large):
    """``stack_below_width``: the narrowest row where the race figure, in its column beside the
    story (3/4 of the row less the 24-px gap), still draws its plot at full height on a projector
    (``full_height_width``'s rule) and at half of it on a desktop (a 1 024-px window drew a 115-px plot)."""
    surface = landscapes.SURFACES[key]
    traces = [make_trace("gd", 5, dimer=False)]
    layout = sf.race_figure(surface, traces, grid=sf.surface_grid(surface, 41), large=large).layout
    (x0, x1), (y0, y1) = surface.bounds
    plot_height = layout.height - layout.margin.b - layout.margin.t
    needed = sf.STACK_FRACTION[large] * plot_height * (x1 - x0) / (y1 - y0)  # plot width, data-square

    def plot_width(row: int) -> float:  # beside the story
        return 0.75 * row - 24 - layout.margin.l - layout.margin.r

    row = sf.stack_below_width(surface, 0.75, large=large)
    assert plot_width(row) >= needed > plot_width(row - 2)
    if large:
        assert row == math.ceil((sf.full_height_width(surface, large=True) + 24) / 0.75)
    else:  # a 1400-px window keeps the story beside the chart (its row: ≈ 940 px), a 1024-px one not (≈ 585)
        assert 585 < row < 940


def test_the_race_figure_keeps_its_margins_except_on_a_phone(grid):
    """Desktop and projector: plotly.js may not push the margins (``autoexpand`` off), which would
    draw the whole figure a second time in every visitor's browser; the margins are computed to hold
    the legend, colour bar, buttons and slider (tests/test_browser.py checks nothing is cut off). A
    phone's legend wraps into as many rows above the plot as its width needs: there it may push."""
    traces = [make_trace("gd", 20, dimer=False), make_trace("deo_escape", 20)]
    for large in (False, True):
        assert sf.race_figure(SADDLE, traces, grid=grid, large=large).layout.margin.autoexpand is False
    assert sf.race_figure(SADDLE, traces, grid=grid, compact=True).layout.margin.autoexpand is not False


def test_a_controls_legend_name_is_short_and_says_random_n():
    assert sf.legend_label("DEO-escape — control: random fixed direction") == "DEO-escape: random N"
    label = "DEO (paper) — control: random direction, re-drawn every 10 steps"
    assert sf.legend_label(label) == "DEO (paper): re-drawn N"
    assert sf.legend_label("Adam") == "Adam"


VIEWS = [
    {},
    {"dimer_zoom": 10.0},
    {"arrows": "scale"},
    {"frame_ms": 200.0},
    {"show_dimer": False, "show_arrows": False},
    {"show_min_mode": False},
]


@pytest.mark.parametrize("view", VIEWS)
def test_the_page_figure_composed_from_layers_is_the_validated_figure_and_its_json(grid, view):
    traces = [make_trace("gd", 120, dimer=False), make_trace("deo_escape", 120)]
    layers = sf.race_layers(SADDLE, traces, start=(1.0, 1e-3), grid=grid)
    fast = sf.race_view(layers, **view)
    assert json.loads(fast.wire_json()) == as_lists(fast.to_dict())  # the JSON the page sends is the dict
    validated = sf.race_figure(SADDLE, traces, start=(1.0, 1e-3), grid=grid, **view)
    assert json.loads(validated.to_json()) == json.loads(fast.wire_json())
    assert fast.to_dict() is fast.to_dict() and fast.freeze() is fast


def as_lists(value):
    """``value`` with its tuples as lists (what JSON reads back)."""
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_lists(v) for v in value]
    return value


def test_the_cached_frames_leave_the_garbage_collectors_lists(grid):
    """A race's frames are ≈ 50 000 lists and dicts when built of lists, and every full collection
    (the interpreter lock held, every session waiting) walked them again while the figure was cached.
    Built of tuples, the collector drops every frame's parts from its lists (a tuple of numbers at
    any collection, a dict of such tuples at a full one): two tracked objects a frame are left (its
    dict and its tuple of parts; CPython never untracks a tuple that holds dicts)."""
    traces = [make_trace("gd", 120, dimer=False), make_trace("deo_escape", 120)]
    fig = sf.race_view(sf.race_layers(SADDLE, traces, start=(1.0, 1e-3), grid=grid))
    frames = fig.to_dict()["frames"]
    for _ in range(2):
        gc.collect()
    parts = [part for frame in frames for part in frame["data"]]
    assert parts and not any(gc.is_tracked(part) or gc.is_tracked(part["x"]) for part in parts)
    validated = sf.race_figure(SADDLE, traces, start=(1.0, 1e-3), grid=grid).to_dict()["frames"]
    assert isinstance(validated[0]["data"][0]["x"], list)  # the figure handed out: Plotly's own lists


def test_a_view_change_draws_only_its_own_parts_and_reuses_the_rest(grid):
    traces = [make_trace("gd", 60, dimer=False), make_trace("deo_paper", 60)]
    layers = sf.race_layers(SADDLE, traces, grid=grid)
    first = sf.race_view(layers)
    before = dict(layers.parts)
    zoomed = sf.race_view(layers, dimer_zoom=1000.0)
    new = set(layers.parts) - set(before)
    assert new == {("dimer", 1, 1000.0)}  # one dimer drawn at the new zoom; paths, arrows reused
    assert all(layers.parts[key] is before[key] for key in before)
    assert sf.race_view(layers, dimer_zoom=1000.0).wire_json() == zoomed.wire_json()
    assert set(layers.parts) - set(before) == new  # drawn once
    assert first.to_dict()["frames"][7]["data"][0] is zoomed.to_dict()["frames"][7]["data"][0]
    sf.race_view(layers, arrows="scale")
    arrows = {key[0] for key in set(layers.parts) - set(before) - new if key != "scale"}
    assert arrows == {"g", "g_mod", "removed"}


def test_the_path_so_far_stays_on_the_recorded_path_and_ends_at_the_current_point(grid):
    t = make_trace("gd", 300, dimer=False)
    t.position_2d[:, 0] += 0.3 * np.sin(np.arange(301) / 15.0)  # a wiggly path: many vertices kept
    fig = sf.race_figure(SADDLE, [t], grid=grid, show_arrows=False, show_min_mode=False)
    tolerance = sf.PATH_TOLERANCE * 4
    for frame in frames_of(fig)[::7]:
        path, point = frame["data"][:2]
        step = int(frame["name"])
        assert (path["x"][-1], path["y"][-1]) == (point["x"][0], point["y"][0])
        assert (path["x"][0], path["y"][0]) == pytest.approx(tuple(t.position_2d[0]), abs=1e-4)
        assert len(path["x"]) <= sf.MAX_PATH_VERTICES
        # every recorded point up to this step lies within twice the tolerance (+ rounding) of the
        # polyline: within it of the kept chords, and the chord into the exact tail adds at most once
        xy = np.array([path["x"], path["y"]]).T
        a, b = (xy[:-1], xy[1:]) if len(xy) > 1 else (xy, xy)
        for p in t.position_2d[: step + 1 : 3]:
            ab, ap = b - a, p - a
            u = np.clip((ap * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-300), 0, 1)
            assert np.min(np.hypot(*(ap - u[:, None] * ab).T)) <= 2 * tolerance + 2e-4


def test_path_vertices_keeps_the_ends_and_drops_collinear_points():
    line = np.stack([np.linspace(0, 1, 50), np.linspace(0, 2, 50)], axis=1)
    assert sf.path_vertices(line, 1e-6).tolist() == [0, 49]
    corner = np.concatenate([line, line[-1] + np.stack([np.linspace(0, 1, 20), np.zeros(20)], 1)[1:]])
    assert sf.path_vertices(corner, 1e-6).tolist() == [0, 49, 68]
    broken = line.copy()
    broken[10] = np.nan  # a non-finite row is kept, never bridged
    assert 10 in sf.path_vertices(broken, 1e-6).tolist()


def test_static_figures_are_plain_figures_until_frozen_then_one_shared_dict(grid):
    """loss, curvature and 3-D builders return a FrozenFigure: a go.Figure that can still be changed;
    ``freeze()`` (pages.common's cache) makes ``to_dict`` return one shared dict, changes after it
    unseen."""
    traces = [make_trace("deo_paper", 30)]
    for fig in (
        sf.loss_figure(traces),
        sf.curvature_figure(traces),
        sf.surface3d_figure(SADDLE, traces, grid=grid),
    ):
        assert isinstance(fig, sf.FrozenFigure)
        fig.update_layout(title="before")
        assert fig.to_dict() is not fig.to_dict() and fig.to_dict()["layout"]["title"]["text"] == "before"
        frozen = fig.freeze().to_dict()
        fig.update_layout(title="after")
        assert fig.to_dict() is frozen and frozen["layout"]["title"]["text"] == "before"
        assert json.loads(fig.to_json())["layout"]["title"]["text"] == "before"


def test_a_loss_curve_a_later_one_covers_is_drawn_as_a_band_and_named():
    """GD under DEO-escape, Adam under DEO (paper) on Rosenbrock: a reader looked for a missing curve.
    A run a later solid run covers is drawn BAND_SCALE times as wide; a dotted control on top leaves
    the one below visible, so it hides nothing; a clear gap hides nothing either."""
    from viz.overlap import BAND_SCALE

    gd, deo = make_trace("gd", 60, dimer=False), make_trace("deo_escape", 60)
    deo.loss = gd.loss + 1e-4  # drawn on top of GD
    control = make_trace("deo_escape_random", 60)
    apart = make_trace("adam", 60, dimer=False, loss_shift=0.2)  # a tenth of the loss range away
    runs = [gd, apart, deo, control]
    hidden = sf.hidden_loss_curves(runs, "steps")
    assert [h[:2] for h in hidden] == [("GD", "DEO_ESCAPE")] and hidden[0][2] == pytest.approx(1e-4)
    widths = {t.name: t.line.width for t in sf.loss_figure(runs, "steps").data if t.mode == "lines"}
    assert widths["GD"] == pytest.approx(BAND_SCALE * widths["DEO_ESCAPE"])
    assert widths["ADAM"] == widths["DEO_ESCAPE"] == widths["DEO_ESCAPE_RANDOM"]
    assert sf.hidden_loss_curves([gd, control], "steps") == []  # dotted on top: GD shows between the dots
    assert sf.hidden_loss_curves([gd, deo], "grad_evals") == []  # two gradients a step: apart here
    log_hidden = sf.hidden_loss_curves([gd, deo], "steps", log=True)  # shifted for the log axis, still one
    assert [h[:2] for h in log_hidden] == [("GD", "DEO_ESCAPE")]
