"""Browser-side cost of the default race chart: what a visitor's Chromium does after the figure arrives.

The default Surfaces race (``pages.surface_defaults``: 5 optimizers × 300 steps, its animated
figure as the page sends it) is drawn, side by side in one run and alternating, as:

- ``page``: ``st.plotly_chart`` with the page's arguments (the figure as built: margins fixed);
- ``autoexpand``: the same figure with ``layout.margin.autoexpand`` on (plotly.js's default, and the
  figure before 6f393f8): the legend, colour bar and slider push the margins by a few pixels after
  the first draw, and plotly.js draws the whole figure again;
- ``every_frame``: the same figure with a slider stop at every one of its 300 frames (the figure
  before ``viz.frames.slider_stops``: plotly.js lays out and measures each stop's label per draw);
- ``plotly.js``: plotly.js alone (the Python package's bundle, offline) in a bare page,
  ``Plotly.newPlot`` with the figure's data, layout and 300 frames: the floor under Streamlit's element.

One Streamlit server (a temporary script beside this repository, on a free loopback port) and one
Chromium context (Streamlit's front-end files cached after a first visit), so the times are the
figure's, not the page's boot. Per visit: navigation → the figure's websocket message → the chart
drawn (its SVG and frames exist) → the main thread settled (the end of the last long task, with
none for 1.5 s after). Median of ``--repeats``; the load average is recorded.

Usage: ``python benchmarks/chart_render.py [--repeats 5]``; writes ``benchmarks/results/chart_render.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import CHART_JS, CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

VARIANTS = ("page", "autoexpand", "every_frame")
SETTLE_QUIET_MS = 1500
LONG_TASKS = (
    "window.__lt = []; new PerformanceObserver(l => { for (const e of l.getEntries())"
    " window.__lt.push(e.startTime + e.duration); }).observe({type: 'longtask', buffered: true});"
)
SCRIPT = '''"""chart_render.py's page: the default race figure, drawn as pages/surfaces.py draws it."""
import json
import streamlit as st

spec = json.loads(open({spec!r}).read())
if st.query_params.get("v") == "autoexpand":
    spec["layout"]["margin"]["autoexpand"] = True
if st.query_params.get("v") == "every_frame":  # a slider stop at every frame (before viz.frames.slider_stops)
    stop = spec["layout"]["sliders"][0]["steps"][0]
    spec["layout"]["sliders"][0]["steps"] = [
        dict(stop, label=f["name"], args=[[f["name"]], *stop["args"][1:]]) for f in spec["frames"]
    ]
st.plotly_chart(spec, **json.loads({kwargs!r}), on_select=lambda: None)
'''


def default_figure_json() -> tuple[str, dict]:
    """The page's default race figure (desktop) as its JSON text, and ``st.plotly_chart``'s other
    arguments as the page passes them."""
    import plotly.io as pio

    from pages.surface_defaults import default_race_figure, race_chart_arguments

    fig = default_race_figure()
    # the JSON the page sends (pages/plotly_wire.py's memo)
    return pio.to_json(fig.to_dict(), validate=False), race_chart_arguments(large=False, compact=False)


def settled_ms(page) -> float:
    """Wait until no long task for SETTLE_QUIET_MS; the end of the last one (ms since navigation)."""
    while True:
        now, last = page.evaluate("() => [performance.now(), Math.max(0, ...window.__lt)]")
        if now - last > SETTLE_QUIET_MS:
            return last
        time.sleep(0.1)


def visit(context, url: str) -> dict:
    page = context.new_page()
    messages: list[tuple[float, int]] = []
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on(
        "Network.webSocketFrameReceived",
        lambda e: messages.append((time.perf_counter(), len(e["response"]["payloadData"]))),
    )
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(CHART_JS, timeout=240_000, polling=20)
    chart = time.perf_counter() - t0
    settled = settled_ms(page) / 1000
    figure = max(messages, key=lambda m: m[1])[0] - t0
    page.close()
    return {"figure_message": figure, "chart": chart, "settled": settled}


def plotly_alone(context, spec: str) -> dict:
    """plotly.js by itself: newPlot with the figure's data, layout, config and frames."""
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    page = context.new_page()
    page.set_content("<html><body><div id='gd'></div></body></html>")
    page.add_script_tag(path=str(bundle))
    seconds = page.evaluate(
        """async (spec) => {
            const fig = JSON.parse(spec), gd = document.getElementById('gd');
            const t0 = performance.now();
            await Plotly.newPlot(gd, {data: fig.data, layout: fig.layout, frames: fig.frames,
                                      config: {displaylogo: false}});
            await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
            return (performance.now() - t0) / 1000;
        }""",
        spec,
    )
    page.close()
    return {"chart": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "chart_render.md"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    spec, kwargs = default_figure_json()
    seen: dict[str, list[dict]] = {v: [] for v in (*VARIANTS, "plotly.js")}
    with tempfile.TemporaryDirectory(prefix="chart_render_") as tmp:
        spec_path = Path(tmp) / "figure.json"
        spec_path.write_text(spec)
        script = Path(tmp) / "chart.py"
        script.write_text(SCRIPT.format(spec=str(spec_path), kwargs=json.dumps(kwargs)))
        server = Server(launcher=[sys.executable, "-m", "streamlit", "run", str(script)])
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.add_init_script(LONG_TASKS)
                visit(context, server.url + "/?v=page")  # the front-end files into the cache
                for r in range(args.repeats):
                    for variant in VARIANTS:
                        seen[variant].append(visit(context, f"{server.url}/?v={variant}"))
                        print(variant, r, {k: round(v, 2) for k, v in seen[variant][-1].items()}, flush=True)
                    seen["plotly.js"].append(plotly_alone(context, spec))
                    print("plotly.js", r, round(seen["plotly.js"][-1]["chart"], 2), flush=True)
                browser.close()
        finally:
            server.stop()
    load_after = os.getloadavg()

    def med(variant: str, fn) -> float:
        return statistics.median(fn(v) for v in seen[variant])

    rows = []
    for variant in VARIANTS:
        rows.append(
            (
                variant,
                med(variant, lambda v: v["figure_message"]),
                med(variant, lambda v: v["chart"] - v["figure_message"]),
                med(variant, lambda v: v["settled"] - v["figure_message"]),
                med(variant, lambda v: v["settled"]),
            )
        )
    alone = med("plotly.js", lambda v: v["chart"])
    names = {
        "page": "`st.plotly_chart`, the figure as built (margins fixed)",
        "autoexpand": "`st.plotly_chart`, margin autoexpand on (before 6f393f8)",
        "every_frame": "`st.plotly_chart`, a slider stop at every frame (300; before `slider_stops`)",
    }
    table = [
        "# Browser cost of the default race chart",
        "",
        f"`python benchmarks/chart_render.py --repeats {args.repeats}` — {datetime.date.today()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Chromium {CHROMIUM} (software rendering), "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.",
        "",
        "The default Surfaces race figure (5 optimizers × 300 steps, 300 frames, "
        f"{len(spec) / 1e3:.0f} KB of JSON), one warm Streamlit server, one Chromium context with "
        "Streamlit's front-end files cached; variants alternating; medians, seconds.",
        "",
        "| drawn by | navigation → figure message | → chart drawn | → main thread settled | "
        "navigation → settled |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant, fig_s, chart_s, settle_s, total_s in rows:
        table.append(f"| {names[variant]} | {fig_s:.2f} | {chart_s:.2f} | {settle_s:.2f} | {total_s:.2f} |")
    table.append(f"| plotly.js alone (bare page, `newPlot` with the frames) | — | {alone:.2f} | | |")
    page_settle, auto_settle, every_settle = rows[0][3], rows[1][3], rows[2][3]
    table += [
        "",
        f"Margins fixed against autoexpand, figure message → settled: {auto_settle:.2f} → "
        f"{page_settle:.2f} s ({page_settle - auto_settle:+.2f} s; {auto_settle / page_settle:.2f}× faster). "
        f"Slider stops, {len(json.loads(spec)['layout']['sliders'][0]['steps'])} against one per frame: "
        f"{every_settle:.2f} → {page_settle:.2f} s ({page_settle - every_settle:+.2f} s). "
        "Settled: the end of the last long task (> 50 ms) with none for "
        f"{SETTLE_QUIET_MS / 1000:g} s after.",
        "",
    ]
    text = "\n".join(table)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
