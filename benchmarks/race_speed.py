"""The default Surfaces race, today's path against another tree's, side by side in one run.

Issue 9, item 2: a new race (the Surfaces page's default: saddle_plateau, its default start,
``pages/surfaces.py``'s DEFAULT_OPTIMIZERS with the surface's learning rates, 300 steps) should
answer in ≤ 250 ms of server time. This script runs ``deo.race.race`` exactly as
``pages/common.cached_surface_race`` does (``surface_problem`` + ``race``; no cache) in two trees —
``--base`` (e.g. a ``git worktree`` of the commit before a change) and this repository — each in its
own long-lived worker process (``--threads`` torch threads), alternating the two for ``--repeats``
rounds, and reports medians of wall and CPU seconds, their ratio, the first (cold) race of each
worker, and per preset the milliseconds per optimizer step. Both trees' traces of the last round
are compared field by field (``wall_time`` aside): the table says whether they are identical and,
if not, the largest relative difference.

    python benchmarks/race_speed.py --base /work/wt_race_base --repeats 7 --threads 1

``--breakdown`` adds, for this tree only, where a step's time goes: the optimizer's ``step`` (the
closure included), the closure (loss, backward, recording), ``diagnostics()`` and the rest of the
race loop (recording rows, checks, the exact eigenpairs after the run).

``--page N`` adds N new races through the whole Surfaces page in each tree (``AppTest`` with a link
naming a seed no one raced, the same seed in both trees, alternating): the script thread's CPU of
the full run plus the permessage-deflate of the race chart — the server's time for a new race, the
race, every figure and the table included — and that CPU until the race chart's message is queued
(what the user waits for before the race is on screen; the loss charts below it follow).
``--page-opt "GD,Adam,DEO (paper),DEO-escape"`` runs those optimizers (by label, as a link names
them) instead of the page's default; ``--out`` names the table's file. ``--now-env KEY=VALUE,...`` sets
environment variables for this tree's worker only: ``--base . --now-env
PYTHONMALLOC=malloc,MALLOC_ARENA_MAX=2`` times the same code under serve.py's allocator against
Python's default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROBE = ROOT / "benchmarks" / "script_probe.py"  # the workers measure page runs with this file

WORKER = r"""
import json, os, sys, time
tree, threads, out, probe_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path.insert(0, tree)
os.chdir(tree)
t_import = time.perf_counter()
import torch
torch.set_num_threads(threads)
import ast, re
from deo.presets import PRESETS
from deo.race import OptimizerSpec, race, surface_problem
from deo.trace import traces_to_json
from landscapes import SURFACES
import_s = time.perf_counter() - t_import
# where the page's defaults have lived: surfaces.py, common.py (42b802f+), surface_defaults.py (3806d8c+)
paths = [os.path.join(tree, "pages", name) for name in ("surfaces.py", "common.py", "surface_defaults.py")]
sources = [open(path).read() for path in paths if os.path.exists(path)]


def found(pattern):
    return next(m for m in (re.search(pattern, text) for text in sources) if m).group(1)


keys = ast.literal_eval(found(r"DEFAULT_OPTIMIZERS = (\[.*?\])"))
surface_key = found(r'DEFAULT_SURFACE = "(.*?)"')
surface = SURFACES[surface_key]


def specs():  # pages/common.optimizer_picker with the surface's learning rates, untouched inputs
    out = []
    for key in keys:
        preset = PRESETS[key]
        extra = surface.race.hyperparams(key, preset.defaults)
        overrides = {k: v for k, v in extra.items() if v != preset.defaults.get(k)}
        out.append(OptimizerSpec(key=key, hyperparams=overrides, label=preset.label))
    return out


def run():
    problem = surface_problem(surface, surface.default_start, offset=None)
    return race(problem, specs(), surface.race.steps, seed=0, clip=None, progress=lambda f, m: None)


def breakdown():
    import deo.race as R
    spent = {"step": 0.0, "closure": 0.0, "diagnostics": 0.0}
    calls = {"step": 0, "closure": 0, "diagnostics": 0}
    call, unhooked = R._Recorder.__call__, getattr(R, "_unhooked_step", None)

    def timed_call(self):
        t = time.perf_counter()
        try:
            return call(self)
        finally:
            spent["closure"] += time.perf_counter() - t
            calls["closure"] += 1

    R._Recorder.__call__ = timed_call
    per = {}
    for spec in specs():
        for k in spent:
            spent[k], calls[k] = 0.0, 0
        original_build = PRESETS[spec.key].build

        def build(*a, _b=original_build, **kw):
            opt = _b(*a, **kw)
            step = unhooked(opt) if unhooked else opt.step
            diag = getattr(opt, "diagnostics", None)

            def timed_step(closure):
                t = time.perf_counter()
                try:
                    return step(closure)
                finally:
                    spent["step"] += time.perf_counter() - t
                    calls["step"] += 1
            if unhooked:
                R._unhooked_step = lambda o, _s=timed_step: _s
            else:
                opt.step = timed_step
            if diag is not None:
                def timed_diag(_d=diag):
                    t = time.perf_counter()
                    try:
                        return _d()
                    finally:
                        spent["diagnostics"] += time.perf_counter() - t
                        calls["diagnostics"] += 1
                opt.diagnostics = timed_diag
            return opt

        object.__setattr__(PRESETS[spec.key], "build", build)
        problem = surface_problem(surface, surface.default_start, offset=None)
        t = time.perf_counter()
        race(problem, [spec], surface.race.steps, seed=0)
        total = time.perf_counter() - t
        object.__setattr__(PRESETS[spec.key], "build", original_build)
        if unhooked:
            R._unhooked_step = unhooked
        per[spec.key] = {"total": total, **{k + "_s": spent[k] for k in spent},
                         **{k + "_n": calls[k] for k in calls}}
    R._Recorder.__call__ = call
    return per


PAGE = {}


def page(seed, opt):
    # A new race on the Surfaces page as the server runs it: a full script run of a fresh session
    # whose link names a seed no one raced (AppTest; the thread CPU of the script thread, which
    # runs the race, builds every figure and serialises them) plus the permessage-deflate of the
    # race chart's JSON the server then sends. Measured by benchmarks/script_probe.py of the
    # repository that runs this script (loaded by path: the same code measures both trees).
    if not PAGE:
        import importlib.util
        from streamlit.testing.v1 import AppTest
        spec = importlib.util.spec_from_file_location("script_probe", probe_path)
        probe = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(probe)
        PAGE.update(runs=probe.script_cpu_probe(), probe=probe, AppTest=AppTest)
        probe.race_chart_probe()
    runs, probe = PAGE["runs"], PAGE["probe"]
    at = PAGE["AppTest"].from_file(os.path.join(tree, "pages", "surfaces.py"), default_timeout=600)
    at.query_params["seed"] = str(seed)
    if opt:  # the optimizers by their labels, as a link names them (default: the page's own)
        at.query_params["opt"] = opt
    n = len(runs)
    w = time.perf_counter()
    at.run()
    w = time.perf_counter() - w
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    specs = [c.proto.spec for c in at.get("plotly_chart") if '"frames"' in c.proto.spec]
    if len(specs) != 1:
        raise RuntimeError(f"expected one race chart, got {len(specs)}")
    t = time.process_time()
    wire = probe.deflated(specs[0])
    deflate = time.process_time() - t
    chart = probe.race_chart_cpu()
    if chart is None:
        raise RuntimeError("the race chart's message was not seen")
    return {"script": sum(runs[n:]), "deflate": deflate, "wall": w, "wire": wire, "chart": chart + deflate}


print(json.dumps({"ready": True, "import_s": import_s}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    if cmd.startswith("page "):
        _, seed, *opt = cmd.split(" ", 2)
        print(json.dumps({"page": page(int(seed), json.loads(opt[0]) if opt else None)}), flush=True)
        continue
    if cmd == "breakdown":
        print(json.dumps({"breakdown": breakdown()}), flush=True)
        continue
    w, c = time.perf_counter(), time.process_time()
    traces = run()
    w, c = time.perf_counter() - w, time.process_time() - c
    with open(out, "w") as fh:
        fh.write(traces_to_json(traces))
    print(json.dumps({"wall": w, "cpu": c, "steps": {t.key: int(t.steps[-1]) for t in traces},
                      "per": {t.key: t.wall_time for t in traces},
                      "evals": {t.key: int(t.grad_evals[-1]) for t in traces}}), flush=True)
"""


class Worker:
    def __init__(self, tree: Path, threads: int, out: Path, env_extra: dict[str, str] | None = None):
        self.out = out
        env = {**os.environ, **(env_extra or {})}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tree), str(threads), str(out), str(PROBE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree),
        )  # fmt: skip
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for {self.out} ended (see its stderr above)")
        return json.loads(line)

    def ask(self, cmd: str = "run") -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)


def compare(a_text: str, b_text: str) -> tuple[bool, float, list[str]]:
    """(bitwise equal apart from wall_time, the largest relative difference, the fields that differ)."""
    import numpy as np

    a, b = json.loads(a_text), json.loads(b_text)
    worst, differ = 0.0, []
    if len(a) != len(b):
        return False, float("inf"), ["number of traces"]
    for ta, tb in zip(a, b):
        for name in ta:
            if name == "wall_time":
                continue
            va, vb = ta[name], tb[name]
            if va == vb:
                continue
            try:
                xa = np.asarray(va, dtype=float)
                xb = np.asarray(vb, dtype=float)
            except (TypeError, ValueError):
                differ.append(f"{ta['key']}.{name}")
                worst = float("inf")
                continue
            if xa.shape != xb.shape:
                differ.append(f"{ta['key']}.{name} (shape)")
                worst = float("inf")
                continue
            scale = np.maximum(np.maximum(np.abs(xa), np.abs(xb)), 1e-300)
            rel = np.where(np.isnan(xa) & np.isnan(xb), 0.0, np.abs(xa - xb) / scale)
            worst = max(worst, float(np.nanmax(rel)) if rel.size else 0.0)
            differ.append(f"{ta['key']}.{name}")
    return not differ, worst, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other tree (today's path)")
    parser.add_argument("--now", type=Path, default=ROOT, help="the tree measured against it (this one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument(
        "--page", type=int, default=0, metavar="N",
        help="also N new races through the whole Surfaces page (AppTest, a new seed each), alternating",
    )  # fmt: skip
    parser.add_argument(
        "--page-opt", default="",
        help="the page's optimizers for --page, by label, comma-separated (default: the page's default)",
    )  # fmt: skip
    parser.add_argument(
        "--now-env", default="", metavar="KEY=VALUE,...",
        help="environment for this tree's worker only, e.g. serve.py's allocator: "
        "PYTHONMALLOC=malloc,MALLOC_ARENA_MAX=2 (with --base . : the same code under two environments)",
    )  # fmt: skip
    parser.add_argument("--note", default="")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "race_speed.md",
        help="where the table goes (default benchmarks/results/race_speed.md)",
    )  # fmt: skip
    args = parser.parse_args()
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="race_speed_"))
    trees = {"base": args.base.resolve(), "now": args.now.resolve()}
    now_env = dict(item.split("=", 1) for item in args.now_env.split(",") if item)
    envs = {"base": {}, "now": now_env}
    workers = {
        name: Worker(tree, args.threads, tmp / f"{name}.json", envs[name]) for name, tree in trees.items()
    }
    seen: dict[str, list[dict]] = {name: [] for name in trees}
    cold = {}
    try:
        for name, w in workers.items():  # the first race of a fresh process (torch._dynamo imported here)
            cold[name] = w.ask()
        for r in range(args.repeats):
            order = list(workers) if r % 2 == 0 else list(reversed(workers))
            for name in order:
                seen[name].append(workers[name].ask())
        # before the page runs: their Streamlit objects would make this worker's collections slower
        breakdown = workers["now"].ask("breakdown")["breakdown"] if args.breakdown else None
        pages: dict[str, list[dict]] = {name: [] for name in trees}
        if args.page:
            opt = " " + json.dumps([o.strip() for o in args.page_opt.split(",")]) if args.page_opt else ""
            for w in workers.values():  # warm-up: Streamlit's imports, the page's first run
                w.ask(f"page 9000{opt}")
            for r in range(args.page):
                order = list(workers) if r % 2 == 0 else list(reversed(workers))
                for name in order:  # the same new seed in both trees
                    pages[name].append(workers[name].ask(f"page {9001 + r}{opt}")["page"])

        texts = {name: (tmp / f"{name}.json").read_text() for name in trees}
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    identical, worst, differ = compare(texts["base"], texts["now"])

    def med(name, key):
        return statistics.median(s[key] for s in seen[name])

    bw, nw, bc, nc = med("base", "wall"), med("now", "wall"), med("base", "cpu"), med("now", "cpu")
    def lo(name, key):
        return min(s[key] for s in seen[name])

    def walls(name):
        return ", ".join(f"{s['wall']:.2f}" for s in seen[name])

    default_out = RESULTS / "race_speed.md"
    keys = list(seen["now"][0]["per"])
    steps = seen["now"][0]["steps"]
    race_name = "The default Surfaces race"
    if args.page_opt:
        race_name = f"A new race of {args.page_opt} on the Surfaces page"
    lines = [
        (f"# {race_name} under two environments: the inherited one vs {args.now_env} (issue 9, items 2 and 5)"
         if args.now_env else f"# {race_name}: today's path vs this tree (issue 9, item 2)"),
        "",
        f"Command: `python benchmarks/race_speed.py --base {args.base} "
        + (f"--now {args.now} " if args.now.resolve() != ROOT else "")
        + f"--repeats {args.repeats} "
        f"--threads {args.threads}{' --breakdown' if args.breakdown else ''}"
        + (f" --page {args.page}" if args.page else "")
        + (f" --page-opt '{args.page_opt}'" if args.page_opt else "")
        + (f" --now-env {args.now_env}" if args.now_env else "")
        + (f" --out {args.out}" if args.out.resolve() != default_out.resolve() else "")
        + "`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.node()} "
        f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}); load average at start "
        f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, "
        f"at end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}."
        + (f" {args.note}" if args.note else ""),
        "",
        f"Race: `deo.race.race(surface_problem(...), specs, 300)` as `pages/common.cached_surface_race` "
        f"runs it, {len(keys)} optimizers ({', '.join(keys)}), {sum(steps.values())} optimizer steps; "
        f"each tree in its own worker process, alternating, median of {args.repeats}.",
        "",
        "| | base (today) | this tree | ratio base/now | target |",
        "|---|---:|---:|---:|---|",
        f"| race wall s (median) | {bw:.3f} | **{nw:.3f}** | {bw / nw:.2f}× | ≤ 0.25 s (with the figure) |",
        f"| race CPU s (median) | {bc:.3f} | {nc:.3f} | {bc / nc:.2f}× | |",
        f"| race wall s (min: the least loaded round) | {lo('base', 'wall'):.3f} | {lo('now', 'wall'):.3f} | "
        f"{lo('base', 'wall') / lo('now', 'wall'):.2f}× | |",
        f"| race CPU s (min) | {lo('base', 'cpu'):.3f} | {lo('now', 'cpu'):.3f} | "
        f"{lo('base', 'cpu') / lo('now', 'cpu'):.2f}× | |",
        f"| first race of a fresh process, wall s | {cold['base']['wall']:.3f} | "
        f"{cold['now']['wall']:.3f} | | |",
        f"| all wall s | {walls('base')} | {walls('now')} | | |",
        "",
        "Per preset, ms per optimizer step (the trace's `wall_time` / steps; median over repeats):",
        "",
        "| preset | steps | grad evals | base ms/step | now ms/step | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        b = statistics.median(s["per"][key] for s in seen["base"]) * 1e3 / max(steps[key], 1)
        n = statistics.median(s["per"][key] for s in seen["now"]) * 1e3 / max(steps[key], 1)
        evals = seen["now"][0]["evals"][key]
        lines.append(f"| {key} | {steps[key]} | {evals} | {b:.3f} | {n:.3f} | {b / n:.2f}× |")
    lines += [
        "",
        "Traces (last round, every field but `wall_time`): "
        + ("**identical** (bit for bit, JSON `repr` floats)." if identical else
           f"differ in {', '.join(differ[:12])}; largest relative difference {worst:.3g}."),
    ]
    if args.page:

        def pmed(name, key):
            return statistics.median(p[key] for p in pages[name])

        def server(name):
            return [p["script"] + p["deflate"] for p in pages[name]]

        b_total, n_total = statistics.median(server("base")), statistics.median(server("now"))
        which = f"optimizers {args.page_opt}" if args.page_opt else "its default optimizers"
        lines += [
            "",
            f"A new race through the whole Surfaces page ({which}), "
            f"as the server runs it (medians of {args.page}, "
            "alternating; each round a seed no one raced, the same in both trees, so the race, the "
            "loss charts and the figure are all computed): the script thread's CPU of one full run of "
            "a fresh session (`AppTest`, compiled page shared as in a server) plus the permessage-deflate "
            "of the race chart it sends. After one warm-up run per tree.",
            "",
            "| | base (today) | this tree | ratio base/now | target |",
            "|---|---:|---:|---:|---|",
            f"| script CPU s | {pmed('base', 'script'):.3f} | {pmed('now', 'script'):.3f} | "
            f"{pmed('base', 'script') / pmed('now', 'script'):.2f}× | |",
            f"| deflate CPU s | {pmed('base', 'deflate'):.3f} | {pmed('now', 'deflate'):.3f} | | |",
            f"| **server s per new race** | {b_total:.3f} | **{n_total:.3f}** | {b_total / n_total:.2f}× "
            "| ≤ 0.25 s |",
            f"| all (script + deflate) | {', '.join(f'{v:.3f}' for v in server('base'))} | "
            f"{', '.join(f'{v:.3f}' for v in server('now'))} | | |",
            f"| **server s until the race chart is sent** (script CPU until its message is queued, "
            f"+ its deflate; the loss charts below it follow) | {pmed('base', 'chart'):.3f} | "
            f"**{pmed('now', 'chart'):.3f}** | {pmed('base', 'chart') / pmed('now', 'chart'):.2f}× | |",
            f"| AppTest wall s (its own bookkeeping included) | {pmed('base', 'wall'):.3f} | "
            f"{pmed('now', 'wall'):.3f} | | |",
            f"| race chart on the wire (deflate) | {pmed('base', 'wire') / 1e3:.0f} KB | "
            f"{pmed('now', 'wire') / 1e3:.0f} KB | | ≤ 300 KB |",
        ]
    if breakdown:
        lines += [
            "",
            "Where this tree's time goes (one race per preset, instrumented, so a little slower):",
            "",
            "| preset | total ms | opt.step (closure incl.) ms | closure calls | closure ms | "
            "closure µs/call | diagnostics() ms | race loop + ground truth ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, v in breakdown.items():
            rest = v["total"] - v["step_s"] - v["diagnostics_s"]
            lines.append(
                f"| {key} | {v['total'] * 1e3:.0f} | {v['step_s'] * 1e3:.0f} | {v['closure_n']} | "
                f"{v['closure_s'] * 1e3:.0f} | {v['closure_s'] / max(v['closure_n'], 1) * 1e6:.0f} | "
                f"{v['diagnostics_s'] * 1e3:.0f} | {rest * 1e3:.0f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
