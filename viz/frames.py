"""Which recorded rows an animation shows: one rule for every animated figure (surfaces, dimer,
networks). Pure numpy, no Plotly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy import ndarray

MAX_FRAMES = 300
# The stops of an animation's slider (a subset of its frames: Play still shows every frame, the
# slider follows at its stops). plotly.js lays out and measures every stop's label on each draw of
# the chart: 300 stops cost ≈ 0.16 s of a race chart's 1.6 s in Chromium, 100 stops ≈ 0.01 s
# (benchmarks/chart_render.py); 100 stops on a ~1 000 px slider are 10 px apart, a hand's resolution.
MAX_SLIDER_STOPS = 100


def frame_rows(n_rows: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """The row indices an animation of ``n_rows`` recorded rows shows: evenly spaced from the first
    row to the last, both included, at most ``max_frames`` of them (every row when there are fewer)."""
    if n_rows < 1:
        raise ValueError(f"need at least one row to animate, got {n_rows}")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    n = min(max_frames, n_rows)
    return np.unique(np.round(np.linspace(0, n_rows - 1, n)).astype(np.int64)).tolist()


def slider_stops(names: Sequence[str], max_stops: int = MAX_SLIDER_STOPS) -> list[str]:
    """The frame names an animation's slider stands on: evenly spaced (``frame_rows``' rule), the
    first and the last frame included, every frame when there are at most ``max_stops``."""
    if not len(names):
        return []
    return [names[i] for i in frame_rows(len(names), max_stops)]


def rows_at(steps: ndarray, frame_steps: ndarray) -> ndarray:
    """Per frame step, the last recorded row at or before it (``steps``: a run's recorded steps,
    increasing); a run that stopped early stays on its last row, a frame before its first row shows
    the first."""
    steps = np.asarray(steps)
    if not len(steps):
        return np.zeros(len(frame_steps), dtype=np.int64)
    return np.clip(np.searchsorted(steps, frame_steps, side="right") - 1, 0, len(steps) - 1)
