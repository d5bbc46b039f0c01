"""Load benchmark: one Streamlit server, one Chromium, N concurrent browser contexts.

Starts ``streamlit run app.py`` on a free loopback port (127.0.0.1 only), drives Debian's Chromium
through Playwright (one browser, bounded contexts), measures, stops the server and the browser by
itself, prints a table and writes ``benchmarks/results/load.md`` (``--out NAME``: another file there).

Measured (server figures from ``/proc/<pid>``: CPU = utime + stime, RSS = VmRSS):

1. cold server: spawn → health answers (imports, server start), then the first visitor's time to
   the chart, split from the browser's side (page load, waiting for the figure message, rendering);
2. CPU seconds the server spends per additional visitor of an already computed link;
3. view-only changes (dimer zoom, arrows, a tab, speed): server CPU per change with the fragment,
   next to a full rerun of the page with the race cached (what every view change cost before);
4. p50 / p95 time to chart for N concurrent browsers on the same (not yet computed) link and on N
   different links; the server's CPU over the wave;
5. server RSS: warm baseline, peak, and after the contexts closed (5 s and 20 s later, and once
   Streamlit has dropped the closed sessions: its ``server.disconnectedSessionTTL`` plus one of the
   server's malloc_trim periods, unless ``--no-ttl``);
6. (``--heavy``) four Surfaces visitors and the health endpoint while one session computes a
   100×100 escape map.

Usage: ``python benchmarks/load.py [--ns 1,4,8,16] [--heavy] [--budget-s 900]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART_TIMEOUT_S = 240.0
TICK = os.sysconf("SC_CLK_TCK")
# the race chart is drawn: the page's animated Plotly chart (the one with frames) has its SVG
CHART_JS = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(gd => gd._transitionData"
    " && gd._transitionData._frames && gd._transitionData._frames.length > 0"
    " && gd.querySelector('.main-svg'))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHERS = {"serve": "python serve.py", "streamlit": "streamlit run app.py"}  # --launcher: the command


def launcher_command(name: str) -> list[str] | None:
    """``Server``'s launcher for ``--launcher name`` (None: its default, ``streamlit run app.py``)."""
    return [sys.executable, "serve.py"] if name == "serve" else None


class Server:
    """``streamlit run app.py`` on 127.0.0.1:port; CPU and RSS from /proc."""

    def __init__(
        self, env_extra: dict | None = None, launcher: list[str] | None = None, cwd: Path = ROOT
    ):
        """``launcher``: the command before the server options (default ``streamlit run app.py``;
        ``benchmarks/app.py`` also starts ``python serve.py``); ``cwd``: the checkout it serves
        (``benchmarks/page_visitors.py`` serves a baseline checkout beside this one)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = ROOT / "artifacts"
        log_dir.mkdir(exist_ok=True)
        self.log = open(log_dir / f"load-server-{self.port}.log", "w")
        env = {**os.environ, **(env_extra or {})}
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(
            [*(launcher or [sys.executable, "-m", "streamlit", "run", "app.py"]), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--server.runOnSave", "false"],
            cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not answer within 120 s")
            time.sleep(0.1)
        self.t_health = time.perf_counter() - self.t_spawn

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def session_ttl_s() -> int:
    """Streamlit's ``server.disconnectedSessionTTL`` (seconds a closed browser's session is kept):
    the server runs with this repository's ``.streamlit/config.toml``, which leaves the default."""
    from streamlit import config

    return int(config.get_option("server.disconnectedSessionTTL"))


def health_ms(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=30) as r:
        r.read()
    return 1000 * (time.perf_counter() - t0)


def say(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))
    return v[k]


def wait_charts(pages: list, t0: list[float], timeout_s: float = CHART_TIMEOUT_S) -> list[float]:
    """Poll every page until its race chart is drawn; seconds from each page's own start."""
    done: list[float | None] = [None] * len(pages)
    deadline = time.perf_counter() + timeout_s
    while any(d is None for d in done) and time.perf_counter() < deadline:
        for i, page in enumerate(pages):
            if done[i] is None:
                try:
                    if page.evaluate(CHART_JS):
                        done[i] = time.perf_counter() - t0[i]
                except Exception:  # navigation in progress
                    pass
        time.sleep(0.02)
    return [d if d is not None else float("nan") for d in done]


def wave(browser, server: Server, links: list[str]) -> dict:
    """Open every link in its own context at once; times to chart and the server's CPU."""
    cpu0 = server.cpu()
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in links]
    pages = [c.new_page() for c in contexts]
    t0 = []
    for page, link in zip(pages, links):
        t0.append(time.perf_counter())
        page.goto(server.url + link, wait_until="commit")
    times = wait_charts(pages, t0)
    peak = server.rss_mb()
    cpu = server.cpu() - cpu0
    for c in contexts:
        c.close()
    return {"times": times, "cpu": cpu, "rss_peak": peak}


def cold_first_visitor(browser, server: Server) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    frames: list[tuple[float, int]] = []  # (time, payload length) of websocket messages received
    cdp.on(
        "Network.webSocketFrameReceived",
        lambda e: frames.append((time.perf_counter(), len(e["response"]["payloadData"]))),
    )
    t0 = time.perf_counter()
    page.goto(server.url + "/", wait_until="domcontentloaded")
    t_dom = time.perf_counter() - t0
    t_chart = wait_charts([page], [t0])[0]
    big = max(frames, key=lambda f: f[1]) if frames else (float("nan"), 0)
    t_fig = big[0] - t0
    context.close()
    return {"dom": t_dom, "figure_message": t_fig, "chart": t_chart, "largest_message_chars": big[1]}


PAGES_WARM_UP_TIMEOUT_S = 300.0  # how long a benchmark waits for serve.py's warm-up of the other pages


def wait_for_pages_warm_up(
    server: Server, launcher: str, timeout_s: float = PAGES_WARM_UP_TIMEOUT_S
) -> float | None:
    """Seconds from the server's start until ``serve.py`` said it has computed the other pages' plain
    links (its warm-up's last step), waiting for it; None for a launcher without that warm-up or when
    it did not come within ``timeout_s``. That warm-up gives way to visitors and runs in the quiet
    moments between them, so measured before it ends, a view change or a visitor's server CPU can
    include a piece of it (a 'first zoom' of 2.9–3.5 s in runs before this wait: the Dimer and
    Networks pages' studies computing in that gap)."""
    if launcher != "serve":
        return None
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from serve import PAGES_MESSAGE

    log = Path(server.log.name)
    deadline = time.monotonic() + timeout_s
    while PAGES_MESSAGE not in log.read_text():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    return time.perf_counter() - server.t_spawn


def warm_up_ended(warmed_after: float | None) -> str:
    """When :func:`wait_for_pages_warm_up` saw the warm-up end, for a report."""
    if warmed_after is None:
        return f"not within {PAGES_WARM_UP_TIMEOUT_S:.0f} s"
    return f"{warmed_after:.1f} s after the server's start"


def open_page(browser, server: Server, link: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(server.url + link, wait_until="commit")
    wait_charts([page], [t0])
    return context, page


def idle(page, timeout_s: float = 120) -> None:
    """Wait until the app is not running a script (Streamlit's stApp data-test-script-state)."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }",
        timeout=timeout_s * 1000,
    )


def measure_change(server: Server, page, act, done_js: str) -> tuple[float, float]:
    """(server CPU s, wall s) of one interaction until ``done_js`` holds and the app is idle."""
    cpu0, t0 = server.cpu(), time.perf_counter()
    act()
    page.wait_for_function(done_js, timeout=120_000)
    idle(page)
    wall = time.perf_counter() - t0
    time.sleep(0.3)  # let the server finish sending
    return server.cpu() - cpu0, wall


def choose_option(page, select, name, attempts: int = 5, visible_timeout_ms: float = 120_000) -> None:
    """Pick the option ``name`` (its exact text, or a ``re.Pattern``) in the Streamlit selectbox
    ``select``. Opening the list and clicking the option are repeated if the list closes under the
    click (a rerender while it is open); each step is a state wait. The caller waits for the
    choice's effect. (``tests/test_browser.py`` picks options through this too.)"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    select.wait_for(state="visible", timeout=visible_timeout_ms)
    option = page.get_by_role("option", name=name, exact=isinstance(name, str))
    for attempt in range(attempts):
        try:
            select.get_by_role("combobox").click(timeout=15_000)
            option.click(timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")


def view_changes(browser, server: Server, repeats: int) -> dict:
    """Server CPU of view-only changes (fragment) and of a full rerun with the race cached."""
    context, page = open_page(browser, server, "/?seed=77")
    race = (  # the animated chart's traces (its legend names the dimer zoom drawn)
        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".find(gd => gd._transitionData && gd._transitionData._frames.length).data"
    )
    out: dict[str, list[float]] = {"zoom": [], "arrows": [], "tab": [], "full rerun (race cached)": []}
    page.get_by_text("View", exact=True).first.click()
    zooms = ["1000", "10", "100", "1"]
    for r in range(repeats):
        z = zooms[r % len(zooms)]

        def pick(z=z):
            select = page.locator('[data-testid="stSelectbox"]').filter(has_text="Dimer zoom").first
            choose_option(page, select, z)

        cpu, _ = measure_change(server, page, pick, f"() => {race}.some(t => t.name === 'dimer (ΔR ×{z})')")
        out["zoom"].append(cpu)
        label = "to scale" if r % 2 == 0 else "same length"
        shown = "" if r % 2 == 0 else "!"  # the caption gives the scale of the arrows drawn to scale
        cpu, _ = measure_change(
            server, page, lambda label=label: page.get_by_text(label, exact=True).first.click(),
            f"() => {shown}document.body.innerText.includes('× vector.')",
        )  # fmt: skip
        out["arrows"].append(cpu)
        tab = "Curvature" if r % 2 == 0 else "Loss"
        cpu, _ = measure_change(
            server, page, lambda tab=tab: page.get_by_role("tab", name=tab).click(),
            f"() => document.querySelector('[role=tab][aria-selected=true]')?.textContent.includes('{tab}')",
        )  # fmt: skip
        out["tab"].append(cpu)
        # a full rerun with every result cached: the seed goes 77 → 78 → 77 ... (both races computed)
        seed = "78" if r % 2 == 0 else "77"
        def set_seed(seed=seed):
            box = page.locator('[data-testid="stNumberInput"] input[aria-label="Seed"]')
            box.fill(seed)
            box.press("Enter")

        if r == 0:  # compute seed 78 once first (not measured)
            set_seed("78")
            idle(page)
            set_seed("77")
            idle(page)
        cpu, _ = measure_change(server, page, set_seed, f"() => location.search.includes('seed={seed}')")
        out["full rerun (race cached)"].append(cpu)
    context.close()
    return out


def heavy_run(browser, server: Server, solo: list[float]) -> dict:
    """Four Surfaces visitors (new links) and the health endpoint while one escape map computes."""
    stop = threading.Event()
    health: list[float] = []

    def poll():
        while not stop.is_set():
            try:
                health.append(health_ms(server.url))
            except OSError:
                health.append(30_000.0)
            time.sleep(0.2)

    context = browser.new_context()
    heavy = context.new_page()
    link = "/escape_map?em.resolution=100&em.steps=600&em.seed=5&em.opt=GD&em.opt=Adam&em.opt=DEO-escape"
    heavy.goto(server.url + link, wait_until="commit")
    heavy.get_by_role("button", name="Run").click(timeout=120_000)  # heavy work waits for Run (issue 8)
    time.sleep(2.0)  # the map is running
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    result = wave(browser, server, [f"/?seed={900 + i}" for i in range(4)])
    stop.set()
    poller.join(timeout=40)
    context.close()
    return {"times": result["times"], "health_ms": health, "solo": solo}


def server_allocator(pid: int) -> str:
    """``PYTHONMALLOC`` and ``MALLOC_ARENA_MAX`` as the server process has them (``/proc/<pid>/environ``:
    what ``python serve.py`` re-executed itself with), unset ones named so."""
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "unknown"
    env = dict(item.split("=", 1) for item in items if "=" in item)
    return ", ".join(
        f"{key}={env[key]}" if key in env else f"{key} unset ({default})"
        for key, default in (("PYTHONMALLOC", "pymalloc"), ("MALLOC_ARENA_MAX", "glibc: 8 per core"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1,4,8,16", help="concurrent browsers per wave")
    parser.add_argument("--view-repeats", type=int, default=4)
    parser.add_argument("--visitor-repeats", type=int, default=5)
    parser.add_argument("--heavy", action="store_true", help="also the escape-map interference run")
    parser.add_argument("--budget-s", type=float, default=900, help="stop starting new waves after this")
    parser.add_argument("--arena", type=int, default=None, help="MALLOC_ARENA_MAX for the server")
    parser.add_argument("--allocator", choices=("malloc", "pymalloc"), default=None,
                        help="PYTHONMALLOC for the server (default: serve.py's own choice, glibc malloc "
                        "with two arenas; a bare streamlit run: pymalloc)")
    parser.add_argument("--no-ttl", action="store_true",
                        help="skip the RSS reading after Streamlit's disconnected-session TTL (≈ 2.5 min)")
    parser.add_argument("--out", default="load.md",
                        help="file name under benchmarks/results/ (another name: its title says which run)")
    parser.add_argument("--launcher", choices=tuple(LAUNCHERS), default="serve",
                        help="the README's `python serve.py` (default) or a bare `streamlit run app.py`")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    ns = [int(n) for n in args.ns.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` still stops the server below
    t_start = time.monotonic()
    load_before = os.getloadavg()
    env = {"MALLOC_ARENA_MAX": str(args.arena)} if args.arena else {}
    if args.allocator:
        env["PYTHONMALLOC"] = args.allocator
    server = Server(env, launcher=launcher_command(args.launcher))
    allocator = server_allocator(server.proc.pid)  # after serve.py's re-execution, if any
    lines: list[str] = []
    nan = float("nan")
    cold = {"dom": nan, "figure_message": nan, "chart": nan, "largest_message_chars": 0}
    per_visitor: list[float] = []
    per_tab: list[float] = []
    views: dict = {}
    waves: list = []
    rss_warm = rss_peak = rss_5 = rss_20 = rss_ttl = nan
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pages.common import TRIM_EVERY_S  # the server's malloc_trim period

    ttl_wait = session_ttl_s() + TRIM_EVERY_S + 5
    heavy = None
    stopped = None
    warmed_after = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                say(f"server up in {server.t_health:.1f} s; cold first visitor")
                cold = cold_first_visitor(browser, server)
                say("first chart", cold)
                warmed_after = wait_for_pages_warm_up(server, args.launcher)
                say("the server's warm-up of the other pages ended", warmed_after)
                rss_warm = server.rss_mb()
                for _ in range(args.visitor_repeats):
                    cpu0 = server.cpu()
                    context, _page = open_page(browser, server, "/")
                    context.close()
                    time.sleep(0.5)
                    per_visitor.append(server.cpu() - cpu0)
                say("per visitor CPU", per_visitor)
                # the same, from a browser that already holds Streamlit's front-end files (a new tab):
                # what the script, the session and the websocket cost, without serving the bundle
                warm_context = browser.new_context(viewport={"width": 1400, "height": 900})
                first = warm_context.new_page()
                first.goto(server.url + "/", wait_until="commit")
                wait_charts([first], [time.perf_counter()])
                for _ in range(args.visitor_repeats):
                    cpu0 = server.cpu()
                    tab = warm_context.new_page()
                    t0 = time.perf_counter()
                    tab.goto(server.url + "/", wait_until="commit")
                    wait_charts([tab], [t0])
                    tab.close()
                    time.sleep(0.5)
                    per_tab.append(server.cpu() - cpu0)
                warm_context.close()
                say("per visitor CPU, front-end cached", per_tab)
                try:
                    views = view_changes(browser, server, args.view_repeats)
                except Exception as exc:  # a control not found on a changed page: report, go on
                    views = {}
                    say("view changes not measured:", repr(exc)[:300])
                say("view changes", views)
                for n in ns:
                    if time.monotonic() - t_start > args.budget_s:
                        break
                    same = wave(browser, server, [f"/?seed={1000 + n}"] * n)
                    waves.append(("same link", n, same))
                    say("same link", n, same)
                    if time.monotonic() - t_start > args.budget_s:
                        break
                    diff = wave(browser, server, [f"/?seed={2000 + 100 * n + i}" for i in range(n)])
                    waves.append(("different links", n, diff))
                    say("different links", n, diff)
                closed = time.monotonic()
                time.sleep(5)
                rss_5 = server.rss_mb()
                time.sleep(15)
                rss_20 = server.rss_mb()
                if not args.no_ttl:  # Streamlit keeps a closed session this long before dropping it
                    say(f"waiting {ttl_wait:.0f} s after the close for the session TTL")
                    time.sleep(max(0.0, closed + ttl_wait - time.monotonic()))
                    rss_ttl = server.rss_mb()
                if args.heavy and time.monotonic() - t_start < args.budget_s:
                    solo = [w for kind, n, w in waves if kind == "different links" and n == 4]
                    solo = [t for w in solo for t in w["times"]]
                    heavy = heavy_run(browser, server, solo)
            finally:
                browser.close()
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # stopped early: write what was measured
        stopped = repr(exc)[:200]
        say("stopped early:", stopped)
    finally:
        rss_peak = max([server.rss_mb()] + [w[2]["rss_peak"] for w in waves])
        server.stop()
    load_after = os.getloadavg()

    lines.append("## Cold server, first visitor (one run)\n")
    lines.append("| step | seconds |")
    lines.append("|---|---:|")
    lines.append(f"| spawn → health answers (imports, server start) | {server.t_health:.2f} |")
    lines.append(f"| navigation → DOM ready (HTML + JS bundle) | {cold['dom']:.2f} |")
    lines.append(f"| navigation → largest websocket message (script: race + figure, transfer) | "
                 f"{cold['figure_message']:.2f} |")  # fmt: skip
    lines.append(f"| navigation → race chart drawn | **{cold['chart']:.2f}** |")
    lines.append(f"| spawn → race chart drawn (cold server, first visitor) | "
                 f"**{server.t_health + cold['chart']:.2f}** |")  # fmt: skip
    lines.append(
        f"| largest websocket message (decompressed characters) | {cold['largest_message_chars']:,} |"
    )
    lines.append("")
    if args.launcher == "serve":
        lines.append(
            f"\nThe server's warm-up of the other pages' plain links ended {warm_up_ended(warmed_after)}"
            + "; everything below was measured after that (it gives way to visitors, and a piece of it run"
            " in a pause between them would otherwise count as that moment's interaction).\n"
        )
    lines.append("## Server CPU per interaction (medians)\n")
    lines.append("| interaction | server CPU s (median) | all |")
    lines.append("|---|---:|---|")
    visitor = statistics.median(per_visitor or [nan])
    lines.append(f"| additional visitor of an already computed link (new browser: front-end files served) | "
                 f"{visitor:.3f} | {', '.join(f'{v:.2f}' for v in per_visitor)} |")  # fmt: skip
    tab = statistics.median(per_tab or [nan])
    lines.append(f"| additional visitor, browser already holding the front-end files (new tab) | "
                 f"{tab:.3f} | {', '.join(f'{v:.2f}' for v in per_tab)} |")  # fmt: skip
    for name, values in views.items():
        lines.append(f"| view change: {name} | {statistics.median(values):.3f} | "
                     f"{', '.join(f'{v:.2f}' for v in values)} |")  # fmt: skip
    lines.append("")
    lines.append("## N concurrent browsers (one Chromium, one context each)\n")
    lines.append("| links | N | p50 time to chart s | p95 s | max s | server CPU s | RSS after wave MB |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for kind, n, w in waves:
        t = w["times"]
        lines.append(f"| {kind} | {n} | {pct(t, 50):.2f} | {pct(t, 95):.2f} | {max(t):.2f} | "
                     f"{w['cpu']:.2f} | {w['rss_peak']:.0f} |")  # fmt: skip
    lines.append("")
    lines.append("## Server memory\n")
    lines.append("| moment | RSS MB |")
    lines.append("|---|---:|")
    lines.append(f"| warm (after the first visitor and serve.py's warm-up) | {rss_warm:.0f} |")
    lines.append(f"| peak over the waves | {rss_peak:.0f} |")
    lines.append(f"| 5 s after the last contexts closed | {rss_5:.0f} |")
    lines.append(f"| 20 s after | {rss_20:.0f} ({100 * (rss_20 / rss_warm - 1):+.0f} % of warm) |")
    if rss_ttl == rss_ttl:  # measured (not NaN)
        lines.append(f"| {ttl_wait:.0f} s after: Streamlit's disconnected-session TTL "
                     f"({session_ttl_s()} s) and a malloc_trim period passed | {rss_ttl:.0f} "
                     f"({100 * (rss_ttl / rss_warm - 1):+.0f} % of warm) |")  # fmt: skip
    if stopped is not None:
        lines.append("")
        lines.append(f"**Stopped early** ({stopped}): the rows above are what was measured before.")
    if heavy is not None:
        lines.append("")
        lines.append("## While one session computes a 100×100 escape map (600 steps, 3 optimizers)\n")
        lines.append("| | p50 s | p95 s |")
        lines.append("|---|---:|---:|")
        lines.append(f"| 4 Surfaces visitors, new links, solo (wave above) | {pct(heavy['solo'], 50):.2f} | "
                     f"{pct(heavy['solo'], 95):.2f} |")  # fmt: skip
        lines.append(f"| 4 Surfaces visitors, new links, during the map | {pct(heavy['times'], 50):.2f} | "
                     f"{pct(heavy['times'], 95):.2f} |")  # fmt: skip
        lines.append(f"| /_stcore/health (ms), {len(heavy['health_ms'])} polls | "
                     f"{pct(heavy['health_ms'], 50):.0f} | {pct(heavy['health_ms'], 95):.0f} |")  # fmt: skip
    header = [
        "# Load benchmark (one server, one Chromium, N browser contexts)"
        + ("" if args.out == "load.md" else f": {Path(args.out).stem}"),
        "",
        f"Command: `python benchmarks/load.py --ns {args.ns} --view-repeats {args.view_repeats} "
        f"--visitor-repeats {args.visitor_repeats}{' --heavy' if args.heavy else ''}"
        f"{' --launcher streamlit' if args.launcher == 'streamlit' else ''}"
        f"{f' --arena {args.arena}' if args.arena else ''}"
        f"{f' --allocator {args.allocator}' if args.allocator else ''}"
        f"{' --no-ttl' if args.no_ttl else ''}"
        f"{f' --out {args.out}' if args.out != 'load.md' else ''}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        f"Server: `{LAUNCHERS[args.launcher]}` on 127.0.0.1 "
        "(websocket compression on, no gc.collect after each run: `.streamlit/config.toml`; the "
        f"server process's allocator environment: {allocator}); "
        "server CPU and RSS from /proc. Times are wall clock on a loaded machine: CPU seconds are the "
        "steadier figure.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / Path(args.out).name
    out.write_text(text)


if __name__ == "__main__":
    main()
