"""The About page's findings charts, built once per CSV version and view, shared by every rerun and
visitor, and its request as data: the files it reads and the loss its radio starts on, defined once
for the page and for ``serve.py``, which builds the plain link's charts into the shared cache before
the first visitor arrives (:func:`precompute`; ``tests/test_serve.py`` checks that its first visitor
then builds none). A cold visit otherwise spent ≈ 1 s of server CPU reading the CSVs and building
the three figures, against 0.25 s for the rest of the page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pages.common import DEFAULT_VIEWS, cache_runner
from pages.plotly_wire import wire_ready
from viz.findings_figs import paper_comparison_figure, published_curves_figure, tuned_lr_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PUBLISHED_CSV = ROOT.parent / "shared" / "data" / "dimertrainer-eval-curves.csv"
PAPER_CSV = RESULTS / "paper.csv"
TUNED_CSV = RESULTS / "tuned_lr.csv"
LOSSES = ("val_loss", "train_loss")  # the page's "Loss" radio; the first is the default

FINDINGS_FIGURES = {  # findings_chart's kinds: the figure of the CSV (and loss) it draws
    "published": lambda df, loss, **view: published_curves_figure(df, loss, **view),
    "paper": lambda df, loss, **view: paper_comparison_figure(df, loss, **view),
    "tuned_lr": lambda df, loss, **view: tuned_lr_figure(df, **view),
}
# the page's charts: kind, CSV, and whether the "Loss" radio picks its loss
CHARTS = (("published", PUBLISHED_CSV, True), ("paper", PAPER_CSV, True), ("tuned_lr", TUNED_CSV, False))


@cache_runner(max_entries=8)
def read_csv(path: str, mtime_ns: int) -> pd.DataFrame:
    """The CSV at ``path`` as it was at ``mtime_ns`` (a rewritten file is read again)."""
    return pd.read_csv(path)


@cache_runner(max_entries=16)
def findings_chart(kind: str, path: str, mtime_ns: int, loss: str | None, large: bool, compact: bool):
    """The ``kind`` figure (:data:`FINDINGS_FIGURES`) of the CSV at ``path``, built once per file
    version and view, frozen and its JSON encoded once (``pages.plotly_wire.wire_ready``): a visitor,
    or a rerun for another control, sends it without building it again."""
    fig = FINDINGS_FIGURES[kind](read_csv(path, mtime_ns), loss, large=large, compact=compact)
    return wire_ready(fig.freeze())


def chart_of(kind: str, path: Path, loss: str | None, large: bool, compact: bool):
    """:func:`findings_chart` of the CSV at ``path`` as it is now."""
    return findings_chart(kind, str(path), path.stat().st_mtime_ns, loss, large, compact)


def precompute(views=DEFAULT_VIEWS, between=lambda: None) -> None:
    """Build the charts a visitor of the plain link is shown (the default loss), for each of
    ``views``, into the shared cache; ``between()`` before each chart. A CSV that is not there is
    skipped: the page says "not measured yet" instead of a chart."""
    for large, compact in views:
        for kind, path, by_loss in CHARTS:
            if path.exists():
                between()
                chart_of(kind, path, LOSSES[0] if by_loss else None, large, compact)
