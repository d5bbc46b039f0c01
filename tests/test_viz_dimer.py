"""The Dimer page's figure builders (viz.dimer_figs): what a person sees must match the engine.

Figures are built from the real engine on a quadratic, where the maths is exact (the Fourier model
C(φ) of one rotation *is* the curvature along the rotation circle), and from synthetic arrays for
sizes and frame counts.
"""

from __future__ import annotations

import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from deo.dimer_studies import RotationRun, rotation_run
from viz import dimer_figs as figs

# ½θᵀAθ with eigenvalues 1 ± √(1 + 1.5²)·… : a strict saddle (one negative eigenvalue)
A = np.array([[1.0, 1.5], [1.5, -0.5]])
LAM, V = np.linalg.eigh(A)
MAX_JSON_BYTES = 3_000_000


def quadratic(x: torch.Tensor) -> torch.Tensor:
    a = torch.tensor(A, dtype=x.dtype)
    return 0.5 * ((x @ a) * x).sum(-1)


def rotation_data(rotation: str, n0=(1.0, 0.0), iterations: int = 10) -> RotationRun:
    """What the Dimer page draws: ``deo.dimer_studies.rotation_run`` (sd step η_rot = 0.2)."""
    n0 = torch.tensor(n0, dtype=torch.float64)
    relative_step = 0.2 * (LAM[1] - LAM[0])
    return rotation_run(quadratic, (0.3, 0.2), n0, 1e-3, rotation, "forward", "cg", relative_step, iterations)


def grid(n: int = 41):
    xs, ys = np.linspace(-0.7, 1.3, n), np.linspace(-0.8, 1.2, n)
    gx, gy = np.meshgrid(xs, ys)
    z = 0.5 * (A[0, 0] * gx**2 + 2 * A[0, 1] * gx * gy + A[1, 1] * gy**2)
    return xs, ys, z


def figure_json(fig: go.Figure) -> str:
    text = fig.to_json()
    assert "NaN" not in text and "Infinity" not in text
    return text


def frames(fig: go.Figure) -> list[dict]:
    return json.loads(fig.to_json()).get("frames", [])


# ------------------------------------------------------------------------------------- helpers


def test_rounded_keeps_five_significant_digits_and_turns_nan_into_gaps():
    assert figs.rounded(123456.0) == 123460.0
    assert figs.rounded(0.000123456) == pytest.approx(0.00012346, rel=0, abs=1e-12)
    assert figs.rounded([1.0, math.nan, math.inf]) == [1.0, None, None]
    assert figs.rounded(np.zeros((2, 2))) == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("n_rows", [1, 7, 300, 301, 5000])
def test_frame_rows_stay_within_the_frame_budget_and_end_on_the_last_row(n_rows):
    rows = figs.frame_rows(n_rows)
    assert len(rows) <= figs.MAX_FRAMES
    assert rows[0] == 0 and rows[-1] == n_rows - 1
    assert rows == sorted(set(rows))


@pytest.mark.parametrize(
    "steps, spacing",
    [
        (range(301), 5),  # the default race: 0, 5, …, 300 (plotly.js labels 0, 30, 60, …)
        (range(0, 1001, 10), 20),  # every 10th step recorded: stops every 20 steps
        (range(40, 541), 5),  # a window that does not start at 0
        (range(100), 1),  # no more frames than stops: every frame
        (range(0, 2000, 5), 25),
    ],
)
def test_slider_stops_of_numbered_frames_stand_on_round_steps(steps, spacing):
    from viz.frames import MAX_SLIDER_STOPS, slider_stops

    names = [str(s) for s in steps]
    stops = [int(s) for s in slider_stops(names)]
    assert stops[0] == steps[0] and stops[-1] == steps[-1] and len(stops) <= MAX_SLIDER_STOPS
    assert all(s % spacing == 0 for s in stops[1:-1]), stops
    assert stops == sorted(set(stops))


@pytest.mark.parametrize(
    "n_rows, stride, spacing",
    [(1001, 4, 20), (602, 3, 15), (302, 2, 10), (1502, 10, 20), (5000, 20, 100), (100_001, 500, 2000)],
)
def test_long_runs_are_drawn_every_kth_step_and_the_slider_stands_on_round_steps(n_rows, stride, spacing):
    """A run of more rows than MAX_FRAMES: frames every k-th step (k up to 5, then 10, 20, 25, 50, …)
    and the last; the slider's stops are frames on multiples of a round spacing that k divides."""
    from viz.frames import MAX_FRAMES, MAX_SLIDER_STOPS, frame_rows, slider_stops

    rows = frame_rows(n_rows, MAX_FRAMES)
    assert len(rows) <= MAX_FRAMES and rows[-1] == n_rows - 1
    assert rows[:-1] == list(range(0, n_rows - 1, stride)) or rows == list(range(0, n_rows, stride))
    stops = [int(s) for s in slider_stops([str(r) for r in rows])]
    assert len(stops) <= MAX_SLIDER_STOPS and stops[0] == 0 and stops[-1] == n_rows - 1
    assert stops[1:-1] == list(range(spacing, n_rows - 1, spacing))[: len(stops) - 2], stops


@pytest.mark.parametrize("n_frames", [0, 1, 2, 100, 101, 300])
def test_slider_stops_are_evenly_spaced_frames_from_the_first_to_the_last(n_frames):
    from viz.frames import MAX_SLIDER_STOPS, slider_stops

    names = [f"f{i}" for i in range(n_frames)]
    stops = slider_stops(names)
    assert len(stops) == min(n_frames, MAX_SLIDER_STOPS)
    assert stops == [n for n in names if n in set(stops)]  # in frame order, no repeats
    if n_frames:
        assert stops[0] == names[0] and stops[-1] == names[-1]
    gaps = np.diff([names.index(s) for s in stops])
    assert len(gaps) == 0 or gaps.max() - gaps.min() <= 1  # evenly spaced


def test_the_play_controls_slider_stands_on_at_most_max_slider_stops_frames():
    from viz.frames import MAX_SLIDER_STOPS

    labels = [str(i) for i in range(300)]
    _, slider = figs.play_controls(labels, 40, "step ")
    stops = [s["label"] for s in slider[0]["steps"]]
    assert len(stops) <= MAX_SLIDER_STOPS and stops[0] == "0" and stops[-1] == "299"
    assert [int(s) for s in stops[:-1]] == list(range(0, 300, 5))  # round steps, the last frame too
    assert all(s["args"][0] == [s["label"]] for s in slider[0]["steps"])


@pytest.mark.parametrize(
    "scale, clip", [("linear", None), ("log", None), ("clip", 100.0), ("clip", -1.23456789e-4)]
)
def test_colour_bar_titles_are_lines_of_at_most_16_characters(scale, clip):
    """A colour bar sits right of the plot with its title above it: a long one-line title ran past
    a projector figure's right edge (and pushed the margin); long titles come on two short lines."""
    _, title = figs.display_z(np.ones((3, 3)), scale, clip)
    assert max(len(line) for line in title.split("<br>")) <= 16, title


def test_display_z_clips_logs_and_refuses_unknown_scales():
    z = np.array([[-5.0, 0.0], [50.0, 500.0]])
    clipped, _ = figs.display_z(z, "clip", 100.0)
    assert clipped.max() == 100.0 and clipped.min() == -5.0
    logged, _ = figs.display_z(z, "log")
    assert logged.min() == 0.0 and logged.max() == pytest.approx(math.log10(506.0))
    with pytest.raises(ValueError, match="color_scale"):
        figs.display_z(z, "cubic")
    with pytest.raises(ValueError, match="clip"):
        figs.display_z(z, "clip", None)


def test_true_curvature_on_circle_is_the_rayleigh_quotient():
    # H = diag(λ₁, λ₂), N = e₁, Θ = e₂: N(φ)ᵀHN(φ) = λ₁cos²φ + λ₂sin²φ
    lam = np.array([-2.0, 3.0])
    phis = np.linspace(-1.5, 1.5, 7)
    got = figs.true_curvature_on_circle(lam, np.eye(2), np.array([1.0, 0]), np.array([0, 1.0]), phis)
    np.testing.assert_allclose(got, lam[0] * np.cos(phis) ** 2 + lam[1] * np.sin(phis) ** 2)


# ------------------------------------------------------------------------------ rotation figure


def test_rotation_figure_has_a_static_contour_and_one_frame_per_orientation():
    data = rotation_data("fourier")
    xs, ys, z = grid()
    fig = figs.rotation_figure(data, xs, ys, z, figs.DIMER_COLOR)
    assert isinstance(fig.data[0], go.Contour)
    fr = frames(fig)
    assert len(fr) == data.iterations + 1
    for frame in fr:
        assert 0 not in frame["traces"]  # the contour never moves
        assert len(frame["traces"]) == len(frame["data"]) == 8
    layout = fig.layout
    assert list(layout.xaxis.range) == figs.rounded([xs[0], xs[-1]])
    assert layout.yaxis.scaleanchor == "x"
    assert len(figure_json(fig)) < MAX_JSON_BYTES


def image_axes_have_no_grid(fig: go.Figure) -> bool:
    """Every contour drawn as a layout image (``with_frames``) lies on axes without grid or zero
    lines: plotly.js draws the image under them, so they would cross the landscape as white lines."""
    images = fig.layout.images
    assert images, "no contour image"
    for image in images:
        for ref in (image.xref, image.yref):
            axis = fig.layout[f"{ref[0]}axis{ref[1:]}"]
            if axis.showgrid is not False or axis.zeroline is not False:
                return False
    return True


def test_an_animated_contour_has_no_grid_lines_across_it():
    xs, ys, z = grid()
    rotation = figs.rotation_figure(rotation_data("fourier"), xs, ys, z, figs.DIMER_COLOR)
    t = np.linspace(0, 1, 50)
    path = np.stack([np.cos(3 * t), np.sin(3 * t)], axis=1)
    search = figs.saddle_search_figure(path, xs, ys, z, "#882255", directions=np.ones_like(path))
    for fig in (rotation, search):
        assert image_axes_have_no_grid(fig)
    # the other panel of the rotation view (the curvature curve) keeps its grid
    assert rotation.layout.yaxis2.showgrid is not False


def test_fourier_model_drawn_for_a_quadratic_is_the_exact_curvature():
    # on a quadratic, C(φ) = N(φ)ᵀHN(φ) has exactly the form a₀/2 + a₁cos2φ + b₁sin2φ
    data = rotation_data("fourier", n0=(0.6, 0.8))
    fr = frames(figs.rotation_figure(data, *grid(), figs.DIMER_COLOR))
    model, exact = fr[0]["data"][5], fr[0]["data"][6]
    assert len(model["y"]) == len(exact["y"]) > 100
    scale = LAM[1] - LAM[0]
    np.testing.assert_allclose(model["y"], exact["y"], atol=1e-4 * scale)
    assert min(model["y"]) == pytest.approx(LAM[0], abs=1e-3 * scale)  # its minimum is λ_min


def test_rotation_frames_show_the_engines_fitted_orientation():
    data = rotation_data("sd", iterations=6)
    fr = frames(figs.rotation_figure(data, *grid(), figs.DIMER_COLOR))
    half = 0.35 * 2.0  # 35 % of the window's smaller side
    for k in range(data.iterations):
        fitted = fr[k]["data"][4]
        direction = np.array([fitted["x"][1] - fitted["x"][0], fitted["y"][1] - fitted["y"][0]]) / (2 * half)
        np.testing.assert_allclose(np.abs(direction @ data.orientations[k + 1]), 1.0, atol=1e-3)
    # the last frame has no next iteration: a null point, which (unlike empty lists) replaces the
    # previous frame's drawing when the animation reaches it
    assert fr[-1]["data"][4]["x"] == [None]
    assert fr[-1]["data"][5]["x"] == [None]  # nor a model curve of an earlier iteration


def test_the_force_arrow_is_to_scale_and_vanishes_without_torque():
    """The arrow was scaled by the frames' own largest torque: at the maximum-curvature eigenvector
    (torque 2·10⁻¹⁶) it was drawn full length. Now 0.8 × the dimer's half-length stands for the
    largest torque the Hessian allows, (λ_max − λ_min)/2."""
    half = 0.35 * 2.0
    for n0, expected in ((tuple(V[:, 1]), 0.0), ((0.6, 0.8), None)):
        data = rotation_data("sd", n0=n0, iterations=2)
        arrow = frames(figs.rotation_figure(data, *grid(), figs.DIMER_COLOR))[0]["data"][2]
        length = float(np.hypot(arrow["x"][1] - arrow["x"][0], arrow["y"][1] - arrow["y"][0]))
        torque = float(np.linalg.norm(data.forces[0]))
        assert length == pytest.approx(0.8 * half * torque / (0.5 * (LAM[1] - LAM[0])), abs=1e-3)
        if expected is not None:
            assert length == pytest.approx(expected, abs=1e-6)


def test_sd_rotation_has_no_fourier_model_curve():
    data = rotation_data("sd", iterations=3)
    fig = figs.rotation_figure(data, *grid(), figs.DIMER_COLOR)
    fr = frames(fig)
    assert all(frame["data"][5]["x"] == [None] for frame in fr)
    # nor legend entries for what it does not draw (they were listed)
    listed = {t.name for t in fig.data if t.showlegend is not False}
    assert "model C(φ)" not in listed and "trial orientation N(φ₁)" not in listed
    assert "fitted orientation N(φ_min)" in listed
    fourier = figs.rotation_figure(rotation_data("fourier"), *grid(), figs.DIMER_COLOR)
    shown = {t.name for t in fourier.data if t.showlegend is not False}
    assert {"model C(φ)", "trial orientation N(φ₁)"} <= shown


# ------------------------------------------------------------------------- comparison figures


def test_convergence_figure_draws_each_variant_against_iterations_and_evaluations():
    series = [
        figs.ConvergenceSeries(
            f"{r}, {s}",
            figs.ROTATION_COLORS[r],
            figs.SCHEME_DASHES[s],
            grad_evals=np.array([2, 3, 4]),
            curvature_error=np.array([1.0, 1e-3, 0.0]),
            abs_cos=np.array([0.5, 0.9, 1.0]),
        )
        for r in ("fourier", "sd")
        for s in ("forward", "central")
    ]
    fig = figs.convergence_figure(series)
    assert len(fig.data) == 4 * 4
    assert fig.layout.yaxis.type == "log"
    assert min(fig.data[0].y) == figs.ERROR_FLOOR  # an exact 0 sits on the floor of the log axis
    figure_json(fig)


def test_finite_difference_figure_is_log_log_and_checks_its_input():
    lengths = np.logspace(-8, 0, 9)
    series = [figs.FiniteDifferenceSeries("forward, float64", "#000000", "solid", lengths, lengths**2)]
    fig = figs.finite_difference_figure(lengths, series)
    assert len(fig.data) == 2
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="positive"):
        figs.finite_difference_figure(np.array([0.0, 1.0]), series)
    with pytest.raises(ValueError, match="shape"):
        figs.finite_difference_figure(lengths[:3], series)


# ------------------------------------------------------------------------------ contour views


def test_overview_figure_offers_an_invisible_click_grid_and_marks_theta():
    xs, ys, z = grid()
    markers = [figs.Marker((0.0, 0.0), "saddle", "saddle")]
    fig = figs.overview_figure(xs, ys, z, (0.3, 0.2), ((0.2, 0.4), (0.1, 0.3)), markers)
    grid_trace = fig.data[1]
    assert len(grid_trace.x) == 61 * 61 and grid_trace.marker.opacity == 0.0
    assert fig.data[-1].x == (0.3,) and fig.data[-1].y == (0.2,)
    figure_json(fig)


def test_overview_legend_shows_the_zoom_window_and_labels_read_over_the_contour():
    """The zoom window is drawn white (over the contour) and listed with a dark swatch (a white one
    vanishes on the white legend); both in one legend group, so a click on the entry hides the
    window. Marker labels are dark with plotly.js's contrasting halo (``shadow: "auto"``)."""
    xs, ys, z = grid()
    markers = [figs.Marker((0.0, 0.0), "saddle", "saddle")]
    fig = figs.overview_figure(xs, ys, z, (0.3, 0.2), ((0.2, 0.4), (0.1, 0.3)), markers)
    window = [t for t in fig.data if t.name == "zoom window"]
    drawn = [t for t in window if t.showlegend is False]
    listed = [t for t in window if t.showlegend is not False]
    assert len(drawn) == len(listed) == 1 and drawn[0].line.color == "white" and len(drawn[0].x) == 5
    assert listed[0].line.color != "white" and listed[0].line.dash == "dash"
    assert drawn[0].legendgroup == listed[0].legendgroup == "zoom window"
    (labels,) = [t for t in fig.data if getattr(t, "mode", None) == "markers+text"]
    assert labels.textfont.shadow == "auto" and labels.textfont.color == "#222222"


def test_saddle_search_figure_subsamples_long_runs_and_stays_small():
    t = np.linspace(0, 1, 3001)
    path = np.stack([np.cos(3 * t), np.sin(3 * t)], axis=1)
    directions = np.stack([np.ones_like(t), np.zeros_like(t)], axis=1)
    xs, ys = np.linspace(-1.5, 1.5, 61), np.linspace(-1.5, 1.5, 61)
    z = np.add.outer(ys**2, xs**2)
    fig = figs.saddle_search_figure(
        path, xs, ys, z, "#882255", [figs.Marker((0.0, 0.0), "min", "min")], directions
    )
    fr = frames(fig)
    assert len(fr) <= figs.MAX_FRAMES
    assert fr[-1]["name"] == "3000"
    last_point = fr[-1]["data"][2]
    assert last_point["x"] == figs.rounded([path[-1, 0]]) and last_point["y"] == figs.rounded([path[-1, 1]])
    assert all(0 not in f["traces"] for f in fr)
    assert len(figure_json(fig)) < MAX_JSON_BYTES
    with pytest.raises(ValueError, match="directions"):
        figs.saddle_search_figure(path, xs, ys, z, "#882255", directions=directions[:10])


def test_on_a_phone_the_overview_s_colour_bar_lies_under_the_plot():
    """At 420 px the colour bar beside the Pick-θ contour took half the chart and left the plot
    ≈ 130 px wide; on a phone (``compact``) it lies flat under the plot, which gets the width."""
    from viz.dimer_figs import OVERVIEW_BELOW_PX, overview_figure
    from viz.palette import COLORBAR_BELOW

    xs = ys = np.linspace(-1.0, 1.0, 21)
    z = np.add.outer(ys**2, -(xs**2))
    args = (xs, ys, z, (0.1, 0.2), ((-0.2, 0.2), (-0.2, 0.2)))
    desk, phone = overview_figure(*args).to_dict(), overview_figure(*args, compact=True).to_dict()
    bar_desk, bar_phone = (f["data"][0]["colorbar"] for f in (desk, phone))
    assert bar_desk.get("orientation", "v") == "v"
    assert bar_phone["orientation"] == "h" and bar_phone["y"] < 0 and bar_phone["title"]["side"] == "top"
    assert all(bar_phone[k] == v for k, v in COLORBAR_BELOW.items())
    assert bar_phone["title"]["text"] == bar_desk["title"]["text"]  # the same scale named
    assert phone["layout"]["height"] == desk["layout"]["height"] + OVERVIEW_BELOW_PX
    assert phone["layout"]["margin"]["b"] == desk["layout"]["margin"]["b"] + OVERVIEW_BELOW_PX


def _panels(fig: go.Figure) -> list[tuple[tuple, tuple]]:
    """(x domain, y domain) of each subplot, in subplot order."""
    layout = fig.layout
    names = sorted(
        (k for k in layout.to_plotly_json() if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1)
    )
    return [(tuple(layout[n].domain), tuple(layout["y" + n[1:]].domain)) for n in names]


def test_on_a_phone_the_dimer_page_s_panels_are_stacked_and_the_saddle_search_has_no_colour_bar():
    """At 420 px the side-by-side panels of the rotation, sd-vs-fourier and ΔR figures were ≈ 150 px
    wide with their titles running into each other, and the saddle search's colour bar took half
    its chart. On a phone (``compact``) every panel takes the chart's width, one under the other,
    with the same traces; the saddle search drops its colour bar, as the Surfaces race does."""
    lengths = np.logspace(-8, 0, 9)
    fd = [figs.FiniteDifferenceSeries("forward, float64", "#000000", "solid", lengths, lengths**2)]
    conv = [
        figs.ConvergenceSeries(
            "fourier, forward", "#000000", "solid", np.array([2, 3]), np.ones(2), np.ones(2)
        )
    ]
    data = rotation_data("fourier")
    builders = {
        "rotation": lambda compact: figs.rotation_figure(data, *grid(), figs.DIMER_COLOR, compact=compact),
        "convergence": lambda compact: figs.convergence_figure(conv, compact=compact),
        "finite difference": lambda compact: figs.finite_difference_figure(lengths, fd, compact=compact),
    }
    for name, build in builders.items():
        desk, phone = build(False), build(True)
        side_by_side, stacked = _panels(desk), _panels(phone)
        assert len(side_by_side) == len(stacked) >= 2, name
        assert len({x for x, _ in side_by_side}) == 2, name  # two columns at a desk
        assert {x for x, _ in stacked} == {(0.0, 1.0)}, name  # each panel the full width on a phone
        tops = [y[1] for _, y in stacked]
        assert tops == sorted(tops, reverse=True) and len(set(tops)) == len(tops), name  # one under the other
        assert [t.name for t in phone.data] == [t.name for t in desk.data], name
        assert sorted(a.text for a in phone.layout.annotations) == sorted(
            a.text for a in desk.layout.annotations
        )
        assert phone.layout.height > desk.layout.height, name
    # the convergence panels against iterations come first, each with its own axis titles
    conv_phone = figs.convergence_figure(conv, compact=True)
    assert [a.text for a in conv_phone.layout.annotations][:2] == [
        "curvature error vs iteration",
        "|cos∠(N, v_min)| vs iteration",
    ]
    assert conv_phone.layout.xaxis.title.text == conv_phone.layout.xaxis2.title.text == "rotation iteration"
    path = np.array([[0.0, 0.0], [0.1, 0.1]])
    xs = ys = np.linspace(-1.0, 1.0, 21)
    z = np.add.outer(ys**2, -(xs**2))
    ss_desk = figs.saddle_search_figure(path, xs, ys, z, "#882255")
    ss_phone = figs.saddle_search_figure(path, xs, ys, z, "#882255", compact=True)
    assert ss_desk.data[0].showscale is not False and ss_phone.data[0].showscale is False


def test_a_phone_s_rotation_slider_label_is_short_enough_to_sit_right_of_play_and_pause():
    """On a phone (≈ 270 px of plot) the frame label shares its row with Play/Pause (≈ 165 px):
    "rotation iteration 12" ran under Pause (seen on a 420 px screen); a phone gets "iteration 12"."""
    data = rotation_data("fourier")
    phone = figs.rotation_figure(data, *grid(), figs.DIMER_COLOR, compact=True).layout.sliders[0]
    desk = figs.rotation_figure(data, *grid(), figs.DIMER_COLOR).layout.sliders[0]
    assert phone.currentvalue.prefix == "iteration " and desk.currentvalue.prefix == "rotation iteration "
    assert len(phone.currentvalue.prefix + phone.steps[-1].label) <= 12
