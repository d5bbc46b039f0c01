"""Soak benchmark: many browser sessions open and close against one server; RSS over time.

Starts ``streamlit run app.py`` on a free loopback port (127.0.0.1 only) with Debian's Chromium
(Playwright, one browser), opens ``--sessions`` sessions in batches of ``--batch`` concurrent
contexts, each on one of ``--links`` different Surfaces links (so the shared cache fills, evicts and
is hit), closes them, and samples the server's RSS (``/proc/<pid>/status`` VmRSS) after every batch
and 5, 30 and 60 s after the last one closed. Bounded in count and time (``--budget-s``); stops the
server and the browser by itself; prints a table and writes ``benchmarks/results/soak.md``.

Usage: ``python benchmarks/soak.py [--sessions 50] [--batch 5] [--links 24] [--budget-s 900]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import CHROMIUM, CHROMIUM_ARGS, ROOT, Server, say, wait_charts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--links", type=int, default=24, help="distinct configurations cycled through")
    parser.add_argument("--budget-s", type=float, default=900, help="stop opening sessions after this")
    parser.add_argument("--arena", type=int, default=None, help="MALLOC_ARENA_MAX for the server")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    t_start = time.monotonic()
    server = Server({"MALLOC_ARENA_MAX": str(args.arena)} if args.arena else {})
    samples: list[tuple[str, float, float]] = [("server up", 0.0, server.rss_mb())]
    opened, failed = 0, 0
    times: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                while opened < args.sessions and time.monotonic() - t_start < args.budget_s:
                    n = min(args.batch, args.sessions - opened)
                    links = [f"/?seed={(opened + i) % args.links}" for i in range(n)]
                    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in links]
                    pages = [c.new_page() for c in contexts]
                    t0 = []
                    for page, link in zip(pages, links):
                        t0.append(time.perf_counter())
                        page.goto(server.url + link, wait_until="commit")
                    got = wait_charts(pages, t0, timeout_s=180)
                    times += [t for t in got if t == t]
                    failed += sum(1 for t in got if t != t)
                    for c in contexts:
                        c.close()
                    opened += n
                    samples.append((f"after {opened} sessions", time.monotonic() - t_start, server.rss_mb()))
                    say(samples[-1])
            finally:
                browser.close()
        closed_at = time.monotonic()
        for wait in (5, 30, 60):
            time.sleep(max(0.0, closed_at + wait - time.monotonic()))
            moment = f"{wait} s after the last session closed"
            samples.append((moment, time.monotonic() - t_start, server.rss_mb()))
            say(samples[-1])
    finally:
        server.stop()
    load_after = os.getloadavg()
    warm = samples[1][2] if len(samples) > 1 else samples[0][2]
    peak = max(s[2] for s in samples)
    lines = [
        "| moment | t (s) | RSS MB |",
        "|---|---:|---:|",
        *[f"| {name} | {t:.0f} | {rss:.0f} |" for name, t, rss in samples],
        "",
        f"Sessions opened: {opened} ({failed} without a chart within 180 s), {args.links} distinct links, "
        f"batches of {args.batch}; median time to chart "
        f"{sorted(times)[len(times) // 2] if times else float('nan'):.1f} s.",
        f"Warm baseline (RSS after the first batch: every link computed and cached when --links ≤ "
        f"--batch) {warm:.0f} MB, peak {peak:.0f} MB, 60 s after the last session "
        f"{samples[-1][2]:.0f} MB ({100 * (samples[-1][2] / warm - 1):+.0f} % of the warm baseline).",
        "Escape maps and Networks races run in worker processes (pages/workers.py), not counted here; "
        "the server calls malloc_trim every 15 s (pages/common.py TRIM_EVERY_S).",
    ]
    header = [
        "# Soak benchmark (sessions opening and closing against one server)",
        "",
        f"Command: `python benchmarks/soak.py --sessions {args.sessions} --batch {args.batch} "
        f"--links {args.links}{f' --arena {args.arena}' if args.arena else ''}`",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
        "Server: `streamlit run app.py` on 127.0.0.1; RSS = VmRSS of the server process.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "soak.md").write_text(text)


if __name__ == "__main__":
    main()
