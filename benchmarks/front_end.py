"""What a new browser costs the server and the network: ``python serve.py`` (Streamlit's front-end
files gzipped once, ``pages/compressed_static.py``) against ``streamlit run app.py`` (Streamlit
1.67 sends them raw), side by side.

Both servers run at once on 127.0.0.1 (free ports). Each is visited once first, so the plain link's
race is computed and cached (and serve.py has compressed the files it serves); then, alternating
between the two servers, ``--repeats`` new browsers (a fresh Chromium context each: no cached files)
open the plain link and wait for the race chart. Per visit: the server's CPU seconds (/proc, until
0.5 s after the chart), the bytes on the wire and decoded (Chromium's DevTools ``Network`` events,
HTTP responses; the websocket's figure message is not among them), and the time to the chart. With
``--mbps`` the same is repeated with Chromium's network emulation at that download rate (a fair
share of a classroom's Wi-Fi), where the bytes become seconds.

With ``--base DIR --first-visits N`` (DIR: a checkout of an earlier commit, e.g. a ``git worktree``
from before serve.py compressed anything), a cold server's first visitor is measured too: N fresh
``python serve.py`` servers of each tree, alternating, each visited once by a fresh Chromium after
its warm-up (the README's class set-up: the server started before the class), navigation → race
chart. With ``--during-warm-up`` the visitor arrives as the server's health check first answers,
while the warm-up still runs (Chromium is started before the server).

With ``--http-ab`` the two servers are both ``python serve.py``, one as installed (uvicorn then
parses HTTP with httptools and runs on uvloop) and one with those two packages hidden (a stub on
its ``PYTHONPATH`` that raises ImportError: uvicorn falls back to h11 and asyncio's own loop, as
before requirements.txt named them); the table says which modules each server process loaded.

With ``--against DIR`` the two servers are ``python serve.py`` of this tree and of DIR (a checkout
of an earlier commit, e.g. a ``git worktree``), side by side: what a change to the server costs or
saves a new browser. Both run from this repository's root, so both read its ``.streamlit/config.toml``;
``--against . --against-options "--runner.magicEnabled true"`` measures a configuration change
(the options go to DIR's server only).

Usage: ``python benchmarks/front_end.py [--repeats 7] [--mbps 10] [--base DIR --first-visits 5]
[--http-ab | --against DIR [--out NAME]]``; prints a table and writes
``benchmarks/results/front_end.md`` (``--http-ab``: ``front_end_http.md``; ``--against``: ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import CHROMIUM, CHROMIUM_ARGS, Server, say, wait_charts  # noqa: E402
from serve import WARM_MESSAGE  # noqa: E402

LAUNCHERS = {  # name -> command before the server options
    "python serve.py (gzipped once)": [sys.executable, "serve.py"],
    "streamlit run app.py (raw)": None,
}
HIDDEN = ("httptools", "uvloop")  # --http-ab: hidden from the second server


def http_ab_servers(stub_dir: Path) -> dict[str, Server]:
    """``python serve.py`` as installed, and with :data:`HIDDEN` made unimportable (stub packages
    in ``stub_dir`` that raise ImportError, first on the second server's ``PYTHONPATH``)."""
    for name in HIDDEN:
        (stub_dir / name).mkdir(exist_ok=True)
        stub = stub_dir / name / "__init__.py"
        stub.write_text("raise ImportError('hidden by benchmarks/front_end.py')\n")
    hidden_path = os.pathsep.join(filter(None, [str(stub_dir), os.environ.get("PYTHONPATH")]))
    return {
        "serve.py, httptools + uvloop": Server(launcher=[sys.executable, "serve.py"]),
        "serve.py, h11 + asyncio loop": Server(
            launcher=[sys.executable, "serve.py"], env_extra={"PYTHONPATH": hidden_path}
        ),
    }


def loaded(server: Server) -> str:
    """Which of :data:`HIDDEN` the server process has mapped (its compiled modules), from /proc."""
    try:
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    except OSError:
        return "?"
    found = [name for name in HIDDEN if f"/{name}/" in maps]
    return ", ".join(found) if found else "neither"


def visit(browser, server: Server, mbps: float | None) -> dict:
    """A new browser opens the plain link: server CPU, wire and decoded bytes, seconds to chart."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    if mbps:
        rate = mbps * 1e6 / 8
        conditions = {"offline": False, "latency": 20, "downloadThroughput": rate, "uploadThroughput": rate}
        cdp.send("Network.emulateNetworkConditions", conditions)
    wire: dict[str, float] = {}
    decoded: dict[str, float] = {}
    cdp.on("Network.loadingFinished", lambda e: wire.__setitem__(e["requestId"], e["encodedDataLength"]))
    cdp.on("Network.dataReceived", lambda e: decoded.__setitem__(
        e["requestId"], decoded.get(e["requestId"], 0) + e["dataLength"]))  # fmt: skip
    cpu0 = server.cpu()
    t0 = time.perf_counter()
    page.goto(server.url + "/", wait_until="commit")
    (chart,) = wait_charts([page], [t0])
    time.sleep(0.5)
    cpu = server.cpu() - cpu0
    context.close()
    return {"cpu": cpu, "wire_mb": sum(wire.values()) / 1e6, "decoded_mb": sum(decoded.values()) / 1e6,
            "chart_s": chart}  # fmt: skip


def first_visitors(base: Path, visits: int, during_warm_up: bool = False) -> dict[str, list[float]]:
    """Navigation → chart of the first visitor of a fresh ``python serve.py`` after its warm-up (or,
    ``during_warm_up``, as soon as its health check answers: Chromium is started before the server),
    for the ``base`` checkout and this one, alternating; ``visits`` each."""
    from playwright.sync_api import sync_playwright

    from benchmarks.app import wait_for_warm_up
    from benchmarks.load import cold_first_visitor

    trees = {f"the base ({_commit(base)})": base, f"this tree ({_commit(ROOT)})": ROOT}
    times: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(visits):
        for name in list(trees) if r % 2 == 0 else list(reversed(trees)):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                server = Server(launcher=[sys.executable, str(trees[name] / "serve.py")])
                try:
                    if not during_warm_up:
                        wait_for_warm_up(server)
                    times[name].append(cold_first_visitor(browser, server)["chart"])
                finally:
                    server.stop()
                    browser.close()
            say("first visitor", name, times[name][-1])
    return times


def _commit(tree: Path) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mbps", type=float, default=10.0, help="emulated download rate; 0: none")
    parser.add_argument("--base", type=Path, default=None, help="an earlier checkout, for --first-visits")
    parser.add_argument("--first-visits", type=int, default=0, help="cold servers per tree (needs --base)")
    parser.add_argument("--during-warm-up", action="store_true",
                        help="the first visitor arrives as the server answers, before the warm-up is done")
    parser.add_argument("--http-ab", action="store_true", help="serve.py with and without httptools/uvloop")
    parser.add_argument("--against", type=Path, default=None, help="serve.py of this tree vs this checkout's")
    parser.add_argument(
        "--against-options", default="", help="Streamlit options for --against's server only, e.g. "
        "'--runner.magicEnabled true' (both servers run from this repository's root and read its "
        ".streamlit/config.toml: a configuration change is measured with --against . and these)",
    )  # fmt: skip
    parser.add_argument("--out", default="front_end_against.md", help="results file name for --against")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    stubs = tempfile.TemporaryDirectory()
    if args.http_ab:
        servers = http_ab_servers(Path(stubs.name))
    elif args.against:
        servers = {
            f"serve.py of this tree ({_commit(ROOT)})": Server(launcher=[sys.executable, "serve.py"]),
            f"serve.py of {_commit(args.against)} {args.against_options}".rstrip(): Server(
                launcher=[sys.executable, str(args.against / "serve.py"), *args.against_options.split()]
            ),
        }
    else:
        servers = {name: Server(launcher=launcher) for name, launcher in LAUNCHERS.items()}
    deadline = time.monotonic() + 300
    for server in servers.values() if args.http_ab or args.against else list(servers.values())[:1]:
        serve_log = Path(server.log.name)
        while WARM_MESSAGE not in serve_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # serve.py's warm-up has finished: its CPU is not counted as the first visit's
    modules = {name: loaded(server) for name, server in servers.items()}
    rows: dict[tuple[str, float | None], list[dict]] = {}
    first: dict[str, dict] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name, server in servers.items():  # the race computed, serve.py's files compressed
                    first[name] = visit(browser, server, None)
                    say(name, "first visit", first[name])
                for mbps in [None, *([args.mbps] if args.mbps else [])]:
                    for r in range(args.repeats):
                        order = list(servers) if r % 2 == 0 else list(reversed(servers))
                        for name in order:
                            rows.setdefault((name, mbps), []).append(visit(browser, servers[name], mbps))
                        say(mbps, r, {n: rows[(n, mbps)][-1] for n in order})
            finally:
                browser.close()
    finally:
        for server in servers.values():
            server.stop()
        stubs.cleanup()
    first_visits = {}
    if args.base and args.first_visits:
        first_visits = first_visitors(args.base, args.first_visits, args.during_warm_up)
    load_after = os.getloadavg()

    def med(name, mbps, key):
        return statistics.median(v[key] for v in rows[(name, mbps)])

    title = (
        "uvicorn with httptools + uvloop vs h11 + asyncio's loop" if args.http_ab
        else f"this tree's serve.py vs {args.against}'s {args.against_options}".rstrip() if args.against
        else "Streamlit's front-end files gzipped once vs raw"
    )
    lines = [
        f"# A new browser on an already computed link: {title}",
        "",
        f"Command: `python benchmarks/front_end.py --repeats {args.repeats} --mbps {args.mbps:g}"
        f"{f' --base {args.base} --first-visits {args.first_visits}' if first_visits else ''}"
        f"{' --during-warm-up' if first_visits and args.during_warm_up else ''}"
        f"{' --http-ab' if args.http_ab else ''}"
        f"{f' --against {args.against} --out {args.out}' if args.against else ''}"
        f"{f' --against-options {args.against_options!r}' if args.against_options else ''}` — "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, "
        f"{os.cpu_count()} cores, Debian Chromium; load average (1, 5, 15 min) before "
        f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, after "
        f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}.",
        "",
        "Both servers ran at the same time; the visits alternated between them (which one first "
        "alternated too). Medians over the repeats; server CPU from /proc until 0.5 s after the chart; "
        "bytes from Chromium's DevTools (HTTP responses only: the websocket's figure message, "
        "≈ 0.1 MB deflated, is the same for both).",
        "",
        *(f"- {name}: compiled modules in the server process: {found}" for name, found in modules.items()),
        "",
        "| network | server | new-browser server CPU s | wire MB | decoded MB | time to chart s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mbps in [None, *([args.mbps] if args.mbps else [])]:
        for name in servers:
            lines.append(
                f"| {'loopback' if mbps is None else f'{mbps:g} Mbit/s, 20 ms'} | {name} | "
                f"{med(name, mbps, 'cpu'):.3f} | {med(name, mbps, 'wire_mb'):.2f} | "
                f"{med(name, mbps, 'decoded_mb'):.2f} | {med(name, mbps, 'chart_s'):.2f} |"
            )
        a, b = list(servers)
        lines.append(
            f"| {'loopback' if mbps is None else f'{mbps:g} Mbit/s'} | ratio second / first | "
            f"{med(b, mbps, 'cpu') / med(a, mbps, 'cpu'):.2f}× | "
            f"{med(b, mbps, 'wire_mb') / med(a, mbps, 'wire_mb'):.2f}× | | "
            f"{med(b, mbps, 'chart_s') / med(a, mbps, 'chart_s'):.2f}× |"
        )
    lines += ["", "Every new browser's server CPU s, in the order measured:", ""]
    for mbps in [None, *([args.mbps] if args.mbps else [])]:
        for name in servers:
            every = ", ".join(f"{v['cpu']:.2f}" for v in rows[(name, mbps)])
            lines.append(f"- {'loopback' if mbps is None else f'{mbps:g} Mbit/s'}, {name}: {every}")
    lines += [
        "",
        "The first new browser of each server, after serve.py's warm-up (which computed the race and had "
        "the front-end files gzipped; bare Streamlit, if measured, computes the race in this visit). "
        "One visit each, in this order, and the first is also this Chromium's first page:",
        "",
    ]
    for name, v in first.items():
        lines.append(
            f"- {name}: server CPU {v['cpu']:.2f} s, wire {v['wire_mb']:.2f} MB, chart {v['chart_s']:.2f} s"
        )
    if first_visits:
        (base_name, base_times), (now_name, now_times) = first_visits.items()
        when = (
            "arriving as its health check answers, while serve.py warms up (Chromium started first)"
            if args.during_warm_up else "after serve.py's warm-up"
        )
        lines += [
            "",
            f"A cold server's first visitor {when} (`--base {args.base} --first-visits "
            f"{args.first_visits}{' --during-warm-up' if args.during_warm_up else ''}`: a fresh server "
            "and Chromium per visit, the trees alternating), navigation → race chart, seconds:",
            "",
            "| serve.py of | median | all |",
            "|---|---:|---|",
        ]
        for name, times in first_visits.items():
            every = ", ".join(f"{t:.2f}" for t in times)
            lines.append(f"| {name} | {statistics.median(times):.2f} | {every} |")
        lines.append(f"| ratio {base_name} / {now_name} | "
                     f"{statistics.median(base_times) / statistics.median(now_times):.2f}× | |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    name = "front_end_http.md" if args.http_ab else args.out if args.against else "front_end.md"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(text)
    say("wrote", out)


if __name__ == "__main__":
    main()
