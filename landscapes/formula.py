"""A safe parser for formulas f(x, y) typed by a user, turned into a :class:`Surface`.

The text is parsed with Python's ``ast`` and checked against a whitelist; nothing of the text is
ever executed by Python (no ``eval``/``exec``/``compile``, no sympy, no numexpr). Allowed:

* numbers (``2``, ``0.5``, ``1e-3``; |number| ≤ 1e6, also after constant folding: ``1e6**51*x``
  is refused), the names ``x``, ``y``, ``pi``, ``e``;
* ``+ - * / **`` with unary ``-``/``+`` and parentheses; ``^`` also means power (as students type it).
  It is replaced by ``**`` in the text *before* parsing, not mapped from Python's ``^`` (XOR) node:
  XOR binds more loosely than ``+``, so ``x^2 + y^2`` would otherwise mean ``x**(2 + y)**2``;
* one-argument calls of ``sin cos tan exp log sqrt abs tanh sinh cosh``;
* the Unicode operators ``−`` ``×`` ``·`` ``÷``, which are replaced by ``- * * /``. Any other non-ASCII
  character is refused (so look-alike letters cannot sneak past the name check).

Bounds, each checked before the next step runs: at most 500 characters, parentheses nested at most
30 deep (checked on the text, before Python's parser sees it), at most 300 syntax-tree nodes, a tree
at most 50 levels deep (a sum of n terms is n levels deep), constant exponents with |value| ≤ 100.
Constant arithmetic is folded in float64 (``2**-1`` → 0.5) and an exponent is checked *before* any
power using it is computed, so ``9**9**9`` is refused after computing only ``9**9``. Exponents that
contain ``x``, ``y`` or a function call are computed by torch when f runs.

A formula must use ``x`` or ``y``: a constant has no landscape to explore, so it is refused.
``parse_formula`` never evaluates the formula: a formula that is NaN everywhere on the window
(e.g. ``log(-1 - x**2)``) is accepted, and f returns NaN there.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import torch
from torch import Tensor

from landscapes.stationary import find_stationary_points
from landscapes.surfaces import Surface, check_window, f_on_grid

MAX_LENGTH = 500
MAX_NESTING = 30
MAX_NODES = 300
MAX_DEPTH = 50
MAX_EXPONENT = 100.0
MAX_NUMBER = 1e6
DEFAULT_BOUNDS = ((-3.0, 3.0), (-3.0, 3.0))

FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "tanh": torch.tanh,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
}
VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}
REPLACEMENTS = {"^": "**", "−": "-", "×": "*", "·": "*", "÷": "/"}

_FUNCTION_LIST = ", ".join(FUNCTIONS)
_NAME_LIST = "x, y, pi, e"
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_FORBIDDEN_OPERATORS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_FORBIDDEN_NODES = {
    ast.Attribute: "Attribute access ('.name') is not allowed",
    ast.Subscript: "Indexing with [...] is not allowed",
    ast.Lambda: "'lambda' is not allowed",
    ast.IfExp: "'... if ... else ...' is not allowed",
    ast.Compare: "Comparisons (<, >, ==, ...) are not allowed",
    ast.BoolOp: "'and' / 'or' are not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.Starred: "'*' in front of an argument is not allowed",
    ast.Tuple: "Commas are not allowed: write a single expression",
    ast.List: "Lists [...] are not allowed",
    ast.Dict: "Dictionaries {...} are not allowed",
    ast.Set: "Sets {...} are not allowed",
    ast.ListComp: "Comprehensions are not allowed",
    ast.SetComp: "Comprehensions are not allowed",
    ast.DictComp: "Comprehensions are not allowed",
    ast.GeneratorExp: "Comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Slice: "Slices are not allowed",
    ast.Await: "'await' is not allowed",
}

Node = float | Callable[[Tensor, Tensor], Tensor]  # a folded constant or a closure (x, y) -> tensor


class FormulaError(ValueError):
    """A formula that cannot be accepted; the message says what was wrong and what is allowed."""


def parse_formula(
    text: str, bounds: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_BOUNDS
) -> Surface:
    """Parse ``text`` (a formula in x and y) into a custom :class:`Surface`.

    The surface's ``f`` maps ``(..., 2) → (...)``, keeps the input's dtype and is differentiable
    wherever its functions are. ``bounds`` ((xmin, xmax), (ymin, ymax)) is the view window; the default
    start is (x-centre + width/6, y-centre + height/6000): (1, 0.001) on [−3, 3]², the reference start
    of ``DEO.md`` just off a saddle at the origin. Its ``stationary_points`` are the isolated ones in
    the window, found numerically (:func:`landscapes.stationary.find_stationary_points`), so a typed
    saddle has an escape criterion like the catalogue's. Raises :class:`FormulaError` (a ValueError).
    The same text and window give the same (immutable) surface, computed once (a bounded cache).
    """
    if not isinstance(text, str):
        raise FormulaError(f"The formula must be text, got {type(text).__name__}")
    return _parse_formula(text, _check_bounds(bounds))


@functools.lru_cache(maxsize=128)
def _parse_formula(text: str, window: tuple[tuple[float, float], tuple[float, float]]) -> Surface:
    normalised, columns = _normalise(text)
    _check_nesting(normalised)
    tree = _parse(normalised, columns)
    _check_tree(tree, columns)
    body = _build(tree.body, normalised)
    if not any(isinstance(node, ast.Name) and node.id in VARIABLES for node in ast.walk(tree)):
        raise FormulaError("The formula does not use x or y: a constant has no landscape to explore")
    (x0, x1), (y0, y1) = window
    start = (0.5 * (x0 + x1) + (x1 - x0) / 6, 0.5 * (y0 + y1) + (y1 - y0) / 6000)
    f = _surface_function(body)
    return Surface(
        key="custom",
        name="Custom",
        f=f,
        formula=normalised,
        latex=_latex(tree.body),
        bounds=window,
        starts=(start,),
        stationary_points=find_stationary_points(f, window),
        note="user formula; its stationary points found numerically (Newton's method from a grid)",
        color_scale="linear",
    )


def _check_bounds(bounds) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        return check_window(bounds)
    except ValueError as error:
        raise FormulaError(f"Window bounds not usable: {error}") from None


def _normalise(text: str) -> tuple[str, list[int]]:
    """The text with ``^`` → ``**`` and Unicode operators replaced, stripped; and for every character of
    it the 1-based column in the user's text (so messages point at what the user typed)."""
    if not isinstance(text, str):
        raise FormulaError(f"The formula must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"Formula too long ({len(text)} characters, at most {MAX_LENGTH})")
    chars: list[str] = []
    columns: list[int] = []
    for column, char in enumerate(text, start=1):
        if char == "#":  # Python's parser would drop the rest of the line as a comment
            raise FormulaError(f"Character '#' at column {column} is not allowed: a formula has no comments")
        replacement = REPLACEMENTS.get(char, char)
        if not (replacement.isascii() and (replacement.isprintable() or replacement in "\t\n")):
            raise FormulaError(
                f"Character {char!r} at column {column} is not allowed: use plain letters, digits "
                f"and + - * / ** ^ ( ) (write x**2, not x²)"
            )
        chars.extend(replacement)
        columns.extend([column] * len(replacement))
    joined = "".join(chars).replace("\n", " ").replace("\t", " ")
    normalised = joined.strip()
    if not normalised:
        raise FormulaError("The formula is empty: type an expression in x and y, e.g. x**2 - y**2")
    leading = len(joined) - len(joined.lstrip())
    return normalised, [*columns[leading : leading + len(normalised)], len(text) + 1]


def _check_nesting(text: str) -> None:
    """Refuse deep bracket nesting on the text itself, before Python's parser can recurse on it."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    if deepest > MAX_NESTING:
        raise FormulaError(f"Too many nested parentheses ({deepest} levels, at most {MAX_NESTING})")


def _parse(text: str, columns: list[int]) -> ast.Expression:
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as error:
        offset = min(error.offset or len(columns), len(columns))
        hint = ": write 2*x, not 2x" if "decimal literal" in error.msg else ""
        raise FormulaError(f"Syntax error at column {columns[offset - 1]}: {error.msg}{hint}") from None
    except (RecursionError, MemoryError, ValueError) as error:
        raise FormulaError(f"The formula cannot be read: {type(error).__name__}") from None


def _check_tree(tree: ast.Expression, columns: list[int]) -> None:
    """Whitelist every node (iteratively: no recursion before the depth is known to be small)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise FormulaError(f"Formula too complex (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise FormulaError(f"Formula nested too deeply (more than {MAX_DEPTH} levels)")
        _check_node(node, f" (column {columns[min(node.col_offset, len(columns) - 1)]})")
        children = [node.args[0]] if isinstance(node, ast.Call) else ast.iter_child_nodes(node)
        stack.extend((child, depth + 1) for child in children if isinstance(child, ast.expr))


def _check_node(node: ast.expr, where: str) -> None:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            shown = "..." if value is Ellipsis else value
            raise FormulaError(f"Unknown name '{shown}'{where}: use {_NAME_LIST}")
        if isinstance(value, str | bytes):
            raise FormulaError(f"Text in quotes is not allowed{where}: write a formula in x and y")
        if isinstance(value, complex):
            raise FormulaError(f"Imaginary numbers (like 1j) are not allowed{where}")
        if abs(value) > MAX_NUMBER:
            raise FormulaError(f"Number too large{where} (|number| at most {MAX_NUMBER:g})")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise FormulaError(f"'{node.id}' is a function{where}: write {node.id}(...)")
        if node.id not in VARIABLES and node.id not in CONSTANTS:
            raise FormulaError(f"Unknown name '{node.id}'{where}: use {_NAME_LIST}")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _OPERATORS:
            symbol = _FORBIDDEN_OPERATORS.get(type(node.op), type(node.op).__name__)
            raise FormulaError(f"Operator '{symbol}' is not allowed{where}: use + - * / ** (or ^)")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            symbol = "not" if isinstance(node.op, ast.Not) else "~"
            raise FormulaError(f"Operator '{symbol}' is not allowed{where}: use + - * / ** (or ^)")
    elif isinstance(node, ast.Call):
        _check_call(node, where)
    else:
        message = _FORBIDDEN_NODES.get(type(node), f"'{type(node).__name__}' is not allowed")
        allowed = f"numbers, {_NAME_LIST}, + - * / ** ^, {_FUNCTION_LIST}"
        raise FormulaError(f"{message}{where}; allowed: {allowed}")


def _check_call(node: ast.Call, where: str) -> None:
    if not isinstance(node.func, ast.Name):
        raise FormulaError(f"Only the functions {_FUNCTION_LIST} can be called{where}")
    name = node.func.id
    if name not in FUNCTIONS:
        raise FormulaError(f"Function '{name}' is not allowed{where}: use one of {_FUNCTION_LIST}")
    if node.keywords:
        raise FormulaError(f"Function '{name}' takes one plain argument, not 'name=value'{where}")
    if any(isinstance(argument, ast.Starred) for argument in node.args):
        raise FormulaError(f"'*' in front of an argument is not allowed{where}")
    if len(node.args) != 1:
        raise FormulaError(f"Function '{name}' takes exactly one argument, got {len(node.args)}{where}")


def _build(node: ast.expr, text: str) -> Node:
    """The checked tree as a float (constant part, folded) or a closure (x, y) -> tensor; ``text`` is the
    parsed source, quoted in messages."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        return (lambda x, y: x) if node.id == "x" else (lambda x, y: y)
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, text)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, float):
            return -operand
        return lambda x, y: -operand(x, y)
    if isinstance(node, ast.Call):
        function, argument = FUNCTIONS[node.func.id], _build(node.args[0], text)
        if isinstance(argument, float):
            argument = _used(argument, node.args[0], text)
            return lambda x, y: function(torch.full_like(x, argument))
        return lambda x, y: function(argument(x, y))
    return _build_binary(node, text)


def _build_binary(node: ast.BinOp, text: str) -> Node:
    left, right = _build(node.left, text), _build(node.right, text)
    is_power = isinstance(node.op, ast.Pow)
    if is_power and isinstance(right, float) and abs(right) > MAX_EXPONENT:
        exponent = ast.get_source_segment(text, node.right)
        raise FormulaError(f"Exponent {exponent} is too large (at most {MAX_EXPONENT:g})")
    if isinstance(left, float) and isinstance(right, float):
        return _fold(node, left, right, ast.get_source_segment(text, node))
    if isinstance(left, float):
        left = _used(left, node.left, text)
    if isinstance(right, float):
        right = _used(right, node.right, text)
    if is_power:
        return _combine(left, right, lambda a, b: a**b)
    operation = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
    }[type(node.op)]
    return _combine(left, right, operation)


def _fold(node: ast.BinOp, left: float, right: float, text: str) -> float:
    """Constant arithmetic in float64; errors (1/0, (−8)**(1/3), overflow) are reported, not hidden."""
    if isinstance(node.op, ast.Pow) and left == 0 and right < 0:
        raise FormulaError(f"Division by zero in '{text}'")
    try:
        if isinstance(node.op, ast.Add):
            value = left + right
        elif isinstance(node.op, ast.Sub):
            value = left - right
        elif isinstance(node.op, ast.Mult):
            value = left * right
        elif isinstance(node.op, ast.Div):
            value = left / right
        else:
            value = math.pow(left, right)
    except ZeroDivisionError:
        raise FormulaError(f"Division by zero in '{text}'") from None
    except OverflowError:
        raise FormulaError(f"The number '{text}' is too large") from None
    except ValueError:
        raise FormulaError(f"'{text}' is not a real number") from None
    if not math.isfinite(value):
        raise FormulaError(f"The number '{text}' is too large")
    return value


def _used(value: float, node: ast.expr, text: str) -> float:
    """A folded constant about to meet x or y (or a function): within the parser's number bound, as
    a typed number must be (``1e6**51*x`` is refused; ``(1e6**51)**0*x`` is ``x``)."""
    if abs(value) > MAX_NUMBER:
        shown = ast.get_source_segment(text, node)
        raise FormulaError(f"The number '{shown}' = {value:g} is too large (|number| at most {MAX_NUMBER:g})")
    return value


def _combine(left: Node, right: Node, operation: Callable[[Tensor, Tensor], Tensor]) -> Node:
    if isinstance(left, float):
        return lambda x, y: operation(left, right(x, y))
    if isinstance(right, float):
        return lambda x, y: operation(left(x, y), right)
    return lambda x, y: operation(left(x, y), right(x, y))


def _surface_function(body: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def f(xy: Tensor) -> Tensor:
        """The user formula: xy (..., 2) -> (...)."""
        if xy.shape[-1] != 2:
            raise ValueError(f"xy must have shape (..., 2), got {tuple(xy.shape)}")
        x, y = xy[..., 0], xy[..., 1]
        return torch.broadcast_to(body(x, y), x.shape)

    return f


_LATEX_FUNCTIONS = {name: f"\\{name}" for name in ("sin", "cos", "tan", "exp", "log", "tanh", "sinh", "cosh")}
_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.Pow: 4}


def _latex(node: ast.expr) -> str:
    """Best-effort LaTeX of a checked tree (fractions, powers, \\sin(...), \\sqrt{...}, |...|)."""
    if isinstance(node, ast.Constant):
        return _latex_number(node.value)
    if isinstance(node, ast.Name):
        return r"\pi" if node.id == "pi" else node.id
    if isinstance(node, ast.UnaryOp):
        operand = _latex_operand(node.operand, 3)
        return operand if isinstance(node.op, ast.UAdd) else f"-{operand}"
    if isinstance(node, ast.Call):
        name, argument = node.func.id, _latex(node.args[0])
        if name == "sqrt":
            return rf"\sqrt{{{argument}}}"
        if name == "abs":
            return rf"\left|{argument}\right|"
        return rf"{_LATEX_FUNCTIONS[name]}\left({argument}\right)"
    precedence = _PRECEDENCE[type(node.op)]
    if isinstance(node.op, ast.Div):
        return rf"\frac{{{_latex(node.left)}}}{{{_latex(node.right)}}}"
    if isinstance(node.op, ast.Pow):
        base = _latex(node.left)
        if (isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Div)) or "^" in base:
            # (x/y)**2 read \frac{x}{y}^{2}, the power on y alone; 1e6**2 a double superscript
            base = rf"\left({base}\right)"
        else:
            base = _latex_operand(node.left, precedence + 1)
        return f"{base}^{{{_latex(node.right)}}}"
    left = _latex_operand(node.left, precedence)
    right = _latex_operand(node.right, precedence + (not isinstance(node.op, ast.Add | ast.Mult)))
    symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: r"\cdot"}[type(node.op)]
    return f"{left} {symbol} {right}"


def _latex_number(value: float | int) -> str:
    """A literal as written in a formula: ``1e6`` as 10^{6} (not 1000000.0), ``2.5e-7`` as
    2.5 × 10^{-7}, ``3.0`` as 3; other numbers by their shortest round-trip digits."""
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size == 0 or 1e-3 <= size < 1e5:
        return str(int(value)) if value.is_integer() else repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    power = exponent + len(digits) - 1
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    scale = f"10^{{{power}}}"
    return ("-" if sign else "") + (scale if mantissa == "1" else rf"{mantissa} \times {scale}")


def _latex_operand(node: ast.expr, precedence: int) -> str:
    """LaTeX of ``node`` in parentheses when it binds more loosely than ``precedence``."""
    if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Div):
        inner = _PRECEDENCE[type(node.op)]
    elif isinstance(node, ast.UnaryOp):
        inner = 3
    else:
        inner = 5
    text = _latex(node)
    return rf"\left({text}\right)" if inner < precedence else text


def defined_somewhere(surface, n: int = 41) -> bool:
    """Whether ``surface.f`` is finite at one point at least of an ``n × n`` grid of its window (a
    typed ``log(-1 - x**2)`` is defined nowhere: every run would stop at its start)."""
    return bool(np.isfinite(f_on_grid(surface.f, surface.bounds, n)[2]).any())
