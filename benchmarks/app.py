"""App benchmark: how long the default Surfaces page takes on the server, and how big its outputs are.

Measures (medians over repeats):

1. the Surfaces page's data path — the race (GD, Adam, DEO (paper) × 300 steps from the default
   start of ``saddle_plateau``) and the figure (contour grid + animated race figure + its JSON, as
   ``st.plotly_chart`` serialises it); target ≤ 1.5 s in total;
2. a full ``AppTest`` run of pages/surfaces.py with its default configuration (4 optimizers), race
   cache cleared before each run;
3. the animated figure's JSON size (target ≤ 2 MB) and the standalone HTML download (≤ 5 MB);
4. the escape map: 100×100 starts × 3 optimizers (GD, Adam, DEO-escape) × 300 steps.

Usage: ``python benchmarks/app.py [--repeats 5] [--escape-repeats 3]``; writes benchmarks/results/app.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    surface = landscapes.SURFACES[SURFACE]

    data_path(surface)  # warm-up: torch / functorch first-call costs are paid once per server process
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
            f"{statistics.median(apptests):.3f} s",
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
    header = [
        "# App benchmark (Surfaces page, escape map)",
        "",
        f"Command: `python benchmarks/app.py --repeats {args.repeats} "
        f"--apptest-repeats {args.apptest_repeats} --escape-repeats {args.escape_repeats}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"machine: {platform.processor() or 'unknown'} ({platform.machine()}); torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()}.",
        f"Repeats: data path {args.repeats} (after one warm-up), AppTest {args.apptest_repeats}, "
        f"escape map {args.escape_repeats}. Medians.",
        "",
        "The machine is shared with other jobs (2 cores, load varies): absolute times are noisy; "
        "sizes are exact.",
        "",
    ]
    text = "\n".join(header + table) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "app.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
