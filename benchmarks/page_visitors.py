"""Benchmark: the server's CPU for one more visitor of every page, this tree against a baseline.

A class opens one link page after page. For each page's plain link, the server has computed it once
(one warm-up visit); then each further visitor (a fresh Chromium context) costs the server the CPU
counted here: from the request until every chart of the page is drawn and the script is idle
(server process ``utime + stime`` from ``/proc``, the browser's own CPU excluded). Two servers run
side by side (``python serve.py`` of this tree and of ``--baseline``, a checkout of an earlier
commit), each warmed up, and their visits alternate, so both see the same load.

    python benchmarks/page_visitors.py --baseline /tmp/old [--repeats 7]

Writes ``benchmarks/results/page_visitors.md``. With ``--first N``: the *first* visitor of each page
instead, on N pairs of fresh servers (each pair started together, its visits after each server's
whole warm-up, alternating), into ``page_first_visitors.md``:

    python benchmarks/page_visitors.py --baseline /tmp/old --first 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import CHROMIUM, CHROMIUM_ARGS, Server, say  # noqa: E402

PAGES = ("/", "/dimer", "/networks", "/escape_map", "/sweeps", "/about")
WARM_MESSAGE = "DEO Lab: warm-up done in"
PAGES_MESSAGE = "DEO Lab: other pages' plain links computed in"  # serve.py's warm-up, from 2026-12-03
FIRST_PAGES = ("/dimer", "/networks", "/escape_map", "/sweeps", "/about")  # "/" is warmed by both
# every chart of the page drawn (closed tabs' charts too: Streamlit renders them hidden) and the
# script idle; skeletons gone
DRAWN_JS = (
    "() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
    " if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;"
    " if (!document.querySelector('h1')) return false;"
    " if (document.querySelectorAll('[data-testid=\"stSkeleton\"]').length) return false;"
    " return Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"]'))"
    ".every(c => c.querySelector('.main-svg')); }"
)
SETTLE_S = 0.3  # after the page is drawn, for the server's last messages


def commit_of(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return out.stdout.strip()


def wait_warm(server: Server, timeout_s: float = 300, message: str = WARM_MESSAGE) -> float:
    """Wait until the server's log says ``message``; returns the seconds since it was spawned."""
    deadline = time.monotonic() + timeout_s
    log = Path(server.log.name)
    while message not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.perf_counter() - server.t_spawn


def last_message(tree: Path) -> str:
    """What a tree's serve.py says when its whole warm-up is done."""
    return PAGES_MESSAGE if PAGES_MESSAGE in (tree / "serve.py").read_text() else WARM_MESSAGE


def first_visitors(sides: dict, repeats: int, env: dict, pages=FIRST_PAGES) -> tuple[dict, dict]:
    """Per (side, page): the first visitor's server CPU and seconds to every chart, on ``repeats``
    pairs of fresh servers; and per side the seconds from spawn to the whole warm-up's end."""
    from playwright.sync_api import sync_playwright

    results: dict = {(side, p): {"cpu": [], "drawn": []} for side in sides for p in pages}
    warm: dict = {side: [] for side in sides}
    rss: dict = {side: [] for side in sides}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for r in range(repeats):
            servers = {}
            try:
                for side, path in sides.items():
                    servers[side] = Server(env_extra=env, launcher=[sys.executable, "serve.py"], cwd=path)
                for side, server in servers.items():
                    warm[side].append(wait_warm(server, message=last_message(sides[side])))
                time.sleep(2.0)  # the last results stored
                for side, server in servers.items():
                    rss[side].append(server.rss_mb())
                for page in pages:
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for side in order:
                        cpu, drawn = visit(browser, servers[side], page)
                        results[(side, page)]["cpu"].append(cpu)
                        results[(side, page)]["drawn"].append(drawn)
                say(r, {k: round(v["drawn"][-1], 2) for k, v in results.items()})
            finally:
                for server in servers.values():
                    server.stop()
        browser.close()
    return results, warm, rss


def first_visitors_text(results: dict, warm: dict, rss: dict, args, load_before, load_after) -> str:
    rows = []
    for page in args.pages:
        before, now = results[("before", page)], results[("now", page)]
        b_drawn, n_drawn = statistics.median(before["drawn"]), statistics.median(now["drawn"])
        rows.append(
            f"| `{page}` | {b_drawn:.2f} | **{n_drawn:.2f}** | {b_drawn / n_drawn:.2f}× | "
            f"{statistics.median(before['cpu']):.3f} | {statistics.median(now['cpu']):.3f} | "
            f"{min(before['drawn']):.2f}–{max(before['drawn']):.2f} | "
            f"{min(now['drawn']):.2f}–{max(now['drawn']):.2f} |"
        )
    import torch

    table = "\n".join(
        [
            "| page (plain link) | before: first visitor, s to every chart | now | ratio "
            "| before: server CPU s of that visit | now | before: range | now: range |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    warm_text = ", ".join(
        f"{side} {statistics.median(v):.1f} s ({min(v):.1f}–{max(v):.1f})" for side, v in warm.items()
    )
    rss_text = ", ".join(
        f"{side} {statistics.median(v):.0f} MB ({min(v):.0f}–{max(v):.0f})" for side, v in rss.items()
    )
    pages_option = "" if tuple(args.pages) == FIRST_PAGES else " --pages " + " ".join(args.pages)
    title = "each page" if tuple(args.pages) == FIRST_PAGES else " and ".join(f"`{p}`" for p in args.pages)
    return f"""# The first visitor of {title} on a fresh server, side by side with an earlier commit

{table}

- Each repeat starts a fresh pair of servers (`python serve.py` of `{args.baseline}`, commit
  {commit_of(args.baseline)}, and of this tree, commit {commit_of(ROOT)}) together, waits until each
  has said the last line of its warm-up (before: "{WARM_MESSAGE}"; now, when its serve.py has it:
  "{PAGES_MESSAGE}"), then a fresh Chromium context (1400×900) opens each page's plain link, the
  first visitor of that page on that server; the two servers' visits alternate (which goes first
  alternates by repeat). Medians of {args.first} repeats.
- "s to every chart": from the request until every chart is drawn and the script is idle (wall
  time, the browser's rendering on the same 2 cores included: Chromium, software rendering). Server
  CPU: the server process's `utime + stime` over that visit (+ {SETTLE_S} s); work done in the
  worker pool (an escape map, a network race and its slice) is not in it, but is in the wall time.
- Whole warm-up, spawn to its last line (median, range): {warm_text}. The server process's RSS
  2 s after it, before any visitor (median, range): {rss_text}.
- Both with `DEO_LAB_RUN_BUTTON_S=inf` (no Run button on a plain link: before, the escape map's
  plain link showed one whenever the loaded server estimated its map above 3 s).
- Load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after
  {', '.join(f'{x:.2f}' for x in load_after)} (2 cores, shared with other jobs).

Command: `python benchmarks/page_visitors.py --baseline {args.baseline} --first {args.first}{pages_option}` —
{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, torch {torch.__version__}.
"""


def visit(browser, server: Server, path: str) -> tuple[float, float]:
    """(server CPU s, seconds to every chart drawn) of one new visitor of ``path``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    cpu0, t0 = server.cpu(), time.perf_counter()
    page.goto(server.url + path, wait_until="commit")
    page.wait_for_function(DRAWN_JS, timeout=240_000, polling=50)
    drawn = time.perf_counter() - t0
    time.sleep(SETTLE_S)
    cpu = server.cpu() - cpu0
    context.close()
    return cpu, drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of an earlier commit")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--first", type=int, default=0, help="first visitors on N pairs of fresh servers")
    parser.add_argument("--pages", nargs="+", default=list(FIRST_PAGES), help="--first: only these")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {"DEO_LAB_RUN_BUTTON_S": "inf"}  # every page computes its plain link without a Run button
    sides = {"before": args.baseline.resolve(), "now": ROOT}
    if args.first:
        load_before = os.getloadavg()
        results, warm, rss = first_visitors(sides, args.first, env, tuple(args.pages))
        text = first_visitors_text(results, warm, rss, args, load_before, os.getloadavg())
        print(text)
        out = ROOT / "benchmarks" / "results" / (args.out or "page_first_visitors.md")
        out.write_text(text)
        say("wrote", out)
        return
    servers = {}
    load_before = os.getloadavg()
    results: dict = {(side, p): {"cpu": [], "drawn": []} for side in sides for p in PAGES}
    try:
        for side, path in sides.items():
            servers[side] = Server(env_extra=env, launcher=[sys.executable, "serve.py"], cwd=path)
        for server in servers.values():
            wait_warm(server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for page in PAGES:
                for server in servers.values():  # the link computed once, by a first visitor
                    visit(browser, server, page)
                for r in range(args.repeats):
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for side in order:
                        cpu, drawn = visit(browser, servers[side], page)
                        results[(side, page)]["cpu"].append(cpu)
                        results[(side, page)]["drawn"].append(drawn)
                say(page, {s: round(statistics.median(results[(s, page)]["cpu"]), 3) for s in sides})
            browser.close()
    finally:
        for server in servers.values():
            server.stop()
    load_after = os.getloadavg()

    rows = []
    for page in PAGES:
        before, now = results[("before", page)], results[("now", page)]
        b_cpu, n_cpu = statistics.median(before["cpu"]), statistics.median(now["cpu"])
        rows.append(
            f"| `{page}` | {b_cpu:.3f} | **{n_cpu:.3f}** | {b_cpu / n_cpu:.1f}× | "
            f"{statistics.median(before['drawn']):.2f} | {statistics.median(now['drawn']):.2f} |"
        )
    table = "\n".join(
        [
            "| page (plain link) | before: server CPU s per visitor | now | ratio "
            "| before: s to every chart | now |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    import torch

    text = f"""# Server CPU per additional visitor of each page, side by side with an earlier commit

{table}

- A visitor: a fresh Chromium context (1400×900) opens the page's plain link; counted from the
  request until every chart is drawn and the script is idle, plus {SETTLE_S} s: the server
  process's CPU (`utime + stime`, `/proc`), so the browser's own rendering is not in it. The link
  was computed once before, by a first visitor of each server. Medians of {args.repeats} visitors
  per page and server; the two servers' visits alternate (which one goes first alternates too).
- Before: `python serve.py` of `{args.baseline}` (commit {commit_of(args.baseline)}); now: this
  tree (commit {commit_of(ROOT)}). Both with `DEO_LAB_RUN_BUTTON_S=inf` (no Run button on a plain link).
- "s to every chart" is wall time and includes the browser's rendering on the same 2 cores
  (Chromium, software rendering): noisy, shown for context.
- Load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after
  {', '.join(f'{x:.2f}' for x in load_after)} (2 cores, shared with other jobs).

Command: `python benchmarks/page_visitors.py --baseline {args.baseline} --repeats {args.repeats}` —
{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, torch {torch.__version__}.
"""
    print(text)
    out = ROOT / "benchmarks" / "results" / (args.out or "page_visitors.md")
    out.write_text(text)
    say("wrote", out)


if __name__ == "__main__":
    main()
