"""Figures of several panels drawn in a real browser at the widths the app gives them (a projector's
chart beside the open sidebar, a desktop column, a phone): no legend on an axis title or on tick
labels, no axis title on another panel, no panel title on the legend, and a plot that keeps its
height. plotly.js draws each figure in one Chromium page (no server); the test waits for the drawing,
then compares bounding boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import landscapes
from deo.problems import network_problem
from deo.race import EscapeResult, OptimizerSpec, race, surface_problem
from tests.boxes import draw, figure_page, overlap
from tests.test_viz_dimer import grid, rotation_data
from viz import dimer_figs as dfigs
from viz import escape_figs as efigs
from viz import findings_figs as ffigs
from viz import network_figs as nfigs
from viz import surface_figs as surface_figs
from viz import sweep_figs as sfigs

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

# (width, large, compact): a desktop column, a projector's chart beside the open sidebar, a phone
SCREENS = {"desktop": (1300, False, False), "projector": (780, True, False), "phone": (390, False, True)}


def _boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector,
        "els => els.map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0)"
        ".map(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))",
    )


@pytest.fixture(scope="module")
def builders() -> dict:
    lengths = np.logspace(-10, 0, 31)
    fd = [
        dfigs.FiniteDifferenceSeries(f"{s}, {d}", c, dash, lengths * k, lengths**2 * k)
        for k, (s, d, c, dash) in enumerate(
            [("forward", "float64", "#0072B2", "solid"), ("forward", "float32", "#0072B2", "dot"),
             ("central", "float64", "#009E73", "solid"), ("central", "float32", "#009E73", "dot")], start=1
        )
    ]  # fmt: skip
    conv = [
        dfigs.ConvergenceSeries(
            f"{r}, {s}", dfigs.ROTATION_COLORS[r], dfigs.SCHEME_DASHES[s],
            np.arange(2, 13), np.logspace(3, -2, 11), np.linspace(0.5, 1.0, 11),
        )
        for r in ("fourier", "sd")
        for s in ("forward", "central")
    ]  # fmt: skip
    data = rotation_data("fourier")
    gen = np.random.default_rng(0)  # four optimizers' maps of 30×30 starts, as the page's default
    maps = {
        name: EscapeResult(
            key=key, label=name, hyperparams={}, steps_to_escape=gen.integers(1, 300, 900).astype(float),
            grad_evals_to_escape=gen.integers(1, 300, 900).astype(float), final=np.zeros((900, 2)),
            basin=np.zeros(900, dtype=int), diverged=np.zeros(900, dtype=bool), wall_time=0.0,
        )
        for name, key in (("GD", "gd"), ("Adam", "adam"), ("DEO-escape", "deo_escape"),
                          ("DEO-escape: random N", "deo_escape_random"))
    }  # fmt: skip
    xs, ys, z = grid()
    problem = network_problem(landscapes.make_network("xor"))
    traces = race(problem, [OptimizerSpec(k) for k in ("gd", "adam", "deo_paper", "deo_paper_random")], 30)
    on_slice = [t.loss * 1.1 for t in traces]
    names = ("adam", "adamw", "dimer", "dimerAdam", "dimerAdamW", "dimerSgd", "sgd", "sophia")
    models, steps = ("0.80M", "10.65M"), range(0, 20001, 1000)
    rows = [{"model": m, "optimizer": o, "step": t, "loss": 3 - t / 1e4 - k / 10}
            for m in models for k, o in enumerate(names) for t in steps]  # fmt: skip
    published = pd.DataFrame(rows).assign(train_loss=lambda d: d["loss"], val_loss=lambda d: d["loss"])
    paper, tuned = pd.read_csv(RESULTS / "paper.csv"), pd.read_csv(RESULTS / "tuned_lr.csv")
    seeds = list(range(10))
    optimizers = ["GD", "Adam", "DEO (paper)", "DEO-escape", "DEO (paper): random N", "DEO-escape: random N"]
    by_optimizer = {"x²−y², (1, 1e-3)": (optimizers, seeds, np.arange(60.0).reshape(10, 6))}
    lrs = [1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0]
    by_lr = {name: (lrs, seeds, np.arange(70.0).reshape(10, 7) + k) for k, name in enumerate(optimizers[:4])}
    saddle = landscapes.SURFACES["saddle_plateau"]
    keys = ("gd", "adam", "deo_paper", "deo_escape", "deo_escape_random")
    surface_traces = race(
        surface_problem(saddle, saddle.default_start, offset=None), [OptimizerSpec(k) for k in keys], 100
    )
    alphas = betas = np.linspace(-1.5, 1.5, 31)
    slice_z = np.add.outer(betas**2, alphas**2)
    paths = [np.stack([np.linspace(0, 1, len(t.steps)), -np.linspace(0, 1, len(t.steps))], 1) for t in traces]
    return {
        "network slice": lambda large, compact: nfigs.slice_figure(
            alphas, betas, slice_z, traces, paths, "radius 1.5, filter-normalised, seed 0", large=large,
            compact=compact,
        ),
        "surface curvature": lambda large, compact: surface_figs.curvature_figure(
            surface_traces, large=large, compact=compact
        ),
        "sweep across optimizers": lambda large, compact: sfigs.sweep_heatmaps(
            by_optimizer, "optimizer", large=large, compact=compact
        ),
        "sweep across lr": lambda large, compact: sfigs.sweep_heatmaps(
            by_lr, "lr", large=large, compact=compact
        ),
        "published curves": lambda large, compact: ffigs.published_curves_figure(
            published, large=large, compact=compact
        ),
        "paper comparison": lambda large, compact: ffigs.paper_comparison_figure(
            paper, large=large, compact=compact
        ),
        "tuned lr": lambda large, compact: ffigs.tuned_lr_figure(tuned, large=large, compact=compact),
        "sd vs fourier": lambda large, compact: dfigs.convergence_figure(conv, large=large, compact=compact),
        "finite differences": lambda large, compact: dfigs.finite_difference_figure(
            lengths, fd, large, compact
        ),
        "rotation": lambda large, compact: dfigs.rotation_figure(
            data, xs, ys, z, dfigs.DIMER_COLOR, large=large, compact=compact
        ),
        "saddle search": lambda large, compact: dfigs.saddle_search_figure(
            # a window wider than high (as Müller–Brown's), the colour bar's title clipped
            np.stack([1.6 * xs[10:50], ys[10:50]], axis=1), 1.6 * xs, ys, z, dfigs.DIMER_COLOR,
            color_scale="clip", clip=-1.23456789e-4, large=large, compact=compact,  # a long title
        ),
        "escape maps": lambda large, compact: efigs.escape_maps_figure(
            np.linspace(-1, 1, 30), np.linspace(-1, 1, 30), maps, steps_budget=300, saddle=(0.0, 0.0),
            large=large, compact=compact,
        ),
        "network loss": lambda large, compact: nfigs.loss_figure(traces, "steps", plateau=0.25, large=large),
        "network curvature": lambda large, compact: nfigs.curvature_figure(traces, large=large),
        "removed fraction": lambda large, compact: nfigs.removed_fraction_figure(traces, large=large),
        "true loss along the trajectory": lambda large, compact: nfigs.trajectory_loss_figure(
            traces, on_slice, large=large
        ),
    }


@pytest.mark.parametrize("screen", list(SCREENS))
def test_panels_legends_and_titles_do_not_cover_each_other(chromium, builders, screen):
    width, large, compact = SCREENS[screen]
    page = figure_page(chromium, width)
    try:
        for name, build in builders.items():
            draw(page, build(large, compact).update_layout(width=width))
            legend = _boxes(page, "g.legend")
            x_titles = _boxes(page, 'g[class^="g-x"][class$="title"]')
            y_titles = _boxes(page, 'g[class^="g-y"][class$="title"]')
            ticks = _boxes(page, "g.xaxislayer-above")
            plots = _boxes(page, "rect.nsewdrag")
            panel_titles = _boxes(page, "g.annotation")
            assert (x_titles or name == "escape maps") and plots, name  # the maps: tick labels only
            for other in x_titles + ticks + panel_titles if legend else []:
                assert not overlap(legend[0], other), (name, screen, legend[0], other)
            for title in y_titles:  # a y title stays beside its own panel, off the others
                assert sum(overlap(title, plot) for plot in plots) == 0, (name, screen, title, plots)
            assert min(p["height"] for p in plots) >= 150, (name, screen, plots)  # the legend left room
            scrolled = _boxes(page, "g.legend rect.scrollbar")
            assert not scrolled, (name, screen, scrolled)  # every legend entry in view, none scrolled
            x_labels = _boxes(page, "g.xaxislayer-above g.xtick text")
            crowded = [(a, b) for i, a in enumerate(x_labels) for b in x_labels[i + 1 :] if overlap(a, b)]
            assert not crowded, (name, screen, crowded[:2])  # tick labels apart, on every panel
            titles = [
                (a, b) for i, a in enumerate(panel_titles) for b in panel_titles[i + 1 :] if overlap(a, b)
            ]
            assert not titles, (name, screen, titles[:2])  # panel titles apart
            # every y axis that shows tick labels has two or more (a log axis with one label a decade
            # had none over a range inside one decade); an axis shared with its row's first panel
            # shows none by design
            labelled = page.evaluate(
                "() => { const fl = document.getElementById('chart')._fullLayout;"
                " return Object.keys(fl).filter(k => /^yaxis\\d*$/.test(k) && fl[k].visible !== false"
                " && fl[k].showticklabels !== false).map(k => [k, (fl[k]._vals || []).length]); }"
            )
            assert labelled, name
            assert all(count >= 2 for _, count in labelled), (name, screen, labelled)
            controls = _boxes(page, "g.updatemenu-button") + x_titles + ticks
            for label in _boxes(page, "g.slider-group text.slider-label"):  # "step 24" above the slider
                assert not any(overlap(label, other) for other in controls), (name, screen, label, controls)
            figure_box = page.locator("#chart .main-svg").first.bounding_box()
            for title in _boxes(page, "g.colorbar g.cbtitle"):  # a colour bar's title inside the
                # figure (in the app, "f (clipped at 100)" on one line ran past the right edge of a
                # projector's saddle search and pushed the margin, the plot 100 px narrower; here the
                # one-line title fails the slider-label check above instead)
                assert title["x"] + title["width"] <= figure_box["x"] + figure_box["width"] + 1, (
                    name, screen, title, figure_box,
                )  # fmt: skip
            # the slider's grip (at step 0 here) and its rail clear of Play/Pause: beside the buttons
            # at a fraction of the width, the grip lay under Pause on every screen
            for part in _boxes(page, "g.slider-group rect.slider-grip-rect") + _boxes(
                page, "g.slider-group rect.slider-rail-rect"
            ):
                buttons = _boxes(page, "g.updatemenu-button")
                assert not any(overlap(part, b) for b in buttons), (name, screen, part, buttons)
    finally:
        page.close()
