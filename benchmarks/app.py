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
   page load, the script's first figure message, the chart drawn (``benchmarks/load.py``); the
   server's CPU per additional visitor of the computed link and per view-only change (/proc), and
   the cold script's own parts in a fresh process (imports, race, figure, JSON; :func:`cold_parts`);
7. (``--visitors N``) server CPU of the Surfaces script per additional visitor of an already computed
   link (fresh ``AppTest`` sessions, CPU of the script thread), side by side with the previous path
   (every visitor built the loss figures and serialised the race figure's JSON again, and
   ``style_figure`` validated its template), alternating; target ≤ 0.1 s.

8. (``--view-repeats N``) server CPU per view-only change on the Surfaces page, for every View
   control (speed, dimer zoom, arrows, dimer / arrows / min-mode on or off), a value never drawn
   and one drawn before: a fragment rerun's script CPU plus the deflate of the chart it sends,
   side by side with the figure code before (:func:`view_only`); target ≤ 50 ms. When it is the
   only section run (the others set to 0), the table goes to benchmarks/results/app_view.md.

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
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from script_probe import deflated, script_cpu_probe  # noqa: E402

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


def previous_path(on: bool) -> None:
    """Switch this process to the previous per-visitor path (``on``) or back to today's: the race
    figure's JSON encoded on every run (no ``pages.plotly_wire`` memo), the static figures rebuilt
    by every visitor (the trace-figure cache emptied before each run) and ``style_figure``
    validating its template through ``update_layout`` (see ``viz.palette._set_template``)."""
    import plotly.io

    import viz.palette as palette
    from pages import plotly_wire

    plotly_wire.install()
    if not hasattr(palette, "_fast_set_template"):
        palette._fast_set_template = palette._set_template
    plotly.io.to_json = plotly_wire._ORIGINAL[0] if on else plotly_wire._to_json
    palette._set_template = (
        (lambda fig, name: fig.update_layout(template=name)) if on else palette._fast_set_template
    )


def visitors(repeats: int) -> dict:
    """Script-thread CPU of fresh sessions opening the default Surfaces link, race computed:
    today's path and the previous one (:func:`previous_path`), alternating."""
    from streamlit.testing.v1 import AppTest

    from pages.common import cached_race_figure, cached_surface_race, cached_trace_figure

    probe = script_cpu_probe()
    out: dict[str, list[float]] = {"now": [], "before": []}

    def visit() -> float:
        at = AppTest.from_file(str(ROOT / "pages" / "surfaces.py"), default_timeout=600)
        n = len(probe)
        at.run()
        if at.exception:
            raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
        return sum(probe[n:])

    visit()  # the first visitor computes the race and its figures (not measured)
    race_runs = cached_surface_race.stats()["computations"]
    figure_runs = cached_race_figure.stats()["computations"]
    for r in range(repeats + 1):
        for label in ("before", "now"):
            previous_path(label == "before")
            if label == "before":
                cached_trace_figure.clear()
            seconds = visit()
            if r > 0:  # the first round warms both paths
                out[label].append(seconds)
    previous_path(False)
    assert cached_surface_race.stats()["computations"] == race_runs, "a visitor recomputed the race"
    assert cached_race_figure.stats()["computations"] == figure_runs, "a visitor rebuilt the figure"
    return out


VIEW_BEFORE = "3ca237f"  # main before the race figure was composed from cached layers (view changes)
# The Surfaces page's view controls: (widget, key, a value no one drew for the race, the default)
VIEW_CONTROLS = [
    ("select_slider", "speed", 4.0, 1.0),
    ("selectbox", "zoom", "1000", "auto"),
    ("radio", "arrows", "scale", "direction"),
    ("checkbox", "show_dimer", False, True),
    ("checkbox", "show_arrows", False, True),
    ("checkbox", "show_vmin", False, True),
]


def previous_race_figure():
    """``pages.common.cached_race_figure`` as it was at ``VIEW_BEFORE``: every new option combination
    builds the whole validated figure with that commit's ``viz/surface_figs.py`` and Plotly encodes
    its JSON (its own cache, so the two paths never share a figure)."""
    from pages.common import (
        cache_runner,
        cached_surface_grid,
        cached_surface_race,
        get_surface,
    )
    from pages.plotly_wire import wire_ready

    before = module_at(VIEW_BEFORE, "viz/surface_figs.py", "_surface_figs_view_before")

    @cache_runner(max_entries=8)
    def cached_race_figure(surface_key, formula, start, offset, specs_json, steps, seed, clip, options):
        traces = cached_surface_race(surface_key, formula, start, offset, specs_json, steps, seed, clip)
        surface = get_surface(surface_key, formula)
        grid = cached_surface_grid(surface_key, formula)
        return wire_ready(before.race_figure(surface, traces, grid=grid, **dict(options)).freeze())

    return cached_race_figure


def view_only(repeats: int) -> dict:
    """Server CPU of each view control's change on the Surfaces page, as the server runs it: a
    rerun of the chart's fragment only (``AppTest`` with the fragment's id in the rerun request,
    as the browser sends it), CPU of the script thread, plus the permessage-deflate of the chart's
    JSON that the server then sends (zlib level 6, raw deflate: what tornado does). For each control
    a value never drawn for this race, then back to the default (drawn before: a cache hit).
    Before (``VIEW_BEFORE``'s figure code) and now alternate; a new race (seed) per repeat, shared
    by both paths."""
    import json

    from streamlit.testing.v1 import AppTest, local_script_runner

    import pages.common as common

    probe = script_cpu_probe()
    now_figure, before_figure = common.cached_race_figure, previous_race_figure()
    rerun_data = local_script_runner.RerunData
    out: dict[tuple, list[float]] = {}

    def race_fragment(at) -> str:
        storage = at._fragment_storage
        for fid, fn in storage._fragments.items():
            names = [getattr(c.cell_contents, "__name__", "") for c in fn.__closure__ or []]
            if "race_view" in names:
                return fid
        raise RuntimeError("the Surfaces page has no race_view fragment")

    def chart_json(at) -> str:
        specs = [c.proto.spec for c in at.get("plotly_chart") if '"frames"' in c.proto.spec]
        if len(specs) != 1:
            raise RuntimeError(f"expected the race chart in the fragment's output, got {len(specs)}")
        return specs[0]

    try:
        for r in range(repeats):
            seed = str(7000 + r)
            order = ("before", "now") if r % 2 == 0 else ("now", "before")
            for label in order:
                common.cached_race_figure = before_figure if label == "before" else now_figure
                at = AppTest.from_file(str(ROOT / "pages" / "surfaces.py"), default_timeout=600)
                at.query_params.update({"seed": seed})
                at.run()  # full run: the race (once per seed), the default view
                if at.exception:
                    raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
                fid = race_fragment(at)
                local_script_runner.RerunData = lambda fid=fid, **kw: rerun_data(
                    **kw, fragment_id_queue=[fid], is_fragment_scoped_rerun=True
                )
                races = common.cached_surface_race.stats()["computations"]
                try:
                    for widget, key, value, default in VIEW_CONTROLS:
                        for kind, v in (("new value", value), ("drawn before", default)):
                            n = len(probe)
                            getattr(at, widget)(key=key).set_value(v).run()
                            if at.exception:
                                raise RuntimeError(f"{key}={v!r} raised: {[e.value for e in at.exception]}")
                            script = sum(probe[n:])
                            text = chart_json(at)
                            deflate, _ = cpu(lambda text=text: deflated(text))
                            for part, seconds in (("script", script), ("deflate", deflate)):
                                out.setdefault((key, kind, label, part), []).append(seconds)
                            out.setdefault((key, kind, label, "bytes"), []).append(len(text.encode()))
                            json.loads(text)  # a whole figure went out
                finally:
                    local_script_runner.RerunData = rerun_data
                assert common.cached_surface_race.stats()["computations"] == races, "a view change raced"
    finally:
        common.cached_race_figure = now_figure
        local_script_runner.RerunData = rerun_data
    return out


def view_table(seen: dict, repeats: int) -> list[str]:
    def med(*key):
        return statistics.median(seen[key])

    lines = [
        "",
        f"### View-only changes on the Surfaces page (server CPU ms per change, medians of {repeats})",
        "",
        "A rerun of the chart's fragment only, as the server runs it when a View control changes "
        "(`AppTest` with the fragment's id in the rerun request; CPU of the script thread), plus the "
        "permessage-deflate of the chart's JSON the server then sends (zlib level 6). *New value*: a "
        "value no one drew for this race; *drawn before*: back to the default (cached). Before = the "
        f"figure code of {VIEW_BEFORE} (every new combination builds and validates the whole figure, "
        "Plotly encodes its JSON); now = the view drawn on the race's cached layers. The default race "
        "(5 optimizers × 300 steps), a new seed per repeat, before and now alternating. Target ≤ 50 ms.",
        "",
        "| control | value | before: script | before: deflate | **before** | now: script | now: deflate "
        "| **now** | ratio | JSON before → now |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, key, _, _ in VIEW_CONTROLS:
        for kind in ("new value", "drawn before"):
            b_s, b_d = med(key, kind, "before", "script"), med(key, kind, "before", "deflate")
            n_s, n_d = med(key, kind, "now", "script"), med(key, kind, "now", "deflate")
            b, n = b_s + b_d, n_s + n_d
            kb_before, kb_now = med(key, kind, "before", "bytes") / 1e3, med(key, kind, "now", "bytes") / 1e3
            lines.append(
                f"| {key} | {kind} | {1e3 * b_s:.0f} | {1e3 * b_d:.0f} | **{1e3 * b:.0f}** | "
                f"{1e3 * n_s:.0f} | {1e3 * n_d:.0f} | **{1e3 * n:.0f}** | {b / n:.1f}× | "
                f"{kb_before:.0f} → {kb_now:.0f} KB |"
            )
    return lines


COLD_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
parts = {}
def step(name, fn):
    t0 = time.perf_counter(); value = fn(); parts[name] = time.perf_counter() - t0; return value
step("import streamlit", lambda: __import__("streamlit"))
torch = step("import torch", lambda: __import__("torch"))
torch.set_num_threads(1)
step("import plotly, pandas", lambda: (__import__("plotly.graph_objects"), __import__("pandas")))
step("import deo, landscapes, viz, pages.common", lambda: [__import__(m) for m in
     ("deo.race", "landscapes", "viz.surface_figs", "pages.common")])
step("import torch._dynamo (first optimizer step)", lambda: __import__("torch._dynamo"))
import landscapes
from deo.presets import PRESETS
from deo.race import OptimizerSpec, race, surface_problem
from viz.surface_figs import race_figure, surface_grid
import plotly.io as pio
surface = landscapes.SURFACES["saddle_plateau"]
keys = sys.argv[2].split(",")
start = surface.race.start or surface.starts[0]
specs = [OptimizerSpec(k, hyperparams=surface.race.hyperparams(k, PRESETS[k].defaults)) for k in keys]
traces = step("race (cold process)", lambda: race(surface_problem(surface, start), specs, 300))
fig = step("race figure (grid + animated figure)", lambda: race_figure(surface, traces, start=start,
           grid=surface_grid(surface)))
step("figure JSON", lambda: pio.to_json(fig.freeze(), validate=False))
print(json.dumps(parts))
"""


def wait_for_warm_up(server, timeout_s: float = 600) -> float:
    """Seconds from the server's health answer until serve.py says its warm-up is done (its log)."""
    from serve import WARM_MESSAGE

    t0, deadline = time.perf_counter(), time.monotonic() + timeout_s
    while WARM_MESSAGE not in Path(server.log.name).read_text():
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise RuntimeError("serve.py did not finish its warm-up")
        time.sleep(0.2)
    return time.perf_counter() - t0


def cold_parts(keys: list[str]) -> dict[str, float]:
    """Wall seconds of the first visitor's script work in a fresh Python process, in the order the
    server meets them: imports, the first race (its first optimizer step imports torch._dynamo,
    done here as its own step), the figure and its JSON."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", COLD_SCRIPT, str(ROOT), ",".join(keys)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--visitors", type=int, default=5, help="additional visitors per path (0: skip)")
    parser.add_argument(
        "--first-visits",
        type=int,
        default=1,
        help="(--browser) fresh serve.py servers whose first visitor comes after the warm-up",
    )
    parser.add_argument(
        "--view-repeats",
        type=int,
        default=3,
        help="view-only changes: fragment reruns per control, before and now (0: skip); with --browser "
        "also in Chromium",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="results file (default benchmarks/results/app.md; app_view.md when only the view section runs)",
    )
    args = parser.parse_args()
    # pages.common.require_app_navigation takes a process whose sys.argv[0] is named app.py for a
    # server of app.py; this script's AppTest sessions run the page files as entry scripts
    sys.argv[0] = str(ROOT / "benchmarks" / "app_benchmark")
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    surface = landscapes.SURFACES[SURFACE]

    data_path(surface)  # warm-up: torch / functorch first-call costs are paid once per server process
    side = side_by_side(surface, args.side_repeats) if args.side_repeats > 0 else None
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
            f"{statistics.median(escapes):.2f} s" if escapes else "not run (--escape-repeats 0)",
            "",
        ),
    ]
    table = ["| measurement | median | target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]

    if side is not None:

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
    if args.visitors > 0:
        seen = visitors(args.visitors)
        b, n = statistics.median(seen["before"]), statistics.median(seen["now"])
        table += [
            "",
            f"### An additional visitor of an already computed link (server CPU s of the script, "
            f"medians of {args.visitors}, alternating)",
            "",
            "Fresh `AppTest` sessions of pages/surfaces.py with its default link, race and figures "
            "cached (asserted: no race or race figure computed again); CPU of the script thread. "
            "Before = the previous per-visitor path emulated in the same process: the loss figures "
            "built again by every visitor, the race figure's JSON encoded again, `style_figure` "
            "validating its template.",
            "",
            "| path | CPU s (median) | all | target |",
            "|---|---:|---|---|",
            f"| before | {b:.3f} | {', '.join(f'{v:.2f}' for v in seen['before'])} | |",
            f"| now | **{n:.3f}** | {', '.join(f'{v:.2f}' for v in seen['now'])} | ≤ 0.1 s |",
            f"| ratio | {b / n:.2f}× | | |",
        ]
    if args.view_repeats > 0:
        table += view_table(view_only(args.view_repeats), args.view_repeats)
    if args.browser:
        from load import CHROMIUM, CHROMIUM_ARGS, Server, cold_first_visitor, open_page, view_changes
        from playwright.sync_api import sync_playwright

        from pages.surface_defaults import DEFAULT_OPTIMIZERS

        parts = cold_parts(DEFAULT_OPTIMIZERS)  # the page's own list of preset keys
        server = Server()
        per_visitor: list[float] = []
        views: dict = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                cold = cold_first_visitor(browser, server)
                for _ in range(args.visitors):
                    cpu0 = server.cpu()
                    context, _page = open_page(browser, server, "/")
                    context.close()
                    time.sleep(0.5)  # the server finishes the session's last messages
                    per_visitor.append(server.cpu() - cpu0)
                if args.view_repeats > 0:
                    try:
                        views = view_changes(browser, server, args.view_repeats)
                    except Exception as exc:  # a control not found on a changed page: say so, go on
                        print(f"view changes not measured: {exc!r:.300}", file=sys.stderr)
                browser.close()
        finally:
            server.stop()
        preloaded = Server(launcher=[sys.executable, "serve.py"])  # the same, imports warmed at start
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                cold_pre = cold_first_visitor(browser, preloaded)
                browser.close()
        finally:
            preloaded.stop()
        # a server started before the class: its first visitor comes after serve.py's warm-up
        # (--first-visits fresh servers and browsers; the breakdown is the median visit's)
        warm_visits = []
        for _ in range(args.first_visits):
            started = Server(launcher=[sys.executable, "serve.py"])
            try:
                warm_s = wait_for_warm_up(started)
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    warm_visits.append((cold_first_visitor(browser, started), started.t_health, warm_s))
                    browser.close()
            finally:
                started.stop()
        warm_visits.sort(key=lambda visit: visit[0]["chart"])
        cold_warm, started_health, warm_s = warm_visits[(len(warm_visits) - 1) // 2]
        all_warm = ", ".join(f"{visit[0]['chart']:.2f}" for visit in warm_visits)
        table += [
            "",
            f"### Cold server, first visitor (Chromium; one run each, {args.first_visits} after the warm-up)",
            "",
            "`streamlit run app.py`; `python serve.py` (the README's command: the same server, its heavy "
            "imports warmed, the plain link's race, figure and loss curves computed into the shared "
            "caches and a 3-step race of every preset run, in a background thread while it waits for "
            "the first browser), the visitor arriving as soon as the server answers; and `python serve.py` "
            f"with the visitor arriving after that warm-up ({warm_s:.1f} s after the server answered: a "
            f"server started before the class; a fresh server and Chromium for each of {args.first_visits} "
            f"visits, the median visit shown; all of them, navigation → chart: {all_warm}). Seconds.",
            "",
            "| step | streamlit run app.py | python serve.py | serve.py, after its warm-up |",
            "|---|---:|---:|---:|",
            f"| imports + server start (spawn → health answers) | {server.t_health:.2f} | "
            f"{preloaded.t_health:.2f} | {started_health:.2f} |",
            f"| page load (navigation → DOM ready) | {cold['dom']:.2f} | {cold_pre['dom']:.2f} | "
            f"{cold_warm['dom']:.2f} |",
            f"| script: imports of the page, race, figure, transfer (→ largest websocket message) | "
            f"{cold['figure_message'] - cold['dom']:.2f} | "
            f"{cold_pre['figure_message'] - cold_pre['dom']:.2f} | "
            f"{cold_warm['figure_message'] - cold_warm['dom']:.2f} |",
            f"| browser render (→ chart drawn) | {cold['chart'] - cold['figure_message']:.2f} | "
            f"{cold_pre['chart'] - cold_pre['figure_message']:.2f} | "
            f"{cold_warm['chart'] - cold_warm['figure_message']:.2f} |",
            f"| **navigation → chart** (target ≤ 4 s) | **{cold['chart']:.2f}** | "
            f"**{cold_pre['chart']:.2f}** | **{cold_warm['chart']:.2f}** |",
            f"| spawn → chart | {server.t_health + cold['chart']:.2f} | "
            f"{preloaded.t_health + cold_pre['chart']:.2f} | "
            f"{started_health + warm_s + cold_warm['chart']:.2f} |",
            "",
            "The script's part of it, step by step in a fresh Python process (wall s, one run; the "
            "server meets them in this order in the first session's script thread):",
            "",
            "| step | s |",
            "|---|---:|",
        ]
        table += [f"| {name} | {seconds:.2f} |" for name, seconds in parts.items()]
        table += [f"| total | {sum(parts.values()):.2f} |", ""]
        table += [
            "### Server CPU per interaction, Chromium (s, from /proc: script, websocket, compression)",
            "",
            "| interaction | median | all | target |",
            "|---|---:|---|---|",
        ]
        if per_visitor:
            table.append(
                f"| additional visitor of the computed default link | {statistics.median(per_visitor):.3f} | "
                f"{', '.join(f'{v:.2f}' for v in per_visitor)} | ≤ 0.1 s |"
            )
        for name, values in views.items():
            target = "" if name.startswith("full") else "≤ 0.05 s"
            table.append(
                f"| view change: {name} | {statistics.median(values):.3f} | "
                f"{', '.join(f'{v:.2f}' for v in values)} | {target} |"
            )
    load_after = os.getloadavg()
    only_view = not (args.apptest_repeats or args.escape_repeats or args.side_repeats or args.visitors)
    only_view = only_view and not args.browser and args.view_repeats > 0
    others = args.escape_repeats or args.side_repeats
    first_visitor_only = args.browser and not (args.apptest_repeats or others)
    data_path_only = not args.browser and args.apptest_repeats and not others
    if only_view:  # distinct titles: the About page lists each results file under its title
        title = "# App benchmark: view-only changes on the Surfaces page"
    elif first_visitor_only:
        title = "# App benchmark: a cold server's first visitor and additional visitors (Surfaces page)"
    elif data_path_only:
        title = "# App benchmark: the data path and a full page run (Surfaces page)"
    else:
        title = "# App benchmark (Surfaces page, escape map)"
    header = [
        title,
        "",
        f"Command: `python benchmarks/app.py --repeats {args.repeats} "
        f"--apptest-repeats {args.apptest_repeats} --escape-repeats {args.escape_repeats} "
        f"--side-repeats {args.side_repeats} --visitors {args.visitors} --view-repeats {args.view_repeats}"
        f"{' --browser' if args.browser else ''}"
        f"{f' --first-visits {args.first_visits}' if args.browser and args.first_visits != 1 else ''}"
        f"{f' --out {args.out}' if args.out else ''}`",
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
    # a partial run never replaces app.md; --out: a bare name goes to benchmarks/results/, a path is
    # taken as given (relative to the working directory)
    out = Path(args.out or ("app_view.md" if only_view else "app.md"))
    if not out.is_absolute():
        out = ROOT / "benchmarks" / "results" / out if out.parent == Path(".") else Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
