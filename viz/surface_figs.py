"""Figures of the Surfaces page: the animated optimizer race on a contour, the 3-D view, loss and
curvature curves, and the rows of the results table.

Pure functions: a surface (duck-typed ``landscapes.Surface``: ``f``, ``bounds``, ``color_scale``,
``clip``, ``stationary_points``) and ``deo.Trace`` s in, Plotly figures out (no streamlit).

Notation of ``DEO.md``: g the raw gradient, g_mod what the base optimizer received, N the unit dimer
direction, ΔR the dimer length, C the dimer curvature, λ_min / v_min the exact minimum eigenpair.

Plotly practice (``UX.md``). The contour is ``fig.data[0]`` and never inside frames. Everything that
moves is a small scatter trace; frame j updates only those trace indices (``"traces"``). Frames are
plain dicts (no Plotly validation: 300 frames × 20 traces of ``go.Frame`` objects take seconds to
validate), floats rounded to ``SIGNIFICANT`` digits relative to the window, ``redraw: False``, at
most ``MAX_FRAMES`` frames (long runs: every k-th step, ``viz.frames``; the full data stays in the
traces). Axis ranges are fixed and ``scaleanchor`` makes one unit the same length on both axes, so
arrows and the dimer are not distorted. The path so far is drawn, per frame, from the rows a
polyline needs to stay within ``PATH_TOLERANCE`` of the recorded path (``path_vertices``, at most
``MAX_PATH_VERTICES``, the last ``PATH_TAIL`` rows exact); the full path is drawn faintly underneath.

Two stages, so that a view-only change (speed, dimer zoom, arrows, what is drawn) never builds the
race figure again: :func:`race_layers` builds what does not depend on the view (static traces and
layout as plain dicts, the path and the current point per frame with their JSON), once per race;
:func:`race_view` adds the view's moving parts (each computed once per option value and kept in the
layers) and composes the figure's dict and JSON from those pieces in milliseconds (no Plotly
validation). :func:`race_figure` does both and returns a validated ``go.Figure`` of the same dict.
"""

from __future__ import annotations

import base64
import functools
import gc
import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from numpy import ndarray
from plotly.subplots import make_subplots

from landscapes.surfaces import f_on_grid
from viz.frames import MAX_FRAMES, MAX_SLIDER_STOPS, PHONE_SLIDER_STOPS, rows_at, slider_stops
from viz.frames import frame_rows as _frame_rows
from viz.overlap import BAND_SCALE, Drawn, hidden_curves
from viz.palette import (
    EXACT_COLOR,
    FONT_SIZE,
    LEGEND_ABOVE,
    LINE_WIDTH,
    MINIMUM_COLOR,
    SADDLE_COLOR,
    STATIONARY_SYMBOLS,
    color_for,
    dash_for,
    legend_above,
    legend_label,
    line_width,
    marker_size,
    rgba,
    style_figure,
)

# Heights of the race figure (px, Play/Pause and the slider included) that fit under the page title
# in a 1400×900 window, and in a 1280×720 projector window with large fonts.
RACE_HEIGHT, RACE_HEIGHT_LARGE = 640, 610
MAX_PATH_VERTICES = 40  # per frame: the last 20 rows exact, earlier ones thinned (full path drawn faintly)
MAX_CURVE_POINTS = 2000
SIGNIFICANT = 5
IMAGE_GRID = 400  # pixels per side of the contour image
COLORBAR_GRID = 41  # the invisible contour trace that carries the colour bar
N_CONTOURS = 30
LOG_RANGE = 50.0
SURFACE_GRID = 61
CLICK_GRID = 31
ARROW_FRACTION = 0.08  # arrow length (direction mode) as a fraction of the window width
MIN_MODE_FRACTION = 0.07  # half-length of the exact min-mode line
DIMER_FRACTION = 0.1  # auto zoom: the dimer drawn about this fraction of the window width
BASE_FRAME_MS = 50  # frame duration at speed 1×
# race_figure options for the standalone HTML download: fewer frames and path vertices, 4 digits, no
# click layer, so that plotly.js (4.8 MB) plus the figure stay under 5 MiB.
EXPORT_OPTIONS = {"clickable": False, "max_frames": 120, "max_path_vertices": 30, "significant": 4}
CONTOUR_COLORS = [[0.0, "#aeb9c5"], [0.5, "#dde3ea"], [1.0, "#ffffff"]]
LINE_RGB = (140, 152, 165)
MASK_RGB = ((236, 200, 200), (196, 120, 120))  # diagonal hatch where f is not finite (log(x ≤ 0), 1/0, ...)
MASK_STRIPE = 3  # hatch stripe width in image pixels
# legend order: the runs first, then the stationary points and the start, then the kinds of drawing
LEGEND_RANKS = {"runs": 10, "points": 500, "drawings": 800}
KIND_SYMBOLS = STATIONARY_SYMBOLS  # the same symbols as the dimer figures' (viz.palette)
KIND_COLORS = {"min": MINIMUM_COLOR, "saddle": SADDLE_COLOR, "max": "#555555", "degenerate": "#882255"}


class FrozenFigure(go.Figure):
    """A ``go.Figure`` that can be serialised once (:meth:`freeze`): a cached figure that every rerun
    sends again. ``st.plotly_chart`` calls ``to_dict`` (a deep copy of every trace) and then encodes
    that dict on every run; a frozen figure returns one shared dict, whose JSON
    ``pages.plotly_wire.wire_ready`` remembers. ``FrozenFigure(fig)`` copies ``fig``."""

    def to_dict(self) -> dict:
        frozen = getattr(self, "_frozen", None)
        return frozen if frozen is not None else self._fresh_dict()

    def _fresh_dict(self) -> dict:
        return super().to_dict()

    def freeze(self) -> FrozenFigure:
        """Serialise once: later ``to_dict`` calls return that same dict (read it, do not change it).
        Changes to the figure after ``freeze`` are not seen; returns ``self``."""
        self._frozen = None
        self._frozen = self.to_dict()
        return self


class AnimatedFigure(FrozenFigure):
    """A ``go.Figure`` whose animation frames are plain dicts, added by :func:`to_dict`.

    Everything that serialises a figure (``st.plotly_chart``, ``fig.to_json``, ``fig.to_html``,
    ``plotly.io``) goes through ``to_dict``, so the frames reach the browser unchanged. Read them
    with ``fig.to_dict()["frames"]`` (``fig.frames`` stays empty).
    """

    def __init__(
        self, *args, plain_frames: list[dict] | None = None, plain_layout: dict | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self._plain_frames = list(plain_frames or [])
        self._plain_layout = dict(plain_layout or {})

    def set_frames(self, frames: list[dict]) -> AnimatedFigure:
        """Replace the animation frames (plain dicts) in place, before :meth:`freeze`; returns ``self``."""
        self._plain_frames = list(frames)
        return self

    def _fresh_dict(self) -> dict:
        out = super()._fresh_dict()
        if self._plain_frames:
            out["frames"] = self._plain_frames
        out.setdefault("layout", {}).update(self._plain_layout)
        return out


@dataclass
class SurfaceGrid:
    """f on a regular grid of the window: ``z[i, j] = f(xs[j], ys[i])`` and the displayed values
    ``display`` (see :func:`color_mode` and :func:`display_values`)."""

    xs: ndarray  # (nx,)
    ys: ndarray  # (ny,)
    z: ndarray  # (ny, nx)
    display: ndarray  # (ny, nx)
    label: str  # colour-bar title
    mode: str  # "linear" | "log" | "clip"
    z_min: float  # min of finite z (the log shift)
    clip: float | None  # z ceiling for "clip"


def color_mode(surface, z: ndarray) -> str:
    """``surface.color_scale``, except that a "linear" surface with f ≥ 0 on the window and a high
    dynamic range (95th percentile > ``LOG_RANGE`` × 5th percentile, e.g. Rosenbrock's narrow valley)
    is shown on the log scale: a linear scale would paint the whole valley one colour."""
    mode = getattr(surface, "color_scale", "linear")
    finite = z[np.isfinite(z)]
    if mode == "linear" and finite.size and float(finite.min()) >= 0:
        p5, p95 = np.percentile(finite, [5, 95])
        if p95 > LOG_RANGE * max(float(p5), 1e-12):
            return "log"
    return mode


def display_values(z: ndarray, mode: str, z_min: float, clip: float | None = None) -> tuple[ndarray, str]:
    """The colour-scale transform: ``(values, label)``; mode "log" shows log₁₀(f − f_min + 1)."""
    z = np.asarray(z, dtype=np.float64)
    if mode == "log":
        return np.log10(np.maximum(z - z_min, 0.0) + 1.0), "log₁₀(f − f_min + 1)"
    if mode == "clip" and clip is not None:
        return np.minimum(z, clip), f"f (capped at {clip:g})"
    return z, "f"


def surface_grid(surface, n: int = IMAGE_GRID) -> SurfaceGrid:
    """Evaluate ``surface.f`` on an ``n × n`` grid of ``surface.bounds`` (float64)."""
    xs, ys, z = f_on_grid(surface.f, surface.bounds, n)
    finite = np.isfinite(z)
    z_min = float(z[finite].min()) if finite.any() else 0.0
    mode = color_mode(surface, z)
    clip = getattr(surface, "clip", None)
    display, label = display_values(z, mode, z_min, clip)
    return SurfaceGrid(xs, ys, z, display, label, mode, z_min, clip)


def _colorize(values: ndarray) -> ndarray:
    """``(H, W)`` values → ``(H, W, 3)`` uint8 RGB through ``CONTOUR_COLORS`` with dark iso-lines at
    ``N_CONTOURS`` evenly spaced levels (a pixel is on a line where the level index changes to its
    right or below). Cells where f is not finite (NaN, ±inf: ``log(x)`` for x ≤ 0, ``1/x`` at 0) are
    masked with a red diagonal hatch (``MASK_RGB``), distinct from every colour of the scale."""
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    t = np.clip((np.where(finite, values, lo) - lo) / max(hi - lo, 1e-300), 0.0, 1.0)
    stops = [p for p, _ in CONTOUR_COLORS]
    rgb = np.empty((*values.shape, 3))
    for channel in range(3):
        ramp = [int(c[1 + 2 * channel : 3 + 2 * channel], 16) for _, c in CONTOUR_COLORS]
        rgb[..., channel] = np.interp(t, stops, ramp)
    level = np.floor(t * N_CONTOURS).clip(0, N_CONTOURS - 1)
    line = np.zeros(values.shape, dtype=bool)
    line[:, :-1] |= level[:, 1:] != level[:, :-1]
    line[:-1, :] |= level[1:, :] != level[:-1, :]
    rgb[line] = LINE_RGB
    rows, cols = np.indices(values.shape)
    stripe = ((rows + cols) // MASK_STRIPE) % 2 == 0
    rgb[~finite & stripe] = MASK_RGB[1]
    rgb[~finite & ~stripe] = MASK_RGB[0]
    return rgb.round().astype(np.uint8)


def _png_data_uri(rgb: ndarray) -> str:
    """A ``(H, W, 3)`` uint8 image as a ``data:image/png;base64`` URI (stdlib zlib, no imaging library)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def background_image(surface, grid: SurfaceGrid) -> dict:
    """The coloured contour map of ``grid`` as a Plotly layout image spanning the window (below the
    traces). A layout image, not a contour trace, because plotly.js drops contour and heatmap traces
    from the plot as soon as an animation runs (plotly/plotly.py#2151)."""
    (x0, x1), (y0, y1) = surface.bounds
    return {
        "source": _png_data_uri(_colorize(grid.display[::-1])),  # image rows run from the top (y1)
        "xref": "x",
        "yref": "y",
        "x": x0,
        "y": y1,
        "sizex": x1 - x0,
        "sizey": y1 - y0,
        "sizing": "stretch",
        "layer": "below",
        "opacity": 1.0,
    }


def window_scale(surface) -> float:
    """The larger side of the window (arrow and dimer lengths are fractions of it)."""
    (x0, x1), (y0, y1) = surface.bounds
    return max(x1 - x0, y1 - y0)


def auto_dimer_zoom(surface, dimer_length: float | None) -> float:
    """A round k ≥ 1 (1, 2 or 5 times a power of ten) such that the drawn dimer (2·k·ΔR) is about
    8–20 % of the window: long enough to read its direction next to the arrows."""
    if not dimer_length or dimer_length <= 0:
        return 1.0
    k = DIMER_FRACTION * window_scale(surface) / dimer_length
    if k < 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(k))
    return float(max(m * power for m in (1, 2, 5) if m * power <= k))


def frame_rows(traces: Sequence, max_frames: int = MAX_FRAMES) -> tuple[ndarray, ndarray]:
    """The frames of the animation: ``(frame_steps (F,), rows (n_traces, F))``.

    Frame j shows step ``frame_steps[j]`` (every k-th step from 0 and the longest run's last, F ≤
    ``max_frames``: ``viz.frames.frame_rows``); ``rows[i, j]`` is the last recorded row of trace i at
    or before that step (a run that stopped early stays at its last row).
    """
    last = max((int(t.steps[-1]) for t in traces if len(t)), default=0)
    frame_steps = np.asarray(_frame_rows(last + 1, max_frames), dtype=np.int64)
    rows = np.zeros((len(traces), len(frame_steps)), dtype=np.int64)
    for i, t in enumerate(traces):
        rows[i] = rows_at(t.steps, frame_steps)
    return frame_steps, rows


def _rounder(surface, significant: int = SIGNIFICANT):
    """Round positions to ``significant`` digits of the window scale (NaN stays NaN)."""
    decimals = max(0, significant - 1 - math.floor(math.log10(window_scale(surface))))

    def rnd(values) -> ndarray:
        return np.round(np.asarray(values, dtype=np.float64), decimals)

    return rnd


def _thin(indices: ndarray, max_vertices: int) -> ndarray:
    """At most ``max_vertices`` of ``indices``: the last half exact, the earlier part evenly spaced."""
    if len(indices) <= max_vertices:
        return indices
    tail = max_vertices // 2
    head = np.linspace(0, len(indices) - tail - 1, max_vertices - tail).round().astype(np.int64)
    return np.concatenate([indices[head], indices[len(indices) - tail :]])


def path_vertices(xy: ndarray, tolerance: float) -> ndarray:
    """The rows of a path that a polyline needs to stay within ``tolerance`` of every recorded point
    (Ramer–Douglas–Peucker; the first and last rows always, non-finite rows always): sorted indices."""
    n = len(xy)
    if n <= 2:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg, pts = xy[b] - xy[a], xy[a + 1 : b] - xy[a]
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            # distance to the segment (not its line: a path that turns back beyond an end stays)
            u = np.clip(pts @ seg / (seg @ seg), 0.0, 1.0) if seg @ seg > 0 else np.zeros(len(pts))
            d = np.hypot(*(pts - u[:, None] * seg).T)
        d = np.where(np.isfinite(d), d, np.inf)
        k = int(np.argmax(d))
        if d[k] > tolerance:
            m = a + 1 + k
            keep[m] = True
            stack += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def arrow_scale(surface, traces: Sequence) -> float:
    """The "to scale" arrow factor s (drawn vector = −s·g): the 90th percentile of ‖g‖ over all
    rows is drawn as 15 % of the window."""
    norms = np.concatenate([t.grad_norm[np.isfinite(t.grad_norm)] for t in traces] or [np.zeros(0)])
    norms = norms[norms > 0]
    if norms.size == 0:
        return 1.0
    return 0.15 * window_scale(surface) / float(np.percentile(norms, 90))


def race_dimer_zoom(surface, traces: Sequence, dimer_zoom: float | None = None) -> float:
    """The k the race figure draws the dimer with (θ ± k·ΔR·N): ``dimer_zoom``, or when ``None``
    :func:`auto_dimer_zoom` of the longest dimer of ``traces``."""
    if dimer_zoom:
        return float(dimer_zoom)
    lengths = [t.dimer_length for t in traces if t.direction is not None and t.dimer_length]
    return auto_dimer_zoom(surface, max(lengths) if lengths else None)


def _nulls(a: ndarray) -> list:
    """Rows of a float array as lists, NaN/inf → None (``tolist`` then a patch of the few bad
    entries: converting the whole array to ``object`` first costs ~10× more)."""
    a = np.asarray(a, dtype=np.float64)
    out = a.tolist()
    bad = np.argwhere(~np.isfinite(a))
    if a.ndim == 1:
        for (i,) in bad.tolist():
            out[i] = None
    else:
        for i, j in bad.tolist():
            out[i][j] = None
    return out


PATH_TAIL = 4  # the last rows of the path so far, always exact (the simplified part ends before them)


def _path_xy(t, rows: ndarray, rnd, tolerance: float, max_vertices: int) -> tuple[list, list]:
    """Per frame the path so far of run ``t``: the rows :func:`path_vertices` keeps before the last
    ``PATH_TAIL`` rows (thinned to ``max_vertices − PATH_TAIL`` when longer), then those rows exact.
    Within ``2 · tolerance`` of every recorded point unless thinned: the kept rows' chords are
    within ``tolerance``, and the chord from the last kept row into the tail adds at most as much."""
    xy = t.position_2d
    px, py = _nulls(rnd(xy[:, 0])), _nulls(rnd(xy[:, 1]))
    kept = path_vertices(xy, tolerance)
    kx, ky = [px[k] for k in kept], [py[k] for k in kept]
    xs, ys = [], []
    for r in rows.tolist():
        s = max(0, r - PATH_TAIL + 1)
        c = int(np.searchsorted(kept, s))
        if c > max_vertices - PATH_TAIL:  # a long wiggly path: evenly thinned, ending on the tail
            pick = _thin(np.arange(c), max(2, max_vertices - PATH_TAIL)).tolist()
            xs.append([kx[i] for i in pick] + px[s : r + 1])
            ys.append([ky[i] for i in pick] + py[s : r + 1])
        else:
            xs.append(kx[:c] + px[s : r + 1])
            ys.append(ky[:c] + py[s : r + 1])
    return xs, ys


def _moving_xy(
    kind: str, t, rows: ndarray, rnd, zoom: float, scale: float | None, width: float
) -> tuple[list, list]:
    """Per frame the x and y lists of one moving part (not the path) of run ``t`` (``rows``: its row
    per frame)."""
    n_frames = len(rows)
    if not len(t) or t.position_2d is None:
        return [[]] * n_frames, [[]] * n_frames
    theta = t.position_2d[rows]  # (F, 2)
    if kind == "point":
        return _nulls(rnd(theta[:, :1])), _nulls(rnd(theta[:, 1:]))
    if kind in ("dimer", "vmin"):
        vectors = t.direction[rows] if kind == "dimer" else t.exact_v_min[rows]
        half = zoom * (t.dimer_length or 0.0) if kind == "dimer" else MIN_MODE_FRACTION * width
        a, b = theta - half * vectors, theta + half * vectors
    else:
        g = t.grad[rows]
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.full_like(norm, scale) if scale is not None else ARROW_FRACTION * width / norm
        factor = np.where(np.isfinite(factor) & (norm > 0), factor, np.nan)
        gm = t.modified_grad[rows] if kind != "g" else g
        if kind == "g":
            a, b = theta, theta - factor * g
        elif kind == "g_mod":
            a, b = theta, theta - factor * gm
        else:
            a, b = theta - factor * gm, theta - factor * g
        tiny = np.linalg.norm(b - a, axis=1) < 1e-9 * width
        a[tiny], b[tiny] = np.nan, np.nan
    return (
        _nulls(rnd(np.stack([a[:, 0], b[:, 0]], axis=1))),
        _nulls(rnd(np.stack([a[:, 1], b[:, 1]], axis=1))),
    )


def _gc_paused(fn):
    """Run ``fn`` with the cyclic garbage collector paused. Building a figure allocates ~10⁵ small
    lists and dicts; each allocation burst otherwise triggers collections that walk every container
    the server keeps alive (cached figures included): measured 0.5 s of a 0.55 s ``race_view``.
    Nothing built here forms a cycle; the collector resumes (if it was on) when ``fn`` returns."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        paused = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if paused:
                gc.enable()

    return wrapper


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# race_figure's keyword arguments that only change the view: race_view draws them from RaceLayers
VIEW_OPTIONS = ("dimer_zoom", "arrows", "show_dimer", "show_arrows", "show_min_mode", "frame_ms")
# path_vertices' tolerance as a fraction of the window: the path so far stays within twice it of
# every recorded point (the chord into the exact tail adds one), ≈ 0.3 px on a 600 px plot
PATH_TOLERANCE = 2.5e-4


def _pieces(xs: list, ys: list) -> tuple[list[dict], list[str]]:
    """Per frame ``{"x": …, "y": …}`` and its JSON, encoded in one call (split at the frame
    boundaries: within one frame's dict no ``},{`` occurs, its values are flat sequences of numbers).

    The values are tuples: a tuple of numbers, and then a dict of such tuples, leave the cyclic
    garbage collector's lists once it has looked at them (tuples at any collection, dicts at a full
    one; lists never do). A race's cached frames were ≈ 50 000 tracked lists and dicts, which every
    full collection — holding the interpreter lock, every session and the health check waiting —
    walked again (12 new races: 230 389 tracked objects, 30 ms a full collection; now 20 890, 8 ms)."""
    dicts = [{"x": tuple(x), "y": tuple(y)} for x, y in zip(xs, ys)]
    pieces = _ENCODE(dicts)[2:-2].split("},{")
    if len(pieces) != len(dicts):  # cannot happen for flat lists; say so rather than send bad JSON
        raise AssertionError("frame JSON did not split into one piece per frame")
    return dicts, ["{" + p + "}" for p in pieces]


def _widen(trace: dict, factor: float) -> dict:
    """``style_figure``'s projector rule on a plain scatter dict: a set line width times ``factor``."""
    line = trace.get("line")
    if factor != 1.0 and trace.get("type", "scatter") == "scatter" and line and line.get("width"):
        trace = {**trace, "line": {**line, "width": line["width"] * factor}}
    return trace


class RaceFigure(go.Figure):
    """The race figure as :func:`race_view` builds it: its plain dict and that dict's JSON, composed
    from the cached pieces of a :class:`RaceLayers`. ``to_dict`` returns the dict (shared: read it,
    do not change it), ``wire_json`` its JSON (``pages.plotly_wire`` sends it as it is). ``data`` and
    ``layout`` of the ``go.Figure`` are empty: validate with :func:`race_figure` when you need them."""

    def __init__(self, plain: dict, wire: str):  # no go.Figure state: nothing to validate or copy
        self._plain, self._wire = plain, wire

    def __repr__(self) -> str:
        return f"RaceFigure({len(self._plain['data'])} traces, {len(self._plain['frames'])} frames)"

    def to_dict(self) -> dict:
        return self._plain

    def to_plotly_json(self) -> dict:
        return self._plain

    def wire_json(self) -> str:
        return self._wire

    def memory_bytes(self) -> int:
        """What this figure adds to its :class:`RaceLayers` (whose per-frame dicts it shares): its
        JSON and its frame lists (for a cache's byte budget, without walking ~10⁵ objects)."""
        frames = self._plain["frames"]
        return len(self._wire) + 49 + (120 + 8 * len(frames[0]["data"]) if frames else 0) * len(frames)

    def freeze(self) -> RaceFigure:
        return self


@dataclass
class RaceLayers:
    """What the race figure draws whatever the view options (:data:`VIEW_OPTIONS`): the static traces
    and the layout as plain dicts, the frames' steps and rows, the path and the current point per
    frame (dicts and their JSON). :func:`race_view` adds the view's moving parts, computed once per
    option value and remembered here (a dimer zoom or an arrow mode drawn before costs a lookup)."""

    surface: object
    traces: list
    static: list[dict]
    static_json: str
    layout: dict
    layout_json: str  # the layout's JSON without updatemenus (race_view adds them: Play's speed)
    frame_steps: ndarray
    rows: ndarray
    nest: list[float]
    large: bool
    widen: float
    rnd: object
    width: float
    parts: dict  # (kind, run index, option) -> (per-frame dicts, per-frame JSON)

    def part(self, kind: str, i: int, option=None) -> tuple[list[dict], list[str]]:
        key = (kind, i, option)
        if key not in self.parts:
            zoom, scale = (option, None) if kind == "dimer" else (1.0, option)
            xs, ys = _moving_xy(kind, self.traces[i], self.rows[i], self.rnd, zoom, scale, self.width)
            self.parts[key] = _pieces(xs, ys)
        return self.parts[key]

    def memory_bytes(self) -> int:
        """An estimate for a cache's byte budget (walking ~10⁵ small objects would cost ~0.5 s): the
        traces' arrays, and per JSON character of the static traces, the layout and the per-frame
        parts about 5 bytes of Python objects (a float's 24 bytes plus its list slot per ~7 chars)."""
        arrays = sum(v.nbytes for t in self.traces for v in vars(t).values() if isinstance(v, np.ndarray))
        text = len(self.static_json) + len(self.layout_json)
        text += sum(len(p) for value in self.parts.values() if isinstance(value, tuple) for p in value[1])
        return arrays + 6 * text

    def arrow_scale(self) -> float:
        if "scale" not in self.parts:
            self.parts["scale"] = arrow_scale(self.surface, self.traces)
        return self.parts["scale"]


PAUSE = {"frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}


def _geometry(large: bool, compact: bool, height: int) -> tuple:
    """Pixels of the race figure's parts: ``(font, axis_px, buttons_px, slider_px, margin,
    plot_height, beside)``."""
    beside = large and not compact
    # below the plot, in pixels: tick labels and axis title, the Play/Pause row, then the slider
    font = FONT_SIZE[bool(large)]
    axis_px, buttons_px, slider_px = 2.2 * font + 20, 1.9 * font + 14, 2.5 * font + 40
    # projector (large, not a phone): Play/Pause sit beside the slider, right of the plot under the
    # legend, so the plot keeps the height a 1280×720 window has (tests/test_browser.py measures it)
    if beside:  # no x-axis title under the ticks (x is the horizontal axis of a map), no button row
        axis_px, buttons_px, slider_px = 1.3 * font + 14, 0.0, 4.2 * font + 8
    # autoexpand off: every part (legend, colour bar, buttons, slider, tick labels) fits the margin
    # as computed. With it on, plotly.js measures those parts after the first draw, finds them pushing
    # the margin by a few pixels and draws the whole figure a second time (≈ 0.9 s of a visitor's
    # browser on the 2-core machine; benchmarks/app.py). Phones keep it: their legend wraps into rows
    # above the plot, as many as the width needs.
    margin = {
        "l": 60,
        "r": 300 if large else 240,
        "b": int(axis_px + buttons_px + slider_px),
        "t": 24,
        "autoexpand": compact,
    }
    if beside:  # the legend's font is smaller there (below): a narrower column leaves the plot square
        # t: room for the top tick label; l: the y tick labels ("−3", ≈ 30 px at 22 px) and the y title
        # beside them (plotly.js keeps a title inside a fixed margin: at l = 50 it sat on the "0")
        margin.update(t=14, l=72, r=235)
    plot_height = height - margin["b"] - margin["t"]
    return font, axis_px, buttons_px, slider_px, margin, plot_height, beside


def full_height_width(surface, large: bool = False, height: int | None = None, fraction: float = 1.0) -> int:
    """The race figure's narrowest width (px) at which its plot takes the whole height it is given
    (``fraction`` of it): the plot as wide as the window's aspect asks at that height, plus the
    margins (the legend's column on a projector). Narrower, the plot keeps the window's aspect and
    loses height. Desktop and projector (a phone's margins grow with its legend's rows)."""
    height = height or (RACE_HEIGHT_LARGE if large else RACE_HEIGHT)
    _, _, _, _, margin, plot_height, _ = _geometry(large, False, height)
    (x0, x1), (y0, y1) = surface.bounds
    return math.ceil(fraction * plot_height * (x1 - x0) / (y1 - y0)) + margin["l"] + margin["r"]


STACK_FRACTION = {True: 1.0, False: 0.5}  # projector: a full-height plot; desktop: at least half of it


def stack_below_width(surface, share: float, large: bool = False) -> int:
    """The row width (px) below which the Surfaces page puts the race story under the race figure
    instead of beside it. Beside it, the figure has ``share`` of the row less Streamlit's gap
    (24 px); narrower than this, its plot would draw at less than ``STACK_FRACTION`` of its full
    height (on a desktop: a 1 024-px window with the sidebar open drew a 115-px plot beside a
    240-px legend; under the story's column the figure takes the row's whole width)."""
    needed = full_height_width(surface, large=large, fraction=STACK_FRACTION[bool(large)])
    return math.ceil((needed + 24) / share)


@functools.lru_cache(maxsize=32)
def _styled_layout(bounds: tuple, uirevision: str, large: bool, compact: bool, height: int) -> dict:
    """The race figure's layout but its background image and slider, styled (``style_figure``): the
    same for every race on one window and size, built through Plotly once (≈ 0.2 s). Shared: copy
    before adding keys, never change its nested values."""
    x0, x1, y0, y1 = bounds
    pause = PAUSE
    font, axis_px, _, _, margin, plot_height, beside = _geometry(large, compact, height)
    fig = go.Figure()
    fig.update_layout(
        height=height,
        xaxis={
            "range": [x0, x1],
            "title": {"text": "x"},
            "constrain": "domain",
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "range": [y0, y1],
            "title": {"text": "y"},
            "scaleanchor": "x",
            "scaleratio": 1,
            "constrain": "domain",
            "showgrid": False,
            "zeroline": False,
        },
        hovermode="closest",
        uirevision=uirevision,
        # the legend beside the plot (top right, the colour bar below it): the plot keeps the height
        legend={
            "orientation": "v",
            "x": 1.02,
            "y": 1.0,
            "xanchor": "left",
            "yanchor": "top",
            "tracegroupgap": 0,  # one group per run: the default 10 px gaps would push rows off the plot
        },
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 1.02 if beside else 0.0,
                "y": -(axis_px + 0.5 * font) / plot_height if beside else -axis_px / plot_height,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"r": 8, "t": 0},
                "showactive": False,
                "font": {"size": FONT_SIZE[bool(large)] - (3 if beside else 0)},
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, {}]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
    )
    if compact or beside:  # no fixed width: the chart takes its container's (the plot stays square)
        if compact:  # the legend wraps into rows above the plot (auto margin); the plot keeps the width
            margin.update(l=40, r=8)
            fig.update_layout(
                legend={"orientation": "h", "x": 0.0, "y": 1.0, "xanchor": "left", "yanchor": "bottom"}
            )
        fig.update_layout(margin=margin)
    else:
        plot_width = int(plot_height * (x1 - x0) / (y1 - y0)) + margin["l"] + margin["r"]
        fig.update_layout(margin=margin, width=max(plot_width, 560))
    style_figure(fig, large)
    if beside or compact:  # compact: the legend's rows above shrink the plot below the height its
        # paper-relative buttons were placed for, and Play/Pause came up over the "x" title
        fig.update_xaxes(title_text=None)
    if large:  # projector: the legend (a dozen entries) beside a short plot, without the colour bar
        fig.update_layout(legend={"font": {"size": FONT_SIZE[True] - 7}})
    return fig.to_dict()["layout"]


def _background_memo(surface, grid: SurfaceGrid) -> dict:
    """:func:`background_image` of ``grid``, encoded once per grid and window (a PNG of 400×400)."""
    memo = grid.__dict__.setdefault("_images", {})
    key = tuple(map(tuple, surface.bounds))
    if key not in memo:
        memo[key] = background_image(surface, grid)
    return memo[key]


# How far (a fraction of the plot's width or height) from an edge a marker's label turns inward: a
# label ("diverged", ≈ 70 px at projector size) centred on a marker at the edge of a ≥ 500 px plot
# would lose its outer half to the plot's clip.
EDGE_FRACTION = 0.15


def text_inside(x: float, y: float, bounds: tuple[float, float, float, float]) -> str:
    """Plotly ``textposition`` for a label on the marker at (x, y) that keeps it inside the plot
    ``bounds`` (x0, x1, y0, y1): above and centred in the middle, turned toward the plot near an edge
    (at the left edge it starts at the marker, at the top it hangs below it)."""
    x0, x1, y0, y1 = bounds
    fx, fy = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
    vertical = "bottom" if fy > 1 - EDGE_FRACTION else "top"
    horizontal = "right" if fx < EDGE_FRACTION else "left" if fx > 1 - EDGE_FRACTION else "center"
    return f"{vertical} {horizontal}"


@_gc_paused
def race_layers(
    surface,
    traces: Sequence,
    *,
    start: Sequence[float] | None = None,
    grid: SurfaceGrid | None = None,
    clickable: bool = True,
    max_frames: int = MAX_FRAMES,
    max_path_vertices: int = MAX_PATH_VERTICES,
    significant: int = SIGNIFICANT,
    large: bool = False,
    height: int | None = None,
    compact: bool = False,
) -> RaceLayers:
    """The view-independent layers of :func:`race_figure` (its arguments but :data:`VIEW_OPTIONS`)."""
    height = height or (RACE_HEIGHT_LARGE if large else RACE_HEIGHT)
    grid = grid or surface_grid(surface)
    rnd = _rounder(surface, significant)
    width = window_scale(surface)
    (x0, x1), (y0, y1) = surface.bounds
    lw, ms = line_width(large), marker_size(large)
    traces = list(traces)

    sub = np.unique(np.linspace(0, len(grid.xs) - 1, COLORBAR_GRID).round().astype(np.int64))
    static: list[dict] = [
        {
            "type": "contour",
            "x": _nulls(rnd(grid.xs[sub])),
            "y": _nulls(rnd(grid.ys[sub])),
            "z": _nulls(np.round(grid.display[np.ix_(sub, sub)], 6)),
            "colorscale": CONTOUR_COLORS,
            "ncontours": N_CONTOURS,
            "opacity": 0,
            "line": {"width": 0},
            "colorbar": {  # horizontal, under the legend (right of the plot)
                "title": {"text": grid.label, "side": "top"},
                "orientation": "h",
                "thickness": 10,
                "len": 0.32,
                "lenmode": "fraction",
                "x": 1.03,
                "xanchor": "left",
                "y": 0.0,
                "yanchor": "bottom",
            },
            "showscale": not (compact or large),
            "hoverinfo": "skip",
            "name": "surface",
        }
    ]
    if clickable:
        cx, cy = np.linspace(x0, x1, CLICK_GRID), np.linspace(y0, y1, CLICK_GRID)
        gx, gy = np.meshgrid(cx, cy)
        static.append(
            {
                "type": "scatter",
                "x": _nulls(rnd(gx.ravel())),
                "y": _nulls(rnd(gy.ravel())),
                "mode": "markers",
                "name": "click to start",
                "marker": {"size": max(4.0, 600 / CLICK_GRID), "opacity": 0, "color": "#000000"},
                "selected": {"marker": {"opacity": 0}},
                "unselected": {"marker": {"opacity": 0}},
                "hovertemplate": "start here: (%{x:.3g}, %{y:.3g})<extra></extra>",
                "showlegend": False,
            }
        )
    for kind in ("min", "saddle", "degenerate", "max"):
        points = [p for p in surface.stationary_points if p.kind == kind]
        if points:
            static.append(
                {
                    "type": "scatter",
                    "x": [float(p.xy[0]) for p in points],
                    "y": [float(p.xy[1]) for p in points],
                    "mode": "markers",
                    "name": kind,
                    "legendrank": LEGEND_RANKS["points"],
                    "hoverinfo": "skip",
                    "marker": {
                        "symbol": KIND_SYMBOLS[kind],
                        "size": ms + 2,
                        "color": KIND_COLORS[kind],
                        "line": {"width": 1, "color": "#ffffff"},
                    },
                }
            )
    if start is not None:
        static.append(
            {
                "type": "scatter",
                "x": [float(start[0])],
                "y": [float(start[1])],
                "mode": "markers",
                "name": "start",
                "legendrank": LEGEND_RANKS["points"],
                "hoverinfo": "skip",
                "marker": {
                    "symbol": "circle",
                    "size": ms + 4,
                    "color": "#ffffff",
                    "line": {"width": 2, "color": "#000000"},
                },
            }
        )
    # Paths that run along the same line (GD and DEO-escape up a saddle's unstable direction) must all
    # stay visible: the earlier a run in the list, the wider its lines and markers, so overlapping
    # paths show as nested stripes instead of hiding one another.
    nest = [1.0 + 0.6 * (len(traces) - 1 - i) for i in range(len(traces))]
    for i, t in enumerate(traces):
        if t.position_2d is None or not len(t):
            continue
        idx = np.unique(np.linspace(0, len(t) - 1, min(len(t), MAX_CURVE_POINTS)).round().astype(np.int64))
        static.append(
            {
                "type": "scatter",
                "x": _nulls(rnd(t.position_2d[idx, 0])),
                "y": _nulls(rnd(t.position_2d[idx, 1])),
                "mode": "lines",
                "line": {
                    "color": rgba(color_for(t.key), 0.35),
                    "width": lw * 0.6 * nest[i],
                    "dash": dash_for(t.key),
                },
                "hoverinfo": "skip",
                "showlegend": False,
                "legendgroup": t.key,
            }
        )
        if t.status == "diverged":  # where the run left: marked on the path (the table says when)
            x_end, y_end = (float(v) for v in t.position_2d[-1])
            x_mark, y_mark = min(max(x_end, x0), x1), min(max(y_end, y0), y1)
            static.append(
                {
                    "type": "scatter",
                    "x": [x_mark],
                    "y": [y_mark],
                    "mode": "markers+text",
                    "text": ["diverged"],
                    "textposition": text_inside(x_mark, y_mark, (x0, x1, y0, y1)),
                    "textfont": {"color": color_for(t.key)},
                    "marker": {
                        "symbol": "x-thin",
                        "size": ms * 2,
                        "line": {"width": 3, "color": color_for(t.key)},
                    },
                    "name": f"{t.label} diverged",
                    "hovertemplate": f"{t.label} diverged at step {t.stop_step}<extra></extra>",
                    "showlegend": False,
                    "legendgroup": t.key,
                }
            )
    widen = LINE_WIDTH[True] / LINE_WIDTH[False] if large else 1.0
    static = [_widen(trace, widen) for trace in static]

    frame_steps, rows = frame_rows(traces, max_frames)
    names = [str(int(step)) for step in frame_steps]
    parts: dict = {}
    for i, t in enumerate(traces):
        if t.position_2d is None or not len(t):
            empty = [[]] * len(names)
            parts[("path", i, None)] = parts[("point", i, None)] = _pieces(empty, empty)
            continue
        xs, ys = _path_xy(t, rows[i], rnd, PATH_TOLERANCE * width, max_path_vertices)
        parts[("path", i, None)] = _pieces(xs, ys)
        parts[("point", i, None)] = _pieces(*_moving_xy("point", t, rows[i], rnd, 1.0, None, width))

    _, axis_px, buttons_px, _, _, plot_height, _ = _geometry(large, compact, height)
    slider = {
        "active": 0,
        "x": 0.0,
        "len": 1.0,
        "y": -(axis_px + buttons_px) / plot_height,
        "yanchor": "top",
        "pad": {"t": 0, "b": 0},
        "currentvalue": {"prefix": "step ", "visible": True, "xanchor": "left"},
        "transition": {"duration": 0},
        "font": {"size": FONT_SIZE[bool(large)] - 2},
        "steps": [
            {"label": name, "method": "animate", "args": [[name], PAUSE]}
            for name in slider_stops(names, PHONE_SLIDER_STOPS if compact else MAX_SLIDER_STOPS)
        ],
    }
    layout = dict(
        _styled_layout((x0, x1, y0, y1), getattr(surface, "key", "surface"), large, compact, height)
    )
    layout["images"] = [_background_memo(surface, grid)]
    layout["sliders"] = [slider]
    return RaceLayers(
        surface=surface,
        traces=traces,
        static=static,
        static_json=_ENCODE(static),
        layout=layout,
        layout_json=_ENCODE({k: v for k, v in layout.items() if k != "updatemenus"}),
        frame_steps=frame_steps,
        rows=rows,
        nest=nest,
        large=large,
        widen=widen,
        rnd=rnd,
        width=width,
        parts=parts,
    )


@_gc_paused
def race_view(
    layers: RaceLayers,
    *,
    dimer_zoom: float | None = None,
    arrows: str = "direction",
    show_dimer: bool = True,
    show_arrows: bool = True,
    show_min_mode: bool = True,
    frame_ms: float = BASE_FRAME_MS,
) -> RaceFigure:
    """The race figure of ``layers`` with these view options (see :func:`race_figure`), composed
    from the layers' cached pieces: no Plotly validation, the JSON assembled from pieces encoded
    once per option value (a few ms for a value never drawn before)."""
    if arrows not in ("direction", "scale"):
        raise ValueError(f"arrows must be 'direction' or 'scale', got {arrows!r}")
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
    traces, large = layers.traces, layers.large
    lw, ms = line_width(large), marker_size(large)
    zoom = race_dimer_zoom(layers.surface, traces, dimer_zoom)
    scale = layers.arrow_scale() if arrows == "scale" else None

    # One legend entry per kind of drawing (a student toggles all dimers, all −g arrows, ... at once):
    # a grey legend-only trace names the kind, the runs' own traces join its legend group.
    has_dimer = show_dimer and any(t.direction is not None for t in traces)
    has_g = show_arrows and any(t.grad is not None for t in traces)
    has_mod = has_g and any(t.direction is not None and t.modified_grad is not None for t in traces)
    has_vmin = show_min_mode and any(t.exact_v_min is not None for t in traces)
    key_style = {"color": "#555555"}
    data: list[dict] = []
    for shown, group, name, line, marker in (
        (
            has_dimer,
            "dimer",
            f"dimer (ΔR ×{zoom:g})",
            {"width": lw * 1.6},
            {"symbol": "circle-open", "size": ms},
        ),
        (has_g, "g", "−g (gradient)", {"width": lw * 0.8}, None),
        (has_mod, "g_mod", "−g_mod (DEO's step)", {"width": lw * 1.4, "dash": "dash"}, None),
        (has_mod, "removed", "removed part", {"width": lw * 0.8, "dash": "dot"}, None),
        (has_vmin, "vmin", "exact min mode", {"width": max(1.0, lw * 0.5), "dash": "dot"}, None),
    ):
        if shown:
            data.append(
                {
                    "type": "scatter",
                    "x": [None],
                    "y": [None],
                    "mode": "lines+markers" if marker else "lines",
                    "name": name,
                    "legendgroup": group,
                    "showlegend": True,
                    "legendrank": LEGEND_RANKS["drawings"],
                    "hoverinfo": "skip",
                    "line": {**key_style, **line} if group != "vmin" else {**line, "color": EXACT_COLOR},
                    "marker": {**key_style, **(marker or {})},
                }
            )

    moving: list[tuple[dict, tuple]] = []  # (trace style, layers.part arguments) in data order
    nest = layers.nest
    for i, t in enumerate(traces):
        color = color_for(t.key)
        common = {"type": "scatter", "legendgroup": t.key, "hoverinfo": "skip", "showlegend": False}
        path_style = {"color": color, "width": lw * nest[i], "dash": dash_for(t.key)}
        moving.append(
            (
                {
                    **common,
                    "mode": "lines",
                    "name": legend_label(t.label),
                    "line": path_style,
                    "showlegend": True,
                    "legendrank": LEGEND_RANKS["runs"] + i,
                },
                ("path", i, None),
            )
        )
        point = {
            "color": color,
            "size": ms * (0.6 + 0.4 * nest[i]),
            "line": {"width": 1.5, "color": "#ffffff"},
        }
        moving.append(
            ({**common, "mode": "markers", "name": f"{t.label} now", "marker": point}, ("point", i, None))
        )
        if show_dimer and t.direction is not None:
            style = {
                **common,
                "mode": "lines+markers",
                "name": f"{t.label} dimer",
                "line": {"color": color, "width": lw * 1.6},
                "marker": {"size": ms, "color": color, "symbol": "circle-open"},
                "legendgroup": "dimer",
            }
            moving.append((style, ("dimer", i, zoom)))
        if show_arrows and t.grad is not None:
            head = {"symbol": "arrow", "angleref": "previous", "size": [0, ms * 1.2], "color": color}
            arrow = {**common, "mode": "lines+markers", "marker": head}
            moving.append(
                (
                    {
                        **arrow,
                        "name": f"{t.label} −g",
                        "line": {"color": color, "width": lw * 0.8},
                        "legendgroup": "g",
                    },
                    ("g", i, scale),
                )
            )
            if t.direction is not None and t.modified_grad is not None:
                moving.append(
                    (
                        {
                            **arrow,
                            "name": f"{t.label} −g_mod",
                            "line": {"color": color, "width": lw * 1.4, "dash": "dash"},
                            "legendgroup": "g_mod",
                        },
                        ("g_mod", i, scale),
                    )
                )
                moving.append(
                    (
                        {
                            **arrow,
                            "name": f"{t.label} removed",
                            "line": {"color": color, "width": lw * 0.8, "dash": "dot"},
                            "legendgroup": "removed",
                        },
                        ("removed", i, scale),
                    )
                )
        if show_min_mode and t.exact_v_min is not None:
            style = {
                **common,
                "mode": "lines",
                "name": "exact min mode",
                "line": {"color": EXACT_COLOR, "width": max(1.0, lw * 0.5), "dash": "dot"},
                "legendgroup": "vmin",
            }
            moving.append((style, ("vmin", i, None)))

    parts = [layers.part(*args) for _, args in moving]
    dict_lists, piece_lists = [p[0] for p in parts], [p[1] for p in parts]
    first_moving = len(layers.static) + len(data)
    indices = list(range(first_moving, first_moving + len(moving)))
    for (style, _), (dicts, _) in zip(moving, parts):
        data.append(_widen({**style, **(dicts[0] if dicts else {})}, layers.widen))
    names = [str(int(step)) for step in layers.frame_steps]
    rows = zip(*dict_lists) if dict_lists else ([] for _ in names)
    # tuples, as in _pieces: frames of tuples and untracked dicts leave the garbage collector's lists
    moving_indices = tuple(indices)
    frames = [{"name": name, "traces": moving_indices, "data": row} for name, row in zip(names, rows)]
    play = {
        "frame": {"duration": float(frame_ms), "redraw": False},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    layout = dict(layers.layout)
    menu = layout["updatemenus"][0]
    play_button, pause_button = menu["buttons"]
    layout["updatemenus"] = [{**menu, "buttons": [{**play_button, "args": [None, play]}, pause_button]}]
    plain = {"data": [*layers.static, *data], "layout": layout, "frames": frames}

    head = ',"traces":' + _ENCODE(indices) + ',"data":['
    rows = zip(*piece_lists) if piece_lists else ([] for _ in names)
    frame_json = ",".join(
        '{"name":"' + name + '"' + head + ",".join(row) + "]}" for name, row in zip(names, rows)
    )
    data_json = layers.static_json[:-1] + ("," + _ENCODE(data)[1:] if data else "]")
    menus_json = ',"updatemenus":' + _ENCODE(layout["updatemenus"]) + "}"
    wire = '{"data":' + data_json + ',"layout":' + layers.layout_json[:-1] + menus_json
    wire += ',"frames":[' + frame_json + "]}"
    return RaceFigure(plain, wire)


def race_figure(
    surface,
    traces: Sequence,
    *,
    start: Sequence[float] | None = None,
    grid: SurfaceGrid | None = None,
    dimer_zoom: float | None = None,
    arrows: str = "direction",
    show_dimer: bool = True,
    show_arrows: bool = True,
    show_min_mode: bool = True,
    clickable: bool = True,
    frame_ms: float = BASE_FRAME_MS,
    max_frames: int = MAX_FRAMES,
    max_path_vertices: int = MAX_PATH_VERTICES,
    significant: int = SIGNIFICANT,
    large: bool = False,
    height: int | None = None,
    compact: bool = False,
) -> AnimatedFigure:
    """The animated race on the contour of ``surface``, as a validated ``go.Figure`` (the page draws
    the same figure without validation: :func:`race_layers` then :func:`race_view`).

    Static traces: ``data[0]`` the contour; then (``clickable``) an invisible grid of points that
    makes a click select a start; the stationary points; the start; each run's full path, faint.
    Moving traces per run i: the path so far (the rows :func:`path_vertices` needs, at most
    ``max_path_vertices``, the last ``PATH_TAIL`` rows exact), the current point θ, and when recorded
    the dimer segment θ ± k·ΔR·N (k = ``dimer_zoom``, default :func:`auto_dimer_zoom`; the k used:
    :func:`race_dimer_zoom`), the arrows −g, −g_mod and the removed part g_mod − g (drawn from the
    tip of −g_mod to the tip of −g, so the three close a triangle), and the exact min mode v_min as a
    thin line through θ.

    ``arrows``: ``"direction"`` — −g has a fixed length (``ARROW_FRACTION`` of the window) and
    g_mod, the removed part are drawn to the same scale as g in that frame; ``"scale"`` — every
    arrow is −s·vector with one s for the whole figure (:func:`arrow_scale`). ``frame_ms``: duration
    of one frame when playing.

    ``compact`` (phones): no fixed width (the chart takes its container's), the legend in rows above
    the plot instead of a 240 px column beside it, no colour bar.
    """
    layers = race_layers(
        surface,
        traces,
        start=start,
        grid=grid,
        clickable=clickable,
        max_frames=max_frames,
        max_path_vertices=max_path_vertices,
        significant=significant,
        large=large,
        height=height,
        compact=compact,
    )
    view = race_view(
        layers,
        dimer_zoom=dimer_zoom,
        arrows=arrows,
        show_dimer=show_dimer,
        show_arrows=show_arrows,
        show_min_mode=show_min_mode,
        frame_ms=frame_ms,
    )
    # a private copy in lists, as Plotly's own to_dict gives (the view shares the layers' frame
    # tuples): its JSON read back, the same numbers (JSON writes a float's shortest repr)
    plain = json.loads(view.wire_json())
    layout = {k: v for k, v in plain["layout"].items() if k != "sliders"}
    return AnimatedFigure(
        data=plain["data"],
        layout=layout,
        plain_frames=plain["frames"],
        plain_layout={"sliders": plain["layout"]["sliders"]},
    )


def surface3d_figure(
    surface, traces: Sequence, grid: SurfaceGrid | None = None, large: bool = False, height: int = 560
) -> go.Figure:
    """A static 3-D view: the surface (displayed values of :func:`display_values`) and every full
    path lifted onto it (z from each trace's loss, same transform). No frames: Streamlit resets 3-D
    cameras on animation. The legend (the runs' short names) sits in rows above the scene: beside
    it, a control's long name left a phone's scene ≈ 60 px wide."""
    grid = grid or surface_grid(surface, SURFACE_GRID)
    finite = grid.display[np.isfinite(grid.display)]
    levels = {"show": True, "color": "#7d8a98", "width": 1}
    if finite.size and finite.max() > finite.min():  # twelve levels: plotly.js spaces them by the
        # z axis's ticks, which are few since they are kept from running together
        low, high = float(finite.min()), float(finite.max())
        levels.update(start=low, end=high, size=(high - low) / 12)
    data: list[go.BaseTraceType] = [
        go.Surface(
            x=grid.xs,
            y=grid.ys,
            z=grid.display,
            colorscale=CONTOUR_COLORS,
            showscale=False,
            opacity=0.92,
            name="surface",
            hoverinfo="skip",
            contours={"z": levels},
        )
    ]
    lift = (
        0.01 * float(np.ptp(grid.display[np.isfinite(grid.display)]))
        if np.isfinite(grid.display).any()
        else 0
    )
    for t in traces:
        if t.position_2d is None or not len(t):
            continue
        idx = np.unique(np.linspace(0, len(t) - 1, min(len(t), MAX_CURVE_POINTS)).round().astype(np.int64))
        z, _ = display_values(t.loss[idx], grid.mode, grid.z_min, grid.clip)
        keep = np.isfinite(z)
        data.append(
            go.Scatter3d(
                x=t.position_2d[idx, 0][keep],
                y=t.position_2d[idx, 1][keep],
                z=z[keep] + lift,
                mode="lines",
                name=legend_label(t.label),
                line={"color": color_for(t.key), "width": line_width(large) * 2},
            )
        )
    (x0, x1), (y0, y1) = surface.bounds
    ticks = {"size": 15 if large else 12}
    fig = FrozenFigure(data=data)  # a go.Figure until frozen (pages.common caches it frozen)
    fig.update_layout(
        height=height,
        scene={  # few, smaller ticks: the scene draws labels larger nearer the eye and projector
            # fonts ran the default ones into each other
            "xaxis": {"range": [x0, x1], "title": {"text": "x"}, "nticks": 5, "tickfont": ticks},
            "yaxis": {"range": [y0, y1], "title": {"text": "y"}, "nticks": 5, "tickfont": ticks},
            "zaxis": {"title": {"text": grid.label}, "nticks": 4, "tickfont": ticks},
            "aspectmode": "manual",
            "aspectratio": {"x": 1, "y": (y1 - y0) / (x1 - x0), "z": 0.6},
        },
        uirevision=getattr(surface, "key", "surface"),
    )
    style_figure(fig, large)
    return fig.update_layout(legend=LEGEND_ABOVE)


def _subsample(n: int) -> ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(np.int64))


def _clean(values: ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _drawn_losses(traces: Sequence, x: str, log: bool) -> tuple[float, tuple | None, str, list]:
    """The loss curves as :func:`loss_figure` draws them: ``(shift, window, y title, rows)``, a row
    ``(trace, rows kept, x, y)`` per run with rows (subsampled; y shifted for a log axis and clipped
    to the window)."""
    if x not in ("steps", "grad_evals"):
        raise ValueError(f"x must be 'steps' or 'grad_evals', got {x!r}")
    traces = list(traces)
    finite = [t.loss[np.isfinite(t.loss)] for t in traces]
    low = min((float(f.min()) for f in finite if f.size), default=0.0)
    shift = 0.0
    ytitle = "loss"
    if log and low <= 0:
        shift = -low + 1e-12 * max(1.0, abs(low))
        ytitle = "loss − min over runs"
    window = loss_window(traces, shift, log)
    drawn = []
    for t in traces:
        if not len(t):
            continue
        idx = _subsample(len(t))
        y = t.loss[idx] + shift
        drawn.append((t, idx, getattr(t, x)[idx], np.clip(y, *window) if window is not None else y))
    return shift, window, ytitle, drawn


def _overlap_curves(drawn: list, log: bool) -> list[Drawn]:
    curves = []
    for t, idx, xs, y in drawn:
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log10(np.where(y > 0, y, np.nan)) if log else np.asarray(y, dtype=np.float64)
        value = np.asarray(t.loss[idx], dtype=np.float64)
        curves.append(Drawn(legend_label(t.label), np.asarray(xs, dtype=np.float64), shown, value,
                            dash_for(t.key) == "solid"))  # fmt: skip
    return curves


def hidden_loss_curves(traces: Sequence, x: str = "steps", log: bool = False) -> list[tuple[str, str, float]]:
    """The runs whose loss curve a later run's covers on :func:`loss_figure`'s chart, as
    ``(hidden, on top, largest |Δ loss|)`` (:func:`viz.overlap.hidden_curves` of the drawn curves)."""
    _, _, _, drawn = _drawn_losses(traces, x, log)
    return hidden_curves(_overlap_curves(drawn, log))


def loss_figure(
    traces: Sequence,
    x: str = "steps",
    log: bool = False,
    large: bool = False,
    height: int | None = None,
    compact: bool = False,
    plateau: float | None = None,
    covered: list[tuple[str, str, float]] | None = None,
) -> go.Figure:
    """Loss of every run against ``x`` = ``"steps"`` or ``"grad_evals"`` (cumulative gradient
    evaluations of the algorithm). ``log``: a log y axis; when some loss is ≤ 0 the curves show
    ``loss − min + δ`` (min over all runs, δ = 1e-12·max(1, |min|)). The escape step is marked ×.
    The legend sits in rows above the plot, below the toolbar where the view shows one (a desktop's:
    not ``large`` nor ``compact``, a phone's; ``viz.palette.legend_above``); ``height`` defaults to
    380 px (500 with ``large``, whose legend takes more rows), plus that room for the toolbar.

    A diverged run never rescales the plot: the y range is that of the other runs (and the diverged
    runs' starts), a diverged curve is clipped to it, and its last point is marked ▲/▼ "diverged"
    with the value it reached in the hover text. A run that a later one covers
    (:func:`hidden_loss_curves`) is drawn ``viz.overlap.BAND_SCALE`` times as wide: a band around
    the one on top; ``covered``: that list (:func:`hidden_loss_curves`) when the caller has it already
    for a caption.

    ``plateau`` (a network problem's known plateau loss, ``NETWORKS.md``) is drawn as a dotted line
    labelled at its right end. The Surfaces and the Networks pages both draw their loss charts here."""
    shift, window, ytitle, drawn = _drawn_losses(traces, x, log)
    if covered is None:
        covered = hidden_curves(_overlap_curves(drawn, log))
    hidden = {name for name, _, _ in covered}
    bounds = plot_bounds([xs for _, _, xs, _ in drawn], [y for _, _, _, y in drawn], window, log)
    fig = FrozenFigure()  # a go.Figure until frozen (pages.common caches it frozen)
    for t, _, xs, y in drawn:
        width = line_width(large) * (BAND_SCALE if legend_label(t.label) in hidden else 1.0)
        fig.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=_clean(y),
                mode="lines",
                name=legend_label(t.label),
                legendgroup=t.key,
                line={"color": color_for(t.key), "width": width, "dash": dash_for(t.key)},
            )
        )
        if t.escape_step is not None:
            r = int(np.clip(np.searchsorted(t.steps, t.escape_step), 0, len(t) - 1))
            fig.add_trace(
                go.Scatter(
                    x=[float(getattr(t, x)[r])],
                    y=_clean(t.loss[r : r + 1] + shift),
                    mode="markers",
                    name=f"{t.label} escaped",
                    legendgroup=t.key,
                    showlegend=False,
                    marker={"symbol": "x", "size": marker_size(large) + 2, "color": color_for(t.key)},
                    hovertemplate=f"{t.label} escaped at step {t.escape_step}<extra></extra>",
                )
            )
        if t.status == "diverged":
            reached = float(t.loss[-1]) + shift
            up = not math.isfinite(reached) or window is None or reached >= window[1]
            shown = reached if window is None else float(np.clip(reached, *window))
            y_mark = shown if math.isfinite(shown) else (window or (0, 0))[1]
            x_mark = float(getattr(t, x)[-1])
            fig.add_trace(
                go.Scatter(
                    x=[x_mark],
                    y=_clean(np.array([y_mark])),
                    mode="markers+text",
                    text=["diverged"],
                    # inside the plot: at its top edge the label hangs below the marker, near its left
                    # edge it starts at the marker (left of an early divergence it was cut off)
                    textposition=label_inside(x_mark, y_mark, bounds, log),
                    textfont={"color": color_for(t.key)},
                    name=f"{t.label} diverged",
                    legendgroup=t.key,
                    showlegend=False,
                    marker={
                        "symbol": "triangle-up" if up else "triangle-down",
                        "size": marker_size(large) + 4,
                        "color": color_for(t.key),
                    },
                    hovertemplate=f"{t.label} diverged at step {t.stop_step}: loss {reached - shift:.4g}"
                    "<extra></extra>",
                )
            )
    if plateau is not None and (plateau + shift > 0 or not log):
        level = plateau + shift
        fig.add_hline(y=level, line={"color": EXACT_COLOR, "dash": "dot", "width": 1.5})
        # its label as an annotation of its own: add_hline's label on a log axis is placed at
        # 10^plateau (log units; "plateau 7" at 10⁷, which stretched the axis and squashed the curves)
        fig.add_annotation(
            x=1, xref="x domain", xanchor="right", y=math.log10(level) if log else level, yref="y",
            yanchor="bottom", text=f"plateau {plateau:.4g}", showarrow=False, font={"color": EXACT_COLOR},
        )  # fmt: skip
    yaxis: dict = {"title": {"text": ytitle}, "type": "log" if log else "linear"}
    if window is not None:
        yaxis["range"] = [math.log10(v) for v in window] if log else list(window)
    height, legend = legend_above(height or (500 if large else 380), large, compact)
    fig.update_layout(
        height=height,
        xaxis={"title": {"text": "step" if x == "steps" else "gradient evaluations"}},
        yaxis=yaxis,
        hovermode="x unified",
    )
    style_figure(fig, large)
    # in rows above: the plot keeps a half-width column's width
    fig.update_layout(legend=legend)
    return fig


def plot_bounds(
    xs: Sequence, ys: Sequence, window: tuple | None, log: bool
) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` of a loss chart's plot whose curves are ``xs``, ``ys`` (one array per
    run): the curves' x extent, and the y ``window`` (:func:`loss_window`) or else the curves' finite
    y extent (Plotly's autorange); on a log axis y in decades. For :func:`label_inside`."""
    x_ends = [float(v) for x in xs if len(x) for v in (x[0], x[-1])]
    if window is not None:
        y_all = list(window)
    else:
        y_all = [float(v) for y in ys for v in y if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if log:
        y_all = [math.log10(v) for v in y_all if v > 0]
    x0, x1 = (min(x_ends), max(x_ends)) if x_ends else (0.0, 1.0)
    y0, y1 = (min(y_all), max(y_all)) if y_all else (0.0, 1.0)
    return x0, x1 if x1 > x0 else x0 + 1.0, y0, y1 if y1 > y0 else y0 + 1.0


def label_inside(x: float, y: float, bounds: tuple[float, float, float, float], log: bool) -> str:
    """:func:`text_inside` for a label at data point (x, y) of a plot with :func:`plot_bounds`
    (``log``: y on a log axis, compared in decades)."""
    return text_inside(x, math.log10(y) if log and y > 0 else y, bounds)


def loss_window(traces: Sequence, shift: float, log: bool) -> tuple[float, float] | None:
    """The y range of the loss plot when some run diverged (else ``None``: Plotly's autorange): the
    finite losses of the runs that did not diverge and the first loss of those that did, padded by
    5 % (on the log axis, in decades)."""
    if not any(t.status == "diverged" and len(t) for t in traces):
        return None
    parts = [t.loss[:1] if t.status == "diverged" else t.loss for t in traces if len(t)]
    values = np.concatenate(parts) + shift
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not values.size:
        return None
    lo, hi = float(values.min()), float(values.max())
    if log:
        a, b = math.log10(lo), math.log10(hi)
        pad = 0.05 * max(b - a, 1.0)
        return 10 ** (a - pad), 10 ** (b + pad)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    return lo - pad, hi + pad


def curvature_figure(
    traces: Sequence, large: bool = False, height: int | None = None, compact: bool = False
) -> go.Figure:
    """Top: the dimer curvature estimate C (solid) and the exact λ_min along the same run (dotted),
    per dimer run. Bottom: |cos∠(N, v_min)| (1 = N is the exact min mode). The legend sits in rows
    above the plot with the runs' short names, as on the Networks page (beside it, "C (DEO-escape —
    control: random fixed direction)" left a phone's plot ≈ 60 px wide). ``height`` defaults to
    460 px (500 in projector fonts) plus the legend's rows (three entries a row, two in projector
    fonts, one on a phone, ``compact``), so the |cos| panel keeps ≈ 150 px, and on a desktop the
    room the legend leaves the toolbar (``viz.palette.legend_above``)."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45],
        figure=FrozenFigure(),  # a go.Figure until frozen (pages.common caches it frozen)
    )  # fmt: skip
    dimer = [t for t in traces if len(t) and np.isfinite(t.curvature).any()]
    if height is None:
        legend_rows = math.ceil(2 * len(dimer) / (1 if compact else 2 if large else 3))
        height = (500 if large else 460) + legend_rows * (40 if large else 28)
    for t in dimer:
        idx = _subsample(len(t))
        color, steps = color_for(t.key), t.steps[idx].tolist()
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=_clean(t.curvature[idx]),
                mode="lines",
                name=f"{legend_label(t.label)}: dimer C",
                legendgroup=t.key,
                line={"color": color, "width": line_width(large)},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=_clean(t.exact_lambda_min[idx]),
                mode="lines",
                name=f"{legend_label(t.label)}: exact λ_min",
                legendgroup=t.key,
                line={"color": color, "width": line_width(large) * 0.7, "dash": "dot"},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=_clean(t.cos_to_vmin[idx]),
                mode="lines",
                name=f"{legend_label(t.label)}: |cos|",
                legendgroup=t.key,
                showlegend=False,
                line={"color": color, "width": line_width(large)},
            ),
            row=2,
            col=1,
        )
    if not dimer:
        fig.add_annotation(
            text="No dimer optimizer in the race: nothing estimates curvature.",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
        )
    fig.update_yaxes(title_text="curvature", row=1, col=1)
    fig.update_yaxes(title_text="|cos(N, v_min)|", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    height, legend = legend_above(height, large, compact)
    fig.update_layout(height=height, hovermode="x unified")
    style_figure(fig, large)
    return fig.update_layout(legend=legend)


def _escape_evals(t) -> int | None:
    if t.escape_step is None or not len(t):
        return None
    r = int(np.clip(np.searchsorted(t.steps, t.escape_step), 0, len(t) - 1))
    return int(t.grad_evals[r])


def fate_line(t, budget: int | None = None, has_escape: bool = True) -> str:
    """What happened to one run, in one short phrase of the shared vocabulary (``deo.trace.FATES``):
    "escaped at step 101 (104 gradients)", "stuck: no escape in 300 steps", "diverged at step 4",
    "escaped at step 29, converged at step 40"; on a surface without an escape criterion
    (``has_escape`` False: no saddle listed) "out of steps: 300 steps without converging"."""
    from deo.trace import fate

    word = fate(t.status, has_escape)
    last = int(t.steps[-1]) if len(t) else 0
    escaped = f"escaped at step {t.escape_step}" if t.escape_step is not None else ""
    if word == "escaped":
        evals = _escape_evals(t)
        return f"{escaped} ({evals} gradients)" if evals is not None and evals != t.escape_step else escaped
    if word == "converged":
        return f"{escaped}, converged at step {last}" if escaped else f"converged at step {last}"
    if word == "diverged" and not len(t):
        return "undefined at its start: f or its gradient is not finite there"
    if word == "diverged":
        diverged = f"diverged at step {t.stop_step}"
        return f"{escaped}, then {diverged}" if escaped else diverged
    used = budget if budget is not None else last
    if word == "out of steps":
        return f"out of steps: {used} steps without converging"
    return f"stuck: no escape in {used} steps"


def results_rows(traces: Sequence, has_escape: bool = True) -> list[dict]:
    """One row per run for the results table: label, colour, status (``deo.trace.FATES``: escaped,
    converged, stuck, out of steps, diverged), final loss, steps run, the step and the gradient
    evaluations at which it escaped (None = never), total gradient evaluations, the step at which it
    diverged. ``has_escape``: the surface has an escape criterion (a run that used its whole budget
    reads "stuck" then, else "out of steps")."""
    from deo.trace import fate

    out = []
    for t in traces:
        escape_evals = _escape_evals(t)
        final_loss = float(t.loss[-1]) if len(t) else math.nan
        out.append(
            {
                "optimizer": t.label,
                "key": t.key,
                "color": color_for(t.key),
                "status": fate(t.status, has_escape),
                "final loss": final_loss if math.isfinite(final_loss) else None,
                "steps run": int(t.steps[-1]) if len(t) else 0,
                "escape step": t.escape_step,
                "grad evals to escape": escape_evals,
                "grad evals": int(t.grad_evals[-1]) if len(t) else 0,
                "diverged at step": t.stop_step if t.status == "diverged" else None,
            }
        )
    return out


NONFINITE_PROBE_GRID = 41  # points per side where divergence_notes looks for a non-finite region


def has_nonfinite_region(surface, n: int = NONFINITE_PROBE_GRID) -> bool:
    """Whether f or its gradient is NaN / infinite somewhere on an ``n × n`` grid of the window
    (``log(x)``, ``1/x``, ``sqrt(y)`` typed as formulas; the catalogue surfaces are finite)."""
    (x0, x1), (y0, y1) = surface.bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    xy = torch.tensor(np.stack([gx, gy], axis=-1), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        z = surface.f(xy)
        (g,) = torch.autograd.grad(torch.where(torch.isfinite(z), z, 0.0).sum(), xy)
    return not (bool(torch.isfinite(z).all()) and bool(torch.isfinite(g).all()))


def divergence_notes(traces: Sequence, surface) -> list[str]:
    """One sentence per diverged run: where it stopped and why (the region where f is not finite,
    or an iterate that ran away: too large a learning rate)."""
    notes = []
    undefined = None
    for t in traces:
        if t.status != "diverged":
            continue
        if undefined is None:
            undefined = has_nonfinite_region(surface)
        where = ""
        positions = t.position_2d if t.position_2d is not None else t.position
        if positions is not None and len(positions):
            x, y = (float(v) for v in positions[-1][:2])
            where = f" after ({x:.4g}, {y:.4g})"
        if undefined:
            why = (
                "f or its gradient is not finite at its next point (this formula is undefined there: "
                "the log or square root of a negative number, a division by zero, or an overflow)"
            )
        else:
            why = "its iterate ran away (beyond 10× the window, or overflowed): lower its learning rate"
        notes.append(f"{t.label} stopped at step {t.stop_step}{where}: {why}.")
    return notes
