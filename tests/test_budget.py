"""Compute budgets (deo.budget): estimates match the algorithm's counters; absurd requests are refused
before any work, with a ValueError that names the limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import landscapes
from deo import budget
from deo.budget import (
    BudgetError,
    check_escape_map,
    check_min_mode,
    check_race,
    evals_per_step,
    min_mode_cost,
)
from deo.dimer import min_mode
from deo.presets import PRESETS
from deo.race import OptimizerSpec, escape_map, map_escape, race, surface_problem
from pages import request_budget

SADDLE = landscapes.SURFACES["saddle"]


def problem():
    return surface_problem(SADDLE, (1.0, 1e-3))


def test_limits_are_documented_module_constants():
    for name in (
        "MAX_STEPS",
        "MAX_ROTATIONS",
        "MAX_STARTS",
        "MAX_RACE_GRAD_EVALS",
        "MAX_RACE_RECORDED_VALUES",
        "MAX_MAP_GRAD_EVALS",
        "MAX_MIN_MODE_GRAD_EVALS",
    ):
        assert isinstance(getattr(budget, name), int)
        assert name in budget.__doc__
    assert issubclass(BudgetError, ValueError)


@pytest.mark.parametrize(
    ("key", "hyperparams"),
    [
        ("gd", {}),
        ("adam", {}),
        ("deo_paper", {}),
        ("deo_escape", {}),
        ("deo_escape", {"rotations": 3, "scheme": "central"}),
        ("deo_paper", {"rotations": 2, "rotate_every": 5}),
    ],
)
def test_the_race_estimate_is_the_algorithm_count(key, hyperparams):
    """DEO.md: grad_evals = T + E·(rotations + 1)·c; the estimate (plus one final evaluation) is it."""
    steps = 40
    (trace,) = race(problem(), [OptimizerSpec(key, hyperparams)], steps)
    assert trace.steps[-1] == steps
    assert steps * evals_per_step(key, hyperparams) == pytest.approx(trace.grad_evals[-1], abs=1)


def test_race_with_a_billion_steps_is_refused_at_once_naming_the_limit():
    reports = []  # the race reports progress from step 0: no report = refused before any work
    for steps in (10**9, 1e9, float("inf")):
        with pytest.raises(ValueError, match=r"limit of 1,000,000 \(deo.budget.MAX_STEPS\)"):
            race(problem(), [OptimizerSpec("gd")], steps, progress=lambda f, m: reports.append(f))
    assert reports == []
    with pytest.raises(ValueError, match="steps must be an integer"):
        race(problem(), [OptimizerSpec("gd")], 10.5)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        race(problem(), [OptimizerSpec("gd")], -1)


def test_ten_thousand_rotations_are_refused_naming_the_limit():
    spec = OptimizerSpec("deo_paper", {"rotations": 10**4})
    with pytest.raises(ValueError, match=r"rotations \(deo_paper\) = 10000 is above the limit of 100"):
        race(problem(), [spec], 10)
    with pytest.raises(ValueError, match="MAX_ROTATIONS"):
        escape_map(SADDLE.f, np.zeros((4, 2)), [spec], 10, map_escape(SADDLE))


def test_total_race_work_is_capped():
    specs = [
        OptimizerSpec("deo_escape", {"rotations": 100, "scheme": "central"}, label=str(i)) for i in range(9)
    ]
    with pytest.raises(BudgetError, match=r"MAX_RACE_GRAD_EVALS.*lower the steps"):
        race(problem(), specs, 20_000)
    assert check_race(specs, 100) < budget.MAX_RACE_GRAD_EVALS


def test_recorded_values_are_capped_for_large_models():
    with pytest.raises(BudgetError, match=r"MAX_RACE_RECORDED_VALUES.*record_every"):
        check_race([OptimizerSpec("gd")], 500_000, dim=4096)
    check_race([OptimizerSpec("gd")], 500_000, dim=4096, record_every=100)


def test_escape_map_grid_and_work_are_capped():
    escape = map_escape(SADDLE)
    with pytest.raises(
        BudgetError, match=r"starts = 250001 is above the limit of 250,000 \(deo.budget.MAX_STARTS\)"
    ):
        escape_map(SADDLE.f, np.zeros((250_001, 2)), [OptimizerSpec("gd")], 10, escape)
    heavy = [
        OptimizerSpec("deo_escape", {"rotations": 50, "scheme": "central"}, label=str(i)) for i in range(3)
    ]
    reports = []
    with pytest.raises(BudgetError, match=r"MAX_MAP_GRAD_EVALS.*lower the grid"):
        escape_map(
            SADDLE.f, np.zeros((10_000, 2)), heavy, 1000, escape, progress=lambda f, m: reports.append(f)
        )
    assert reports == []  # refused before the first step
    assert check_escape_map(heavy, 300, 100) == pytest.approx(100 * 3 * (300 * 103 + 1))


def test_a_tighter_request_budget_names_itself():
    with pytest.raises(BudgetError, match="this request's budget"):
        check_race([OptimizerSpec("gd")], 1000, limit=100)


def test_min_mode_budget():
    assert check_min_mode(50, rows=4, scheme="central") == 4 * 51 * 2
    assert check_min_mode(50, rows=4) == 4 * 52  # forward Lanczos: the gradient at x, the end, 50 more
    with pytest.raises(BudgetError, match="MAX_MIN_MODE_GRAD_EVALS"):
        check_min_mode(10**6, rows=10**4)
    with pytest.raises(ValueError, match="max_iterations must be an integer"):
        check_min_mode(2.5)


# ------------------------------------------------------------------------------ the app's page budgets

HEAVY = [
    OptimizerSpec(key, {"rotations": 50, "rotate_every": 1, "scheme": "central"})
    for key in ("deo_paper", "deo_escape", "dimer_saddle_search")
]
ALL_PRESETS = [OptimizerSpec(key) for key in PRESETS]


def test_the_escape_map_link_that_held_a_core_for_8_minutes_is_refused_by_the_page_budget():
    from pages.request_budget import check_map

    with pytest.raises(BudgetError, match=r"ESCAPE_MAP_BUDGET\): lower the grid"):
        check_map(HEAVY, 300, 100 * 100)
    defaults = [OptimizerSpec("gd"), OptimizerSpec("adam"), OptimizerSpec("deo_escape")]
    assert check_map(defaults, 300, 30 * 30) < 0.1 * request_budget.ESCAPE_MAP_BUDGET
    check_map(defaults, 300, 100 * 100)  # the largest grid at the default budget is fine


def test_the_surface_page_budget_weighs_typed_formulas_by_size():
    from pages.request_budget import check_surface_race, formula_weight

    check_surface_race(ALL_PRESETS, 5000)  # every preset at the largest step count: fine
    big = " + ".join(["sin(x*y) + cos(x - y)"] * 21)  # ~300 parts
    assert formula_weight(big) > 8 and formula_weight("x**2 - y**2") < 1.5
    with pytest.raises(BudgetError, match="shorter formula"):
        check_surface_race(ALL_PRESETS, 5000, big)
    with pytest.raises(BudgetError, match=r"SURFACE_RACE_BUDGET\): lower the steps"):
        check_surface_race(HEAVY, 5000)


def test_the_network_page_budget():
    from pages.request_budget import check_network_race

    check_network_race([OptimizerSpec("gd"), OptimizerSpec("adam"), OptimizerSpec("deo_paper")], 3000)
    with pytest.raises(BudgetError, match="NETWORK_RACE_BUDGET"):
        check_network_race(HEAVY, 3000)


class _Closed(BaseException):
    """Stands in for Streamlit's StopException, raised at a progress update once a session is gone."""


def test_a_progress_callback_that_raises_stops_the_work():
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if len(calls) == 3:
            raise _Closed

    with pytest.raises(_Closed):  # raised at the third report: the race stopped there, not after 10 000 steps
        rosenbrock = surface_problem(landscapes.SURFACES["rosenbrock"], (-2.0, 2.0))  # slow, no divergence
        race(rosenbrock, [OptimizerSpec("gd", {"lr": 1e-4})], 10_000, progress=progress)
    with pytest.raises(_Closed):
        calls.clear()
        escape_map(
            SADDLE.f, np.zeros((4, 2)), [OptimizerSpec("gd")], 100_000, map_escape(SADDLE), progress=progress
        )
    assert calls == [0.0, 0.02, 0.04]  # the map stopped at its third report (step 400 of 10 000)


@pytest.mark.parametrize("rotation", ["lanczos", "fourier", "sd"])
@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_min_mode_cost_is_min_modes_own_count_at_max_iterations(rotation, scheme):
    rows, d, iterations = 3, 60, 6
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator))
    h = q @ torch.diag(torch.linspace(-1.0, 1.0, d, dtype=torch.float64)) @ q.T  # no gap: no early stop
    x = torch.randn(rows, d, dtype=torch.float64, generator=generator)
    _, _, info = min_mode(
        lambda y: y @ h, x, max_iterations=iterations, rotation=rotation, scheme=scheme, torque_tol=0.0,
        seed=1, rotation_step=0.5,
    )  # fmt: skip
    assert info["iterations"] == iterations  # ran to the limit the estimate assumes
    assert min_mode_cost(iterations, rows, scheme, rotation) == rows * info["grad_evals"]


@pytest.mark.parametrize(
    "spec",
    [
        *(OptimizerSpec(key) for key in ["deo_paper", "deo_escape", "deo_paper_random", "gd", "adam"]),
        # no rotation: each event only re-probes the curvature along N (DEO allows it; the budget
        # refused it as "rotations must be >= 1")
        *(
            OptimizerSpec(key, {"rotations": 0, "scheme": scheme})
            for key in ["deo_paper", "deo_escape_random"]
            for scheme in ["forward", "central"]
        ),
    ],
    ids=lambda spec: "-".join([spec.key, *map(str, spec.hyperparams.values())]),
)
@pytest.mark.parametrize("steps", [1, 9, 15, 31])
def test_the_race_cost_is_the_races_own_gradient_count(spec, steps):
    """A DEO run's events come at steps 0, k, 2k, …: steps × the average per step undercounted a
    last, partial period (deo_paper over 15 steps: 19 for 20)."""
    from deo.budget import race_cost

    (trace,) = race(surface_problem(SADDLE, (1.0, 1e-3)), [spec], steps)
    assert race_cost([spec], steps) == int(trace.grad_evals[-1]) + 1  # + the final gradient
