"""Per-request compute budgets of the app: every race and escape map a link asks for is estimated
(``deo.budget``, in gradient evaluations) before it runs, and refused above the page's budget with a
sentence saying what to lower. Tighter than the library's own limits: a page request should finish
in about a minute on one core, whatever the link says (a shared link once held a core for 8 minutes).

- ``SURFACE_RACE_BUDGET``: gradient evaluations of one Surfaces race, weighted for a typed formula by
  its size (``formula_weight``: a 300-part formula costs ~10× a catalogue surface per evaluation).
- ``NETWORK_RACE_BUDGET``: gradient evaluations of one Networks race (each a network's forward and
  backward pass).
- ``ESCAPE_MAP_BUDGET``: row-gradient evaluations of one escape map (starts × steps × evaluations
  per step, all optimizers).

The check raises ``deo.budget.BudgetError`` (a ValueError); the pages' ``safe_call`` shows its
message. Work that is under budget still stops when its session goes away: the pages report
progress through ``st.progress``, and Streamlit raises its StopException in the script thread at
the next progress update once the session's run has been asked to stop (closed tab, rerun).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from deo.budget import BudgetError, check_escape_map, check_race

SURFACE_RACE_BUDGET = 500_000
NETWORK_RACE_BUDGET = 60_000
ESCAPE_MAP_BUDGET = 50_000_000
FORMULA_NODES_PER_UNIT = 25  # a typed formula of n parts weighs 1 + n/25 catalogue evaluations


def formula_weight(formula: str) -> float:
    """Cost of one evaluation of a typed formula relative to a catalogue surface: 1 + nodes/25."""
    if not formula:
        return 1.0
    try:
        nodes = sum(isinstance(node, ast.expr) for node in ast.walk(ast.parse(formula, mode="eval")))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 1.0
    return 1.0 + nodes / FORMULA_NODES_PER_UNIT


def _over(cost: float, budget: int, name: str, unit: str, lower: str) -> None:
    if cost > budget:
        raise BudgetError(
            f"This request would cost about {cost:,.0f} {unit}, above the page's budget of {budget:,} "
            f"(pages.request_budget.{name}): lower {lower}."
        )


def check_surface_race(specs: Sequence[Any], steps: int, formula: str = "") -> float:
    """Refuse a Surfaces race above ``SURFACE_RACE_BUDGET`` (formula-weighted); return its cost."""
    weight = formula_weight(formula)
    cost = check_race(specs, int(steps)) * weight  # the library's own caps first (steps, rotations)
    lower = "the steps, the number of optimizers or their rotations"
    if weight > 2:
        lower += f", or type a shorter formula (one evaluation of this one weighs {weight:.1f})"
    _over(cost, SURFACE_RACE_BUDGET, "SURFACE_RACE_BUDGET", "gradient evaluations", lower)
    return cost


def check_network_race(specs: Sequence[Any], steps: int, dim: int = 2) -> float:
    """Refuse a Networks race above ``NETWORK_RACE_BUDGET``; return its cost."""
    cost = check_race(specs, int(steps), dim=dim)
    lower = "the steps, the number of optimizers or their rotations"
    _over(cost, NETWORK_RACE_BUDGET, "NETWORK_RACE_BUDGET", "gradient evaluations", lower)
    return cost


def check_map(specs: Sequence[Any], steps: int, starts: int) -> float:
    """Refuse an escape map above ``ESCAPE_MAP_BUDGET``; return its cost."""
    cost = check_escape_map(specs, int(steps), int(starts))
    lower = "the grid, the steps, the number of optimizers or their rotations"
    _over(cost, ESCAPE_MAP_BUDGET, "ESCAPE_MAP_BUDGET", "row-gradient evaluations", lower)
    return cost
