"""The catalogue of analytic 2-D surfaces (``SURFACES.md``) with their stationary points.

Every surface ``f`` maps positions ``xy`` of shape ``(..., 2)`` to values of shape ``(...)``; it is
written in torch, keeps the input's dtype (float32 or float64) and is differentiable wherever
autograd visits (Ackley's cone tip is smoothed with ``√(u + 1e−12)``).

Each listed :class:`StationaryPoint` has ∇f = 0 at ``xy`` (positions are exact or rounded to six
decimals), its ``kind`` from the signs of the Hessian eigenvalues, the value ``f(xy)`` and the
eigenvalues (ascending) where the Hessian exists. The separable surfaces (Rastrigin, Styblinski–Tang)
list every stationary point inside their window: products of the 1-D roots found by Newton's method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscapes import autodiff

KINDS = ("min", "saddle", "max", "degenerate")
COLOR_SCALES = ("linear", "log", "clip")
MAX_WINDOW_COORDINATE = 1e6  # a view window lies inside [−1e6, 1e6]² (the formula parser's number bound)
MIN_WINDOW_WIDTH = 1e-6  # and is at least this wide in x and in y


def check_window(bounds) -> tuple[tuple[float, float], tuple[float, float]]:
    """``bounds`` ((xmin, xmax), (ymin, ymax)) as floats, or a ValueError saying what is wrong: each
    side finite, inside ±``MAX_WINDOW_COORDINATE``, min < max by at least ``MIN_WINDOW_WIDTH``
    (±1e308 would put the default start and the grid at ±inf)."""
    try:
        (x0, x1), (y0, y1) = ((float(a), float(b)) for a, b in bounds)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bounds must be ((xmin, xmax), (ymin, ymax)), got {bounds!r}") from error
    for axis, lo, hi in (("x", x0, x1), ("y", y0, y1)):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"the {axis} window must be finite, got [{lo}, {hi}]")
        if max(abs(lo), abs(hi)) > MAX_WINDOW_COORDINATE:
            raise ValueError(
                f"the {axis} window [{lo:g}, {hi:g}] reaches beyond ±{MAX_WINDOW_COORDINATE:g} (the limit)"
            )
        if not hi - lo >= MIN_WINDOW_WIDTH:
            raise ValueError(
                f"the {axis} window needs min < max, at least {MIN_WINDOW_WIDTH:g} apart, "
                f"got [{lo:g}, {hi:g}]"
            )
    return (x0, x1), (y0, y1)


@dataclass(frozen=True)
class StationaryPoint:
    """A point with ∇f = 0: position, kind ("min" | "saddle" | "max" | "degenerate"), f value and
    the Hessian eigenvalues in ascending order (``None`` where f is not twice differentiable)."""

    xy: tuple[float, float]
    kind: str
    value: float
    eigenvalues: tuple[float, float] | None


ADAM_BASES = ("adam", "adamw")


@dataclass(frozen=True)
class RaceDefaults:
    """What the app's default race on a surface uses, chosen so that none of the default presets
    (GD, Adam, DEO (paper), DEO-escape) diverges from ``start`` within ``steps``
    (``tests/test_surface_defaults.py`` runs every surface's default race).

    ``start``: the default start (``None``: the surface's ``starts[0]``); ``lr``: the learning rate
    of the gradient-descent-based presets (GD, momentum, PGD, DEO-escape, the dimer saddle search);
    ``adam_lr``: that of the Adam-based ones (Adam, AdamW, DEO (paper), the published code).
    """

    start: tuple[float, float] | None = None
    lr: float = 0.01
    adam_lr: float = 0.01
    steps: int = 300

    def hyperparams(self, preset_key: str, preset_defaults: dict) -> dict:
        """The learning rate this surface gives preset ``preset_key`` (defaults ``preset_defaults``),
        as an override dict: ``{"lr": ...}`` (``{}`` for a preset without a learning rate)."""
        if "lr" not in preset_defaults:
            return {}
        adam = preset_key in ADAM_BASES or preset_defaults.get("base") in ADAM_BASES
        return {"lr": self.adam_lr if adam else self.lr}


@dataclass(frozen=True)
class Surface:
    """One analytic landscape f: (..., 2) → (...), with what a page needs to show and race on it.

    ``bounds`` is the view window ((xmin, xmax), (ymin, ymax)); ``starts`` are default starting points
    (the first is the default); ``color_scale`` is "linear", "log" (plot log f) or "clip" (cap the colour
    scale at ``clip``). ``escape_loss``: a run started near the nearest listed saddle counts as having
    escaped once f ≤ escape_loss (the criterion of the reference escape table in ``DEO.md``);
    ``None`` leaves the race to its distance criterion. ``race``: the app's default race
    (:class:`RaceDefaults`: start, learning rates, steps).
    """

    key: str
    name: str
    f: Callable[[Tensor], Tensor]
    formula: str
    latex: str
    bounds: tuple[tuple[float, float], tuple[float, float]]
    starts: tuple[tuple[float, float], ...]
    stationary_points: tuple[StationaryPoint, ...]
    note: str
    color_scale: str
    clip: float | None = None
    escape_loss: float | None = None
    race: RaceDefaults = RaceDefaults()

    def __post_init__(self) -> None:
        check_window(self.bounds)

    @property
    def default_start(self) -> tuple[float, float]:
        """The app's default start: ``race.start``, else ``starts[0]``."""
        return self.race.start if self.race.start is not None else self.starts[0]

    def value_and_grad(self, x: float, y: float) -> tuple[float, float, float] | None:
        """``(f, ∂f/∂x, ∂f/∂y)`` at one point as Python floats, by reverse-mode differentiation of
        ``f`` on a tape of floats (:mod:`landscapes.autodiff`: autograd's formulas in autograd's order,
        no tensor graph); None where one of them is not finite (autograd defines those points)."""
        return autodiff.value_and_grad(self.f, x, y)


def f_on_grid(f: Callable[[Tensor], Tensor], window, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs (n,), ys (n,), z (n, n))``: ``f`` on an ``n × n`` grid over ``window`` ((xmin, xmax),
    (ymin, ymax)), endpoints included, in float64, one batched call; rows along y (``z[j, i] =
    f(xs[i], ys[j])``, as a contour plot takes it). No gradient is taken."""
    if n < 2:
        raise ValueError(f"grid size must be >= 2, got {n}")
    (x0, x1), (y0, y1) = window
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    gx, gy = np.meshgrid(xs, ys)
    with torch.no_grad():
        z = f(torch.tensor(np.stack([gx, gy], axis=-1), dtype=torch.float64)).numpy()
    return xs, ys, z


def _xy(p: Tensor) -> tuple[Tensor, Tensor]:
    return p[..., 0], p[..., 1]


def _saddle(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return x**2 - y**2


def _monkey_saddle(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return x**3 - 3 * x * y**2


def _saddle_plateau(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return x**2 - y**2 + y**4 / 4


def _degenerate_saddle(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return x**2 + y**3


def _double_well(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (x**2 - 1) ** 2 + y**2


def _rosenbrock(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _himmelblau(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _beale(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _six_hump_camel(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def _three_hump_camel(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return 2 * x**2 - 1.05 * x**4 + x**6 / 6 + x * y + y**2


MULLER_BROWN = {
    "A": (-200.0, -100.0, -170.0, 15.0),
    "a": (-1.0, -1.0, -6.5, 0.7),
    "b": (0.0, 0.0, 11.0, 0.6),
    "c": (-10.0, -10.0, -6.5, 0.7),
    "x0": (1.0, 0.0, -0.5, -1.0),
    "y0": (0.0, 0.5, 1.5, 1.0),
}


def _muller_brown(p: Tensor) -> Tensor:
    x, y = _xy(p)
    m = MULLER_BROWN
    total = torch.zeros_like(x)
    for k in range(4):
        dx, dy = x - m["x0"][k], y - m["y0"][k]
        total = total + m["A"][k] * torch.exp(m["a"][k] * dx**2 + m["b"][k] * dx * dy + m["c"][k] * dy**2)
    return total


def _rastrigin_1d(t: float) -> float:
    """h(t) = t² − 10 cos 2πt, so that rastrigin(x, y) = 20 + h(x) + h(y)."""
    return t**2 - 10 * math.cos(2 * math.pi * t)


def _rastrigin(p: Tensor) -> Tensor:
    x, y = _xy(p)
    two_pi = 2 * math.pi
    return 20 + x**2 - 10 * torch.cos(two_pi * x) + y**2 - 10 * torch.cos(two_pi * y)


def _ackley(p: Tensor) -> Tensor:
    x, y = _xy(p)
    two_pi = 2 * math.pi
    radius = torch.sqrt(0.5 * (x**2 + y**2) + 1e-12)
    return (
        -20 * torch.exp(-0.2 * radius) - torch.exp(0.5 * (torch.cos(two_pi * x) + torch.cos(two_pi * y)))
    ) + (math.e + 20)


def _goldstein_price(p: Tensor) -> Tensor:
    x, y = _xy(p)
    first = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)
    second = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
    return first * second


def _styblinski_tang_1d(t: float) -> float:
    """h(t) = ½(t⁴ − 16t² + 5t), so that styblinski_tang(x, y) = h(x) + h(y)."""
    return 0.5 * (t**4 - 16 * t**2 + 5 * t)


def _styblinski_tang(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return 0.5 * (x**4 - 16 * x**2 + 5 * x + y**4 - 16 * y**2 + 5 * y)


def _mexican_hat(p: Tensor) -> Tensor:
    x, y = _xy(p)
    return (x**2 + y**2 - 1) ** 2


def _newton_root(dh: Callable[[float], float], d2h: Callable[[float], float], t: float) -> float:
    """A root of h' near ``t`` by Newton's method (h'' ≠ 0 there), to float64 precision."""
    for _ in range(100):
        step = dh(t) / d2h(t)
        t -= step
        if abs(step) < 1e-15 * max(1.0, abs(t)):
            break
    return t


def _separable_points(
    h: Callable[[float], float],
    d2h: Callable[[float], float],
    roots: list[float],
    offset: float = 0.0,
) -> tuple[StationaryPoint, ...]:
    """All stationary points of f(x, y) = offset + h(x) + h(y) from the roots of h'.

    The Hessian is diag(h''(x), h''(y)), so the kind follows from the two signs.
    """
    points = []
    for x in roots:
        for y in roots:
            eig = tuple(sorted((d2h(x), d2h(y))))
            kind = "min" if eig[0] > 0 else "max" if eig[1] < 0 else "saddle"
            points.append(StationaryPoint((x, y), kind, offset + h(x) + h(y), eig))
    return tuple(points)


def _rastrigin_points() -> tuple[StationaryPoint, ...]:
    """h'(t) = 2t + 20π sin 2πt vanishes once near every integer and half-integer (|t| < 10π);
    inside [−5.12, 5.12] that is 11 + 10 roots, hence 441 stationary points."""
    dh = lambda t: 2 * t + 20 * math.pi * math.sin(2 * math.pi * t)  # noqa: E731
    d2h = lambda t: 2 + 40 * math.pi**2 * math.cos(2 * math.pi * t)  # noqa: E731
    guesses = [k / 2 for k in range(-10, 11)]
    roots = [_newton_root(dh, d2h, t) for t in guesses]
    return _separable_points(_rastrigin_1d, d2h, roots, offset=20.0)


def _styblinski_tang_points() -> tuple[StationaryPoint, ...]:
    """h'(t) = 2t³ − 16t + 2.5 has three real roots (≈ −2.9035, 0.1567, 2.7468): 9 stationary points."""
    dh = lambda t: 2 * t**3 - 16 * t + 2.5  # noqa: E731
    d2h = lambda t: 6 * t**2 - 16  # noqa: E731
    roots = [_newton_root(dh, d2h, t) for t in (-2.9, 0.16, 2.75)]
    return _separable_points(_styblinski_tang_1d, d2h, roots)


def _p(x: float, y: float, kind: str, value: float, eig: tuple[float, float] | None) -> StationaryPoint:
    return StationaryPoint((float(x), float(y)), kind, float(value), eig)


_ROOT2 = math.sqrt(2.0)

_SURFACE_LIST = [
    Surface(
        key="saddle",
        name="Saddle x² − y²",
        f=_saddle,
        formula="x² − y²",
        latex=r"x^2 - y^2",
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        starts=((1.0, 1e-3), (1.0, 1e-6)),
        stationary_points=(_p(0, 0, "saddle", 0, (-2.0, 2.0)),),
        note="The textbook strict saddle (unbounded below): GD escapes along y only as fast as "
        "|y| grows like (1+2η)^t, so the time depends on the offset.",
        color_scale="linear",
        escape_loss=-1.0,
        race=RaceDefaults(steps=220),  # DEO-escape escapes at 177, then leaves the window (≈250)
    ),
    Surface(
        key="monkey_saddle",
        name="Monkey saddle",
        f=_monkey_saddle,
        formula="x³ − 3xy²",
        latex=r"x^3 - 3 x y^2",
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        starts=((0.5, 1e-3),),
        stationary_points=(_p(0, 0, "degenerate", 0, (0.0, 0.0)),),
        note="The Hessian vanishes at the origin (no negative curvature to find) yet three valleys "
        "descend from it: curvature-based escape has nothing to measure here.",
        color_scale="linear",
        escape_loss=-1.0,
        race=RaceDefaults(steps=275),  # DEO-escape escapes at 270, then leaves the window (≈289)
    ),
    Surface(
        key="saddle_plateau",
        name="Saddle with minima x² − y² + y⁴/4",
        f=_saddle_plateau,
        formula="x² − y² + y⁴/4",
        latex=r"x^2 - y^2 + \frac{y^4}{4}",
        bounds=((-3.0, 3.0), (-3.0, 3.0)),
        starts=((1.0, 1e-6), (1.0, 1e-3)),
        stationary_points=(
            _p(0, 0, "saddle", 0, (-2.0, 2.0)),
            _p(0, _ROOT2, "min", -1, (2.0, 4.0)),
            _p(0, -_ROOT2, "min", -1, (2.0, 4.0)),
        ),
        note="A strict saddle between two minima at (0, ±√2): escaping means choosing a side.",
        color_scale="linear",
        # GD escapes late (≈270), Adam first (≈100), DEO-escape in between (≈150), DEO (paper) never
        race=RaceDefaults(start=(1.0, 0.01)),
        escape_loss=-0.9,
    ),
    Surface(
        key="degenerate_saddle",
        name="Degenerate saddle x² + y³",
        f=_degenerate_saddle,
        formula="x² + y³",
        latex=r"x^2 + y^3",
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        starts=((1.0, 0.5), (1.0, -0.05)),
        stationary_points=(_p(0, 0, "degenerate", 0, (0.0, 2.0)),),
        note="Zero curvature along y and not a minimum: from y > 0 GD creeps in like y_t ≈ 1/(3ηt) "
        "and looks converged.",
        color_scale="linear",
    ),
    Surface(
        key="double_well",
        name="Double well",
        f=_double_well,
        formula="(x² − 1)² + y²",
        latex=r"(x^2 - 1)^2 + y^2",
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        starts=((1e-3, 1.0), (0.0, 1.5)),
        stationary_points=(
            _p(1, 0, "min", 0, (2.0, 8.0)),
            _p(-1, 0, "min", 0, (2.0, 8.0)),
            _p(0, 0, "saddle", 1, (-4.0, 2.0)),
        ),
        note="Two minima joined over a saddle at (0, 0): a start on x = 0 rolls straight into the "
        "saddle and stays there without noise.",
        color_scale="linear",
    ),
    Surface(
        key="rosenbrock",
        name="Rosenbrock",
        f=_rosenbrock,
        formula="(1 − x)² + 100(y − x²)²",
        latex=r"(1 - x)^2 + 100\,(y - x^2)^2",
        bounds=((-2.0, 2.0), (-1.0, 3.0)),
        starts=((-2.0, 2.0), (-1.2, 1.0)),
        stationary_points=(_p(1, 1, "min", 0, (0.3994, 1001.6)),),
        note="No saddle, one long curved valley: the condition number ≈ 2500 at the minimum slows "
        "every first-order method.",
        color_scale="linear",
        race=RaceDefaults(lr=2e-4),  # ‖H‖ ≈ 4000 at the start: GD needs η < 2/4000
    ),
    Surface(
        key="himmelblau",
        name="Himmelblau",
        f=_himmelblau,
        formula="(x² + y − 11)² + (x + y² − 7)²",
        latex=r"(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        starts=((0.09, 2.9), (-0.27, -0.92)),
        stationary_points=(
            _p(3, 2, "min", 0, (25.72, 82.28)),
            _p(-2.805118, 3.131313, "min", 0, (64.84, 80.55)),
            _p(-3.779310, -3.283186, "min", 0, (70.71, 133.79)),
            _p(3.584428, -1.848127, "min", 0, (28.69, 105.42)),
            _p(3.385154, 0.073852, "saddle", 13.3119, (-14.14, 97.55)),
            _p(0.086678, 2.884255, "saddle", 67.7192, (-31.71, 75.51)),
            _p(-3.073026, -0.081353, "saddle", 104.0152, (-39.65, 72.44)),
            _p(-0.127961, -1.953715, "saddle", 178.3372, (-50.61, 20.28)),
            _p(-0.270845, -0.923039, "max", 181.6165, (-45.61, -16.07)),
        ),
        note="Four equal minima, four saddles and one maximum: which basin a run ends in depends on "
        "how it leaves the saddle.",
        color_scale="linear",
    ),
    Surface(
        key="beale",
        name="Beale",
        f=_beale,
        formula="(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        latex=r"(1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2",
        bounds=((-4.5, 4.5), (-4.5, 4.5)),
        starts=((1e-3, 1.0), (0.1, -2.6)),
        stationary_points=(
            _p(3, 0.5, "min", 0, (0.3015, 48.98)),
            _p(0, 1, "saddle", 14.2031, (-27.75, 27.75)),
            _p(0.100538, -2.644514, "saddle", 9.8645, (-0.781, 867.75)),
        ),
        note="Flat valleys and sharp walls; the saddle at (0.10, −2.64) has curvature −0.78 against "
        "868: a tiny negative eigenvalue hidden by a huge positive one.",
        color_scale="linear",
    ),
    Surface(
        key="six_hump_camel",
        name="Six-hump camel",
        f=_six_hump_camel,
        formula="(4 − 2.1x² + x⁴/3)x² + xy + (−4 + 4y²)y²",
        latex=r"\bigl(4 - 2.1 x^2 + \frac{x^4}{3}\bigr) x^2 + x y + (-4 + 4 y^2)\, y^2",
        bounds=((-3.0, 3.0), (-2.0, 2.0)),
        starts=((1e-3, 1e-3), (-1.5, 1.0)),
        stationary_points=(
            _p(0.089842, -0.712656, "min", -1.031628, (7.682, 16.49)),
            _p(-0.089842, 0.712656, "min", -1.031628, (7.682, 16.49)),
            _p(1.703607, -0.796084, "min", -0.215464, (18.82, 22.70)),
            _p(-1.703607, 0.796084, "min", -0.215464, (18.82, 22.70)),
            _p(1.607105, 0.568651, "min", 2.104250, (7.122, 10.02)),
            _p(-1.607105, -0.568651, "min", 2.104250, (7.122, 10.02)),
            _p(0, 0, "saddle", 0, (-8.062, 8.062)),
            _p(1.109205, -0.768268, "saddle", 0.543719, (-7.903, 20.37)),
            _p(-1.109205, 0.768268, "saddle", 0.543719, (-7.903, 20.37)),
            _p(1.638068, 0.228674, "saddle", 2.229357, (-5.546, 12.44)),
            _p(-1.638068, -0.228674, "saddle", 2.229357, (-5.546, 12.44)),
            _p(1.296070, 0.605084, "saddle", 2.229471, (-6.177, 9.638)),
            _p(-1.296070, -0.605084, "saddle", 2.229471, (-6.177, 9.638)),
            _p(1.230230, 0.162335, "max", 2.496295, (-8.015, -5.954)),
            _p(-1.230230, -0.162335, "max", 2.496295, (-8.015, -5.954)),
        ),
        note="Two global minima on either side of a symmetric saddle at the origin, plus shallow "
        "local minima, saddles and maxima near the edges.",
        color_scale="linear",
    ),
    Surface(
        key="three_hump_camel",
        name="Three-hump camel",
        f=_three_hump_camel,
        formula="2x² − 1.05x⁴ + x⁶/6 + xy + y²",
        latex=r"2 x^2 - 1.05 x^4 + \frac{x^6}{6} + x y + y^2",
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        starts=((1.07, -0.53), (-1.08, 0.54)),
        stationary_points=(
            _p(0, 0, "min", 0, (1.586, 4.414)),
            _p(1.747552, -0.873776, "min", 0.298638, (1.902, 12.25)),
            _p(-1.747552, 0.873776, "min", 0.298638, (1.902, 12.25)),
            _p(1.070542, -0.535271, "saddle", 0.877362, (-4.04, 2.17)),
            _p(-1.070542, 0.535271, "saddle", 0.877362, (-4.04, 2.17)),
        ),
        note="A global minimum at the origin between two shallow side minima; the saddles decide "
        "which one a run near them falls into.",
        color_scale="linear",
    ),
    Surface(
        key="muller_brown",
        name="Müller–Brown",
        f=_muller_brown,
        formula="Σₖ Aₖ exp[aₖ(x−x0ₖ)² + bₖ(x−x0ₖ)(y−y0ₖ) + cₖ(y−y0ₖ)²], "
        "A=(−200,−100,−170,15), a=(−1,−1,−6.5,0.7), b=(0,0,11,0.6), c=(−10,−10,−6.5,0.7), "
        "x0=(1,0,−0.5,−1), y0=(0,0.5,1.5,1)",
        latex=r"\sum_{k=1}^{4} A_k \allowbreak \exp\!\bigl[a_k (x - x^0_k)^2 + b_k (x - x^0_k)(y - y^0_k)"
        r" + c_k (y - y^0_k)^2\bigr]",
        bounds=((-1.5, 1.2), (-0.2, 2.0)),
        starts=((0.22, 0.29), (-0.55, 1.44)),
        stationary_points=(
            _p(-0.558224, 1.441726, "min", -146.6995, (410.5, 4068.2)),
            _p(0.623499, 0.028038, "min", -108.1667, (543.8, 3005.4)),
            _p(-0.050011, 0.466694, "min", -80.7678, (221.0, 1479.2)),
            _p(0.212487, 0.292988, "saddle", -72.2489, (-735.25, 510.89)),
            _p(-0.822002, 0.624313, "saddle", -40.6648, (-750.86, 490.24)),
        ),
        note="The classic test surface of the dimer method: three minima joined by two transition "
        "states; with α = 2 the dimer climbs from a minimum to a saddle.",
        color_scale="clip",
        race=RaceDefaults(lr=1e-4),  # GD at 0.01 diverges at step 4 (curvatures ≈ 10³)
        clip=100.0,
    ),
    Surface(
        key="rastrigin",
        name="Rastrigin",
        f=_rastrigin,
        formula="20 + Σᵢ[xᵢ² − 10 cos 2πxᵢ]",
        latex=r"20 + \sum_{i} \bigl[x_i^2 - 10 \cos(2 \pi x_i)\bigr]",
        bounds=((-5.12, 5.12), (-5.12, 5.12)),
        starts=((0.51, 0.01), (3.3, -2.7)),
        stationary_points=_rastrigin_points(),
        note="A bowl covered in an egg box: 121 minima, 220 saddles and 100 maxima in the window, "
        "all with curvature of size ≈ 400.",
        color_scale="linear",
    ),
    Surface(
        key="ackley",
        name="Ackley",
        f=_ackley,
        formula="−20 exp(−0.2√(½(x² + y²))) − exp(½(cos 2πx + cos 2πy)) + e + 20",
        latex=r"-20\, e^{-0.2\, r} - e^{(\cos 2\pi x + \cos 2\pi y)/2} + e + 20,\allowbreak\ "
        r"r = \sqrt{(x^2 + y^2)/2}",
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        starts=((2.5, 2.5), (-3.2, 1.8)),
        stationary_points=(_p(0, 0, "min", 0, None),),
        note="Many local minima around a cone-shaped global minimum that is not differentiable "
        "(computed with √(u + 1e−12), so no NaN at the tip).",
        color_scale="linear",
    ),
    Surface(
        key="goldstein_price",
        name="Goldstein–Price",
        f=_goldstein_price,
        formula="[1 + (x+y+1)²(19 − 14x + 3x² − 14y + 6xy + 3y²)]"
        "·[30 + (2x−3y)²(18 − 32x + 12x² + 48y − 36xy + 27y²)]",
        latex=r"\bigl[1 + (x + y + 1)^2 (19 - 14x + 3x^2 - 14y + 6xy + 3y^2)\bigr]"
        r"\bigl[30 + (2x - 3y)^2 (18 - 32x + 12x^2 + 48y - 36xy + 27y^2)\bigr]",
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        starts=((-0.41, -0.6), (1.5, 1.5)),
        stationary_points=(
            _p(0, -1, "min", 3, (402.8, 965.2)),
            _p(-0.6, -0.4, "min", 30, (447.9, 4340.1)),
            _p(1.8, 0.2, "min", 84, (207.6, 26216.4)),
            _p(1.2, 0.8, "min", 840, (2061.4, 13202.6)),
            _p(-0.4, -0.6, "saddle", 35, (-300.68, 5028.7)),
            _p(1.2, -0.2, "saddle", 99, (-138.49, 30882.5)),
            _p(1.4, 0.6, "saddle", 980, (-8660.3, 2444.3)),
            _p(0.6, 0.4, "saddle", 990, (-1389.2, 15393.2)),
            _p(0.8, 0.2, "max", 1155, (-10372.5, -1603.5)),
        ),
        note="Values from 3 to 10⁶ (plot log f): the saddle at (−0.4, −0.6) sits just above the "
        "global minimum's basin.",
        color_scale="log",
        race=RaceDefaults(lr=1e-5),  # f up to 10⁶ in the window: GD at 0.01 diverges at step 3
    ),
    Surface(
        key="styblinski_tang",
        name="Styblinski–Tang",
        f=_styblinski_tang,
        formula="½ Σᵢ(xᵢ⁴ − 16xᵢ² + 5xᵢ)",
        latex=r"\frac{1}{2} \sum_i \bigl(x_i^4 - 16 x_i^2 + 5 x_i\bigr)",
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        starts=((0.17, -2.9), (4.5, 4.5)),
        stationary_points=_styblinski_tang_points(),
        note="Four minima on a grid, four saddles between them (curvature −15.85 along the crossing "
        "coordinate) and one maximum near (0.157, 0.157).",
        color_scale="linear",
    ),
    Surface(
        key="mexican_hat",
        name="Mexican hat",
        f=_mexican_hat,
        formula="(x² + y² − 1)²",
        latex=r"(x^2 + y^2 - 1)^2",
        bounds=((-1.5, 1.5), (-1.5, 1.5)),
        starts=((1e-3, 0.0), (0.5, 0.5)),
        stationary_points=(
            _p(0, 0, "max", 1, (-4.0, -4.0)),
            _p(1, 0, "min", 0, (0.0, 8.0)),
            _p(0, 1, "min", 0, (0.0, 8.0)),
            _p(-1, 0, "min", 0, (0.0, 8.0)),
            _p(0, -1, "min", 0, (0.0, 8.0)),
        ),
        note="A ring of minima at r = 1 (four of them listed) with an exactly flat direction along the "
        "ring: the minimum-curvature mode there has curvature 0, not a negative one.",
        color_scale="linear",
    ),
]

SURFACES: dict[str, Surface] = {s.key: s for s in _SURFACE_LIST}
