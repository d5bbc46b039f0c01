"""Figures of the About / findings page: the published DimerTrainer evaluation curves, our runs of
the paper's setting, and the tuned-learning-rate comparison (``tuned_lr_figure``).

The CSV (``dimertrainer-eval-curves.csv``: columns model, optimizer, step, train_loss, val_loss;
eval every 250 steps on 20 batches, noise ≈ ±0.03) holds the authors' 16 runs: 8 optimizers × two
GPT sizes on tiny Shakespeare. Their "adam" and "sgd" baselines carry coupled L2 weight decay 0.1
(``DEO.md``, defect 3); they are drawn dashed so the baseline artefact is visible next to AdamW and
the dimer classes. Pure functions: a pandas DataFrame in, ``go.Figure`` / rows out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.dimer_figs import finish, legend_below, rounded
from viz.palette import LEGEND_ABOVE, PRESET_COLORS, color_for, legend_label
from viz.surface_figs import FrozenFigure

CURVE_COLUMNS = ("model", "optimizer", "step", "train_loss", "val_loss")
COUPLED_WEIGHT_DECAY = ("adam", "sgd")  # the published baselines with coupled L2 weight decay 0.1
PUBLISHED_COLORS = {
    "adam": PRESET_COLORS["adam"],
    "adamw": PRESET_COLORS["adamw"],
    "sgd": PRESET_COLORS["gd"],
    "sophia": "#44AA99",
    "dimer": PRESET_COLORS["deo_published"],
    "dimerAdam": "#332288",
    "dimerAdamW": "#AA4499",
    "dimerSgd": "#88CCEE",
}
OTHER_COLOR = "#777777"


def check_curves(df: pd.DataFrame) -> None:
    """Raise ValueError unless ``df`` has the published CSV's columns and at least one row."""
    missing = [c for c in CURVE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"curves CSV lacks columns {missing}; expected {list(CURVE_COLUMNS)}")
    if df.empty:
        raise ValueError("curves CSV has no rows")


def published_curves_figure(
    df: pd.DataFrame, loss: str = "val_loss", large: bool = False, compact: bool = False
) -> go.Figure:
    """One panel per model size, one line per published optimizer: ``loss`` against step.

    The coupled-weight-decay baselines (adam, sgd) are dashed and labelled as such. ``compact`` (a
    phone): the panels one under the other at the chart's width, the legend above them.
    """
    check_curves(df)
    if loss not in ("val_loss", "train_loss"):
        raise ValueError(f"loss must be 'val_loss' or 'train_loss', got {loss!r}")
    models = list(dict.fromkeys(df["model"]))
    fig = make_subplots(
        figure=FrozenFigure(),  # a go.Figure until frozen (pages.about caches it frozen)
        rows=len(models) if compact else 1,
        cols=1 if compact else len(models),
        shared_yaxes=not compact,
        horizontal_spacing=0.08 if large else 0.05,  # "20k" and the next panel's "0" apart
        vertical_spacing=0.2,  # a panel's x-axis title, then the next one's title
        subplot_titles=[f"GPT {m} parameters" for m in models],
    )
    for col, model in enumerate(models, start=1):
        at = {"row": col, "col": 1} if compact else {"row": 1, "col": col}
        part = df[df["model"] == model]
        for name, rows in part.groupby("optimizer", sort=True):
            rows = rows.sort_values("step")
            coupled = name in COUPLED_WEIGHT_DECAY
            label = f"{name} (coupled L2 wd 0.1)" if coupled else name
            fig.add_trace(
                go.Scatter(
                    x=rounded(rows["step"].to_numpy()),
                    y=rounded(rows[loss].to_numpy()),
                    mode="lines",
                    name=label,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={
                        "color": PUBLISHED_COLORS.get(name, OTHER_COLOR),
                        "width": 2.5,
                        "dash": "dash" if coupled else "solid",
                    },
                ),
                **at,
            )
        fig.update_xaxes(title_text="step", **at)
        if compact or col == 1:
            fig.update_yaxes(title_text=loss.replace("_", " "), range=[1.3, 3.0], **at)
    if compact:
        height = 370 * len(models)
        return finish(
            fig, large, height=height, legend=_legend_above_titles(height - 100),
            margin={"l": 60, "r": 20, "t": 50, "b": 50},
        )  # fmt: skip
    below = legend_below(large, rows=3 if large else 2)
    return finish(fig, large, height=430 + below["margin"]["b"], **below)


def _legend_above_titles(plot_px: float) -> dict:
    """A legend in rows above a stack of panels, clear of the first panel's title (``LEGEND_ABOVE``
    at 1.02 of a tall plot area sat on it); ``plot_px``: the plot area's height before Plotly
    widens the top margin for the legend."""
    return {**LEGEND_ABOVE, "y": 1.0 + 40 / plot_px}


def _wrapped(title: str, width: int = 34) -> str:
    """A long panel title in two lines, broken after its first comma (a phone's panel is ≈ 330 px)."""
    head, sep, rest = title.partition(", ")
    return f"{head},<br>{rest}" if sep and len(title) > width else title


def final_losses(df: pd.DataFrame) -> list[dict]:
    """The last evaluation of each published run: model, optimizer, step, train and val loss,
    sorted by model then val loss."""
    check_curves(df)
    last = df.sort_values("step").groupby(["model", "optimizer"], sort=False).tail(1)
    last = last.sort_values(["model", "val_loss"])
    return [
        {
            "model": r.model,
            "optimizer": r.optimizer,
            "coupled L2 weight decay": r.optimizer in COUPLED_WEIGHT_DECAY,
            "step": int(r.step),
            "train loss": float(r.train_loss),
            "val loss": float(r.val_loss),
        }
        for r in last.itertuples(index=False)
    ]


PAPER_COLUMNS = ("source", "optimizer", "label", "step", "train_loss", "val_loss")


def paper_comparison_figure(
    df: pd.DataFrame, loss: str = "val_loss", large: bool = False, compact: bool = False
) -> go.Figure:
    """Our runs of the paper's setting (``source == "ours"``, solid, one colour per run) against the
    published curves (``source == "published"``, thin dotted), on the steps our runs cover. The
    legend's entries (sixteen) take a row each in projector fonts or on a phone (``compact``), two
    columns of half the width on a desktop.

    ``df`` is ``benchmarks/results/paper.csv`` (long format; columns ``PAPER_COLUMNS``).
    """
    missing = [c for c in PAPER_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"paper CSV lacks columns {missing}; expected {list(PAPER_COLUMNS)}")
    if loss not in ("val_loss", "train_loss"):
        raise ValueError(f"loss must be 'val_loss' or 'train_loss', got {loss!r}")
    ours = df[df["source"] == "ours"]
    if ours.empty:
        raise ValueError("paper CSV has no rows of our own runs (source == 'ours')")
    last_step = float(ours["step"].max())
    fig = FrozenFigure()
    for (source, name), rows in df.groupby(["source", "optimizer"], sort=True):
        rows = rows[rows["step"] <= last_step * 1.05].sort_values("step")
        if rows.empty:
            continue
        published = source == "published"
        color = PUBLISHED_COLORS.get(name, OTHER_COLOR) if published else color_for(str(name))
        fig.add_trace(
            go.Scatter(
                x=rounded(rows["step"].to_numpy()),
                y=rounded(rows[loss].to_numpy()),
                mode="lines+markers" if not published else "lines",
                name=legend_label(str(rows["label"].iloc[0])),  # a control: "…: random N"
                line={
                    "color": color,
                    "width": 1.5 if published else 3,
                    "dash": "dot" if published else "solid",
                },
                opacity=0.6 if published else 1.0,
            )
        )
    fig.update_xaxes(title_text="step", range=[0, last_step * 1.05])
    fig.update_yaxes(title_text=loss.replace("_", " "))
    if large or compact:  # a row an entry
        below = legend_below(large, compact, rows=len(fig.data))
    else:  # two columns of half the width: the labels are long, and left to flow at the About page's
        # 940 px they took a row each and left the plot a strip (16 entries in 4 rows' margin)
        below = legend_below(large, compact, rows=-(-len(fig.data) // 2))
        below["legend"] = {**below["legend"], "entrywidth": 0.5, "entrywidthmode": "fraction"}
    return finish(fig, large, height=380 + below["margin"]["b"], **below)


TUNED_COLUMNS = ("problem", "optimizer", "label", "lr", "seeds", "escaped", "evals_median")


def tuned_lr_figure(df: pd.DataFrame, large: bool = False, compact: bool = False) -> go.Figure:
    """One panel per problem: median gradient evaluations to escape against the learning rate (both
    log), one line per optimizer, its best grid point ringed; a grid point where the median run did
    not escape is a gap. Three panels a row, or (``compact``, a phone) one, with the legend above.

    ``df`` is ``benchmarks/results/tuned_lr.csv`` (one row per problem, optimizer and lr; columns
    ``TUNED_COLUMNS``).
    """
    missing = [c for c in TUNED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"tuned_lr CSV lacks columns {missing}; expected {list(TUNED_COLUMNS)}")
    if df.empty:
        raise ValueError("tuned_lr CSV has no rows")
    problems = list(dict.fromkeys(df["problem"]))
    cols = 1 if compact else min(2 if large else 3, len(problems))  # projector fonts: two a row
    rows = -(-len(problems) // cols)
    titles = [_wrapped(p) for p in problems]  # two lines: side by side, long ones ran together
    fig = make_subplots(figure=FrozenFigure(), rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.12 if large else 0.07,
                        vertical_spacing=0.4 / rows if compact or large else 0.18)  # fmt: skip
    decade_labels = []  # per panel: whether its y values span two powers of ten (see below)
    for i, problem in enumerate(problems):
        row, col = i // cols + 1, i % cols + 1
        part = df[df["problem"] == problem]
        values = pd.to_numeric(part["evals_median"], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        low, high = (np.log10(values.min()), np.log10(values.max())) if values.size else (0.0, 0.0)
        decade_labels.append(math.floor(high) - math.ceil(low) + 1 >= 2)
        for key, cells in part.groupby("optimizer", sort=False):
            cells = cells.sort_values("lr")
            evals = pd.to_numeric(cells["evals_median"], errors="coerce").to_numpy(dtype=float)
            lrs = cells["lr"].to_numpy(dtype=float)
            color = color_for(str(key))
            label = str(cells["label"].iloc[0])
            fig.add_trace(
                go.Scatter(x=rounded(lrs), y=rounded(evals), mode="lines+markers", name=label,
                           legendgroup=label, showlegend=i == 0, line={"color": color}),
                row=row, col=col,
            )  # fmt: skip
            finite = np.isfinite(evals)
            if finite.any():
                j = int(np.flatnonzero(finite)[np.argmin(evals[finite])])
                ring = {"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": color, "width": 2}}
                fig.add_trace(
                    go.Scatter(x=[rounded(lrs[j])], y=[rounded(evals[j])], mode="markers", legendgroup=label,
                               showlegend=False, hoverinfo="skip",
                               marker=ring),
                    row=row, col=col,
                )  # fmt: skip
    # a label a decade (every second in projector fonts): over a short range plotly.js added 2 and 5
    # between them, which ran into each other. A panel whose values span fewer than two powers of ten
    # keeps plotly.js's own ticks (tiny_transformer's 257–417 had no label at all); the y title on
    # the first column only
    fig.update_xaxes(type="log", title_text="learning rate", dtick=2 if large else 1, tickangle=0)
    fig.update_yaxes(type="log")
    for i, decades in enumerate(decade_labels):
        if decades:
            fig.update_yaxes(dtick=1, row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(title_text="grad evals to escape", col=1)
    height = (300 if compact else 420 if large else 360) * rows
    if compact:
        return finish(fig, large, height=height, legend=_legend_above_titles(height - 160))
    below = legend_below(large, rows=4 if large else 2)
    return finish(fig, large, height=height + below["margin"]["b"], **below)
