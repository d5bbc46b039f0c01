"""What the shared cache holds per Surfaces link, in one process, without a browser.

Computes what a desktop visitor of a new link makes the server compute (the race, its animated
figure and the two loss figures, through the same cached functions ``pages/surfaces.py`` calls),
for ``--links`` new seeds, and reads after every few links: the process RSS (``/proc/self/statm``,
after ``gc.collect`` and glibc's ``malloc_trim``), the caches' own estimate (``pages.common.nbytes``)
and each cached function's entry count. The new links are asked for as a server session asks (the
plain link's results, computed as serve.py's warm-up does, outside a session); then that session
leaves and the server's ``drop_unused`` runs, and finally every cache is cleared. What stays above
the warm baseline then is the allocator's, not the caches'.

This separates the server's memory after many new links (``benchmarks/load.py``: warm → 20 s after
the browsers closed) into what the shared cache keeps by design (bounded by ``MAX_CACHE_ENTRIES``,
the per-function ``max_entries`` and ``MAX_CACHE_BYTES``) and what the allocator keeps.

Usage: ``python benchmarks/cache_memory.py [--links 30] [--every 3]``; prints a table and writes
``benchmarks/results/cache_memory.md``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import pages.common as common  # noqa: E402
from pages.plotly_wire import install  # noqa: E402
from pages.surface_defaults import (  # noqa: E402
    DEFAULT_SURFACE,
    default_race,
    loss_options,
    precompute,
    race_figure_options,
)

CACHED = ("cached_surface_race", "cached_race_layers", "cached_race_figure", "cached_trace_figure")
KINDS = ("races", "layer sets", "race figures", "loss / curvature / 3-D figures")


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def settle() -> float:
    gc.collect()
    common.release_memory()
    return rss_mb()


def visit(key: tuple, marked, seed: int) -> None:
    """What the Surfaces page computes for a desktop visitor of the default link with ``seed``."""
    import plotly.io as pio

    race_key = (*key[:6], seed, key[7])
    options = tuple(sorted(race_figure_options(marked, large=False, compact=False).items()))
    pio.to_json(common.cached_race_figure(*race_key, options))
    for view in ("loss_steps", "loss_evals"):
        pio.to_json(common.cached_trace_figure(*race_key, view, loss_options(False)))


def entries() -> str:
    return ", ".join(str(getattr(common, name).stats()["entries"]) for name in CACHED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=30)
    parser.add_argument("--every", type=int, default=3, help="read the RSS after this many links")
    args = parser.parse_args()
    torch.set_num_threads(1)
    install()
    precompute(DEFAULT_SURFACE)  # what serve.py's warm-up computes: the plain link in three views
    key, marked = default_race(DEFAULT_SURFACE)
    warm = settle()
    rows = [("warm (the plain link, 3 views)", warm, common.cache_bytes(), entries())]
    common._session_id = lambda: "visitor"  # the new links are asked for by a server session
    for i in range(args.links):
        visit(key, marked, 10_000 + i)
        if (i + 1) % args.every == 0 or i + 1 == args.links:
            rows.append((f"{i + 1} new links", settle(), common.cache_bytes(), entries()))
    # the server's trim thread once that session has left (not connected, idle for the session TTL)
    common.drop_unused(now=time.monotonic() + common.unused_after_s() + 1, connected=lambda s: False)
    rows.append(("the visitor's session has left (`drop_unused`)", settle(), common.cache_bytes(), entries()))
    for name in CACHED:
        getattr(common, name).clear()
    common.cached_surface_grid.clear()
    rows.append(("every cache cleared", settle(), common.cache_bytes(), entries()))

    lines = [
        "# The shared cache's memory per Surfaces link (one process, no browser)",
        "",
        f"Command: `python benchmarks/cache_memory.py --links {args.links} --every {args.every}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"torch {torch.__version__}, Python {platform.python_version()}; load average before "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}.",
        "",
        "Each new link: the default Surfaces race with a new seed, its animated figure (desktop view) "
        "and both loss figures, through `pages.common`'s cached functions, serialised as "
        "`st.plotly_chart` does, asked for by one server session; when that session has left, the "
        "server's trim thread drops what only it asked for (`pages.common.drop_unused`) and keeps the "
        "plain link's results (computed outside a session, as serve.py's warm-up does). "
        "RSS after `gc.collect()` and `malloc_trim(0)`; the estimate is "
        "`pages.common.cache_bytes()` (`nbytes`). Bounds: "
        + ", ".join(f"{getattr(common, n).stats()['max_entries']} {what}" for n, what in zip(CACHED, KINDS))
        + f", {common.MAX_CACHE_BYTES / 2**20:.0f} MiB estimated in all.",
        "",
        f"| moment | RSS MB | over warm | cache estimate MiB | entries: {', '.join(KINDS)} |",
        "|---|---:|---:|---:|---|",
    ]
    for name, rss, cached, count in rows:
        lines.append(
            f"| {name} | {rss:.0f} | {rss - warm:+.0f} MB ({100 * (rss / warm - 1):+.1f} %) | "
            f"{cached / 2**20:.1f} | {count} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "cache_memory.md"
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
