"""Tuned learning rates: each optimizer at its best learning rate of a log-spaced grid, per problem.

A fair comparison tunes every optimizer. For every problem and optimizer (GD, Adam, DEO (paper),
DEO-escape, and DEO (paper)'s random fixed-direction control) the learning rate runs over a grid
spaced by half decades (×√10); the best grid point minimises the median gradient evaluations to
escape over the seeds (never-escaped runs count as +∞; ties go to the smaller lr). A best lr at
either end of the grid that is strictly better than its neighbour is marked "(edge)": the true
optimum may lie outside (an end cell that ties its neighbour is on a plateau the grid reaches, e.g.
one evaluation). For networks the best final loss over the grid is reported too.

- ``surfaces``: three rows of the README's escape table (x²−y² from (1, 1e-3), x²−y²+y⁴/4 — escaped
  at f ≤ −0.9, its minimum being exactly −1 — and the monkey saddle; f ≤ −1 elsewhere), seeds as rows
  of one batched run, budget 1 000 steps, grid 1e-3 … 100.
- ``networks``: two_moons (2-4-1, init 1e-3, 200 steps) and deep_linear (init 1e-3, 300 steps)
  through ``deo.race.race`` (escaped below the problem's escape_loss), grid 1e-3 … 10. On request
  (``--networks``, ``--grid``): teacher_student (1 000 samples, init 0.1, 1 500 steps) and
  tiny_transformer (init 1e-6, 400 steps), the settings of ``benchmarks/controls.py``.

Gradient evaluations are the algorithm's (the DEO presets pay their dimer probes; the control is
charged at the DEO (paper) rate). Outputs: ``benchmarks/results/tuned_lr.md`` and
``tuned_lr.csv`` (every grid cell; the About page's figure is drawn from it).

    python benchmarks/tuned_lr.py [--part surfaces networks] [--seeds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import landscapes  # noqa: E402
from deo.presets import PRESETS  # noqa: E402
from deo.race import OptimizerSpec, escape_map, network_problem, race, surface_escape  # noqa: E402

PARTS = ("surfaces", "networks")
OPTIMIZERS = ("gd", "adam", "deo_paper", "deo_paper_random", "deo_escape")
SURFACE_ROWS = (
    ("saddle", (1.0, 1e-3), "x²−y², (1, 1e-3)"),
    ("saddle_plateau", (1.0, 1e-6), "x²−y²+y⁴/4, (1, 1e-6), f ≤ −0.9"),
    ("monkey_saddle", (0.5, 1e-3), "monkey saddle, (0.5, 1e-3)"),
)
HALF_DECADES = tuple(float(f"{10 ** (k / 2):.3g}") for k in range(-6, 5))  # 1e-3, 0.00316, ..., 100
SURFACE_GRID = HALF_DECADES
SURFACE_BUDGET = 1000
NETWORK_GRID = HALF_DECADES[:-2]  # 1e-3 ... 10
NETWORK_RUNS = (  # (key, options, init, budget)
    ("two_moons", {"hidden": 4}, 1e-3, 200),
    ("deep_linear", {}, 1e-3, 300),
    ("teacher_student", {"n_samples": 1000}, 1e-1, 1500),
    ("tiny_transformer", {}, 1e-6, 400),
)
DEFAULT_NETWORKS = "two_moons,deep_linear"
FIELDS = ("problem", "optimizer", "label", "lr", "seeds", "escaped", "evals_median", "evals_q25", "evals_q75",
          "steps_median", "final_loss_median")  # fmt: skip


def quartiles(values) -> tuple[float, float, float]:
    v = np.where(np.isnan(np.asarray(values, float)), np.inf, np.asarray(values, float))
    with np.errstate(invalid="ignore"):
        q25, q50, q75 = np.percentile(v, [25, 50, 75], method="nearest")
    return float(q25), float(q50), float(q75)


def cell(problem: str, key: str, lr: float, steps, evals, final=None) -> dict:
    q25, q50, q75 = quartiles(evals)
    s = np.asarray(steps, float)
    return {
        "problem": problem,
        "optimizer": key,
        "label": PRESETS[key].label,
        "lr": lr,
        "seeds": s.size,
        "escaped": int(np.isfinite(s).sum()),
        "evals_median": q50,
        "evals_q25": q25,
        "evals_q75": q75,
        "steps_median": quartiles(steps)[1],
        "final_loss_median": math.nan if final is None else float(np.median(final)),
    }


def run_surfaces(seeds: int) -> list[dict]:
    cells = []
    for key, start, name in SURFACE_ROWS:
        surface = landscapes.SURFACES[key]
        criterion = surface_escape(surface, start)
        starts = np.tile(np.asarray(start, dtype=np.float64), (seeds, 1))
        for opt in OPTIMIZERS:
            specs = [OptimizerSpec(opt, {"lr": lr}, label=f"{opt}@{lr:g}") for lr in SURFACE_GRID]
            results = escape_map(surface.f, starts, specs, SURFACE_BUDGET, criterion, stop_when_escaped=True)
            for lr, spec in zip(SURFACE_GRID, specs):
                r = results[spec.label]
                cells.append(cell(name, opt, lr, r.steps_to_escape, r.grad_evals_to_escape))
            print(f"{name} {opt} done", flush=True)
    return cells


def run_networks(
    seeds: int, keys: list[str], grid: tuple[float, ...] = NETWORK_GRID, optimizers: tuple = OPTIMIZERS
) -> list[dict]:
    cells = []
    for key, options, init, budget in NETWORK_RUNS:
        if key not in keys:
            continue
        name = f"{key}{''.join(f' {n}={v}' for n, v in options.items())}, init {init:g}, {budget} steps"
        results = {(o, lr): ([], [], []) for o in optimizers for lr in grid}
        for seed in range(seeds):
            net = landscapes.make_network(key, **options)
            problem = network_problem(net, init_scale=init, seed=seed)
            for opt in optimizers:
                specs = [OptimizerSpec(opt, {"lr": lr}, label=f"{opt}@{lr:g}") for lr in grid]
                traces = race(problem, specs, budget, seed=seed, record_every=budget)
                for lr, trace in zip(grid, traces):
                    steps, evals, final = results[opt, lr]
                    hit = trace.escape_step is not None
                    steps.append(trace.escape_step if hit else math.nan)
                    at = int(np.searchsorted(trace.steps, trace.escape_step)) if hit else -1
                    evals.append(float(trace.grad_evals[at]) if hit else math.nan)
                    loss = float(trace.loss[-1])
                    final.append(loss if trace.status != "diverged" else math.inf)
            print(f"{key} seed {seed} done", flush=True)
        for (opt, lr), (steps, evals, final) in results.items():
            cells.append(cell(name, opt, lr, steps, evals, final))
    return cells


def best(cells: list[dict], grid: tuple[float, ...], by: str) -> dict:
    """The grid cell with the smallest ``by`` (ties: smaller lr), with ``edge`` set.

    ``edge``: the best lr is an end of the grid *and* strictly better than its neighbour inside the
    grid, so the optimum may lie outside. A best end cell that ties its neighbour sits on a plateau
    that the grid already reaches (e.g. one gradient evaluation, the least possible): not an edge.
    """
    ordered = sorted(cells, key=lambda c: (c[by], c["lr"]))
    top = dict(ordered[0])
    by_lr = {c["lr"]: c[by] for c in cells}
    neighbour = {grid[0]: grid[1], grid[-1]: grid[-2]}.get(top["lr"])
    top["edge"] = (
        math.isfinite(top[by]) and neighbour is not None and by_lr.get(neighbour, math.inf) > top[by]
    )
    return top


def fmt_evals(c: dict) -> str:
    if not math.isfinite(c["evals_median"]):
        return f"— ({c['escaped']}/{c['seeds']})"
    spread = "" if c["evals_q25"] == c["evals_q75"] else f" [{c['evals_q25']:.0f}–{_num(c['evals_q75'])}]"
    return f"{c['evals_median']:.0f}{spread} ({c['escaped']}/{c['seeds']})"


def _num(v: float) -> str:
    return "∞" if not math.isfinite(v) else f"{v:.0f}"


def report(cells: list[dict], grid: tuple[float, ...], networks: bool) -> list[str]:
    problems = list(dict.fromkeys(c["problem"] for c in cells))
    optimizers = [o for o in OPTIMIZERS if any(c["optimizer"] == o for c in cells)]
    header = ["problem", *(PRESETS[o].label for o in optimizers)]
    rows, loss_rows, winners = [], [], []
    for problem in problems:
        row, lrow, bests = [problem], [problem], {}
        for opt in optimizers:
            mine = [c for c in cells if c["problem"] == problem and c["optimizer"] == opt]
            b = best(mine, grid, "evals_median")
            bests[opt] = b
            edge = " (edge)" if b["edge"] else ""
            row.append(
                f"{fmt_evals(b)} @ lr {b['lr']:g}{edge}" if math.isfinite(b["evals_median"]) else fmt_evals(b)
            )
            if networks:
                bl = best(mine, grid, "final_loss_median")
                edge = " (edge)" if bl["edge"] else ""
                lrow.append(f"{bl['final_loss_median']:.3g} @ lr {bl['lr']:g}{edge}")
        rows.append(row)
        loss_rows.append(lrow)
        base = min(bests[k]["evals_median"] for k in ("gd", "adam") if k in bests)
        dimer = min(bests[k]["evals_median"] for k in ("deo_paper", "deo_escape") if k in bests)
        winners.append(
            [problem, _num(base), _num(dimer), "yes" if dimer < base else ("tie" if dimer == base else "no")]
        )
    out = ["Best-of-grid gradient evaluations to escape, median [IQR] (escaped/seeds) @ best lr:", ""]
    out += _table(header, rows)
    if networks:
        out += ["", "Best-of-grid final loss (median over seeds) @ its lr:", ""]
        out += _table(header, loss_rows)
    out += [
        "",
        "Does a DEO preset at its best lr beat the best of GD and Adam at theirs (median gradient "
        "evaluations)?",
        "",
    ]
    out += _table(["problem", "best of GD/Adam", "best of DEO (paper)/DEO-escape", "DEO better?"], winners)
    return out


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--networks", default=DEFAULT_NETWORKS, help="comma list")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="networks part: comma list")
    parser.add_argument("--grid", default=None, help="networks part: comma list of lrs (default 1e-3…10)")
    args = parser.parse_args()
    net_grid = tuple(float(v) for v in args.grid.split(",")) if args.grid else NETWORK_GRID
    opts = tuple(args.optimizers.split(","))
    torch.set_num_threads(args.threads)
    csv_path, md_path = RESULTS / "tuned_lr.csv", RESULTS / "tuned_lr.md"
    new_cells, new_sections = [], {}
    for part in args.part:
        t0 = time.perf_counter()
        keys = args.networks.split(",")
        grid = SURFACE_GRID if part == "surfaces" else net_grid
        cells = run_surfaces(args.seeds) if part == "surfaces" else run_networks(args.seeds, keys, grid, opts)
        title = "Surfaces" if part == "surfaces" else "Small networks"
        lines = [f"## {title} (grid {', '.join(f'{g:g}' for g in grid)}; {args.seeds} seeds)", ""]
        lines += report(cells, grid, part == "networks")
        lines += [
            "",
            f"Command: `python benchmarks/tuned_lr.py --part {part} --seeds {args.seeds} "
            f"--threads {args.threads}"
            f"{'' if part == 'surfaces' else ' --networks ' + args.networks}"
            f"{' --grid ' + args.grid if args.grid and part == 'networks' else ''}"
            f"{' --optimizers ' + args.optimizers if args.optimizers != ','.join(OPTIMIZERS) else ''}` "
            f"({time.perf_counter() - t0:.0f} s wall).  ",
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores shared with other jobs; load average {os.getloadavg()[0]:.1f}; torch "
            f"{torch.__version__}, {torch.get_num_threads()} thread(s). Counts are deterministic given the "
            "seeds.",
        ]
        key = part if part == "surfaces" else f"networks:{args.networks}"
        new_sections[key] = "\n".join(lines)
        print(new_sections[key], flush=True)
        new_cells += cells
    # read what other runs wrote only now (runs of different parts may overlap in time)
    kept = []
    if csv_path.exists():
        with csv_path.open() as fh:
            kept = [dict(r) for r in csv.DictReader(fh)]
    names = {c["problem"] for c in new_cells}
    kept = [r for r in kept if r["problem"] not in names] + new_cells
    sections = {**_read_sections(md_path), **new_sections}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in FIELDS} for r in kept)
    text = "# Tuned learning rates\n\n" + __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
    for part in sorted(sections):
        text += f"\n\n<!-- part:{part} -->\n{sections[part]}\n<!-- end:{part} -->"
    md_path.write_text(text + "\n")


def _read_sections(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text, sections = path.read_text(), {}
    for chunk in text.split("<!-- part:")[1:]:
        part, _, rest = chunk.partition(" -->\n")
        sections[part] = rest.split(f"\n<!-- end:{part} -->", 1)[0]
    return sections


if __name__ == "__main__":
    main()
