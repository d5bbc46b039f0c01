"""Escape times at strict saddles: the reference table of DEO.md, with the engine's own dimer.

Part 1 (surfaces, lr 0.01): the four rows of DEO.md's table (x²−y² from (1, 1e-3) and (1, 1e-6),
x²−y²+y⁴/4 from (1, 1e-6), monkey saddle from (0.5, 1e-3); escaped when f ≤ −1, −0.9 on the
plateau surface) for GD, Adam, PGD, DEO α = 1 and DEO α = −1, each DEO both with the *exact*
min-mode eigenvector (a Hessian per step, as in DEO.md) and with the engine's own dimer
(:class:`deo.DEO`, Fourier rotation, forward difference, ΔR = 1e-3).
Part 2: the initial offset y₀ ∈ {1e-2, 1e-3, 1e-6} on x²−y² (GD's closed form ⌈ln(1/y₀)/ln 1.02⌉ alongside).
Part 3 (networks, ``landscapes.NETWORKS``): two_moons (2-4-1 tanh) over init scales, deep_linear
and teacher_student, escaped when the loss falls below the problem's own ``escape_loss``.

Seeds: each cell is the median and interquartile range over ``--seeds`` runs. Surfaces run all
seeds as rows of one batched run (``deo.race.escape_map``): row b's dimer starts from seed b, PGD
draws independent kicks per row; GD, Adam and the exact-eigenvector runs are deterministic (IQR 0).
Networks: seed s changes the initialisation, the dimer's initial N and PGD's noise.
Steps count updates until the first iterate that meets the criterion; gradient evaluations are
the algorithm's (closure calls / the optimizer's own count); the exact-eigenvector variant needs
one Hessian per step on top (not counted). "—": the median run did not escape within the budget.

    python benchmarks/escape.py [--seeds 10] [--budget 1000] [--part surfaces networks]
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "escape.md"
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: deo and landscapes live at the root

import landscapes  # noqa: E402
from deo.dimer import modify_gradient  # noqa: E402
from deo.hessian import exact_min_eig  # noqa: E402
from deo.race import OptimizerSpec, escape_map, network_problem, race, surface_escape  # noqa: E402

LR = 0.01
SURFACE_ROWS = (
    ("saddle", (1.0, 1e-3), "x²−y², (1, 1e-3)"),
    ("saddle", (1.0, 1e-6), "x²−y², (1, 1e-6)"),
    ("saddle_plateau", (1.0, 1e-6), "x²−y²+y⁴/4, (1, 1e-6)"),
    ("monkey_saddle", (0.5, 1e-3), "monkey saddle, (0.5, 1e-3)"),
)
DEO_MD = {  # DEO.md's reference counts (GD, Adam, α=1 exact, α=−1 exact); None = not within 20 000
    "x²−y², (1, 1e-3)": (349, 80, None, 177),
    "x²−y², (1, 1e-6)": (698, 81, None, 353),
    "x²−y²+y⁴/4, (1, 1e-6)": (734, 101, None, 371),
    "monkey saddle, (0.5, 1e-3)": (804, 67, None, 277),
}
# name -> (preset key, overrides) for the engine's optimizers on surfaces (lr 0.01 everywhere)
SURFACE_ENGINE = {
    "GD": ("gd", {}),
    "Adam": ("adam", {}),
    "PGD": ("pgd", {}),
    "DEO α=1, dimer (GD base, k=10)": ("deo_paper", {"base": "sgd"}),
    "DEO (paper preset: Adam base, α=1, k=10)": ("deo_paper", {}),
    "DEO α=−1, dimer (DEO-escape preset: GD base, gate C<0, k=1)": ("deo_escape", {}),
}
PARTS = ("surfaces", "networks")
NETWORK_OPTIMIZERS = ("gd", "adam", "pgd", "deo_paper", "deo_escape")
ADAM_BASED = ("adam", "deo_paper")
NETWORK_RUNS = (  # (network key, options, GD-family lr, init scales, budget)
    ("two_moons", {"hidden": 4}, 0.1, (1e-2, 1e-3, 1e-6), 600),
    ("deep_linear", {}, 0.01, (1e-3,), 1500),
    ("teacher_student", {"n_samples": 1000}, 0.5, (1e-1,), 1500),
)


def exact_direction_runs(f, start, alphas: tuple[float, ...], budget: int, criterion) -> np.ndarray:
    """GD on g − α(g·v)v with v the exact min-mode eigenvector at every step (DEO.md's "exact N"),
    one row per α in one batched run. Returns steps to escape per α (NaN: not within the budget);
    the algorithm's gradient evaluations equal the steps (one gradient per step, plus a Hessian).
    """
    alpha = torch.tensor(alphas, dtype=torch.float64)
    theta = torch.tensor([start] * len(alphas), dtype=torch.float64)
    steps = np.full(len(alphas), np.nan)
    for t in range(budget + 1):
        x = theta.detach().requires_grad_(True)
        loss = f(x)
        hit = criterion.met(theta, loss.detach()).numpy() & np.isnan(steps)
        steps[hit] = t
        if not np.isnan(steps).any() or t == budget:
            break
        (g,) = torch.autograd.grad(loss.sum(), x)
        _, v = exact_min_eig(f, theta)
        theta = theta - LR * modify_gradient(g, v, alpha)
    return steps


def summary(values: np.ndarray) -> str:
    """median [q25–q75] with never-escaped runs as +∞ ("—" when the median did not escape)."""
    v = np.where(np.isnan(values), np.inf, values)
    with np.errstate(invalid="ignore"):  # interpolating between two +∞ gives NaN warnings
        q25, q50, q75 = np.percentile(v, [25, 50, 75], method="nearest")
    if not np.isfinite(q50):
        return "—"
    if q25 == q75:
        return f"{q50:.0f}"
    upper = "∞" if not np.isfinite(q75) else f"{q75:.0f}"
    return f"{q50:.0f} [{q25:.0f}–{upper}]"


_CELLS: dict = {}


def surface_cells(key: str, start, seeds: int, budget: int) -> dict[str, tuple[str, str]]:
    """name -> (steps cell, grad evals cell) for one surface row (cached: parts 1 and 2 share rows)."""
    if (key, start) in _CELLS:
        return _CELLS[key, start]
    surface = landscapes.SURFACES[key]
    criterion = surface_escape(surface, start)
    cells = {}
    starts = np.tile(np.asarray(start, dtype=np.float64), (seeds, 1))
    for name, (preset, overrides) in SURFACE_ENGINE.items():
        spec = OptimizerSpec(preset, overrides, label=name)
        (result,) = escape_map(surface.f, starts, [spec], budget, criterion, stop_when_escaped=True).values()
        cells[name] = (summary(result.steps_to_escape), summary(result.grad_evals_to_escape))
    exact = exact_direction_runs(surface.f, start, (1.0, -1.0), budget, criterion)
    for alpha, steps in zip(("1", "−1"), exact):
        cell = summary(np.array([steps]))
        cells[f"DEO α={alpha}, exact N (GD base)"] = (cell, cell)
    _CELLS[key, start] = cells
    return cells


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def part_surfaces(seeds: int, budget: int) -> list[str]:
    out = [f"## 1. DEO.md's escape table (lr {LR}; budget {budget} steps; {seeds} seeds)", ""]
    all_cells = {label: surface_cells(key, start, seeds, budget) for key, start, label in SURFACE_ROWS}
    names = list(next(iter(all_cells.values())))
    header = ["surface, start", *names]
    out += ["Steps to escape (median [IQR]):", ""]
    out += table(header, [[label, *(cells[n][0] for n in names)] for label, cells in all_cells.items()])
    out += ["", "Gradient evaluations to escape (median [IQR]):", ""]
    out += table(header, [[label, *(cells[n][1] for n in names)] for label, cells in all_cells.items()])
    out += ["", "DEO.md's reference (GD / Adam / α=1 exact / α=−1 exact; — = not within 20 000):", ""]
    ref_rows = [[label, *("—" if v is None else str(v) for v in ref)] for label, ref in DEO_MD.items()]
    out += table(["surface, start", "GD", "Adam", "α=1 exact", "α=−1 exact"], ref_rows)
    return out


def part_offsets(seeds: int, budget: int) -> list[str]:
    out = ["", f"## 2. Initial offset y₀ on x²−y² from (1, y₀) (lr {LR}; budget {budget})", ""]
    rows = []
    names = None
    for y0 in (1e-2, 1e-3, 1e-6):
        cells = surface_cells("saddle", (1.0, y0), seeds, budget)
        names = names or list(cells)
        closed = math.ceil(math.log(1.0 / y0) / math.log(1 + 2 * LR))
        rows.append([f"{y0:g}", str(closed), *(f"{cells[n][0]} / {cells[n][1]}" for n in names)])
    out += ["Cells: steps / gradient evaluations to escape (median [IQR]).", ""]
    out += table(["y₀", "GD closed form", *names], rows)
    return out


def network_cells(key: str, options: dict, lr: float, init: float, seeds: int, budget: int) -> dict:
    """optimizer label -> (steps cell, grad evals cell) over seeds for one network setting."""
    steps = {k: [] for k in NETWORK_OPTIMIZERS}
    evals = {k: [] for k in NETWORK_OPTIMIZERS}
    labels = {}
    for seed in range(seeds):
        net = landscapes.make_network(key, **options)
        problem = network_problem(net, init_scale=init, seed=seed)
        specs = [OptimizerSpec(k, {} if k in ADAM_BASED else {"lr": lr}) for k in NETWORK_OPTIMIZERS]
        traces = race(problem, specs, budget, seed=seed, record_every=budget, stop_on_escape=True)
        for k, trace in zip(NETWORK_OPTIMIZERS, traces):
            labels[k] = trace.label
            escaped = trace.escape_step is not None
            steps[k].append(trace.escape_step if escaped else math.nan)
            evals[k].append(float(trace.grad_evals[-1]) if escaped else math.nan)
    return {
        labels[k]: (summary(np.array(steps[k], float)), summary(np.array(evals[k], float))) for k in steps
    }


def part_networks(seeds: int) -> list[str]:
    out = [
        "",
        f"## 3. Networks: steps / gradient evaluations until the loss ≤ the problem's escape_loss "
        f"({seeds} seeds)",
        "",
        "GD, PGD and DEO-escape use the network's GD learning rate; Adam and DEO (paper, Adam base) "
        "use lr 0.01. Seeds change the initialisation, the dimer's initial N and PGD's noise. "
        "escape_loss: two_moons MSE < 0.25, deep_linear L < 7 − 0.375·3² (first mode half learned), "
        "teacher_student L < 0.04 (here with 1 000 samples instead of 4 000, to fit the time budget).",
        "",
    ]
    rows = []
    names = None
    for key, options, lr, inits, budget in NETWORK_RUNS:
        for init in inits:
            t0 = time.perf_counter()
            cells = network_cells(key, options, lr, init, seeds, budget)
            names = names or list(cells)
            extra = "".join(f" {name}={value}" for name, value in options.items())
            setting = f"{key}{extra}, init {init:g}, GD lr {lr}, budget {budget}"
            rows.append(
                [
                    setting,
                    *(f"{cells[n][0]} / {cells[n][1]}" for n in names),
                    f"{time.perf_counter() - t0:.0f}",
                ]
            )
    out += table(["problem", *names, "time s"], rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--part", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sections = _read_sections()
    for part in args.part:
        t0 = time.perf_counter()
        if part == "surfaces":
            lines = part_surfaces(args.seeds, args.budget) + part_offsets(args.seeds, args.budget)
        else:
            lines = part_networks(args.seeds)
        lines += [
            "",
            f"Command: `python benchmarks/escape.py --seeds {args.seeds} --budget {args.budget} "
            f"--part {part} --threads {args.threads}` ({time.perf_counter() - t0:.0f} s).  ",
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: "
            f"{platform.processor() or 'unknown'} ({platform.machine()}); torch {torch.__version__}; "
            f"{torch.get_num_threads()} intra-op thread(s). The counts are deterministic given the seeds; "
            "the times are wall times on a shared, heavily loaded 2-core machine (noisy).",
        ]
        sections[part] = "\n".join(lines)
        print(sections[part])
    text = "# Escape times at strict saddles\n\n" + __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0] + "\n"
    for part in PARTS:
        if part in sections:
            text += f"\n<!-- part:{part} -->\n{sections[part]}\n<!-- end:{part} -->\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


def _read_sections() -> dict[str, str]:
    """The parts already in the results file (a run of one part keeps the others)."""
    if not RESULTS.exists():
        return {}
    text = RESULTS.read_text()
    sections = {}
    for part in PARTS:
        start, end = f"<!-- part:{part} -->\n", f"\n<!-- end:{part} -->"
        if start in text and end in text:
            sections[part] = text.split(start, 1)[1].split(end, 1)[0]
    return sections


if __name__ == "__main__":
    main()
