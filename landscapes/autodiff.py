"""f and ∇f of a surface at one point, by reverse-mode differentiation in Python floats.

A race on a 2-D surface asks for ``f(θ)`` and ``∇f(θ)`` at one point per closure call. Autograd
builds and walks a graph of tensors for that (≈ 100 µs of fixed cost for a 2-vector); here the
surface's own ``f`` is run once on :class:`Var` numbers that record a tape of Python floats, and the
tape is walked backwards with torch's own derivative formulas (``derivatives.yaml``: ``grad * other``,
``-grad * ((self / other) / other)``, ``grad * -self.sin()``, ``c / t`` as ``t.reciprocal() * c``, …)
in autograd's order (reverse creation order, contributions summed as they arrive). So the result is
autograd's bit for bit wherever torch's scalar functions and Python's ``math`` agree (every catalogue
surface at 300 random points each except Müller–Brown and Ackley, where ``exp`` differs in the last
bit at about 1 point in 100); ``tests/test_surface_gradients.py`` checks every surface and every
formula function against autograd.

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
    """``f`` called a torch function that :class:`Var` does not differentiate."""


class Var:
    """A float on the tape: its value, the (input, local backward) pairs it came from, its gradient."""

    __slots__ = ("grad", "inputs", "tape", "value")

    def __init__(self, value: float, tape: list, inputs: tuple = ()):
        self.value, self.inputs, self.tape, self.grad = value, inputs, tape, None
        tape.append(self)

    def _new(self, value: float, inputs: tuple) -> Var:
        return Var(value, self.tape, inputs)

    def __add__(self, other):
        if isinstance(other, Var):
            return self._new(self.value + other.value, ((self, _same), (other, _same)))
        return self._new(self.value + other, ((self, _same),))

    def __radd__(self, other):
        return self._new(other + self.value, ((self, _same),))

    def __sub__(self, other):
        if isinstance(other, Var):
            return self._new(self.value - other.value, ((self, _same), (other, _negated)))
        return self._new(self.value - other, ((self, _same),))

    def __rsub__(self, other):
        return self._new(other - self.value, ((self, _negated),))

    def __neg__(self):
        return self._new(-self.value, ((self, _negated),))

    def __pos__(self):
        return self

    def __mul__(self, other):
        if isinstance(other, Var):
            a, b = self.value, other.value
            return self._new(a * b, ((self, lambda g: g * b), (other, lambda g: g * a)))
        return self._new(self.value * other, ((self, lambda g: g * other),))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Var):
            a, b = self.value, other.value
            return self._new(a / b, ((self, lambda g: g / b), (other, lambda g: -g * ((a / b) / b))))
        return self._new(self.value / other, ((self, lambda g: g / other),))

    def __rtruediv__(self, other):  # torch: other / t is t.reciprocal() * other
        r = 1.0 / self.value
        return self._new(r, ((self, lambda g: -g * (r * r)),)) * other

    def __pow__(self, other):
        a = self.value
        if isinstance(other, Var):
            b = other.value
            out = _real(a**b)
            return self._new(
                out,
                (
                    (self, lambda g: 0.0 if b == 0 else g * (b * _power(a, b - 1))),
                    (other, lambda g: 0.0 if a == 0 and b >= 0 else g * (out * math.log(a))),
                ),
            )
        if other == 0:
            return self._new(1.0, ((self, lambda g: 0.0),))
        return self._new(_power(a, other), ((self, lambda g: g * (other * _power(a, other - 1))),))

    def __rpow__(self, other):
        b = self.value
        out = _real(other**b)
        return self._new(
            out, ((self, lambda g: 0.0 if other == 0 and b >= 0 else g * (out * math.log(other))),)
        )

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in FUNCTIONS and len(args) == 1 and not kwargs:
            a = args[0]
            value, backward = FUNCTIONS[func]
            x = a.value
            out = value(x)
            return a._new(out, ((a, lambda g: backward(g, x, out)),))
        if func in (torch.zeros_like, torch.full_like) and isinstance(args[0], Var):
            return Var(0.0 if func is torch.zeros_like else float(args[1]), args[0].tape)  # a constant
        if func is torch.broadcast_to and tuple(args[1]) == ():
            return args[0]
        raise UnsupportedOperation(f"surface gradients without autograd do not cover torch.{func.__name__}")

    shape = ()


def _same(g: float) -> float:
    return g


def _negated(g: float) -> float:
    return -g


def _real(value) -> float:
    """Python's ``**`` gives a complex number for a negative base and a fractional exponent (torch:
    NaN): refused here, so the caller falls back to autograd."""
    if isinstance(value, complex):
        raise ValueError("complex power")
    return value


def _power(a: float, c: float) -> float:
    """``a ** c`` as torch's pow kernel computes it for a scalar exponent (products for 2 and 3, √ for
    ½, reciprocals for −1 and −2, else ``pow``)."""
    if c == 2:
        return a * a
    if c == 3:
        return a * a * a
    if c == 1:
        return a
    if c == 0.5:
        return math.sqrt(a)
    if c == -1:
        return 1.0 / a
    if c == -2:
        return 1.0 / (a * a)
    return _real(a**c)


def _sign(a: float) -> float:
    return 1.0 if a > 0 else -1.0 if a < 0 else 0.0  # torch's abs: slope 0 at 0


# torch function -> (value, backward(grad, input, output)) as derivatives.yaml writes it
FUNCTIONS = {
    torch.exp: (math.exp, lambda g, a, out: g * out),
    torch.log: (math.log, lambda g, a, out: g / a),
    torch.sqrt: (math.sqrt, lambda g, a, out: g / (2 * out)),
    torch.sin: (math.sin, lambda g, a, out: g * math.cos(a)),
    torch.cos: (math.cos, lambda g, a, out: g * -math.sin(a)),
    torch.tan: (math.tan, lambda g, a, out: g * (1 + out * out)),
    torch.tanh: (math.tanh, lambda g, a, out: g * (1 - out * out)),
    torch.sinh: (math.sinh, lambda g, a, out: g * math.cosh(a)),
    torch.cosh: (math.cosh, lambda g, a, out: g * math.sinh(a)),
    torch.abs: (abs, lambda g, a, out: g * _sign(a)),
}


class _Point:
    """``xy`` of shape (2,) for ``f``: ``xy[..., 0]`` and ``xy[..., 1]`` are the Vars x and y."""

    __slots__ = ("xy",)
    shape = (2,)

    def __init__(self, x: float, y: float, tape: list):
        self.xy = (Var(x, tape), Var(y, tape))

    def __getitem__(self, index):
        if isinstance(index, tuple) and len(index) == 2 and index[0] is Ellipsis and index[1] in (0, 1):
            return self.xy[index[1]]
        raise UnsupportedOperation(f"a surface point is read as xy[..., 0] and xy[..., 1], got xy[{index!r}]")


def value_and_grad(f: Callable, x: float, y: float) -> tuple[float, float, float] | None:
    """``(f(x, y), ∂f/∂x, ∂f/∂y)`` as float64 Python floats, or None where one of them is not a finite
    real number (ask autograd there). Raises :class:`UnsupportedOperation` when ``f`` uses a torch
    function outside :data:`FUNCTIONS`."""
    tape: list[Var] = []
    point = _Point(x, y, tape)
    try:
        out = f(point)
        if not isinstance(out, Var):
            raise UnsupportedOperation(f"f returned {type(out).__name__}, not a Var")
        out.grad = 1.0
        for var in reversed(tape):  # autograd's order: the last created first
            g = var.grad
            if g is None:
                continue
            for source, backward in var.inputs:
                contribution = backward(g)
                source.grad = contribution if source.grad is None else source.grad + contribution
    except (ArithmeticError, ValueError):
        return None  # ZeroDivisionError, OverflowError, math domain errors, complex powers
    value = out.value
    dx, dy = (0.0 if v.grad is None else v.grad for v in point.xy)
    if isinstance(value, complex) or not (math.isfinite(value) and math.isfinite(dx) and math.isfinite(dy)):
        return None
    return float(value), float(dx), float(dy)
