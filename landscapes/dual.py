"""f and ∇f of a surface at one point, by forward-mode differentiation in Python floats.

A race on a 2-D surface asks for ``f(θ)`` and ``∇f(θ)`` at one point per closure call. Autograd
builds and walks a graph for that (≈ 100 µs of fixed cost for a 2-vector); here the surface's own
``f`` is run once on :class:`Dual` numbers ``a + a_x ε_x + a_y ε_y`` (ε² = 0), which carry the
partial derivatives through every operation by the chain rule. Same formula, same derivative rules
as autograd, so the result equals autograd's to float rounding (``tests/test_surface_gradients.py``
checks every surface and every formula function against it).

``f`` must use only ``xy[..., 0]``, ``xy[..., 1]``, Python arithmetic (``+ − * / **``) and the torch
functions in :data:`FUNCTIONS` (plus ``zeros_like``, ``full_like``, ``broadcast_to``); any other
torch call raises :class:`UnsupportedOperation` (a TypeError). Where a value or a derivative is not a
finite real number (log of a negative number, √0's slope, overflow) :func:`value_and_grad` returns
``None``, so the caller can ask autograd, which defines what happens there (NaN, ±inf).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class UnsupportedOperation(TypeError):
    """``f`` called a torch function that :class:`Dual` does not differentiate."""


class Dual:
    """``value + dx·ε_x + dy·ε_y``: a number with its partial derivatives along x and y."""

    __slots__ = ("dx", "dy", "value")

    def __init__(self, value: float, dx: float = 0.0, dy: float = 0.0):
        self.value, self.dx, self.dy = value, dx, dy

    def __add__(self, other):
        if isinstance(other, Dual):
            return Dual(self.value + other.value, self.dx + other.dx, self.dy + other.dy)
        return Dual(self.value + other, self.dx, self.dy)

    def __radd__(self, other):
        return Dual(other + self.value, self.dx, self.dy)

    def __sub__(self, other):
        if isinstance(other, Dual):
            return Dual(self.value - other.value, self.dx - other.dx, self.dy - other.dy)
        return Dual(self.value - other, self.dx, self.dy)

    def __rsub__(self, other):
        return Dual(other - self.value, -self.dx, -self.dy)

    def __neg__(self):
        return Dual(-self.value, -self.dx, -self.dy)

    def __pos__(self):
        return self

    def __mul__(self, other):
        if isinstance(other, Dual):
            a, b = self.value, other.value
            return Dual(a * b, self.dx * b + a * other.dx, self.dy * b + a * other.dy)
        return Dual(self.value * other, self.dx * other, self.dy * other)

    def __rmul__(self, other):
        return Dual(other * self.value, other * self.dx, other * self.dy)

    def __truediv__(self, other):
        if isinstance(other, Dual):
            a, b = self.value, other.value
            ratio = a / (b * b)  # d(a/b) = da/b − a·db/b²
            return Dual(a / b, self.dx / b - ratio * other.dx, self.dy / b - ratio * other.dy)
        return Dual(self.value / other, self.dx / other, self.dy / other)

    def __rtruediv__(self, other):
        b = self.value
        slope = -other / (b * b)
        return Dual(other / b, slope * self.dx, slope * self.dy)

    def __pow__(self, other):
        if isinstance(other, Dual):  # a**b: b·a^(b−1)·da + a^b·log(a)·db
            a, b = self.value, other.value
            value = _real(a**b)
            left, right = b * _real(a ** (b - 1)), value * math.log(a)
            return Dual(value, left * self.dx + right * other.dx, left * self.dy + right * other.dy)
        a, c = self.value, other
        if c == 0:
            return Dual(1.0)  # as torch: x**0 = 1 with slope 0 everywhere
        if c == 2:
            value, slope = a * a, 2 * a
        elif c == 3:
            value, slope = a * a * a, 3 * (a * a)
        else:
            value, slope = _real(a**c), c * _real(a ** (c - 1))
        return Dual(value, slope * self.dx, slope * self.dy)

    def __rpow__(self, other):  # c**b: c^b·log(c)·db
        value = _real(other**self.value)
        slope = value * math.log(other)
        return Dual(value, slope * self.dx, slope * self.dy)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FUNCTIONS and len(args) == 1 and not kwargs:
            return FUNCTIONS[func](args[0])
        if func in (torch.zeros_like, torch.full_like):
            fill = 0.0 if func is torch.zeros_like else float(args[1])
            return Dual(fill)
        if func is torch.broadcast_to and tuple(args[1]) == ():
            return args[0]
        raise UnsupportedOperation(f"forward-mode derivatives do not cover torch.{func.__name__}")

    shape = ()


def _real(value) -> float:
    """Python's ``**`` gives a complex number for a negative base and a fractional exponent (torch:
    NaN): refused here, so the caller falls back to autograd."""
    if isinstance(value, complex):
        raise ValueError("complex power")
    return value


def _unary(value: Callable[[float], float], slope: Callable[[float, float], float]) -> Callable:
    """A torch function on a Dual: ``slope(a, value(a))`` is its derivative at a."""

    def apply(a):
        if not isinstance(a, Dual):
            return value(a)
        out = value(a.value)
        s = slope(a.value, out)
        return Dual(out, s * a.dx, s * a.dy)

    return apply


def _sign(a: float) -> float:
    return 1.0 if a > 0 else -1.0 if a < 0 else 0.0  # torch's abs: slope 0 at 0


FUNCTIONS = {
    torch.exp: _unary(math.exp, lambda a, out: out),
    torch.log: _unary(math.log, lambda a, out: 1 / a),
    torch.sqrt: _unary(math.sqrt, lambda a, out: 0.5 / out),
    torch.sin: _unary(math.sin, lambda a, out: math.cos(a)),
    torch.cos: _unary(math.cos, lambda a, out: -math.sin(a)),
    torch.tan: _unary(math.tan, lambda a, out: 1 + out * out),
    torch.tanh: _unary(math.tanh, lambda a, out: 1 - out * out),
    torch.sinh: _unary(math.sinh, lambda a, out: math.cosh(a)),
    torch.cosh: _unary(math.cosh, lambda a, out: math.sinh(a)),
    torch.abs: _unary(abs, lambda a, out: _sign(a)),
}


class _Point:
    """``xy`` of shape (2,) for ``f``: ``xy[..., 0]`` and ``xy[..., 1]`` are the Dual x and y."""

    __slots__ = ("xy",)
    shape = (2,)

    def __init__(self, x: float, y: float):
        self.xy = (Dual(x, 1.0, 0.0), Dual(y, 0.0, 1.0))

    def __getitem__(self, index):
        if isinstance(index, tuple) and len(index) == 2 and index[0] is Ellipsis and index[1] in (0, 1):
            return self.xy[index[1]]
        raise UnsupportedOperation(f"a surface point is read as xy[..., 0] and xy[..., 1], got xy[{index!r}]")


def value_and_grad(f: Callable, x: float, y: float) -> tuple[float, float, float] | None:
    """``(f(x, y), ∂f/∂x, ∂f/∂y)`` as float64 Python floats, or None where one of them is not a finite
    real number (ask autograd there). Raises :class:`UnsupportedOperation` when ``f`` uses a torch
    function outside :data:`FUNCTIONS`."""
    try:
        out = f(_Point(x, y))
    except (ArithmeticError, ValueError):
        return None  # ZeroDivisionError, OverflowError, math domain errors, complex powers
    if not isinstance(out, Dual):  # a constant formula part would be a float; f uses x or y
        raise UnsupportedOperation(f"f returned {type(out).__name__}, not a Dual")
    value, dx, dy = out.value, out.dx, out.dy
    if isinstance(value, complex) or not (math.isfinite(value) and math.isfinite(dx) and math.isfinite(dy)):
        return None
    return float(value), float(dx), float(dy)
