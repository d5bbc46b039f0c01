"""Controls: does the rotating dimer beat a random direction that is never rotated?

Every DEO preset is run next to its two controls (``deo.presets.controls_of``): the same step and the
same gradient-evaluation accounting, with N a random unit vector drawn once (the dimer run's own
initial N for that seed) or re-drawn at every rotation event. GD and Adam run alongside. A DEO win
that its random control also shows is symmetry breaking, not the min mode.

Parts (``--part``):

- ``surfaces``: the four rows of the README's escape table (lr 0.01; escaped when f ≤ −1, on
  x²−y²+y⁴/4 — whose minimum is exactly −1 — when f ≤ −0.9), all seeds as rows of one batched run.
- ``networks``: two_moons (2-4-1, init 1e-3), deep_linear (init 1e-3), teacher_student (1 000 samples,
  init 0.1) through ``deo.race.race``: escaped when the loss falls below the problem's escape_loss.
  GD, DEO-escape and its controls use the network's GD lr; Adam, DEO (paper) and its controls lr 0.01.
- ``transformer``: tiny_transformer (neighbour sums mod 3, 12 992 parameters), init 1e-6, Adam,
  DEO (paper) and its two controls at lr 0.01; with ``--transformer-family gd``: GD, DEO-escape and
  its two controls at ``--transformer-gd-lr`` (0.5: the largest of 0.1 / 0.5 / 2 with which GD did
  not diverge on seed 0 in a one-off probe, not a tuned value).
- ``diagnostics``: on tiny_transformer, DEO (paper) and its fixed random control, at a few steps of
  the plateau: Lanczos λ_min and v_min of the exact Hessian (HVPs), |cos∠(N, v_min)|, the Rayleigh
  quotient NᵀHN, and what the projection removes: (g·N)²/‖g‖² against (g·v_min)²/‖g‖².

Cells: median [q25–q75] over seeds of steps / gradient evaluations to escape (never-escaped runs
count as +∞; "—" when the median did not escape), and "escaped k/n". The controls' gradient
evaluations are charged at the DEO preset's rate (``DEO(direction="random")`` accounting), so
steps compare the two at equal cost.

    python benchmarks/controls.py --part surfaces networks transformer diagnostics [--seeds 10]
"""

from __future__ import annotations

import argparse
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
RESULTS = ROOT / "benchmarks" / "results" / "controls.md"
sys.path.insert(0, str(ROOT))

import landscapes  # noqa: E402
from deo.hessian import hvp, lanczos_min_eig  # noqa: E402
from deo.presets import PRESETS, controls_of, make_optimizer  # noqa: E402
from deo.race import OptimizerSpec, escape_map, network_problem, race, surface_escape  # noqa: E402

PARTS = ("surfaces", "networks", "transformer", "diagnostics")
SECTION_ORDER = ("summary", *PARTS)
SURFACE_ROWS = (
    ("saddle", (1.0, 1e-3), "x²−y², (1, 1e-3)"),
    ("saddle", (1.0, 1e-6), "x²−y², (1, 1e-6)"),
    ("saddle_plateau", (1.0, 1e-6), "x²−y²+y⁴/4, (1, 1e-6), f ≤ −0.9"),
    ("monkey_saddle", (0.5, 1e-3), "monkey saddle, (0.5, 1e-3)"),
)
DIMER_KEYS = ("deo_paper", "deo_escape")
ADAM_BASED = {"adam", "deo_paper", *controls_of("deo_paper")}
OPTIMIZERS = ("gd", "adam", *(k for key in DIMER_KEYS for k in (key, *controls_of(key))))
NETWORK_RUNS = (  # (key, options, GD-family lr, init, budget)
    ("two_moons", {"hidden": 4}, 0.1, 1e-3, 600),
    ("deep_linear", {}, 0.01, 1e-3, 1500),
    ("teacher_student", {"n_samples": 1000}, 0.5, 1e-1, 1500),
)
TRANSFORMER_OPTIMIZERS = ("adam", "deo_paper", *controls_of("deo_paper"))
PROBLEM_ORDER = [*(name for _, _, name in SURFACE_ROWS), *(r[0] for r in NETWORK_RUNS), "tiny_transformer"]
TRANSFORMER_GD_OPTIMIZERS = ("gd", "deo_escape", *controls_of("deo_escape"))
CSV = RESULTS.with_suffix(".csv")
ASSEMBLE_BUDGET = {"tiny_transformer": 400, **{r[0]: r[4] for r in NETWORK_RUNS}}  # the runs' defaults
CSV_COLUMNS = ("problem", "seed", "optimizer", "steps", "grad_evals", "budget")
RECORDS: list[dict] = []  # per-seed rows of this run, merged into controls.csv by main()


def record(problem: str, seed: int, key: str, steps: float, evals: float, budget: int) -> None:
    RECORDS.append(
        dict(problem=problem, seed=seed, optimizer=key, steps=steps, grad_evals=evals, budget=budget)
    )


def seed_line(problem: str, seed: int, steps: dict, evals: dict) -> str:
    """The per-seed log line ``--assemble`` reads: ``<problem> seed <s>: <key>=<steps>/<evals> ...``."""
    return f"{problem} seed {seed}: " + " ".join(f"{k}={steps[k][-1]}/{evals[k][-1]}" for k in steps)


def summary(values) -> str:
    v = np.where(np.isnan(np.asarray(values, float)), np.inf, np.asarray(values, float))
    with np.errstate(invalid="ignore"):
        q25, q50, q75 = np.percentile(v, [25, 50, 75], method="nearest")
    if not np.isfinite(q50):
        return "—"
    if q25 == q75:
        return f"{q50:.0f}"
    return f"{q50:.0f} [{q25:.0f}–{'∞' if not np.isfinite(q75) else f'{q75:.0f}'}]"


def escaped_count(values) -> str:
    v = np.asarray(values, float)
    return f"{int(np.isfinite(v).sum())}/{v.size}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def label(key: str) -> str:
    return PRESETS[key].label


UNTESTED = (
    "Medians only, untested (the tested verdict per problem is in the Summary): does the dimer have more "
    "escapes, else fewer median steps, than its random control?"
)


def verdict(dimer, control) -> str:
    """Does the dimer beat its control? Compared on escaped counts, then on median steps (∞ = never)."""
    a, b = np.asarray(dimer, float), np.asarray(control, float)
    ka, kb = np.isfinite(a).sum(), np.isfinite(b).sum()
    ma = np.median(np.where(np.isnan(a), np.inf, a))
    mb = np.median(np.where(np.isnan(b), np.inf, b))
    if ka > kb or (ka == kb and ma < mb):
        return "yes"
    if ka == kb and ma == mb:
        return "tie"
    return "no"


# ------------------------------------------------------------------------------------------ parts
def part_surfaces(seeds: int, budget: int) -> tuple[list[str], dict]:
    out = [f"## Surfaces (lr 0.01, budget {budget} steps, {seeds} seeds as rows of one batched run)", ""]
    steps_rows, evals_rows, verdict_rows, data = [], [], [], {}
    for key, start, name in SURFACE_ROWS:
        surface = landscapes.SURFACES[key]
        criterion = surface_escape(surface, start)
        starts = np.tile(np.asarray(start, dtype=np.float64), (seeds, 1))
        specs = [OptimizerSpec(k, {"lr": 0.01}, label=label(k)) for k in OPTIMIZERS]
        results = escape_map(surface.f, starts, specs, budget, criterion, stop_when_escaped=True)
        steps = {k: results[label(k)].steps_to_escape for k in OPTIMIZERS}
        evals = {k: results[label(k)].grad_evals_to_escape for k in OPTIMIZERS}
        data[name] = steps
        for k in OPTIMIZERS:
            for seed, (st, ev) in enumerate(zip(steps[k], evals[k])):
                record(name, seed, k, float(st), float(ev), budget)
        steps_rows.append([name, *(f"{summary(steps[k])} ({escaped_count(steps[k])})" for k in OPTIMIZERS)])
        evals_rows.append([name, *(summary(evals[k]) for k in OPTIMIZERS)])
        verdict_rows.append(
            [name, *(verdict(steps[k], steps[c]) for k in DIMER_KEYS for c in controls_of(k))]
        )
    header = ["surface, start", *(label(k) for k in OPTIMIZERS)]
    out += ["Steps to escape, median [IQR] (escaped/seeds):", "", *table(header, steps_rows), ""]
    out += [
        "Gradient evaluations to escape (closure calls of the batched run, i.e. what each really "
        "evaluated; a control's probe-only events cost less than the dimer's):",
        "",
        *table(header, evals_rows),
        "",
    ]
    vheader = [
        "surface, start",
        *(f"{label(k)} beats {label(c)}?" for k in DIMER_KEYS for c in controls_of(k)),
    ]
    out += [UNTESTED, ""]
    out += table(vheader, verdict_rows)
    return out, data


def network_runs(key, options, lr, init, budget, seeds, optimizers) -> dict[str, dict[str, list]]:
    steps = {k: [] for k in optimizers}
    evals = {k: [] for k in optimizers}
    for seed in seeds:
        net = landscapes.make_network(key, **options)
        problem = network_problem(net, init_scale=init, seed=seed)
        specs = [OptimizerSpec(k, {"lr": 0.01 if k in ADAM_BASED else lr}) for k in optimizers]
        traces = race(problem, specs, budget, seed=seed, record_every=budget, stop_on_escape=True)
        for k, trace in zip(optimizers, traces):
            hit = trace.escape_step is not None
            steps[k].append(trace.escape_step if hit else math.nan)
            evals[k].append(float(trace.grad_evals[-1]) if hit else math.nan)
            record(key, seed, k, steps[k][-1], evals[k][-1], budget)
        print(seed_line(key, seed, steps, evals), flush=True)
    return {"steps": steps, "evals": evals}


def network_section(title: str, rows_in: list[tuple[str, dict]], optimizers) -> list[str]:
    rows, vrows = [], []
    dimers = [k for k in DIMER_KEYS if k in optimizers]
    for setting, res in rows_in:
        s, e = res["steps"], res["evals"]
        rows.append(
            [setting, *(f"{summary(s[k])} / {summary(e[k])} ({escaped_count(s[k])})" for k in optimizers)]
        )
        vrows.append([setting, *(verdict(s[k], s[c]) for k in dimers for c in controls_of(k))])
    out = [title, "", "Cells: steps / gradient evaluations to escape, median [IQR] (escaped/seeds).", ""]
    out += table(["problem", *(label(k) for k in optimizers)], rows)
    out += ["", UNTESTED, ""]
    out += table(
        ["problem", *(f"{label(k)} beats {label(c)}?" for k in dimers for c in controls_of(k))], vrows
    )
    return out


def part_networks(seeds: list[int], keys: list[str]) -> list[str]:
    rows = []
    for key, options, lr, init, budget in NETWORK_RUNS:
        if key not in keys:
            continue
        t0 = time.perf_counter()
        res = network_runs(key, options, lr, init, budget, seeds, OPTIMIZERS)
        extra = "".join(f" {n}={v}" for n, v in options.items())
        rows.append(
            (
                f"{key}{extra}, init {init:g}, GD lr {lr}, budget {budget} "
                f"({time.perf_counter() - t0:.0f} s)",
                res,
            )
        )
    return network_section(
        f"## Small networks ({len(seeds)} seeds {seeds[0]}–{seeds[-1]}: init, initial N and redraws)",
        rows,
        OPTIMIZERS,
    )


def part_transformer(seeds: list[int], budget: int, optimizers=TRANSFORMER_OPTIMIZERS, lr: float = 0.01):
    """tiny_transformer at init 1e-6: ``optimizers`` (the Adam-based or the GD-based family) at ``lr``."""
    t0 = time.perf_counter()
    steps = {k: [] for k in optimizers}
    evals = {k: [] for k in optimizers}
    for seed in seeds:
        net = landscapes.make_network("tiny_transformer")
        problem = network_problem(net, init_scale=1e-6, seed=seed)
        specs = [OptimizerSpec(k, {"lr": lr}) for k in optimizers]
        traces = race(problem, specs, budget, seed=seed, record_every=budget, stop_on_escape=True)
        for k, trace in zip(optimizers, traces):
            hit = trace.escape_step is not None
            steps[k].append(trace.escape_step if hit else math.nan)
            evals[k].append(float(trace.grad_evals[-1]) if hit else math.nan)
            record("tiny_transformer", seed, k, steps[k][-1], evals[k][-1], budget)
        print(seed_line("tiny_transformer", seed, steps, evals), flush=True)
    res = {"steps": steps, "evals": evals}
    setting = (
        f"tiny_transformer, init 1e-6, lr {lr:g}, budget {budget}, seeds {seeds[0]}–{seeds[-1]} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    out = network_section(
        f"## tiny_transformer ({len(seeds)} seeds; escaped when the answer loss < ½ ln 3)",
        [(setting, res)],
        optimizers,
    )
    per_seed = [[str(s), *("—" if math.isnan(steps[k][i]) else f"{steps[k][i]:.0f}" for k in steps)]
                for i, s in enumerate(seeds)]  # fmt: skip
    out += ["", "Steps to escape per seed (— = not within the budget):", ""]
    out += table(["seed", *(label(k) for k in optimizers)], per_seed)
    return out


def _functions(net, names, leaves, batch):
    """(closure for the optimizer, flat-vector loss for the ground truth) on one fixed batch."""
    sizes = [p.numel() for p in leaves]

    def closure():
        for p in leaves:
            p.grad = None
        loss = net.loss(dict(zip(names, leaves)), batch)
        loss.backward()
        return loss

    def flat_loss(theta):
        parts = torch.split(theta, sizes)
        return net.loss({n: t.reshape(p.shape) for n, t, p in zip(names, parts, leaves)}, batch)

    return closure, flat_loss


def _hvp_at(flat_loss, theta):
    return lambda u: hvp(flat_loss, theta, u.to(theta.dtype)).to(torch.float64)


def part_diagnostics(seeds: list[int], at_steps: list[int], maxiter: int) -> list[str]:
    """|cos∠(N, v_min)|, NᵀHN, λ_min and the removed gradient fraction on the plateau (see module doc)."""
    rows = []
    for seed in seeds:
        for key in ("deo_paper", "deo_paper_random"):
            net = landscapes.make_network("tiny_transformer")
            params0 = net.params0(init_scale=1e-6, seed=seed)
            names = list(params0)
            leaves = [params0[n].detach().clone().requires_grad_(True) for n in names]
            torch.manual_seed(seed)
            opt = make_optimizer(key, leaves, seed=seed, lr=0.01)
            batch = net.batch(0)

            closure, flat_loss = _functions(net, names, leaves, batch)

            for t in range(max(at_steps) + 1):
                if t in at_steps:
                    theta = torch.cat([p.detach().reshape(-1) for p in leaves])
                    loss = float(flat_loss(theta))
                    g = torch.func.grad(flat_loss)(theta).to(torch.float64)
                    lam, v, info = lanczos_min_eig(
                        _hvp_at(flat_loss, theta), theta.numel(), tol=1e-3, maxiter=maxiter
                    )
                    v = torch.as_tensor(v, dtype=torch.float64)
                    n = opt.diagnostics()["direction"].to(torch.float64)
                    n = n / n.norm()
                    rq = float(n @ hvp(flat_loss, theta, n.to(theta.dtype)).to(torch.float64))
                    gg = float(g @ g)
                    cos = abs(float(n @ v))
                    rows.append([
                        str(seed), label(key), str(t), f"{loss:.4f}", f"{lam:.3g}", f"{cos:.4f}",
                        f"{rq:.3g}", f"{float(g @ n) ** 2 / gg:.2e}", f"{float(g @ v) ** 2 / gg:.2e}",
                        str(info["hvps"]),
                    ])  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
                opt.step(closure)
    d = 12992
    out = [
        "## tiny_transformer on the plateau: where the dimer's N points",
        "",
        f"Exact Hessian of the full-batch loss at the iterate (Lanczos on HVPs, tol 1e-3, ≤ {maxiter} "
        "restarts). removed = (g·N)²/‖g‖², the share of ‖g‖² DEO's projection takes out; along v_min = "
        f"(g·v_min)²/‖g‖². A random direction has |cos| ≈ √(2/(π d)) ≈ {math.sqrt(2 / (math.pi * d)):.4f} "
        f"(d = {d}).",
        "",
    ]
    out += table(
        [
            "seed",
            "optimizer",
            "step",
            "loss",
            "λ_min",
            "|cos∠(N, v_min)|",
            "NᵀHN",
            "removed",
            "along v_min",
            "HVPs",
        ],
        rows,
    )
    return out


def fisher(a, b) -> float:
    """Two-sided Fisher exact p-value of "escaped" counts a vs b (same number of seeds)."""
    from scipy.stats import fisher_exact

    ka, kb = int(np.isfinite(np.asarray(a, float)).sum()), int(np.isfinite(np.asarray(b, float)).sum())
    return float(fisher_exact([[ka, len(a) - ka], [kb, len(b) - kb]]).pvalue)


def mann_whitney(a, b, budget: float) -> float:
    """Two-sided Mann–Whitney U p-value of steps to escape, a never-escaped run ranked last (budget + 1)."""
    from scipy.stats import mannwhitneyu

    fill = lambda v: np.where(np.isfinite(np.asarray(v, float)), np.asarray(v, float), budget + 1)  # noqa: E731
    return float(mannwhitneyu(fill(a), fill(b), alternative="two-sided").pvalue)


def tested_verdict(dimer, control, budget: float, alpha: float = 0.05) -> str:
    """Yes / no / no difference shown, with the test: Fisher's exact test of the escape counts when
    they differ, else (equal counts, > 0) Mann–Whitney on the steps to escape (never = last)."""
    a, b = np.asarray(dimer, float), np.asarray(control, float)
    ka, kb = int(np.isfinite(a).sum()), int(np.isfinite(b).sum())
    counts = f"escaped {ka}/{a.size} vs {kb}/{b.size}"
    if ka == kb == 0:
        return f"neither escapes ({counts})"
    if ka != kb:
        p, test, better = fisher(a, b), "Fisher exact on escape counts", ka > kb
    else:
        ma, mb = (
            float(np.percentile(np.where(np.isfinite(v), v, np.inf), 50, method="nearest")) for v in (a, b)
        )
        p, test, better = mann_whitney(a, b, budget), "Mann–Whitney on steps", ma < mb
        counts += f", median steps {ma:.0f} vs {mb:.0f}"
    if p >= alpha:
        word = "no difference shown"
    else:
        word = "**yes**" if better else "**no, the control is better**"
    return f"{word} ({counts}; {test} p = {p:.2g})"


def read_csv(path: Path | None = None) -> list[dict]:
    import csv

    path = path or CSV
    if not path.exists():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def merge_csv(records: list[dict], path: Path | None = None) -> None:
    """Replace the (problem, optimizer, seed) rows of this run in controls.csv, keep the others."""
    import csv

    path = path or CSV
    new = {(r["problem"], r["optimizer"], str(r["seed"])): r for r in records}
    rows = [r for r in read_csv(path) if (r["problem"], r["optimizer"], r["seed"]) not in new]
    rows += [
        {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in new.values()
    ]
    order = {name: i for i, name in enumerate(PROBLEM_ORDER)}
    rows.sort(key=lambda r: (order.get(r["problem"], 99), r["problem"], r["optimizer"], int(r["seed"])))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def part_summary(rows: list[dict]) -> list[str]:
    """The per-problem summary and verdicts, from the per-seed rows of controls.csv."""
    val = lambda x: float(x) if x not in ("", None) else math.nan  # noqa: E731
    problems = sorted({r["problem"] for r in rows}, key=lambda n: [*PROBLEM_ORDER, n].index(n))
    out = [
        "## Summary: every problem, every optimizer (from `controls.csv`)",
        "",
        "Cells: steps / gradient evaluations to escape, median [IQR] over seeds (never-escaped = ∞; "
        '"—" when the median did not escape), then escaped/seeds. On the surfaces GD and Adam are '
        "deterministic (the seed only draws the dimer's N); elsewhere the seed draws the init, N and "
        'the redraws. "n/a": not run. Evaluations "?": the per-seed log kept steps only.',
        "",
    ]
    summary_rows, verdict_rows = [], []
    for problem in problems:
        here = [r for r in rows if r["problem"] == problem]
        budget = max(val(r["budget"]) for r in here)
        steps, evals = {}, {}
        for k in OPTIMIZERS:
            rk = sorted((r for r in here if r["optimizer"] == k), key=lambda r: int(r["seed"]))
            if rk:
                steps[k] = [val(r["steps"]) for r in rk]
                evals[k] = [val(r["grad_evals"]) for r in rk]
        cells = []
        for k in OPTIMIZERS:
            if k not in steps:
                cells.append("n/a")
                continue
            st, ev = np.asarray(steps[k]), np.asarray(evals[k])
            ev_text = "?" if np.isnan(ev[np.isfinite(st)]).any() else summary(ev)
            cells.append(f"{summary(st)} / {ev_text} ({escaped_count(st)})")
        summary_rows.append([problem, f"{budget:.0f}", *cells])
        verdict_rows.append(
            [
                problem,
                *(
                    tested_verdict(steps[k], steps[c], budget) if k in steps and c in steps else "n/a"
                    for k in DIMER_KEYS
                    for c in controls_of(k)
                ),
            ]
        )
    out += table(["problem", "budget (steps)", *(label(k) for k in OPTIMIZERS)], summary_rows)
    out += [
        "",
        "### Does the dimer beat its random control? One line per problem",
        "",
        "Test (two-sided, 5 %): Fisher's exact test on the escape counts when they differ; when they are "
        'equal, Mann–Whitney U on the steps to escape (a never-escaped run ranks last). "yes" = the '
        'dimer is significantly better, "no, the control is better" = significantly worse, '
        '"no difference shown" = p ≥ 0.05.',
        "",
    ]
    out += table(
        ["problem", *(f"{label(k)} beats its {label(c).split('control: ')[-1]}?" for k in DIMER_KEYS
                      for c in controls_of(k))],
        verdict_rows,
    )  # fmt: skip
    return out


def assemble(logs: list[str]) -> dict[str, str]:
    """Sections rebuilt from the per-seed lines ("<problem> seed <s>: <key>=<steps> ...") that parallel
    runs print, for runs stopped before they wrote their own file (steps only: their gradient
    evaluations follow from the steps, the charge being the same for a DEO preset and its controls)."""
    import re

    per: dict[str, dict[int, dict[str, float]]] = {}
    for path in logs:
        for line in Path(path).read_text().splitlines():
            m = re.match(r"(\w+) seed (\d+): (.*)", line.strip())
            if m:
                values = dict(kv.split("=") for kv in m.group(3).split())
                per.setdefault(m.group(1), {})[int(m.group(2))] = {
                    k: float(v.split("/")[0]) for k, v in values.items()
                }
                for k, v in values.items():
                    st, _, ev = v.partition("/")
                    budget = ASSEMBLE_BUDGET.get(m.group(1), math.nan)
                    record(m.group(1), int(m.group(2)), k, float(st), float(ev or "nan"), budget)
    sections = {}
    for problem, rows in per.items():
        seeds = sorted(rows)
        keys = list(rows[seeds[0]])
        steps = {k: [rows[s][k] for s in seeds] for k in keys}
        dimers = [k for k in DIMER_KEYS if k in keys]
        out = [
            f"## {problem}: {len(seeds)} seeds ({', '.join(map(str, seeds))})",
            "",
            "Steps to escape, median [IQR] (escaped/seeds). Assembled from the per-seed lines of the runs "
            "listed below (`python benchmarks/controls.py --assemble LOG...`).",
            "",
        ]
        out += table(
            [label(k) for k in keys], [[f"{summary(steps[k])} ({escaped_count(steps[k])})" for k in keys]]
        )
        out += ["", "Does the dimer beat its random control (tested; see the Summary for the test)?", ""]
        out += table(
            [f"{label(k)} beats {label(c)}?" for k in dimers for c in controls_of(k)],
            [
                [
                    tested_verdict(steps[k], steps[c], ASSEMBLE_BUDGET.get(problem, math.inf))
                    for k in dimers
                    for c in controls_of(k)
                ]
            ],
        )
        out += ["", "Steps to escape per seed (— = not within the budget):", ""]
        out += table(
            ["seed", *(label(k) for k in keys)],
            [
                [str(s), *("—" if math.isnan(rows[s][k]) else f"{rows[s][k]:.0f}" for k in keys)]
                for s in seeds
            ],
        )
        sections[f"assembled:{problem}"] = "\n".join(out)
    return sections


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=1000, help="surfaces")
    parser.add_argument("--transformer-seeds", default="0-19", help="a-b (inclusive)")
    parser.add_argument("--transformer-budget", type=int, default=400)
    parser.add_argument(
        "--transformer-family", default="adam", choices=("adam", "gd"),
        help="adam: Adam, DEO (paper) and its controls; gd: GD, DEO-escape and its controls",
    )  # fmt: skip
    parser.add_argument("--transformer-gd-lr", type=float, default=0.5, help="lr of the gd family")
    parser.add_argument("--network-seeds", default=None, help="a-b (inclusive); default 0-(seeds-1)")
    parser.add_argument("--diag-seeds", default="0-1")
    parser.add_argument("--diag-steps", default="25,75,125")
    parser.add_argument("--lanczos-maxiter", type=int, default=5)
    parser.add_argument("--networks", default=",".join(r[0] for r in NETWORK_RUNS), help="comma list")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write this part to this file (parallel runs)")
    parser.add_argument("--assemble", nargs="+", default=None, help="logs of parallel runs to tabulate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def seeds_of(text: str) -> list[int]:  # "a-b" (inclusive) or "a,b,c"
        if "," in text:
            return [int(s) for s in text.split(",")]
        a, _, b = text.partition("-")
        return list(range(int(a), int(b or a) + 1))

    sections = {}
    if args.assemble:
        sections = assemble(args.assemble)
        sections = {
            k: v + f"\n\nCommand: `python benchmarks/controls.py {' '.join(sys.argv[1:])}`"
            for k, v in sections.items()
        }
        args.part = []
    for part in args.part:
        t0 = time.perf_counter()
        if part == "surfaces":
            lines, _ = part_surfaces(args.seeds, args.budget)
        elif part == "networks":
            lines = part_networks(
                seeds_of(args.network_seeds) if args.network_seeds else list(range(args.seeds)),
                args.networks.split(","),
            )
        elif part == "transformer":
            gd = args.transformer_family == "gd"
            lines = part_transformer(
                seeds_of(args.transformer_seeds),
                args.transformer_budget,
                TRANSFORMER_GD_OPTIMIZERS if gd else TRANSFORMER_OPTIMIZERS,
                args.transformer_gd_lr if gd else 0.01,
            )
        else:
            steps = [int(s) for s in args.diag_steps.split(",")]
            lines = part_diagnostics(seeds_of(args.diag_seeds), steps, args.lanczos_maxiter)
        argv = " ".join(sys.argv[1:])
        lines += [
            "",
            f"Command: `python benchmarks/controls.py {argv}` ({time.perf_counter() - t0:.0f} s wall).  ",
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores shared with other jobs; load average {os.getloadavg()[0]:.1f}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s). Counts are deterministic "
            "given the seeds; wall times are not.",
        ]
        key = {
            "networks": f"networks:{args.networks}",
            "transformer": f"transformer:{args.transformer_family}",
            "diagnostics": f"diagnostics:{args.diag_seeds}",
        }
        sections[key.get(part, part)] = "\n".join(lines)
        print(sections[key.get(part, part)], flush=True)
    target = Path(args.out) if args.out else RESULTS
    if RECORDS:
        merge_csv(RECORDS, target.with_suffix(".csv"))
    existing = _read_sections(target)
    existing.update(sections)
    if read_csv(target.with_suffix(".csv")):
        existing["summary"] = "\n".join(part_summary(read_csv(target.with_suffix(".csv"))))
    text = (
        "# Controls: the dimer against a random direction\n\n"
        + __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
    )
    if target.exists():  # keep a hand-written preamble (how the tables were made)
        text = target.read_text().split("\n\n<!-- part:", 1)[0]
    order = [*SECTION_ORDER, *sorted(k for k in existing if k not in SECTION_ORDER)]
    for part in order:
        if part in existing:
            text += f"\n\n<!-- part:{part} -->\n{existing[part]}\n<!-- end:{part} -->"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + "\n")


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
