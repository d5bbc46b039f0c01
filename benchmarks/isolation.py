"""Isolation benchmark: heavy work in one session must not starve the others (issue 9 item 6, issue
13 item 8).

Starts the README's ``python serve.py`` (or, with ``--launcher streamlit``, a bare ``streamlit run
app.py``) on a free loopback port (127.0.0.1 only) with Debian's Chromium
(Playwright, one browser). For each heavy request — the heaviest escape map the page's budget allows
(100×100 starts, 990 steps, GD + Adam + DEO-escape: 49.5 M of the 50 M row-gradient budget) and a
tiny_transformer race (3 000 steps, GD + Adam + DEO (paper)) — it measures, side by side in one run:

- four Surfaces sessions opened at once on new links (each computes its own race): time to chart,
  solo (no heavy work) and then while the heavy session computes;
- ``/_stcore/health`` latency, polled every 100 ms, over the whole heavy window;
- CPU seconds of the server process and of its worker processes over the heavy window (the heavy
  work runs in ``pages/workers.py``'s pool, not in the server process).

The heavy session is closed after the wave (its job is stopped). Bounded in count and time; stops
the server and the browser by itself; prints a table and writes ``benchmarks/results/isolation.md``.

Targets: health never above 1 s; Surfaces p95 during the heavy work ≤ 2× solo.

``--browser-nice N`` runs Chromium at that niceness (through a wrapper of ``nice -n N``): a class's
browsers run on the students' own machines, not on the server's cores; at nice 19 the server and its
workers (nice 10) come first on this machine's two cores, so the health figures show the server's own
latency rather than its contention with the five browsers. ``--out`` names the results file.

Usage: ``python benchmarks/isolation.py [--repeats 2] [--budget-s 900] [--launcher serve|streamlit]
[--browser-nice 19 --out isolation_browser_nice.md]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAUNCHERS,
    ROOT,
    TICK,
    Server,
    launcher_command,
    pct,
    say,
    wait_charts,
    wait_for_pages_warm_up,
    warm_up_ended,
)

HEAVY = {
    # the three optimizers it was measured with (the page's default now adds DEO-escape's control)
    "escape map 100×100, 990 steps": "/escape_map?em.resolution=100&em.steps=990&em.seed=5"
    "&opt=GD&opt=Adam&opt=DEO-escape",
    "tiny_transformer race, 3000 steps": "/networks?nw.problem=tiny_transformer&nw.steps=3000&nw.seed=5"
    "&nw.opt=GD&nw.opt=Adam&nw.opt=DEO%20(paper)",
}
PROGRESS_JS = "() => document.querySelector('[data-testid=\"stProgress\"]') !== null"


def health_ms(url: str) -> float:
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=30) as r:
            r.read()
    except OSError:
        return 30_000.0
    return 1000 * (time.perf_counter() - t0)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the fork server and its workers), from /proc's children lists."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                out.append(k)
                todo.append(k)
    return out


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class WorkerCpu:
    """CPU seconds of the server's descendant processes, sampled often (workers come and go)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.last: dict[int, float] = {}
        self.start: dict[int, float] = {}

    def sample(self) -> None:
        for pid in descendants(self.server_pid):
            cpu = cpu_of(pid)
            self.start.setdefault(pid, cpu)
            self.last[pid] = cpu

    def used(self) -> float:
        return sum(self.last[p] - self.start[p] for p in self.last)


def surfaces_wave(browser, server: Server, seeds: list[int]) -> list[float]:
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in seeds]
    pages = [c.new_page() for c in contexts]
    t0 = []
    for page, seed in zip(pages, seeds):
        t0.append(time.perf_counter())
        page.goto(f"{server.url}/?seed={seed}", wait_until="commit")
    times = wait_charts(pages, t0)
    for c in contexts:
        c.close()
    return times


def heavy_window(browser, server: Server, link: str, seeds: list[int]) -> dict:
    """Open the heavy link, wait until its progress bar shows, run a Surfaces wave meanwhile while
    polling the health endpoint every 100 ms; close the heavy session."""
    workers = WorkerCpu(server.proc.pid)
    workers.sample()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    heavy = context.new_page()
    heavy.goto(server.url + link, wait_until="commit")
    heavy.get_by_role("button", name="Run").click(timeout=240_000)  # heavy work waits for Run (issue 8)
    heavy.wait_for_function(PROGRESS_JS, timeout=240_000)  # the heavy job is queued or running
    stop = threading.Event()
    health: list[float] = []

    def poll() -> None:
        while not stop.is_set():
            health.append(health_ms(server.url))
            workers.sample()
            time.sleep(0.1)

    cpu0 = server.cpu()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.perf_counter()
    times = surfaces_wave(browser, server, seeds)
    while time.perf_counter() - t0 < 20:  # at least 20 s of health polls under the heavy work
        time.sleep(0.2)
    still_heavy = heavy.evaluate(PROGRESS_JS)
    stop.set()
    poller.join(timeout=60)
    window = time.perf_counter() - t0
    server_cpu = server.cpu() - cpu0
    context.close()  # the session goes away: its job is stopped
    return {
        "times": times,
        "health": health,
        "server_cpu": server_cpu,
        "worker_cpu": workers.used(),
        "window": window,
        "still_heavy": still_heavy,
    }


def health_window(browser, server: Server, link: str, seconds: float) -> dict:
    """Health polls every 100 ms for ``seconds`` while one session computes ``link``."""
    workers = WorkerCpu(server.proc.pid)
    workers.sample()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    heavy = context.new_page()
    heavy.goto(server.url + link, wait_until="commit")
    heavy.get_by_role("button", name="Run").click(timeout=240_000)  # heavy work waits for Run (issue 8)
    heavy.wait_for_function(PROGRESS_JS, timeout=240_000)
    cpu0, t0, health = server.cpu(), time.perf_counter(), []
    while time.perf_counter() - t0 < seconds:
        health.append(health_ms(server.url))
        workers.sample()
        time.sleep(0.1)
    out = {"health": health, "server_cpu": server.cpu() - cpu0, "worker_cpu": workers.used(),
           "still_heavy": heavy.evaluate(PROGRESS_JS)}  # fmt: skip
    context.close()
    return out


def health_only(args) -> None:
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    rows, stopped = [], None
    try:
        for mode, env in (("worker pool", {}), ("in the server process", {"DEO_LAB_WORKERS": "0"})):
            server = Server(env, launcher=launcher_command(args.launcher))
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        for name, link in HEAVY.items():
                            r = health_window(browser, server, link, args.window_s)
                            rows.append((name, mode, r))
                            say(
                                name,
                                mode,
                                f"max {max(r['health']):.0f} ms",
                                f"server {r['server_cpu']:.1f} s",
                            )
                    finally:
                        browser.close()
            finally:
                server.stop()
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        stopped = repr(exc)[:200]
        say("stopped early:", stopped)
    load_after = os.getloadavg()
    lines = [
        "| heavy request | where it runs | health p50 ms | p95 ms | max ms | polls | server CPU s | "
        "worker CPU s | still running at the end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, mode, r in rows:
        h = r["health"]
        lines.append(f"| {name} | {mode} | {pct(h, 50):.0f} | {pct(h, 95):.0f} | {max(h):.0f} | {len(h)} | "
                     f"{r['server_cpu']:.1f} | {r['worker_cpu']:.1f} | {r['still_heavy']} |")  # fmt: skip
    lines += ["", f"Health polled every 100 ms for {args.window_s:.0f} s after the heavy page showed its "
              "progress bar; no other sessions. CPU over the same window: the server process, and its "
              "descendants (fork server and workers)."]  # fmt: skip
    if stopped is not None:
        lines += ["", f"**Stopped early** ({stopped}): the rows above are what was measured before."]
    header = [
        "# Isolation benchmark, health endpoint only (worker pool vs work in the server process)",
        "",
        f"Command: `python benchmarks/isolation.py --health-only --window-s {args.window_s:g}"
        f"{' --launcher streamlit' if args.launcher == 'streamlit' else ''}`; "
        f"server `{LAUNCHERS[args.launcher]}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "isolation_health.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="solo + heavy waves per heavy request")
    parser.add_argument("--budget-s", type=float, default=900, help="stop starting new waves after this")
    parser.add_argument(
        "--health-only",
        action="store_true",
        help="no Surfaces waves: health polls under each heavy request, with the worker pool and then "
        "with the work in the server process (DEO_LAB_WORKERS=0), side by side",
    )
    parser.add_argument("--window-s", type=float, default=30, help="health polling window (--health-only)")
    parser.add_argument(
        "--launcher",
        choices=tuple(LAUNCHERS),
        default="serve",
        help="the README's `python serve.py` (default) or a bare `streamlit run app.py`",
    )
    parser.add_argument("--browser-nice", type=int, default=0, help="Chromium's niceness (0: as this script)")
    parser.add_argument("--out", default="isolation.md", help="results file in benchmarks/results/")
    args = parser.parse_args()
    if args.health_only:
        health_only(args)
        return
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    t_start = time.monotonic()
    server = Server(launcher=launcher_command(args.launcher))
    rows: list[tuple[str, list[float], dict]] = []
    stopped = None
    warmed_after = None
    seed = 3000
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as scratch:
            chromium = niced_chromium(args.browser_nice, scratch)
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                surfaces_wave(browser, server, [seed])  # warm: imports, first race, the worker pool
                seed += 1
                warmed_after = wait_for_pages_warm_up(server, args.launcher)
                say("the server's warm-up of the other pages ended", warmed_after)
                for name, link in HEAVY.items():
                    solo: list[float] = []
                    heavy: list[dict] = []
                    rows.append((name, solo, heavy))  # filled in place: a run stopped early keeps its repeats
                    for repeat in range(args.repeats):
                        if time.monotonic() - t_start > args.budget_s:
                            break
                        solo += surfaces_wave(browser, server, list(range(seed, seed + 4)))
                        seed += 4
                        say(name, "solo", solo[-4:])
                        # a new heavy link each repeat (its seed): never a cached result without a Run button
                        fresh = link.replace("seed=5", f"seed={5 + repeat}")
                        heavy.append(heavy_window(browser, server, fresh, list(range(seed, seed + 4))))
                        seed += 4
                        h = heavy[-1]
                        cpu = f"server CPU {h['server_cpu']:.1f} s, workers {h['worker_cpu']:.1f} s"
                        say(name, "heavy", h["times"], f"health max {max(h['health']):.0f} ms", cpu)
            finally:
                browser.close()
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        stopped = repr(exc)[:200]
        say("stopped early:", stopped)
    finally:
        server.stop()
    load_after = os.getloadavg()

    lines = [
        "| heavy request | Surfaces p50 solo s | p95 solo s | p50 during s | p95 during s | p95 ratio | "
        "health p50 ms | p95 ms | max ms | polls | server CPU s | worker CPU s | window s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, solo, heavy in rows:
        if not heavy:
            continue
        during = [t for h in heavy for t in h["times"]]
        health = [v for h in heavy for v in h["health"]]
        ratio = pct(during, 95) / pct(solo, 95)
        lines.append(
            f"| {name} | {pct(solo, 50):.2f} | {pct(solo, 95):.2f} | {pct(during, 50):.2f} | "
            f"{pct(during, 95):.2f} | {ratio:.2f} | {pct(health, 50):.0f} | {pct(health, 95):.0f} | "
            f"{max(health):.0f} | {len(health)} | {sum(h['server_cpu'] for h in heavy):.1f} | "
            f"{sum(h['worker_cpu'] for h in heavy):.1f} | {sum(h['window'] for h in heavy):.0f} |"
        )
    lines += [
        "",
        "Surfaces: four sessions opened at once on new links (each computes its race and figure), time "
        "from navigation to the race chart drawn; solo waves and waves during the heavy work alternate. "
        "Health: `/_stcore/health` round trip every 100 ms over each heavy window (≥ 20 s). CPU: the "
        "server process, and its descendants (fork server and workers) over the same windows.",
        "Heavy work still running at the end of each window: "
        + ", ".join(f"{name}: {[h['still_heavy'] for h in heavy]}" for name, _, heavy in rows)
        + ".",
    ]
    if args.launcher == "serve":
        lines += [
            "",
            f"serve.py's warm-up of the other pages' plain links ended {warm_up_ended(warmed_after)}, "
            "after the first Surfaces "
            "visit; the waves began after it (it gives way to visitors, and a piece of it run in a pause "
            "between waves would otherwise share the cores with them).",
        ]
    if stopped is not None:
        lines += ["", f"**Stopped early** ({stopped}): the rows above are what was measured before."]
    header = [
        "# Isolation benchmark (heavy work in one session, four Surfaces sessions and the health endpoint)"
        + (f", Chromium at nice {args.browser_nice}" if args.browser_nice else "")
        + (f" ({args.out})" if args.out != "isolation.md" else ""),
        "",
        f"Command: `python benchmarks/isolation.py --repeats {args.repeats}"
        f"{' --launcher streamlit' if args.launcher == 'streamlit' else ''}"
        f"{f' --browser-nice {args.browser_nice}' if args.browser_nice else ''}"
        f"{f' --out {args.out}' if args.out != 'isolation.md' else ''}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        f"Server: `{LAUNCHERS[args.launcher]}` on 127.0.0.1; heavy work in `pages/workers.py`'s process pool "
        f"({max(1, (os.cpu_count() or 1) - 1)} worker(s) at nice 10); Chromium at nice {args.browser_nice}"
        + (
            " (the browsers stand for the students' own machines: the server and its workers come first)"
            if args.browser_nice > 0
            else ", sharing the cores with the server as this script runs it"
        )
        + ".",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / args.out).write_text(text)


def niced_chromium(nice: int, folder: str) -> str:
    """Chromium's path, or with ``nice`` > 0 a script in ``folder`` that runs it at that niceness
    (every process it starts inherits it)."""
    if nice <= 0:
        return CHROMIUM
    wrapper = Path(folder) / "chromium"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {nice} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


if __name__ == "__main__":
    main()
