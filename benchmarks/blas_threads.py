"""One BLAS thread or the libraries' default, side by side: wall time and CPU time of the app's races.

The server and its workers run torch on one intra-op thread; numpy's and scipy's OpenBLAS keep their
own pool (a thread per core) unless ``pages.threads.single_threaded`` limits it. Each measurement is
a fresh process (the limit is process-wide) that sets ``torch.set_num_threads(1)`` as the app does,
then either calls ``single_threaded()`` ("one BLAS thread") or not ("BLAS default"), runs the job
once to warm up and then ``--repeats`` times; sides alternate. CPU time is the process's user +
system time (every thread), so CPU / wall above 1 means a second thread was busy.

Jobs: the Networks page's race as a worker runs it (``pages.workers.network_race_job``:
tiny_transformer, GD + Adam + DEO (paper), 400 steps; two_moons, GD + Adam + DEO (paper) and its
control, 200 steps) and a race of the Surfaces page (its default surface and start, 4 optimizers ×
300 steps).

Usage: ``python benchmarks/blas_threads.py [--repeats 5] [--rounds 4]``; prints a table and writes
``benchmarks/results/blas_threads.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

JOBS = {  # name: (network or "surface", optimizers, steps)
    "tiny_transformer race (GD, Adam, DEO (paper); 400 steps)": (
        "tiny_transformer", ["gd", "adam", "deo_paper"], 400,
    ),
    "two_moons race (GD, Adam, DEO (paper) and its control; 200 steps)": (
        "two_moons", ["gd", "adam", "deo_paper", "deo_paper_random"], 200,
    ),
    "Surfaces race (GD, Adam, DEO (paper), DEO-escape; 300 steps)": (
        "surface", ["gd", "adam", "deo_paper", "deo_escape"], 300,
    ),
}  # fmt: skip
RECORDED_ROWS = 100  # the Networks page records at most this many rows of a race (MAX_RECORDED_ROWS)
SIDES = ("BLAS default", "one BLAS thread")


def _job(name: str):
    """A callable running job ``name`` once and returning its losses (to compare the sides)."""
    key, optimizers, steps = JOBS[name]
    from deo.race import OptimizerSpec

    if key == "surface":
        from deo.race import race, surface_problem
        from pages.common import DEFAULT_SURFACE, get_surface

        surface = get_surface(DEFAULT_SURFACE)
        specs = [OptimizerSpec(k) for k in optimizers]
        return lambda: [t.loss for t in race(surface_problem(surface, surface.default_start), specs, steps)]
    from pages.common import specs_to_json
    from pages.workers import network_race_job

    specs = specs_to_json([OptimizerSpec(k) for k in optimizers])
    record_every = max(1, steps // RECORDED_ROWS)
    return lambda: [t.loss for t in network_race_job(key, None, specs, steps, 5, None, record_every)]


def measure(name: str, side: str, repeats: int) -> dict:
    """In this (fresh) process: median wall and CPU seconds of ``repeats`` runs of job ``name``."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    if side == "one BLAS thread":
        from pages.threads import single_threaded

        single_threaded()
    run = _job(name)
    losses = run()  # warm-up (first calls of every torch op, imports)
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), os.times()
        run()
        c1 = os.times()
        walls.append(time.perf_counter() - t0)
        cpus.append((c1.user - c0.user) + (c1.system - c0.system))
    from pages.threads import blas_threads

    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "blas": blas_threads(),
        "losses": [np.asarray(loss, dtype=float).tolist() for loss in losses],
    }


def _in_subprocess(name: str, side: str, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["DEO_LAB_WORKERS"] = "0"
    out = subprocess.run(
        [sys.executable, __file__, "--measure", name, side, str(repeats)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per process (median)")
    parser.add_argument("--rounds", type=int, default=4, help="fresh processes per side, alternating")
    parser.add_argument("--measure", nargs=3, metavar=("JOB", "SIDE", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        name, side, repeats = args.measure
        print(json.dumps(measure(name, side, int(repeats))))
        return
    load_before = os.getloadavg()
    rows = []
    for name in JOBS:
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for round_ in range(args.rounds):
            for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:  # ABBA: neither side always first
                results[side].append(_in_subprocess(name, side, args.repeats))
        wall = {s: statistics.median(r["wall"] for r in results[s]) for s in SIDES}
        cpu = {s: statistics.median(r["cpu"] for r in results[s]) for s in SIDES}
        same = all(r["losses"] == results[SIDES[0]][0]["losses"] for s in SIDES for r in results[s])
        threads = {s: sorted(set(results[s][0]["blas"].values())) for s in SIDES}
        rows.append(
            f"| {name} | {wall[SIDES[0]]:.2f} / {cpu[SIDES[0]]:.2f} ({cpu[SIDES[0]] / wall[SIDES[0]]:.2f}) | "
            f"{wall[SIDES[1]]:.2f} / {cpu[SIDES[1]]:.2f} ({cpu[SIDES[1]] / wall[SIDES[1]]:.2f}) | "
            f"**{cpu[SIDES[0]] / cpu[SIDES[1]]:.2f}×** | {wall[SIDES[0]] / wall[SIDES[1]]:.2f}× | "
            f"{threads[SIDES[0]]} / {threads[SIDES[1]]} | {'yes' if same else 'no'} |"
        )
        print(rows[-1], flush=True)
    load_after = os.getloadavg()
    lines = [
        "# One BLAS thread against the libraries' default (pages/threads.py)",
        "",
        f"Command: `python benchmarks/blas_threads.py --repeats {args.repeats} --rounds {args.rounds}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        "",
        "Each side: fresh processes (torch on one intra-op thread, as the app runs it), a warm-up run, then "
        f"the median of {args.repeats} runs; {args.rounds} processes per side, alternating (ABBA), and the "
        "median of their medians. CPU = user + system time of every thread of the process.",
        "",
        "| job | BLAS default: wall / CPU s (CPU ÷ wall) | one BLAS thread: wall / CPU s (CPU ÷ wall) | "
        "CPU saved (default ÷ one) | wall (default ÷ one) | BLAS threads (default / one) | same losses |",
        "|---|---:|---:|---:|---:|---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "blas_threads.md").write_text(text)


if __name__ == "__main__":
    main()
