"""The formula parser: valid formulas equal hand-written torch functions; hostile text is refused fast,
with a readable message, and without running anything."""

import ast
import builtins
import math
import time

import pytest
import torch

from landscapes import formula
from landscapes.formula import FormulaError, parse_formula

VALID = [
    ("x**2 - y**2", lambda x, y: x**2 - y**2),
    ("x^2 - y^2", lambda x, y: x**2 - y**2),
    ("x^2 + y^2", lambda x, y: x**2 + y**2),
    ("x**2 - y**2 + y**4/4", lambda x, y: x**2 - y**2 + y**4 / 4),
    ("x² − y²".replace("²", "**2"), lambda x, y: x**2 - y**2),
    ("2 × x · y ÷ 4", lambda x, y: 2 * x * y / 4),
    ("-x^2", lambda x, y: -(x**2)),
    ("2^3^2 * x", lambda x, y: 512 * x),
    ("+x - -y", lambda x, y: x + y),
    ("x**-2 + 1", lambda x, y: x**-2 + 1),
    ("x**y", lambda x, y: x**y),
    ("(1 - x)**2 + 100*(y - x**2)**2", lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2),
    ("sin(x)*cos(y) + tan(x/4)", lambda x, y: torch.sin(x) * torch.cos(y) + torch.tan(x / 4)),
    ("exp(-x**2 - y**2) + log(1 + x**2)", lambda x, y: torch.exp(-(x**2) - y**2) + torch.log(1 + x**2)),
    ("sqrt(abs(x*y) + 1)", lambda x, y: torch.sqrt(torch.abs(x * y) + 1)),
    ("tanh(x) + sinh(y/3) + cosh(x/3)", lambda x, y: torch.tanh(x) + torch.sinh(y / 3) + torch.cosh(x / 3)),
    ("pi*x + e*y", lambda x, y: math.pi * x + math.e * y),
    ("sin(1)*x + cos(pi)", lambda x, y: math.sin(1) * x + math.cos(math.pi)),
    ("1e-3*x + 2.5E2*y", lambda x, y: 1e-3 * x + 250 * y),
    ("(x*x)", lambda x, y: x * x),
    ("  x + y  ", lambda x, y: x + y),
    ("x", lambda x, y: x),
]


def _grid(dtype=torch.float64):
    torch.manual_seed(0)
    return (torch.rand(5, 7, 2, dtype=dtype) * 2 + 0.5).requires_grad_(True)  # x, y in [0.5, 2.5]


@pytest.mark.parametrize(("text", "reference"), VALID, ids=[t for t, _ in VALID])
def test_valid_formula_matches_hand_written_torch_with_gradients(text, reference):
    f = parse_formula(text).f
    xy = _grid()
    value = f(xy)
    expected = torch.broadcast_to(reference(xy[..., 0], xy[..., 1]), (5, 7))
    assert value.shape == (5, 7) and value.dtype == torch.float64
    assert torch.allclose(value, expected, rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(value.sum(), xy)
    (g_expected,) = torch.autograd.grad(expected.sum(), xy, allow_unused=True)
    g_expected = torch.zeros_like(xy) if g_expected is None else g_expected
    assert torch.allclose(g, g_expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text", ["x**2 - y**2", "sin(1) + x", "cos(2)*y", "x"])
def test_formula_is_batched_and_keeps_float32(text):
    f = parse_formula(text).f
    xy = _grid(torch.float32)
    assert f(xy).shape == (5, 7) and f(xy).dtype == torch.float32
    assert f(xy[0, 0]).shape == ()
    assert f(torch.zeros(0, 2)).shape == (0,)


def test_custom_surface_fields():
    s = parse_formula("  x^2 - y^2 ")
    assert (s.key, s.name, s.color_scale) == ("custom", "Custom", "linear")
    assert s.note.startswith("user formula; its stationary points found numerically")
    assert s.formula == "x**2 - y**2"
    assert s.bounds == ((-3.0, 3.0), (-3.0, 3.0))
    ((point),) = s.stationary_points  # the saddle at the origin, found
    assert (point.xy, point.kind, point.value, point.eigenvalues) == ((0.0, 0.0), "saddle", 0.0, (-2.0, 2.0))
    assert parse_formula("x^2 - y^2") is parse_formula("x^2 - y^2")  # parsed and searched once
    assert s.starts == ((1.0, 0.001),)  # DEO.md's start next to a saddle at the origin
    assert s.latex == "x^{2} - y^{2}"


@pytest.mark.parametrize(
    ("text", "latex"),
    [
        ("x/(1 + y)", r"\frac{x}{1 + y}"),
        ("(x + y)**2", r"\left(x + y\right)^{2}"),
        ("x - (y - 1)", r"x - \left(y - 1\right)"),
        ("-(x + y)*pi", r"-\left(x + y\right) \cdot \pi"),
        ("sqrt(abs(x))", r"\sqrt{\left|x\right|}"),
        ("sin(x)**2", r"\sin\left(x\right)^{2}"),
        ("(x/y)**2", r"\left(\frac{x}{y}\right)^{2}"),  # not \frac{x}{y}^{2}, the power on y
        ("1e6*x + 2.5e-7*y", r"10^{6} \cdot x + 2.5 \times 10^{-7} \cdot y"),  # not 1000000.0
        ("3.0*x + 0.25*y + 1000000*x", r"3 \cdot x + 0.25 \cdot y + 1000000 \cdot x"),
        ("1e-4**2*x", r"\left(10^{-4}\right)^{2} \cdot x"),  # not a double superscript
        ("x**y**2", r"x^{y^{2}}"),
    ],
)
def test_latex_is_readable(text, latex):
    assert parse_formula(text).latex == latex


def test_bounds_argument_sets_window_and_start():
    s = parse_formula("x*y", bounds=((0, 6), (-1, 1)))
    assert s.bounds == ((0.0, 6.0), (-1.0, 1.0))
    assert s.starts == (pytest.approx((4.0, 2 / 6000)),)


@pytest.mark.parametrize("bounds", [((1, 0), (0, 1)), ((0, 1),), ((0, math.inf), (0, 1)), "wide"])
def test_bad_bounds_are_refused(bounds):
    with pytest.raises(FormulaError, match="bounds"):
        parse_formula("x", bounds=bounds)


def test_limits_are_inclusive():
    assert parse_formula("x" + " " * (formula.MAX_LENGTH - 1))
    assert parse_formula("x**100 + y**-100")
    depth = formula.MAX_NESTING
    assert parse_formula("(" * depth + "x" + ")" * depth)
    with pytest.raises(FormulaError, match="nested parentheses"):
        parse_formula("(" * (depth + 1) + "x" + ")" * (depth + 1))
    with pytest.raises(FormulaError, match="too long"):
        parse_formula("x" + " " * formula.MAX_LENGTH)


HOSTILE = [
    ("", "empty"),
    ("   ", "empty"),
    ("\t\n", "empty"),
    ("x +", "Syntax error at column 4"),
    ("(x + y", "Syntax error at column 1"),
    ("x + y)", "Syntax error at column 6"),
    ("2x", "write 2*x"),
    ("x y", "Syntax error"),
    ("x^^2", "Syntax error at column 3"),
    ("z", "Unknown name 'z' (column 1): use x, y, pi, e"),
    ("x + foo", "Unknown name 'foo' (column 5)"),
    ("__builtins__", "Unknown name '__builtins__'"),
    ("sin", "'sin' is a function"),
    ("x.__class__", "Attribute access"),
    ("x.__class__.__bases__[0].__subclasses__()", "Only the functions"),
    ("__import__('os').system('echo hi')", "Only the functions"),
    ("__import__('os')", "Function '__import__' is not allowed (column 1): use one of sin, cos"),
    ("eval('1')", "Function 'eval' is not allowed"),
    ("exec('1')", "Function 'exec' is not allowed"),
    ("open('/etc/passwd')", "Function 'open' is not allowed"),
    ("getattr(x, 'real')", "Function 'getattr' is not allowed"),
    ("sin.__call__(x)", "Only the functions"),
    ("sin(x)(y)", "Only the functions"),
    ("(lambda t: t)(x)", "Only the functions"),
    ("lambda: 1", "'lambda' is not allowed"),
    ("[t for t in (x, y)]", "Comprehensions"),
    ("{t for t in (x,)}", "Comprehensions"),
    ("sum(t for t in (x, y))", "Function 'sum' is not allowed"),
    ("'x'", "Text in quotes"),
    ("b'x'", "Text in quotes"),
    ("f'{x}'", "f-strings"),
    ("(y := x)", "':=' is not allowed"),
    ("sin(*x)", "'*' in front of an argument"),
    ("*x,", "Syntax error"),
    ("sin(x=1)", "not 'name=value'"),
    ("sin(**x)", "not 'name=value'"),
    ("sin(x, y)", "exactly one argument, got 2"),
    ("sin()", "exactly one argument, got 0"),
    ("9**9**9", "Exponent 9**9 is too large (at most 100)"),
    ("2**10000", "Exponent 10000 is too large"),
    ("x**1e6", "Exponent 1e6 is too large"),
    ("x^1000", "Exponent 1000 is too large"),
    ("x**(10**100)", "Exponent 10**100 is too large"),
    ("(10**100)**100 * x", "too large"),
    ("1e7 * x", "Number too large"),
    ("x + 1" + "0" * 400, "Number too large"),
    ("1/0 + x", "Division by zero"),
    ("0**-1 + x", "Division by zero"),
    ("(-8)**(1/3) + x", "not a real number"),
    ("x + " * 2500 + "x", "Formula too long (10001 characters, at most 500)"),
    ("a" * 10000, "Formula too long (10000 characters, at most 500)"),
    ("(" * 1000 + "x" + ")" * 1000, "Formula too long"),
    ("(" * 200 + "x" + ")" * 200, "Too many nested parentheses (200 levels, at most 30)"),
    ("(" * 400, "Too many nested parentheses"),
    ("-" * 450 + "x", "nested too deeply"),
    ("+".join(["x"] * 100), "nested too deeply"),
    ("sin(" * 40 + "x" + ")" * 40, "nested"),
    ("x²", "Character '²' at column 2 is not allowed"),
    ("ｘ**2", "Character 'ｘ'"),
    ("𝐱 + y", "Character '𝐱'"),
    ("\u0435val(x)", "Character"),  # Cyrillic "е"
    ("x\u200b+ y", "Character '\\u200b'"),
    ("x\x00", "Character '\\x00'"),
    ("x\r+y", "Character '\\r'"),
    # a comment silently dropped the rest: "x**2 # - y**2" was the bowl x², drawn as if typed
    ("x**2 # - y**2", "Character '#' at column 6 is not allowed: a formula has no comments"),
    ("x**2\n# y", "Character '#' at column 6"),
    ("x if y else 1", "'... if ... else ...' is not allowed"),
    ("x < y", "Comparisons"),
    ("x == y", "Comparisons"),
    ("x and y", "'and' / 'or'"),
    ("x or y", "'and' / 'or'"),
    ("not x", "'not'"),
    ("~x", "'~'"),
    ("x % 2", "'%'"),
    ("x // 2", "'//'"),
    ("x @ y", "'@'"),
    ("x << 2", "'<<'"),
    ("x | y", "'|'"),
    ("x, y", "Commas"),
    ("[x]", "Lists"),
    ("{'a': x}", "Dictionaries"),
    ("x[0]", "Indexing"),
    ("x[1:2]", "Indexing"),
    ("1j * x", "Imaginary"),
    ("True * x", "Unknown name 'True'"),
    ("None", "Unknown name 'None'"),
    ("...", "Unknown name '...'"),
    ("await x", "'await' is not allowed"),
    ("yield x", "Syntax error"),
    ("import os", "Syntax error"),
    ("x; y", "Syntax error"),
    ("x\nimport os", "Syntax error"),
    ("1", "does not use x or y"),
    ("pi * e + sin(2)", "does not use x or y"),
    ("sin(1) + 9**9**9 * x", "Exponent 9**9"),
    (None, "must be text"),
]


@pytest.fixture
def counted_functions(monkeypatch):
    """Replace every whitelisted torch function by a counting wrapper: proves what ran and when."""
    calls = dict.fromkeys(formula.FUNCTIONS, 0)
    for name, function in list(formula.FUNCTIONS.items()):

        def counting(t, name=name, function=function):
            calls[name] += 1
            return function(t)

        monkeypatch.setitem(formula.FUNCTIONS, name, counting)
    return calls


def test_hostile_list_is_long_and_distinct():
    texts = [t for t, _ in HOSTILE]
    assert len(texts) >= 40 and len(set(texts)) == len(texts)


@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=[repr(t)[:40] for t, _ in HOSTILE])
def test_hostile_input_is_refused_fast_with_a_readable_message(text, message, counted_functions):
    parse_formula("x")  # warm up: the timing below is the parser's, not an import's
    start = time.thread_time()  # CPU time of this thread: the parser's work, not the machine's load
    with pytest.raises(FormulaError) as refused:
        parse_formula(text)
    elapsed = time.thread_time() - start
    assert message in str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert elapsed < 0.05
    assert sum(counted_functions.values()) == 0


def test_only_an_accepted_formula_is_evaluated_and_evaluation_runs_each_function_once(counted_functions):
    """A refused formula runs nothing (the hostile cases above); an accepted one is evaluated by the
    search for its stationary points (landscapes.stationary), after every check has passed."""
    s = parse_formula("sin(x) + cos(1)*y + exp(log(abs(x)))")
    assert counted_functions["sin"] > 0  # the search ran it
    for name in counted_functions:
        counted_functions[name] = 0
    s.f(torch.ones(3, 2))
    ran = {name: n for name, n in counted_functions.items() if n}
    assert ran == {"sin": 1, "cos": 1, "exp": 1, "log": 1, "abs": 1}


def test_parsing_never_executes_code(monkeypatch):
    """Python's eval/exec are never called and compile is only ever asked for a syntax tree."""
    real_compile = builtins.compile

    def forbidden(*args, **kwargs):
        raise AssertionError("code execution attempted")

    def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "compile asked for code, not a syntax tree"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    surface = parse_formula("sin(x)**2 + y^3 - pi")
    for text, _ in HOSTILE:
        with pytest.raises(FormulaError):
            parse_formula(text)
    assert surface.f(torch.tensor([0.0, 1.0])).item() == pytest.approx(1 - math.pi)


def test_nan_everywhere_formula_is_accepted_without_evaluation():
    s = parse_formula("log(-1 - x**2) + y")
    assert torch.isnan(s.f(torch.zeros(4, 2))).all()


@pytest.mark.parametrize(
    "text", ["1e6**51*x", "1e6*1e6*x", "-(1e6**51)*x", "sin(1e6*1e6)*x", "x**2 + 2**20*y", "x + 1e3**3"]
)
def test_constant_folding_respects_the_number_bound(text):
    """A folded constant that meets x, y or a function obeys |number| ≤ MAX_NUMBER, like a typed one."""
    with pytest.raises(FormulaError, match=r"too large \(\|number\| at most 1e\+06\)"):
        parse_formula(text)


def test_folded_constants_within_the_bound_and_transient_large_ones_are_fine():
    assert parse_formula("1e3*1e3*x").f(torch.tensor([[2.0, 0.0]])).item() == 2e6
    assert parse_formula("(1e6**51)**0*x").f(torch.tensor([[3.0, 0.0]])).item() == 3.0


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (((-1e308, 1e308), (-1, 1)), "beyond"),
        (((-1, 1), (-1e7, 0)), "beyond"),
        (((0, math.nan), (0, 1)), "finite"),
        (((0, 1), (-math.inf, 0)), "finite"),
        (((1, 1), (0, 1)), "min < max"),
        (((0, 1), (0, 1e-12)), "at least"),
    ],
)
def test_window_bounds_must_be_finite_and_sane(bounds, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula("x", bounds=bounds)


def test_the_widest_window_gives_a_finite_start():
    s = parse_formula("x**2 - y**2", bounds=((-1e6, 1e6), (-1e6, 1e6)))
    assert all(math.isfinite(c) for c in s.starts[0])


def test_a_catalogue_surface_with_a_bad_window_is_refused():
    from landscapes.surfaces import SURFACES, Surface

    saddle = SURFACES["saddle"]
    fields = {**saddle.__dict__, "bounds": ((-1e308, 1e308), (-2.0, 2.0))}
    with pytest.raises(ValueError, match="beyond"):
        Surface(**fields)
