"""Sweeps on local Ray against a plain sequential loop: wall time, CPU use, per-task overhead.

Part 1, a real sweep (``--config``; default ``benchmarks/sweeps/escape_table.toml``, 280 cells of up
to 1 000 steps; ``bench_200.toml`` is 200 short Adam cells): run once by a plain loop in this process
and once on local Ray (``num_cpus`` = ``--cpus``, cells batched "auto"), side by side in one run.
Both tables must be equal cell by cell (the script fails otherwise). With the escape-table config
the Ray table is written to ``benchmarks/results/sweep_escape_table.csv`` and its summary to
``sweep_escape_table.md``.

Part 2, tiny cells: 200 one-step cells (x²−y², GD, 200 seeds) by the plain loop, on Ray one cell per
task, and on Ray batched (``cells_per_task="auto"``); medians over ``--repeats``. The per-task
overhead is ``(wall_ray × cpus − wall_loop) / tasks``: the CPU-seconds each task costs beyond its
cell, if the cells spread perfectly over the CPUs.

CPU utilisation: the cells' own CPU time (``time.process_time`` inside each cell, summed) over
``wall × cpus``, and the whole machine's busy share over the same interval (``/proc/stat``, which
includes the other jobs of a shared machine). Ray's start (``ray.init``) is timed on its own and is
not in the walls above.

    python benchmarks/sweep_overhead.py [--cpus 2] [--repeats 3] [--part real tiny]
    python benchmarks/sweep_overhead.py --part table   # only the escape table (a plain loop, no Ray)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from deo.sweeps import _ray_runtime_env, load_config, summarise, sweep  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "benchmarks" / "sweeps" / "escape_table.toml"
TINY = {
    "name": "tiny",
    "budget": 1,
    "seeds": 200,
    "problems": [{"surface": "saddle", "start": [1.0, 1e-3]}],
    "optimizers": [{"preset": "gd"}],
}
RESULT_COLUMNS = ["cell", "status", "escape_step", "grad_evals_to_escape", "steps", "grad_evals",
                  "final_loss", "best_loss"]  # fmt: skip


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def timed(fn):
    busy0, total0 = cpu_ticks()
    t0 = time.perf_counter()
    frame = fn()
    wall = time.perf_counter() - t0
    busy1, total1 = cpu_ticks()
    return frame, wall, (busy1 - busy0) / max(total1 - total0, 1)


def run(config, executor: str, cells_per_task="auto"):
    out = Path(tempfile.mkdtemp(prefix="deo-sweep-bench-"))
    try:
        return timed(
            lambda: sweep(config, out, executor=executor, cells_per_task=cells_per_task, progress=False)
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def utilisation(frame, wall: float, cpus: int) -> float:
    return float(frame["cpu_s"].sum()) / (wall * cpus)


def part_real(cpus: int, path: Path) -> tuple[list[str], pd.DataFrame]:
    config = load_config(path)
    loop, loop_wall, loop_busy = run(config, "sequential")
    ray_frame, ray_wall, ray_busy = run(config, "ray")
    a = loop[RESULT_COLUMNS].reset_index(drop=True)
    b = ray_frame[RESULT_COLUMNS].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)  # the same numbers, cell by cell
    n = len(ray_frame)
    lines = [
        f"## 1. A real sweep ({n} cells, `{path.relative_to(ROOT)}`)",
        "",
        f"| run | wall s | wall per cell s | cells' CPU / (wall × CPUs) | machine busy | speedup "
        f"| of the {cpus}× bound |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| plain loop (1 process) | {loop_wall:.1f} | {loop_wall / n:.3f} | "
        f"{utilisation(loop, loop_wall, cpus):.0%} | {loop_busy:.0%} | 1.00× | {1 / cpus:.0%} |",
        f"| local Ray, {cpus} CPUs, cells batched auto | {ray_wall:.1f} | {ray_wall / n:.3f} | "
        f"{utilisation(ray_frame, ray_wall, cpus):.0%} | {ray_busy:.0%} | {loop_wall / ray_wall:.2f}× "
        f"| {loop_wall / ray_wall / cpus:.0%} |",
        "",
        f"Speedup bound on {cpus} CPUs: {cpus}.00×. Both tables are equal cell by cell (checked). "
        "Cells' CPU for the loop is over the same wall × CPUs, so a perfect loop shows 1/CPUs.",
        "",
        "Time per cell by preset (the Ray run's own cell wall times, median s):",
        "",
    ]
    per = ray_frame.groupby(["problem", "optimizer"], sort=False)["wall_s"].median().unstack("optimizer")
    lines += _markdown(per.map(lambda v: f"{v:.2f}"), "problem")
    return lines, ray_frame


def part_tiny(cpus: int, repeats: int) -> list[str]:
    walls: dict[str, list[float]] = {"loop": [], "ray1": [], "rayauto": []}
    cells_cpu = []
    tasks_auto = 0
    for _ in range(repeats):
        frame, wall, _ = run(TINY, "sequential")
        walls["loop"].append(wall)
        cells_cpu.append(float(frame["cpu_s"].sum()))
        frame, wall, _ = run(TINY, "ray", cells_per_task=1)
        walls["ray1"].append(wall)
        frame, wall, _ = run(TINY, "ray", cells_per_task="auto")
        walls["rayauto"].append(wall)
        tasks_auto = frame.attrs["meta"]["tasks"]
    n = TINY["seeds"]
    med = {k: statistics.median(v) for k, v in walls.items()}
    overhead1 = (med["ray1"] * cpus - med["loop"]) / n
    overhead_auto = (med["rayauto"] * cpus - med["loop"]) / tasks_auto
    return [
        "",
        f"## 2. Tiny cells: {n} one-step cells (x²−y², GD; median of {repeats} runs)",
        "",
        "| run | tasks | wall s | wall per cell ms | per-task overhead ms (CPU) |",
        "|---|---:|---:|---:|---:|",
        f"| plain loop | — | {med['loop']:.2f} | {1e3 * med['loop'] / n:.1f} | — |",
        f"| Ray, 1 cell per task | {n} | {med['ray1']:.2f} | {1e3 * med['ray1'] / n:.1f} | "
        f"{1e3 * overhead1:.1f} |",
        f"| Ray, cells batched auto | {tasks_auto} | {med['rayauto']:.2f} | {1e3 * med['rayauto'] / n:.1f} | "
        f"{1e3 * overhead_auto:.1f} |",
        "",
        f"A tiny cell's own CPU time: {1e3 * statistics.median(cells_cpu) / n:.1f} ms (median over runs). "
        "Overhead per task = (wall × CPUs − loop wall) / tasks.",
    ]


def _markdown(frame: pd.DataFrame, index_name: str) -> list[str]:
    header = [index_name, *map(str, frame.columns)]
    rows = [[str(i), *map(str, row)] for i, row in zip(frame.index, frame.to_numpy())]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def escape_table_md(frame: pd.DataFrame, command: str) -> str:
    lines = [
        "# The escape table as a sweep",
        "",
        "`python -m deo sweep benchmarks/sweeps/escape_table.toml` (lr 0.01, budget 1 000 steps, "
        "10 seeds, each run stopped at its escape step); this table was written by "
        f"`{command}` from the same cells (all rows: `sweep_escape_table.csv`). Compare "
        "`escape.md` part 1 (README): GD 349 / 698 / 734 / 804, Adam 80 / 81 / 101 / 67, "
        "DEO-escape 177 / 353 / 389 / 270 [268–278].",
        "",
        "Steps to escape (median [IQR] over seeds; — : the median run did not escape):",
        "",
    ]
    lines += _markdown(summarise(frame, "escape_step"), "surface, start")
    lines += ["", "Gradient evaluations to escape (median [IQR]):", ""]
    lines += _markdown(summarise(frame, "grad_evals_to_escape"), "surface, start")
    meta = frame.attrs.get("meta", {})
    lines += [
        "",
        f"Git revision {meta.get('git_revision', '?')}; versions {meta.get('versions', {})}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part", nargs="+", default=["real", "tiny"], choices=["real", "tiny", "table"])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the sweep of part 1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == ["table"]:  # the committed escape table only: its cells by a plain loop
        out = Path(tempfile.mkdtemp(prefix="escape_table"))
        try:
            frame = sweep(load_config(CONFIG), out, executor="sequential", progress=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        frame.to_csv(RESULTS / "sweep_escape_table.csv", index=False)
        command = "python benchmarks/sweep_overhead.py --part table"
        (RESULTS / "sweep_escape_table.md").write_text(escape_table_md(frame, command))
        print((RESULTS / "sweep_escape_table.md").read_text())
        return
    import ray

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=_ray_runtime_env(None),
    )
    init_s = time.perf_counter() - t0
    lines = [
        "# Sweeps: local Ray against a plain loop",
        "",
        __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
        "",
    ]
    command = (
        f"python benchmarks/sweep_overhead.py --cpus {args.cpus} --repeats {args.repeats} "
        f"--part {' '.join(args.part)} --config {args.config}"
    )
    try:
        if "real" in args.part:
            real, frame = part_real(args.cpus, args.config.resolve())
            lines += real
            if args.config.resolve() == CONFIG:
                frame.to_csv(RESULTS / "sweep_escape_table.csv", index=False)
                (RESULTS / "sweep_escape_table.md").write_text(escape_table_md(frame, command))
        if "tiny" in args.part:
            lines += part_tiny(args.cpus, args.repeats)
    finally:
        ray.shutdown()
    load1 = os.getloadavg()
    lines += [
        "",
        f"Ray start (`ray.init`, {args.cpus} CPUs, no dashboard): {init_s:.1f} s, not in the walls above.  ",
        f"Command: `{command}`.  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.1f}' for v in load0)}, after {', '.join(f'{v:.1f}' for v in load1)}; "
        f"torch {torch.__version__}, ray {ray.__version__}, Python {platform.python_version()}; "
        "1 torch thread per cell.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    name = (
        "sweep_overhead.md"
        if set(args.part) == {"real", "tiny"}
        else f"sweep_overhead-{'-'.join(args.part)}.md"
    )
    (RESULTS / name).write_text(text)


if __name__ == "__main__":
    main()
