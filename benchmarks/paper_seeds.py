"""The paper table with error bars: the char-GPT runs of ``benchmarks/paper.py`` over several seeds.

A seed sets the initial parameters (``params0(seed)``), the data order (``problem.batch(t)`` draws from
``(seed, t)``), the run's own eval batches and the dimer's initial direction. Every run is
``benchmarks.paper.train`` (the same schedule, clipping and diagnostics), one at a time in this process,
each checkpointed at every evaluation (``benchmarks/checkpoints/paper_seeds-s<seed>-<run>.pt``); a
finished run's curves are kept as JSON next to it, so rerunning the same command skips finished runs
and continues an interrupted one.

Eval noise is measured, not assumed:

- **over seeds**: the spread (sample standard deviation) of the final val loss over seeds, on each run's
  own eval batches and on one common eval set (the seed-0 problem's 20 val batches), and the spread of
  the paired difference to Adam (same seed = same init and data order);
- **over eval batch sets at a fixed checkpoint**: the final parameters of seed 0 of every run evaluated
  on ``--eval-sets`` independent sets of ``--eval-batches`` val batches each (the problems of seeds
  1000, 1001, ...).

The |cos∠(N, v_min)| and Rayleigh quotient NᵀHN diagnostics (paper.py's ground truth on one fixed
training batch) are listed per seed at the last evaluation.

Usage::

    nice -n 10 python benchmarks/paper_seeds.py --steps 250 --seeds 0,1,2
    python benchmarks/paper_seeds.py --steps 250 --seeds 0,1,2     # again: skips finished runs, rewrites

Outputs ``benchmarks/results/paper_seeds.md`` and ``paper_seeds.csv`` (one row per run and seed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO, REPO / "benchmarks"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import paper  # noqa: E402

from landscapes.shakespeare import shakespeare_char  # noqa: E402

MAIN_RUNS = ("adam", "deo_paper", "deo_escape", "adamw")
EXTRA_RUNS = ("deo_paper_random",)
COMMON_EVAL_SEED = 0
EVAL_SET_SEED0 = 1000


def run_args(seed: int, opts: argparse.Namespace) -> argparse.Namespace:
    """paper.py's arguments for one seed (its model, schedule and diagnostics defaults)."""
    argv = [
        "--steps", str(opts.steps), "--seed", str(seed), "--jobs", "1", "--threads", "1", "--resume",
        "--eval-every", str(opts.eval_every), "--eval-batches", str(opts.eval_batches),
        "--name", f"paper_seeds-s{seed}", *([] if opts.diagnostics else ["--no-diagnostics"]),
    ]  # fmt: skip
    return paper.parse_args(argv)


def result_path(key: str, seed: int) -> Path:
    return paper.CHECKPOINTS / f"paper_seeds-s{seed}-{key}.json"


def run_all(opts: argparse.Namespace) -> list[tuple[str, int]]:
    """Train every (run, seed) that has no finished result yet: main runs seed by seed, extras last."""
    order = [(k, s) for s in opts.seeds for k in opts.main] + [(k, s) for k in opts.extra for s in opts.seeds]
    for key, seed in order:
        path = result_path(key, seed)
        args = run_args(seed, opts)
        config = {**paper.run_config(args), "steps": args.steps}
        if path.is_file() and json.loads(path.read_text()).get("config") == config:
            continue
        t0 = time.perf_counter()
        result = paper.train(key, args, log=lambda line: print(line, flush=True))
        result.update(config=config, seed=seed, wall_s=time.perf_counter() - t0, load=os.getloadavg())
        paper.CHECKPOINTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, default=float))
        print(f"[{key} seed {seed}] done in {result['wall_s']:.0f} s, load {os.getloadavg()}", flush=True)
    return order


def final_params(key: str, seed: int) -> dict[str, torch.Tensor]:
    saved = torch.load(paper.checkpoint_path(key, f"paper_seeds-s{seed}"), weights_only=False)
    return saved["params"]


def problem_for(seed: int, opts: argparse.Namespace):
    return shakespeare_char(None, 64, 12, 4, 4, 128, seed=seed)


def std(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def fmt_pm(values) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "—"
    return f"{np.mean(values):.4f} ± {std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def report(
    opts: argparse.Namespace, order: list[tuple[str, int]], command: str, load0, wall_s: float
) -> Path:
    import pandas as pd

    torch.set_num_threads(1)
    common = problem_for(COMMON_EVAL_SEED, opts)
    rows: list[dict[str, Any]] = []
    for key, seed in order:
        path = result_path(key, seed)
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        last = result["curve"][-1]
        diag = result["diagnostics"][-1] if result["diagnostics"] else {}
        params = final_params(key, seed)
        rows.append({
            "run": key, "label": paper.RUNS[key]["label"], "seed": seed, "step": last["step"],
            "grad_evals": last["grad_evals"], "train_loss": last["train_loss"], "val_loss": last["val_loss"],
            "val_common": common.evaluate(params, "val", opts.eval_batches),
            "ms_per_step": float(np.median(result["ms_per_step"])), "wall_s": result["wall_s"],
            **{f"diag_{k}": diag.get(k, math.nan) for k in
               ("n_change", "dimer_curvature", "rayleigh", "lambda_min", "cos_min", "hvps")},
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    # eval noise at a fixed checkpoint: seed 0's final parameters on independent eval sets
    noise_rows = []
    sets = [problem_for(EVAL_SET_SEED0 + j, opts) for j in range(opts.eval_sets)]
    for key in dict.fromkeys(k for k, _ in order):
        if not result_path(key, opts.seeds[0]).is_file():
            continue
        params = final_params(key, opts.seeds[0])
        losses = [p.evaluate(params, "val", opts.eval_batches) for p in sets]
        noise_rows.append({"run": key, "seed": opts.seeds[0], "sets": len(losses), "mean": np.mean(losses),
                           "std": std(losses), "min": min(losses), "max": max(losses)})  # fmt: skip
    noise = pd.DataFrame(noise_rows)
    frame.to_csv(paper.RESULTS / "paper_seeds.csv", index=False, float_format="%.6g")

    runs = list(dict.fromkeys(frame["run"]))
    lines = [
        f"# Char-GPT (0.80M) paper runs over seeds — {opts.steps} steps, seeds {opts.seeds}",
        "",
        f"Command: `{command}`  ",
        *([opts.note, ""] if opts.note else []),
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs, 1 torch thread, one run at a time, nice 10; "
        f"torch {torch.__version__}. Load average (1, 5, 15 min) at start "
        f"{tuple(round(x, 1) for x in load0)}, at end {tuple(round(x, 1) for x in os.getloadavg())}; "
        f"this invocation {wall_s / 60:.1f} min "
        "(runs finished by an earlier invocation are read back, not rerun).",
        "",
        f"Every run: `benchmarks/paper.py`'s `train` (lr 1e-3 → 1e-4 cosine over 20 000 steps after 100 "
        f"warm-up steps, stopped at {opts.steps}; clip 1.0 on the update only — DEO's `max_grad_norm`, "
        "`clip_grad_norm_` for torch's Adam/AdamW; betas (0.9, 0.99)). A seed sets the initial parameters, "
        "the data order, the run's own eval batches and the dimer's initial N. Val loss on "
        f"{opts.eval_batches} batches of 12×64 characters. ± is the sample standard deviation over seeds.",
        "",
        "## Final losses, mean ± sd over seeds",
        "",
        "| run | seeds | grad evals | train loss | val loss (own eval set) | val loss (common eval set) "
        "| val − Adam, paired by seed | ms/step (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    adam = frame[frame["run"] == "adam"].set_index("seed")["val_common"]
    for key in runs:
        part = frame[frame["run"] == key]
        paired = [v - adam[s] for s, v in zip(part["seed"], part["val_common"]) if s in adam.index]
        diff = "—" if key == "adam" else fmt_pm(paired)
        lines.append(
            f"| {paper.RUNS[key]['label']} | {len(part)} | {int(part['grad_evals'].median())} "
            f"| {fmt_pm(part['train_loss'])} | {fmt_pm(part['val_loss'])} | {fmt_pm(part['val_common'])} "
            f"| {diff} | {part['ms_per_step'].median():.0f} |"
        )
    lines += ["", "Per seed (val loss on the common eval set):", "",
              "| run | " + " | ".join(f"seed {s}" for s in opts.seeds) + " |",
              "|---|" + "---:|" * len(opts.seeds)]  # fmt: skip
    for key in runs:
        part = frame[frame["run"] == key].set_index("seed")["val_common"]
        cells = " | ".join(f"{part[s]:.4f}" if s in part.index else "—" for s in opts.seeds)
        lines.append(f"| {paper.RUNS[key]['label']} | {cells} |")
    seed_sd = [std(frame[frame["run"] == k]["val_common"]) for k in runs]
    set_sd = list(noise["std"]) if len(noise) else []
    lines += [
        "",
        "## Eval noise (measured)",
        "",
        "- **Over seeds** (common eval set): sd of the final val loss per run "
        + ", ".join(f"{k} {s:.4f}" for k, s in zip(runs, seed_sd))
        + f"; median {np.nanmedian(seed_sd):.4f}.",
        f"- **Over eval batch sets at a fixed checkpoint** (seed {opts.seeds[0]}'s final parameters, "
        f"{opts.eval_sets} independent sets of {opts.eval_batches} val batches): sd per run "
        + ", ".join(f"{r.run} {r.std:.4f} (range {r.min:.4f}–{r.max:.4f})" for r in noise.itertuples())
        + (f"; median {np.median(set_sd):.4f}." if set_sd else "."),
        "",
        "## Dimer diagnostics per seed at the last evaluation (ground truth on one fixed training batch)",
        "",
        "NᵀHN: Rayleigh quotient of the optimizer's unit direction; λ_min and v_min by Lanczos on exact "
        "HVPs; a random direction has |cos| ≈ √(2/(π d)) ≈ 8.9e-04.",
        "",
        "| run | seed | step | ‖N/‖N‖ − N₀/‖N₀‖‖ | dimer C | NᵀHN | λ_min | \\|cos(N, v_min)\\| |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in frame.itertuples():
        if not math.isfinite(r.diag_rayleigh):
            continue
        lam = f"{r.diag_lambda_min:.4g}" if math.isfinite(r.diag_lambda_min) else "— (no Lanczos)"
        cos = f"{r.diag_cos_min:.3g}" if math.isfinite(r.diag_cos_min) else "—"
        lines.append(
            f"| {r.label} | {r.seed} | {r.step} | {r.diag_n_change:.3g} | {r.diag_dimer_curvature:.4g} "
            f"| {r.diag_rayleigh:.4g} | {lam} | {cos} |"
        )
    lines += ["", "Rows: `paper_seeds.csv`.", ""]
    out = paper.RESULTS / "paper_seeds.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--seeds", default="0,1,2", help="comma list")
    parser.add_argument("--optimizers", default=",".join(MAIN_RUNS), help="runs, seed by seed")
    parser.add_argument("--extra", default=",".join(EXTRA_RUNS), help="runs after the others ('' for none)")
    parser.add_argument("--eval-every", type=int, default=125)
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--eval-sets", type=int, default=8, help="eval batch sets at the fixed checkpoint")
    parser.add_argument("--report-only", action="store_true", help="no training: tabulate finished runs")
    parser.add_argument(
        "--no-diagnostics",
        dest="diagnostics",
        action="store_false",
        help="no Lanczos (λ_min, |cos|) for the runs trained now; NᵀHN is still measured",
    )
    parser.add_argument("--note", default="", help="a line for the report (how the runs were made)")
    opts = parser.parse_args(argv)
    opts.seeds = [int(s) for s in opts.seeds.split(",")]
    opts.main = [k for k in opts.optimizers.split(",") if k]
    opts.extra = [k for k in opts.extra.split(",") if k]
    unknown = sorted(set(opts.main + opts.extra) - set(paper.RUNS))
    if unknown:
        parser.error(f"unknown run(s) {unknown}")
    command = " ".join(["python benchmarks/paper_seeds.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(1)
    load0, t0 = os.getloadavg(), time.perf_counter()
    if opts.report_only:
        order = [(k, s) for s in opts.seeds for k in opts.main] + [
            (k, s) for k in opts.extra for s in opts.seeds
        ]
    else:
        order = run_all(opts)
    out = report(opts, order, command, load0, time.perf_counter() - t0)
    print(out.read_text())


if __name__ == "__main__":
    main()
