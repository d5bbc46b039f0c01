"""Where the server's memory stays after a class leaves (issue 9, item 5).

Starts the README's server (``python serve.py``) on a free loopback port with one more thread in
the server process: a probe that, when this script asks (a request file in a temporary folder),
reports the server's RSS, its live Python objects (``gc.get_objects``, by type), pymalloc's arenas
(``sys._debugmallocstats``), the sessions Streamlit still stores and the shared cache's own
estimate (``pages.common.cache_bytes``); asked to *release*, it first does what the server's trim
thread does and more (Streamlit's expired stored sessions reaped, ``pages.common.drop_unused``,
``gc.collect()``, ``malloc_trim(0)``), so what stays afterwards is what nothing can give back.

Drives Debian's Chromium through ``benchmarks/load.py``'s helpers: one visitor, then waves of N
browsers on one new link and on N different links, then the contexts closed; probes after the
first visitor, 5 s after the close, and once Streamlit's disconnected-session TTL and a trim period
have passed. One server for each allocator (``--allocators``): the environment ``python serve.py``
runs under (``serve.allocator_env``: glibc's malloc for Python's objects, two glibc arenas) and
Python's default pymalloc, one after the other. Prints a table and writes
``benchmarks/results/memory_after_close.md``.

Usage: ``python benchmarks/memory_after_close.py [--ns 1,4,8] [--no-ttl] [--allocators serve,pymalloc]``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "memory_after_close.md"
PROBE_DIR = "DEO_MEMORY_PROBE_DIR"  # environment: where the server's probe reads requests


# ------------------------------------------------------------------------ in the server process


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pymalloc_arenas(folder: Path) -> dict:
    """pymalloc's arena counters from ``sys._debugmallocstats()`` (it writes to the C stderr)."""
    path = folder / "mallocstats.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
    counts = {}
    for line in path.read_text().splitlines():
        for key in ("arenas allocated current", "arenas reclaimed", "arenas highwater mark"):
            if line.startswith(f"# {key}"):
                counts[key] = int(line.split("=")[1])
    return counts


def _stored_sessions() -> int | None:
    """Sessions in Streamlit's session storage, expired ones included
    (``pages.common.stored_session_cache``); None where it is not found."""
    from pages.common import stored_session_cache

    cache = stored_session_cache()
    return None if cache is None else len(cache._data)  # len(cache) would reap the expired ones


def probe_report(folder: Path, release: bool) -> dict:
    import pages.common as common

    if release:
        common.drop_unused()  # Streamlit's expired stored sessions too
        gc.collect()
        common.release_memory()
    types = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return {
        "rss_mb": _rss_mb(),
        "objects": sum(types.values()),
        "types": dict(types),
        "arenas": _pymalloc_arenas(folder),
        "stored_sessions": _stored_sessions(),
        "cache_mib": common.cache_bytes() / 2**20,
    }


def _probe_forever(folder: Path) -> None:
    request = folder / "request"
    while True:
        time.sleep(0.2)
        if request.exists():
            release = request.read_text().strip() == "release"
            request.unlink()
            try:
                report = probe_report(folder, release)
            except Exception as exc:  # the script reports it
                report = {"error": repr(exc)}
            (folder / "report.tmp").write_text(json.dumps(report))
            (folder / "report.tmp").rename(folder / "report.json")


def serve_with_probe() -> None:
    """``python serve.py`` (its warm-up included) with the probe thread in the same process."""
    sys.path.insert(0, str(ROOT))
    import serve

    threading.Thread(target=_probe_forever, args=(Path(os.environ[PROBE_DIR]),), daemon=True).start()
    serve.main()


# ------------------------------------------------------------------------------ in this script


def ask(folder: Path, release: bool, timeout_s: float = 120) -> dict:
    (folder / "request").write_text("release" if release else "read")
    deadline = time.monotonic() + timeout_s
    report = folder / "report.json"
    while not report.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server's probe did not answer")
        time.sleep(0.1)
    data = json.loads(report.read_text())
    report.unlink()
    if "error" in data:
        raise RuntimeError(f"probe failed in the server: {data['error']}")
    return data


ALLOCATORS = ("serve", "pymalloc")  # serve.py's (glibc malloc, two arenas) and Python's default


def allocator_environment(allocator: str) -> dict[str, str]:
    """What the server process gets in its environment: ``serve`` what ``python serve.py``
    re-executes itself with (``serve.allocator_env``; this script starts the server through
    ``python -c``, which does not re-execute), ``pymalloc`` Python's default allocator."""
    if allocator == "pymalloc":
        return {"PYTHONMALLOC": "pymalloc"}
    import serve

    env = serve.allocator_env({key: v for key, v in os.environ.items() if key != "PYTHONMALLOC"})
    return {key: env[key] for key in serve.ALLOCATOR_ENV} if env else {}


def measure(allocator: str, ns: list[int], ttl: bool) -> list[tuple[str, dict]]:
    """One server under ``allocator``: the probe's reports after the first visitor, after the waves
    of ``ns`` browsers closed, after the session TTL and a trim period (``ttl``), and released."""
    from load import CHROMIUM, CHROMIUM_ARGS, Server, open_page, say, session_ttl_s, wave
    from playwright.sync_api import sync_playwright

    from pages.common import TRIM_EVERY_S

    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        code = (
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "import benchmarks.memory_after_close as m; m.serve_with_probe()"
        )
        env = {PROBE_DIR: tmp, **allocator_environment(allocator)}
        server = Server(env_extra=env, launcher=[sys.executable, "-c", code])
        say(allocator, "server up:", " ".join(f"{k}={v}" for k, v in env.items() if k != PROBE_DIR))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    context, _ = open_page(browser, server, "/")
                    context.close()
                    time.sleep(3)
                    rows.append(("warm: after the first visitor, released", ask(folder, release=True)))
                    say("warm", rows[-1][1]["rss_mb"])
                    for n in ns:
                        wave(browser, server, [f"/?seed={1000 + n}"] * n)
                        wave(browser, server, [f"/?seed={2000 + 100 * n + i}" for i in range(n)])
                        say("waves of", n, "done")
                    time.sleep(5)
                    rows.append(("5 s after the last contexts closed", ask(folder, release=False)))
                    if ttl:
                        wait = session_ttl_s() + TRIM_EVERY_S + 5
                        say(f"waiting {wait:.0f} s (session TTL + a trim period)")
                        time.sleep(wait)
                        rows.append(
                            (f"{wait:.0f} s later (TTL and a trim period passed)", ask(folder, release=False))
                        )
                    rows.append(
                        ("then released (sessions reaped, dropped, gc, trim)", ask(folder, release=True))
                    )
                finally:
                    browser.close()
        finally:
            server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ns", default="1,4,8", help="browsers per wave (a same-link and a different-links wave each)"
    )
    parser.add_argument("--no-ttl", action="store_true", help="skip the wait for Streamlit's session TTL")
    parser.add_argument(
        "--allocators", default=",".join(ALLOCATORS),
        help="one server each, one after the other: serve (serve.py's) and/or pymalloc (Python's default)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    allocators = [a.strip() for a in args.allocators.split(",")]
    if not set(allocators) <= set(ALLOCATORS):
        parser.error(f"--allocators: choose from {', '.join(ALLOCATORS)}")
    ns = [int(n) for n in args.ns.split(",")]
    load_before = os.getloadavg()
    runs = {allocator: measure(allocator, ns, not args.no_ttl) for allocator in allocators}

    flags = " --no-ttl" if args.no_ttl else ""
    lines = [
        "# Where the server's memory stays after a class leaves",
        "",
        f"Command: `python benchmarks/memory_after_close.py --ns {args.ns} "
        f"--allocators {args.allocators}{flags}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs; load average before {load_before[0]:.2f}, "
        f"{load_before[1]:.2f}, {load_before[2]:.2f}, after {os.getloadavg()[0]:.2f}.",
        "",
        "`python serve.py` on 127.0.0.1 with a probe thread in the server process (this script's "
        "`serve_with_probe`), one server per allocator, one after the other: *serve* is the environment "
        "`python serve.py` re-executes itself with (`serve.allocator_env`: `PYTHONMALLOC=malloc`, "
        "`MALLOC_ARENA_MAX=2`), *pymalloc* Python's default. One visitor, then for each N a wave of N "
        "Chromium contexts on one new link and one on N different links (`benchmarks/load.py`'s `wave`), "
        "then all closed. *Released*: Streamlit's expired stored sessions reaped, "
        "`pages.common.drop_unused`, `gc.collect()`, `malloc_trim(0)`. Live objects: `gc.get_objects()` "
        "(containers only); arenas: pymalloc's 1 MiB arenas (`sys._debugmallocstats`; none under glibc's "
        "allocator).",
        "",
        "| allocator | moment | RSS MB | over warm | live objects | over warm "
        "| pymalloc arenas (current / reclaimed so far) | stored sessions | cache estimate MiB |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    grown_lines = []
    for allocator, rows in runs.items():
        warm = rows[0][1]
        for name, r in rows:
            arenas = r["arenas"]
            stored = "n/a" if r["stored_sessions"] is None else r["stored_sessions"]
            over = 100 * (r["rss_mb"] / warm["rss_mb"] - 1)
            lines.append(
                f"| {allocator} | {name} | {r['rss_mb']:.0f} | {over:+.1f} % | {r['objects']:,} | "
                f"{r['objects'] - warm['objects']:+,} | {arenas.get('arenas allocated current', '–')} / "
                f"{arenas.get('arenas reclaimed', '–')} | {stored} | {r['cache_mib']:.1f} |"
            )
        last = rows[-1][1]
        grown = sorted(
            ((k, v - warm["types"].get(k, 0)) for k, v in last["types"].items()), key=lambda kv: -kv[1]
        )[:6]
        grown_lines.append(f"- {allocator}: " + ", ".join(f"{k} {d:+,}" for k, d in grown if d > 0))
    lines += ["", "Object types that grew most from warm to the last row:", "", *grown_lines, ""]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
