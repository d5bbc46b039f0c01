"""App benchmark: how long the default Surfaces page takes on the server, and how big its outputs are.

Measures (medians over repeats):

1. the Surfaces page's data path — the race (GD, Adam, DEO (paper) × 300 steps from the default
   start of ``saddle_plateau``) and the figure (contour grid + animated race figure + its JSON, as
   ``st.plotly_chart`` serialises it); target ≤ 1.5 s in total;
2. a full ``AppTest`` run of pages/surfaces.py with its default configuration (4 optimizers), race
   cache cleared before each run;
3. the animated figure's JSON size (target ≤ 2 MB) and the standalone HTML download (≤ 5 MB);
4. the escape map: 100×100 starts × 3 optimizers (GD, Adam, DEO-escape) × 300 steps.

5. side by side in one run, the page's default new race (GD, Adam, DEO (paper), DEO-escape × 300
   steps) through today's code and through the code before issue 9 (``deo/race.py`` and
   ``viz/surface_figs.py`` of commit ``BEFORE``, loaded from git): server CPU seconds (medians) of
   the race, the figure and its serialisation, and the bytes on the wire (permessage-deflate, as
   the server now sends them, against the raw JSON sent before);
6. (``--browser``) a cold server's first visitor in Chromium, broken down: imports and server start,
   page load, the script's first figure message, the chart drawn (``benchmarks/load.py``).

Usage: ``python benchmarks/app.py [--repeats 5] [--escape-repeats 3] [--browser]``; writes
benchmarks/results/app.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
import types
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import landscapes  # noqa: E402
from deo.race import (  # noqa: E402
    OptimizerSpec,
    escape_map,
    race,
    surface_bound,
    surface_escape,
    surface_minima,
    surface_problem,
)
from viz.export import standalone_html  # noqa: E402
from viz.surface_figs import EXPORT_OPTIONS, race_figure, surface_grid  # noqa: E402

SURFACE = "saddle_plateau"
RACE_KEYS = ["gd", "adam", "deo_paper"]
ESCAPE_KEYS = ["gd", "adam", "deo_escape"]
STEPS = 300
ESCAPE_GRID = 100
PAGE_KEYS = ["gd", "adam", "deo_paper", "deo_escape"]  # the Surfaces page's default race
BEFORE = "30c4168"  # main before issue 9's changes to deo/race.py and viz/surface_figs.py


def module_at(commit: str, path: str, name: str) -> types.ModuleType:
    """``path`` as it was at ``commit`` (``git show``), imported as module ``name``."""
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{commit}:{path}"
    sys.modules[name] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def deflated(text: str) -> int:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)  # what permessage-deflate sends
    return len(c.compress(text.encode()) + c.flush())


def cpu(fn):
    t0 = time.process_time()
    value = fn()
    return time.process_time() - t0, value


def side_by_side(surface, repeats: int) -> dict:
    """Server CPU of one new default race (+ figure + JSON), before and now, alternating."""
    import plotly.io as pio

    import deo.race as race_now
    import viz.surface_figs as figs_now

    race_before = module_at(BEFORE, "deo/race.py", "_race_before")
    figs_before = module_at(BEFORE, "viz/surface_figs.py", "_surface_figs_before")
    start = surface.starts[0]
    out: dict[str, list] = {}

    def add(name, value):
        out.setdefault(name, []).append(value)

    def one(label: str, rmod, fmod) -> dict:
        specs = [rmod.OptimizerSpec(k) for k in PAGE_KEYS]
        t_race, traces = cpu(lambda: rmod.race(rmod.surface_problem(surface, start), specs, STEPS))
        t_grid, grid = cpu(lambda: fmod.surface_grid(surface))
        t_fig, fig = cpu(lambda: fmod.race_figure(surface, traces, start=start, grid=grid))
        row = {"race": t_race, "grid": t_grid, "figure": t_fig, "steps": [len(t) for t in traces]}
        if label == "now":
            row["json"], text = cpu(lambda: pio.to_json(fig.freeze(), validate=False))
            row["json again (cached figure)"], _ = cpu(lambda: pio.to_json(fig, validate=False))
            row["deflate"], row["wire"] = cpu(lambda: deflated(text))
        else:
            row["json"], text = cpu(lambda: pio.to_json(fig, validate=False))
            row["deflate"], row["wire"] = 0.0, len(text.encode())
        row["raw"] = len(text.encode())
        row["total"] = sum(row[k] for k in ("race", "grid", "figure", "json", "deflate"))
        return row

    for r in range(repeats + 1):
        for label, rmod, fmod in (("before", race_before, figs_before), ("now", race_now, figs_now)):
            row = one(label, rmod, fmod)
            if r == 0:
                continue  # warm-up
            for name, value in row.items():
                add(name if name.startswith("json again") else f"{name} {label}", value)
    assert out["steps before"] == out["steps now"], "the two paths recorded different runs"
    return out


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def data_path(surface) -> dict:
    """One request's server work: race + figure (+ JSON as st.plotly_chart produces it)."""
    t_race, traces = timed(
        lambda: race(
            surface_problem(surface, surface.starts[0]), [OptimizerSpec(k) for k in RACE_KEYS], STEPS
        )
    )
    t_grid, grid = timed(lambda: surface_grid(surface))
    t_fig, fig = timed(lambda: race_figure(surface, traces, start=surface.starts[0], grid=grid))
    t_json, text = timed(fig.to_json)
    return {
        "race": t_race,
        "grid": t_grid,
        "figure": t_fig,
        "json": t_json,
        "traces": traces,
        "grid_obj": grid,
        "fig_bytes": len(text.encode()),
    }


def apptest_run() -> float:
    from streamlit.testing.v1 import AppTest

    from pages.common import cached_surface_race

    cached_surface_race.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "surfaces.py"), default_timeout=600)
    seconds, at = timed(at.run)
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    return seconds


def escape_run(surface) -> float:
    saddle = next(p for p in surface.stationary_points if p.kind == "saddle")
    xs = np.linspace(saddle.xy[0] - 1, saddle.xy[0] + 1, ESCAPE_GRID)
    ys = np.linspace(saddle.xy[1] - 1, saddle.xy[1] + 1, ESCAPE_GRID)
    gx, gy = np.meshgrid(xs, ys)
    starts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    seconds, _ = timed(
        lambda: escape_map(
            surface.f,
            starts,
            [OptimizerSpec(k) for k in ESCAPE_KEYS],
            STEPS,
            surface_escape(surface, saddle.xy),
            minima=surface_minima(surface),
            bound=surface_bound(surface),
        )
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--apptest-repeats", type=int, default=3)
    parser.add_argument("--escape-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (app.py sets 1)")
    parser.add_argument("--side-repeats", type=int, default=5)
    parser.add_argument("--browser", action="store_true", help="also a cold server's first visitor")
    args = parser.parse_args()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    surface = landscapes.SURFACES[SURFACE]

    data_path(surface)  # warm-up: torch / functorch first-call costs are paid once per server process
    side = side_by_side(surface, args.side_repeats)
    runs = [data_path(surface) for _ in range(args.repeats)]
    last = runs[-1]
    html = standalone_html(
        race_figure(
            surface,
            last["traces"],
            start=surface.starts[0],
            grid=last["grid_obj"],
            **EXPORT_OPTIONS,
        ),
        "benchmark",
    )
    apptests = [apptest_run() for _ in range(args.apptest_repeats)]
    escapes = [escape_run(surface) for _ in range(args.escape_repeats)]

    def med(name):
        return statistics.median(r[name] for r in runs)

    total = statistics.median(r["race"] + r["grid"] + r["figure"] + r["json"] for r in runs)
    rows = [
        ("race: 3 optimizers × 300 steps (GD, Adam, DEO (paper))", f"{med('race'):.3f} s", ""),
        ("contour grid (400×400 evaluations of f)", f"{med('grid'):.3f} s", ""),
        ("animated race figure build", f"{med('figure'):.3f} s", ""),
        ("figure → JSON", f"{med('json'):.3f} s", ""),
        ("**data path total** (race + figure)", f"**{total:.3f} s**", "≤ 1.5 s"),
        (
            "full AppTest run of pages/surfaces.py (default, 4 optimizers, cold race cache)",
            f"{statistics.median(apptests):.3f} s" if apptests else "not run (--apptest-repeats 0)",
            "",
        ),
        ("animated figure JSON (3 optimizers × 300 steps)", f"{last['fig_bytes'] / 1e6:.2f} MB", "≤ 2 MB"),
        (
            "standalone HTML download (plotly.js embedded, 4.82 MB of it)",
            f"{len(html.encode()) / 1e6:.2f} MB = {len(html.encode()) / 2**20:.2f} MiB",
            "≤ 5 MiB",
        ),
        (
            f"escape map {ESCAPE_GRID}×{ESCAPE_GRID} starts × 3 optimizers × {STEPS} steps",
            f"{statistics.median(escapes):.2f} s",
            "",
        ),
    ]
    table = ["| measurement | median | target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]

    def smed(name):
        return statistics.median(side[name])

    table += [
        "",
        f"### A new default race on the Surfaces page, side by side (server CPU s, medians of "
        f"{args.side_repeats}, alternating before / now)",
        "",
        f"Before = `deo/race.py` and `viz/surface_figs.py` at commit {BEFORE} (loaded from git, same "
        "engine); 4 optimizers (GD, Adam, DEO (paper), DEO-escape) × 300 steps; identical step counts.",
        "",
        "| part | before | now | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for part, target in (("race", ""), ("grid", ""), ("figure", ""), ("json", ""), ("deflate", ""),
                         ("total", "≤ 0.25 s")):  # fmt: skip
        b, n = smed(f"{part} before"), smed(f"{part} now")
        ratio = f"{b / n:.2f}×" if n > 0 else "—"
        table.append(f"| {part} | {b:.3f} | {n:.3f} | {ratio} | {target} |")
    again = smed("json again (cached figure)")
    table.append(f"| serialise the cached figure again (a rerun) | — | {again:.3f} | | |")
    table.append(
        f"| figure on the wire | {smed('wire before') / 1e3:.0f} KB (raw JSON) | "
        f"{smed('wire now') / 1e3:.0f} KB (deflate; raw {smed('raw now') / 1e3:.0f} KB) | "
        f"{smed('wire before') / smed('wire now'):.1f}× | ≤ 300 KB |"
    )
    if args.browser:
        from load import CHROMIUM, CHROMIUM_ARGS, Server, cold_first_visitor
        from playwright.sync_api import sync_playwright

        server = Server()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                cold = cold_first_visitor(browser, server)
                browser.close()
        finally:
            server.stop()
        table += [
            "",
            "### Cold server, first visitor (Chromium, one run)",
            "",
            "| step | s |",
            "|---|---:|",
            f"| imports + server start (spawn → health answers) | {server.t_health:.2f} |",
            f"| page load (navigation → DOM ready) | {cold['dom']:.2f} |",
            f"| script: imports of the page, race, figure, transfer (→ largest websocket message) | "
            f"{cold['figure_message'] - cold['dom']:.2f} |",
            f"| browser render (→ chart drawn) | {cold['chart'] - cold['figure_message']:.2f} |",
            f"| **total, spawn → chart** | **{server.t_health + cold['chart']:.2f}** (target ≤ 4 s) |",
        ]
    load_after = os.getloadavg()
    header = [
        "# App benchmark (Surfaces page, escape map)",
        "",
        f"Command: `python benchmarks/app.py --repeats {args.repeats} "
        f"--apptest-repeats {args.apptest_repeats} --escape-repeats {args.escape_repeats} "
        f"--side-repeats {args.side_repeats}{' --browser' if args.browser else ''}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"machine: {platform.processor() or 'unknown'} ({platform.machine()}); torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()}.",
        f"Repeats: data path {args.repeats} (after one warm-up), AppTest {args.apptest_repeats}, "
        f"escape map {args.escape_repeats}. Medians.",
        "",
        "The machine is shared with other jobs (2 cores, load varies): absolute times are noisy; "
        "sizes are exact. Load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        "",
    ]
    text = "\n".join(header + table) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "app.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
