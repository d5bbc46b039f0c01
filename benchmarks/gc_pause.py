"""How long a full garbage collection stops the server, with and without serve.py's freeze of its
warm-up (issue 9, items 5 and 6).

Once a class has left, the server's trim thread runs ``gc.collect()`` (``pages.common.drop_unused``)
and holds the GIL while it walks every tracked object: no other session's script, no websocket and no
health check runs meanwhile. serve.py's warm-up ends with ``gc.freeze()`` (``serve.freeze_warm_state``),
which moves the imported modules and the warm-up's results out of the collector's reach.

Each round is a fresh process under serve.py's allocator environment (``serve.ALLOCATOR_ENV``): it runs
``serve.preload()`` (the warm-up, without the front-end files), then ``serve.freeze_warm_state()`` or
not, then a class: ``--sessions`` new races through the whole Surfaces page (``AppTest``, a seed no
one raced each) and one visit of the Dimer and About pages; then ``--collects`` times one more new race
and a ``gc.collect()`` after it. Frozen and plain processes alternate, ``--repeats`` rounds each.
Reported: objects the collector tracks, the collection's wall time (the pause), the script thread's
CPU of a new race (medians over all rounds).

    python benchmarks/gc_pause.py --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def worker(freeze: bool, sessions: int, collects: int) -> dict:
    """One process's measurements (run with ``--worker``)."""
    import gc
    import logging
    import time

    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    logging.disable(logging.WARNING)
    import serve

    serve.preload()
    if freeze:
        serve.freeze_warm_state()
    from streamlit.testing.v1 import AppTest

    from benchmarks.script_probe import script_cpu_probe

    runs = script_cpu_probe()

    def page(name: str, seed: int) -> float:
        at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=600)
        at.query_params["seed"] = str(seed)
        at.run()
        if at.exception:
            raise RuntimeError(f"{name}: {at.exception}")
        return runs[-1]

    for number in range(sessions):
        page("surfaces.py", 1000 + number)
    page("dimer.py", 1)
    page("about.py", 1)
    pauses, page_cpu = [], []
    for number in range(collects):
        page_cpu.append(page("surfaces.py", 5000 + number))
        start = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - start)
    return {
        "frozen": gc.get_freeze_count(),
        "tracked": len(gc.get_objects()),
        "pauses": pauses,
        "page_cpu": page_cpu,
    }


def run_worker(
    freeze: bool, sessions: int, collects: int, allocator: dict[str, str], tree: Path = ROOT
) -> dict:
    """One fresh process of ``tree`` (its own copy of this script, which measures its own code)."""
    env = {**{key: v for key, v in os.environ.items() if key != "PYTHONMALLOC"}, **allocator}
    script = tree / "benchmarks" / "gc_pause.py"
    command = [sys.executable, str(script), "--worker", "freeze" if freeze else "plain"]
    command += ["--sessions", str(sessions), "--collects", str(collects)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(
    results: dict, command: str, loads: tuple, allocator: str, labels: tuple[str, str], against: bool = False
) -> str:
    """The table; ``results`` holds the sides ``"plain"`` (first column) and ``"frozen"`` (second),
    headed ``labels``."""

    def median_ms(key: str, side: str) -> float:
        return statistics.median(x for r in results[side] for x in r[key]) * 1e3

    def spread(key: str, side: str) -> str:
        values = [x * 1e3 for r in results[side] for x in r[key]]
        return f"{min(values):.0f}–{max(values):.0f}"

    plain, frozen = median_ms("pauses", "plain"), median_ms("pauses", "frozen")
    cpu_plain, cpu_frozen = median_ms("page_cpu", "plain"), median_ms("page_cpu", "frozen")
    tracked = [statistics.median(r["tracked"] for r in results[side]) for side in ("plain", "frozen")]
    rows = [
        f"| | {labels[0]} | {labels[1]} | ratio |",
        "|---|---:|---:|---:|",
        f"| objects the collector tracks (after the class) | {tracked[0]:,.0f} | {tracked[1]:,.0f} | |",
        "| objects frozen at the end of the warm-up | "
        f"{statistics.median(r['frozen'] for r in results['plain']):,.0f} | "
        f"{statistics.median(r['frozen'] for r in results['frozen']):,.0f} | |",
        "| **gc.collect() after a new race: the pause, ms** (median; all) | "
        f"{plain:.0f} ({spread('pauses', 'plain')}) | **{frozen:.0f}** ({spread('pauses', 'frozen')}) | "
        f"{plain / frozen:.2f}× shorter |",
        "| script CPU of a new race through the Surfaces page, ms (median) | "
        f"{cpu_plain:.0f} | {cpu_frozen:.0f} | {cpu_plain / cpu_frozen:.2f}× |",
    ]
    rounds = len(results["plain"])
    collects = len(results["plain"][0]["pauses"])
    return "\n".join(
        [
            "# A full garbage collection in the server: how long it stops everything"
            + (", another tree against this one" if against else ""),
            "",
            f"Command: `{command}`  ",
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores, shared with other jobs; load average (1, 5, 15 min) before "
            f"{', '.join(f'{x:.2f}' for x in loads[0])}, after {', '.join(f'{x:.2f}' for x in loads[1])}.  ",
            f"Each side: {rounds} fresh processes ({allocator}), alternating, each after serve.py's warm-up "
            f"and a class (new races and page visits), then {collects} new races each followed by "
            "`gc.collect()`; medians over all.",
            "",
            *rows,
            "",
            "The trim thread collects once a class has left (`pages.common.drop_unused`); the collection "
            "holds the GIL, so the pause is what every running session, websocket and health check "
            "waits. `serve.freeze_warm_state()` (`gc.freeze()` at the end of serve.py's warm-up) takes the "
            "modules and the warm-up's results out of every later collection.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes per side")
    parser.add_argument("--sessions", type=int, default=10, help="new races before the timed ones")
    parser.add_argument("--collects", type=int, default=5, help="timed collections per process")
    parser.add_argument("--worker", choices=("plain", "freeze"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="another checkout (e.g. a git worktree of an earlier commit): both sides frozen as serve.py "
        "runs them, the base tree against this one (written to gc_pause_against.md)",
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker == "freeze", args.sessions, args.collects)))
        return
    sys.path.insert(0, str(ROOT))
    from memory_after_close import allocator_environment  # serve.py's allocator ({} off glibc)

    allocator_vars = allocator_environment("serve")
    allocator = ", ".join(f"{k}={v}" for k, v in allocator_vars.items()) or "Python's default allocator"
    loads = [os.getloadavg()]
    results: dict = {"plain": [], "frozen": []}
    for repeat in range(args.repeats):
        sides = ("plain", "frozen") if repeat % 2 == 0 else ("frozen", "plain")
        for side in sides:
            if args.base is None:  # not frozen against frozen, this tree
                measured = run_worker(side == "frozen", args.sessions, args.collects, allocator_vars)
            else:  # both frozen: the base tree ("plain" column) against this tree
                tree = args.base.resolve() if side == "plain" else ROOT
                measured = run_worker(True, args.sessions, args.collects, allocator_vars, tree)
            results[side].append(measured)
            pauses = [round(x * 1e3) for x in results[side][-1]["pauses"]]
            print(f"round {repeat + 1} {side}: pauses ms", pauses, flush=True)
    loads.append(os.getloadavg())
    command = (
        f"python benchmarks/gc_pause.py --repeats {args.repeats} --sessions {args.sessions} "
        f"--collects {args.collects}" + (" --base <worktree of the base commit>" if args.base else "")
    )
    if args.base is None:
        labels, name = ("not frozen", "frozen (serve.py)"), "gc_pause.md"
    else:
        labels = (f"base {_commit(args.base)}, frozen", f"this tree {_commit(ROOT)}, frozen")
        name = "gc_pause_against.md"
    text = markdown(results, command, tuple(loads), allocator, labels, against=args.base is not None)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / name).write_text(text)


def _commit(tree: Path) -> str:
    """``tree``'s commit (short), with ``+`` when it has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=tree)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=tree)
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
