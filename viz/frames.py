"""Which recorded rows an animation shows: one rule for every animated figure (surfaces, dimer,
networks). Pure numpy, no Plotly."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy import ndarray

# At most this many frames per animation: a run of up to 300 steps (301 rows, the start included, as
# every page's default) shows every step, so the slider's stops stand on round steps (0, 25, 50, …).
MAX_FRAMES = 301
# The stops of an animation's slider (a subset of its frames: Play still shows every frame, the
# slider follows at its stops). plotly.js lays out and measures every stop's label on each draw of
# the chart: 300 stops cost ≈ 0.16 s of a race chart's 1.6 s in Chromium, 100 stops ≈ 0.01 s
# (benchmarks/chart_render.py); 100 stops on a ~1 000 px slider are 10 px apart, a hand's resolution.
MAX_SLIDER_STOPS = 100
# On a phone the slider is ≈ 330 px long: as many stops, ≈ 10 px apart, and plotly.js labels every
# few of them on round steps (0, 30, 60, … for 300 steps; with 100 stops every 7th: 0, 35, 70, …).
PHONE_SLIDER_STOPS = 32


def frame_rows(n_rows: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """The row indices an animation of ``n_rows`` recorded rows shows: every k-th row from the first,
    k the smallest stride that keeps them within ``max_frames`` (every row when there are no more;
    above 5 the next of 10, 20, 25, 50, 100, …), and the last row. A whole stride, not evenly
    rounded positions: for a run recorded every step the frames stand on multiples of k (1 000
    steps: 0, 4, 8, …), so the slider's round steps are frames (:func:`slider_stops`) and it reads
    0, 100, 200 rather than 0, 161, 322."""
    if n_rows < 1:
        raise ValueError(f"need at least one row to animate, got {n_rows}")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    least = max(1, -(-(n_rows - 1) // (max_frames - 1)))
    stride = least if least <= 5 else next(s for s in _nice_spacings() if s >= least)  # 17 → 20
    rows = list(range(0, n_rows, stride))
    if rows[-1] != n_rows - 1:  # within max_frames: (n_rows − 1)/stride < max_frames − 1 then
        rows.append(n_rows - 1)
    return rows


def slider_stops(names: Sequence[str], max_stops: int = MAX_SLIDER_STOPS) -> list[str]:
    """The frame names an animation's slider stands on, the first and the last frame included, at
    most ``max_stops`` (every frame when there are no more).

    Frames named by increasing step numbers (every animation of a run) get stops at round steps:
    the multiples of the smallest of 1, 2, 5, 10, 20, 25, 50, 100, … that keeps them within
    ``max_stops`` (each the frame nearest to it); for frames every k steps, the smallest of their
    least common multiples with k (k = 4: 20, 100, …), so each stop is a frame on a round step.
    plotly.js labels every k-th stop under the slider, so a 300-step race reads 0, 30, 60, …
    rather than 0, 27, 54, 82, … (100 evenly spaced stops).
    Other names: ``max_stops`` evenly spaced frames."""
    if not len(names):
        return []
    if len(names) <= max_stops:
        return list(names)
    steps = _steps(names)
    if steps is None:  # evenly spaced positions from the first to the last
        positions = np.unique(np.round(np.linspace(0, len(names) - 1, max_stops)).astype(np.int64))
        return [names[i] for i in positions.tolist()]
    first, last = steps[0], steps[-1]
    # frames sampled every k steps (frame_rows): round steps that are multiples of k (k = 3: 30, 60, …)
    stride = math.gcd(*(b - a for a, b in itertools.pairwise(steps[:-1]))) if len(steps) > 2 else 1
    spacings = (math.lcm(nice, stride) for nice in _nice_spacings())
    spacing = next(s for s in spacings if (last - first) // s + 2 <= max_stops)
    marks = np.arange(-(-first // spacing) * spacing, last + 1, spacing)
    nearest = np.abs(np.asarray(steps)[None, :] - marks[:, None]).argmin(axis=1)
    return [names[i] for i in sorted({0, *nearest.tolist(), len(names) - 1})]


def _steps(names: Sequence[str]) -> list[int] | None:
    """The names as strictly increasing integers, or None."""
    try:
        steps = [int(name) for name in names]
    except (TypeError, ValueError):
        return None
    return steps if all(a < b for a, b in itertools.pairwise(steps)) else None


def _nice_spacings():
    """1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, …"""
    scale = 1
    while True:
        quarter = () if scale == 1 else (5 * scale // 2,)  # 25, 250, …: no 2.5
        yield from (scale, 2 * scale, *quarter, 5 * scale)
        scale *= 10


def rows_at(steps: ndarray, frame_steps: ndarray) -> ndarray:
    """Per frame step, the last recorded row at or before it (``steps``: a run's recorded steps,
    increasing); a run that stopped early stays on its last row, a frame before its first row shows
    the first."""
    steps = np.asarray(steps)
    if not len(steps):
        return np.zeros(len(frame_steps), dtype=np.int64)
    return np.clip(np.searchsorted(steps, frame_steps, side="right") - 1, 0, len(steps) - 1)
