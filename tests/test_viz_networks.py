"""The Networks page's figure builders (viz.network_figs) on synthetic traces."""

from __future__ import annotations

import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest

from deo.trace import Trace
from viz import network_figs as figs
from viz.dimer_figs import MAX_FRAMES, rounded
from viz.palette import color_for

MAX_JSON_BYTES = 3_000_000


def make_trace(
    key: str,
    label: str,
    n: int,
    status: str = "running",
    dimer: bool = False,
    exact: bool = True,
    stop_step: int | None = None,
    escape_step: int | None = None,
    d: int = 5,
) -> Trace:
    """A trace of n rows with a decaying loss; dimer fields NaN unless ``dimer``."""
    steps = np.arange(n)
    nan = np.full(n, np.nan)
    loss = 0.5 * np.exp(-steps / max(n, 1) * 3)
    evals = steps * (3 if dimer else 1)
    return Trace(
        key=key, label=label, hyperparams={"lr": 0.1}, status=status, stop_step=stop_step,
        escape_step=escape_step, steps=steps, loss=loss,
        position=np.outer(steps, np.ones(d)) * 0.01, position_2d=None, grad=None, modified_grad=None,
        grad_norm=np.ones(n), modified_grad_norm=nan,
        removed_fraction=np.linspace(0, 0.5, n) if dimer else nan,
        direction=None, dimer_length=1e-3 if dimer else None,
        curvature=np.linspace(0.5, -0.9, n) if dimer else nan, torque=nan,
        exact_lambda_min=np.full(n, -0.945) if exact else nan, exact_v_min=None,
        cos_to_vmin=np.linspace(0.1, 1.0, n) if dimer and exact else nan,
        grad_evals=evals, diagnostic_evals=steps, wall_time=0.1,
    )  # fmt: skip


def traces():
    return [
        make_trace("gd", "GD", 101),
        make_trace("adam", "Adam", 101, escape_step=40),
        make_trace("deo_paper", "DEO (paper)", 101, dimer=True),
        make_trace("momentum", "Momentum", 12, status="diverged", stop_step=12),
    ]


def figure_json(fig: go.Figure) -> dict:
    text = fig.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert len(text) < MAX_JSON_BYTES
    return json.loads(text)


def test_loss_figure_draws_one_line_per_optimizer_in_its_colour_and_marks_divergence():
    fig = figs.loss_figure(traces(), "steps", plateau=0.5)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["GD", "Adam", "DEO (paper)", "Momentum"]
    assert [t.line.color for t in lines] == [color_for(k) for k in ("gd", "adam", "deo_paper", "momentum")]
    crosses = [t for t in fig.data if t.mode == "markers+text"]
    assert len(crosses) == 1 and crosses[0].text == ("diverged",)
    assert fig.layout.shapes[0].y0 == 0.5  # the plateau line
    figure_json(fig)


@pytest.mark.parametrize("log_y", [False, True])
def test_the_plateau_label_sits_on_its_line_on_a_log_axis_too(log_y):
    """On a log axis add_hline's label went to 10^plateau ("plateau 7" at 10⁷), stretching the axis."""
    fig = figs.loss_figure(traces(), "steps", log_y=log_y, plateau=7.0)
    (label,) = [a for a in fig.layout.annotations if a.text == "plateau 7"]
    assert label.y == pytest.approx(math.log10(7.0) if log_y else 7.0) and label.yref == "y"
    assert fig.layout.shapes[0].y0 == 7.0


def test_a_diverged_run_never_rescales_the_loss_chart_and_its_label_stays_inside():
    """GD at lr 10 on xor reached 1e298 before it stopped: the y axis ran to 8·10²⁹⁸, every other
    curve lay flat on 0 and the "diverged" label sat above the plot, cut off. Now the y range is
    that of the other runs (and the diverged run's start), the diverged curve is clipped to it, and
    the label hangs below its cross at the top edge."""
    blown = make_trace("gd", "GD", 60, status="diverged", stop_step=60)
    blown.loss[40:] = np.geomspace(1.0, 1e298, 20)
    for log_y in (False, True):
        fig = figs.loss_figure([blown, *traces()[1:3]], "steps", log_y)
        _, high = fig.layout.yaxis.range
        assert (10**high if log_y else high) < 1.0, log_y  # the runs' losses start at 0.5
        gd = next(t for t in fig.data if t.name == "GD")
        assert max(v for v in gd.y if v is not None) <= (10**high if log_y else high) * (1 + 1e-4)  # rounded
        cross = next(t for t in fig.data if t.mode == "markers+text")
        assert cross.textposition == "bottom center", log_y
        figure_json(fig)


def test_loss_figure_against_gradient_evaluations_uses_the_cumulative_counts():
    fig = figs.loss_figure(traces(), "grad_evals", log_y=True)
    deo = next(t for t in fig.data if t.name == "DEO (paper)")
    assert deo.x[-1] == 300  # 3 gradient evaluations per step in the synthetic trace
    assert fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="x_axis"):
        figs.loss_figure(traces(), "wall_time")


def test_curvature_figure_pairs_the_dimer_estimate_with_the_exact_lambda_min():
    fig = figs.curvature_figure(traces())
    names = [t.name for t in fig.data]
    assert "DEO (paper): dimer C" in names
    assert names.count("GD: dimer C") == 0  # no dimer, no estimate
    assert "GD: exact λ_min" in names
    assert not fig.layout.annotations


def test_curvature_figure_says_when_the_exact_hessian_was_not_computed():
    fig = figs.curvature_figure([make_trace("deo_paper", "DEO (paper)", 20, dimer=True, exact=False)])
    assert "not computed" in fig.layout.annotations[0].text
    no_dimer = figs.cos_figure([make_trace("gd", "GD", 5)])
    assert "needs a dimer optimizer" in no_dimer.layout.annotations[0].text


def test_unit_interval_figures_have_fixed_ranges():
    for fig in (figs.cos_figure(traces()), figs.removed_fraction_figure(traces())):
        assert tuple(fig.layout.yaxis.range) == (-0.02, 1.05)
        assert [t.name for t in fig.data] == ["DEO (paper)"]
        figure_json(fig)


def test_slice_figure_animates_only_the_markers_over_a_static_contour():
    ts = traces()
    paths = [np.stack([np.linspace(0, 1, len(t)), np.linspace(0, -1, len(t))], axis=1) for t in ts]
    alphas = betas = np.linspace(-1.5, 1.5, 31)
    z = np.add.outer(betas**2, alphas**2)
    fig = figs.slice_figure(alphas, betas, z, ts, paths, "radius 1.5, filter-normalised, seed 0")
    out = figure_json(fig)
    assert out["data"][0]["type"] == "contour"
    frames = out["frames"]
    assert 1 < len(frames) <= MAX_FRAMES
    moving = frames[0]["traces"]
    assert 0 not in moving and len(moving) == len(ts)
    last = frames[-1]["data"]
    assert last[0]["x"] == rounded([paths[0][-1, 0]])
    assert last[3]["x"] == rounded([paths[3][-1, 0]])  # the diverged run stays at its last point
    assert "radius 1.5" in fig.layout.title.text and "mislead" in fig.layout.title.text
    assert fig.layout.yaxis.scaleanchor == "x"
    # the contour is a layout image under the grid: no grid or zero line crosses it
    assert len(fig.layout.images) == 1
    assert fig.layout.xaxis.showgrid is fig.layout.yaxis.showgrid is False
    assert fig.layout.xaxis.zeroline is fig.layout.yaxis.zeroline is False
    with pytest.raises(ValueError, match="path"):
        figs.slice_figure(alphas, betas, z, ts, [p[:3] for p in paths], "")
    # a phone: the title ran off both edges (the page writes it above the chart) and the colour bar
    # took a quarter of the width; the traces and frames are the same
    phone = figs.slice_figure(alphas, betas, z, ts, paths, "radius 1.5", compact=True)
    assert not phone.layout.title.text and phone.data[0].showscale is False
    assert fig.data[0].showscale is not False
    assert [t.name for t in phone.data] == [t.name for t in fig.data] and phone.frames == fig.frames


def test_long_runs_are_subsampled_to_the_frame_budget():
    ts = [make_trace("gd", "GD", 3001)]
    paths = [np.zeros((3001, 2))]
    alphas = betas = np.linspace(-1, 1, 11)
    out = figure_json(figs.slice_figure(alphas, betas, np.zeros((11, 11)), ts, paths, ""))
    assert len(out["frames"]) <= MAX_FRAMES and out["frames"][-1]["name"] == "3000"


def test_trajectory_loss_figure_shows_true_and_slice_loss():
    ts = traces()
    fig = figs.trajectory_loss_figure(ts, [t.loss * 2 for t in ts])
    assert len(fig.data) == 2 * len(ts) + 1
    assert fig.data[1].line.dash == "dash" and fig.data[1].legendgroup == fig.data[0].legendgroup
    # the legend: each run once (its slice line toggles with it), the thin dashed line keyed once
    listed = [t.name for t in fig.data if t.showlegend is not False]
    assert listed == [t.label for t in ts] + ["thin dashed: the slice's loss at the projected point"]
    figure_json(fig)


def test_results_rows_report_status_escape_and_costs():
    rows = {r["optimizer"]: r for r in figs.results_rows(traces())}
    assert rows["Momentum"]["status"] == "diverged" and rows["Momentum"]["diverged at"] == 12
    assert rows["Adam"]["escape step"] == 40 and rows["Adam"]["escape grad evals"] == 40
    assert rows["DEO (paper)"]["gradient evaluations"] == 300
    assert rows["GD"]["escape step"] is None
    # the fate words of every table (deo.trace.FATES), never the trace's internal "running"
    assert rows["GD"]["status"] == "stuck" and rows["Momentum"]["status"] == "diverged"
    assert {r["status"] for r in figs.results_rows(traces(), has_escape=False)} >= {"out of steps"}


def test_a_controls_curvature_is_solid_and_named_short_like_the_dimers():
    """The curvature figure's convention — solid: the dimer's C, dotted: the exact λ_min — holds for
    a random-direction control too, although the control's own lines are dotted elsewhere; its
    legend names are short ("DEO (paper): random N: dimer C")."""
    from viz.network_figs import curvature_figure

    dimer = make_trace("deo_paper", "DEO (paper)", 20, dimer=True)
    control = make_trace("deo_paper_random", "DEO (paper) — control: random fixed direction", 20, dimer=True)
    fig = curvature_figure([dimer, control])
    by_name = {t.name: t for t in fig.data}
    assert by_name["DEO (paper): random N: dimer C"].line.dash == "solid"
    assert by_name["DEO (paper): random N: exact λ_min"].line.dash == "dot"
    assert by_name["DEO (paper): dimer C"].line.dash == "solid"


def test_a_loss_curve_hidden_under_a_later_one_is_named_and_drawn_as_a_band():
    adam, deo, gd = (
        make_trace(k, label, 101)
        for k, label in (("adam", "Adam"), ("deo_paper", "DEO (paper)"), ("gd", "GD"))
    )
    deo.loss = adam.loss + 0.003 * np.sin(adam.steps)  # within 1 % of the 0.5 → 0.025 range
    gd.loss = adam.loss + 0.02  # 4 % of the range above: visible
    control = make_trace("deo_paper_random", "DEO (paper) — control: random fixed direction", 101)
    assert figs.covered_curves([gd, adam, deo, control], "steps") == [
        ("Adam", "DEO (paper)", pytest.approx(0.003, rel=1e-3))
    ]
    # a dotted control on top does not hide DEO (paper); GD drawn later would hide nothing it misses
    fig = figs.loss_figure([gd, adam, deo, control], "steps")
    widths = {t.name: t.line.width for t in fig.data}
    assert widths["Adam"] == figs.COVERED_WIDTH and widths["DEO (paper)"] == widths["GD"] < figs.COVERED_WIDTH
    # the page computes the covered curves once, for the caption, and hands them to the figure
    covered = figs.covered_curves([gd, adam, deo, control], "steps")
    assert figs.loss_figure([gd, adam, deo, control], "steps", covered=covered) == fig
    given = figs.loss_figure([gd, adam, deo, control], "steps", covered=[])  # used as given
    assert all(t.line.width < figs.COVERED_WIDTH for t in given.data)
    # against gradient evaluations the dimer run's x differs: nothing is hidden
    deo_evals = make_trace("deo_paper", "DEO (paper)", 101, dimer=True)
    assert figs.covered_curves([adam, deo_evals], "grad_evals") == []
    # on a log axis the tolerance is 1 % of the log₁₀ range
    far = make_trace("deo_paper", "DEO (paper)", 101)
    far.loss = adam.loss * 1.2  # 0.08 decades of ≈ 1.3
    assert figs.covered_curves([adam, far], "steps", log_y=True) == []
    near = make_trace("deo_paper", "DEO (paper)", 101)
    near.loss = adam.loss * 1.02
    assert [c[:2] for c in figs.covered_curves([adam, near], "steps", log_y=True)] == [
        ("Adam", "DEO (paper)")
    ]
    # compared as drawn, not row by row: an extra row (a run records its escape step) changes nothing
    extra = make_trace("adam", "Adam", 101)
    extra.steps = np.insert(extra.steps.astype(float), 30, 29.5)
    extra.loss = np.insert(adam.loss, 30, (adam.loss[29] + adam.loss[30]) / 2)
    assert [c[:2] for c in figs.covered_curves([extra, deo], "steps")] == [("Adam", "DEO (paper)")]
    extra.loss[30] += 0.05  # a spike between the other's rows shows
    assert figs.covered_curves([extra, deo], "steps") == []
    # a shorter curve (stopped) on top cannot hide a longer one; a prefix below can be hidden
    assert figs.covered_curves([adam, make_trace("deo_paper", "DEO (paper)", 50)], "steps") == []
    short = make_trace("adam", "Adam", 50)
    short.loss = adam.loss[:50]
    assert [
        c[:2] for c in figs.covered_curves([short, make_trace("deo_paper", "DEO (paper)", 101)], "steps")
    ] == [("Adam", "DEO (paper)")]
