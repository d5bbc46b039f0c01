"""Escape-map throughput: a 100×100 grid of starts × 3 optimizers × 500 steps on x²−y²+y⁴/4.

One batched run per optimizer (``deo.race.escape_map``, ``batch_dims=1``): 10 000 independent 2-D
problems in one tensor. Measures wall time per optimizer and the peak resident memory (max RSS) of
a fresh process, for torch with 1 intra-op thread and with 2 (each in its own subprocess, so the
RSS figures do not mix). Writes ``benchmarks/results/escape_map.md``.

    python benchmarks/escape_map.py [--grid 100] [--steps 500] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

OPTIMIZERS = ("gd", "adam", "deo_escape")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "escape_map.md"
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: deo and landscapes live at the root


def measure(grid: int, steps: int, threads: int) -> dict:
    """One measurement in this process (call it in a fresh process for a clean max RSS)."""
    import numpy as np
    import torch

    import landscapes
    from deo.race import OptimizerSpec, escape_map, grid_starts, map_escape, surface_bound, surface_minima

    torch.set_num_threads(threads)
    surface = landscapes.SURFACES["saddle_plateau"]
    starts = grid_starts(surface.bounds, grid)
    for key in OPTIMIZERS:  # warm-up: imports and torch's one-time lazy set-up are not timed
        escape_map(surface.f, starts[:2], [OptimizerSpec(key)], 2, map_escape(surface))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    t_total = time.perf_counter()
    for key in OPTIMIZERS:
        t0 = time.perf_counter()
        results = escape_map(
            surface.f,
            starts,
            [OptimizerSpec(key)],
            steps,
            map_escape(surface),
            minima=surface_minima(surface),
            bound=surface_bound(surface),
        )
        (result,) = results.values()
        escaped = ~np.isnan(result.steps_to_escape)
        rows.append(
            {
                "optimizer": result.label,
                "seconds": time.perf_counter() - t0,
                "escaped": float(escaped.mean()),
                "median_steps": float(np.median(result.steps_to_escape[escaped])) if escaped.any() else None,
                "median_evals": float(np.median(result.grad_evals_to_escape[escaped]))
                if escaped.any()
                else None,
                "diverged": int(result.diverged.sum()),
            }
        )
    return {
        "threads": threads,
        "total_seconds": time.perf_counter() - t_total,
        "rss_before_mb": rss_before,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=100)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.grid, args.steps, args.child)))
        return
    runs = []
    for threads in args.threads:
        command = [
            sys.executable,
            __file__,
            "--grid",
            str(args.grid),
            "--steps",
            str(args.steps),
            "--child",
            str(threads),
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    lines = [
        "# Escape map throughput",
        "",
        f"{args.grid}×{args.grid} = {args.grid**2} starts × {len(OPTIMIZERS)} optimizers × "
        f"{args.steps} steps on `saddle_plateau` (x²−y²+y⁴/4, window [−3, 3]², escaped when f ≤ −0.9), "
        "one batched run "
        "per optimizer (`deo.race.escape_map`).",
        "",
        "| threads | optimizer | time s | escaped | median steps to escape | median grad evals | diverged |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for row in run["rows"]:
            steps = "—" if row["median_steps"] is None else f"{row['median_steps']:.0f}"
            evals = "—" if row["median_evals"] is None else f"{row['median_evals']:.0f}"
            lines.append(
                f"| {run['threads']} | {row['optimizer']} | {row['seconds']:.2f} | {row['escaped']:.1%} "
                f"| {steps} | {evals} | {row['diverged']} |"
            )
    lines += [
        "",
        "| threads | total time s | max RSS MB (process) | max RSS after imports and warm-up MB |",
        "|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['threads']} | {run['total_seconds']:.1f} | {run['max_rss_mb']:.0f} "
            f"| {run['rss_before_mb']:.0f} |"
        )
    lines += [
        "",
        f"Command: `python benchmarks/escape_map.py --grid {args.grid} --steps {args.steps} "
        f"--threads {' '.join(map(str, args.threads))}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"machine: {platform.processor() or 'unknown'} ({platform.machine()}), torch {runs[0]['torch']}, "
        "intra-op threads as in the first column. Times exclude a warm-up run (imports, torch's lazy "
        "optimizer set-up).  ",
        "The machine (2 cores) is shared with other jobs and was heavily loaded during the run: times are "
        "noisy, single measurements. With 2 threads under load torch's intra-op parallel elementwise "
        "kernels on 10⁴-row tensors can be far slower than with 1 (threads wait for a core).",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
