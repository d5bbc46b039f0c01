"""Start DEO Lab with its heavy imports warmed while the server waits for its first visitor.

``python serve.py [streamlit options]`` serves app.py as ``streamlit run app.py [streamlit options]``
does (through ``streamlit run serve.py``: see ``app`` below, and the compressed front-end files) plus
one background thread that does, while the server waits for its first browser, what the first visitor's
script would otherwise do inside its own run (Streamlit runs app.py only when a browser connects):

1. import torch, ``torch._dynamo`` (torch imports it lazily at the first ``Optimizer.step``),
   plotly and its ``plotly_white`` template, and the app's own modules (pandas is imported before
   the server starts: :func:`main`);
2. compute what a visitor of the plain link is shown on a desktop — the default race, its animated
   figure and loss curves — into the caches every session shares
   (``pages.surface_defaults.precompute``): the first visitor of the shared link then only draws, and
   one who arrives meanwhile waits for this computation instead of running a second one beside it;
3. run a few steps of every preset on the default surface (:func:`warm_race`): a cold process pays
   several seconds for the first call of each torch operation, autograd path and optimizer class
   (``benchmarks/app.py``: "race (cold process)" against the warm race);
4. the plain link's figures for a projector and a phone;
5. ask the server for each of Streamlit's front-end files once, so that they are gzipped, or kept as
   they are (fonts, small chunks), in memory (below) before the first browser asks;
6. compute the plain links of the Dimer, Escape map, Networks and About pages (:func:`warm_pages`), so a
   link a lecturer shares to any page is computed before the class arrives;
7. freeze what it built (:func:`freeze_warm_state`): later garbage collections skip it.

The server is Streamlit's own ``st.App`` (``app`` below, which ``streamlit run serve.py`` finds and
runs with uvicorn, the same server ``streamlit run app.py`` uses) with two middlewares:

- :class:`pages.compressed_static.CompressedStatic`: Streamlit's ≈ 10 MB of front-end files go to
  each new browser gzipped (≈ 3 MB), compressed once per process instead of sent raw, and every
  front-end file is answered from memory;
- :class:`pages.plotly_preload.PlotlyPreload`: the HTML page asks for Plotly's front-end code (4.7 MB,
  loaded by Streamlit only when the first chart arrives) as it loads, so a new browser compiles and
  runs it while the server computes the figure.

and its websocket messages compressed once per class (:mod:`pages.shared_deflate`, installed by
:func:`main`): a large message that many browsers receive — the race chart, its loss charts — is
deflated for the first of them and sent as those bytes to the others.

``benchmarks/app.py --browser`` measures the first visitor's time to the chart with both commands.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The allocator the server runs under (``allocator_env``): Python's objects from glibc's malloc instead
# of pymalloc's 1 MiB arenas, in at most two glibc arenas.
ALLOCATOR_ENV = {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}


def allocator_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment serve.py re-executes itself with (:data:`ALLOCATOR_ENV` added), or None when it
    runs as it is: ``PYTHONMALLOC`` already set (a user's choice is kept), or not Linux with glibc.

    Why: a class of browsers builds ≈ 10⁵ small dicts and lists per link (races, figures, messages).
    After the class leaves and its results are dropped, pymalloc keeps every 1 MiB arena in which a
    few long-lived objects landed, and glibc's ``malloc_trim`` cannot return them: RSS stayed
    15–23 % over the warm server. Under glibc's allocator ``malloc_trim(0)`` (the trim thread's
    :func:`pages.common.release_memory`) hands back every free page, and two arenas instead of
    glibc's 8 per core keep the sessions' threads from spreading their garbage over sixteen heaps.
    ``benchmarks/memory_after_close.py`` measures both allocators side by side; ``race_speed.py
    --now-env`` and ``front_end.py --against`` time a race and a visitor under each."""
    if "PYTHONMALLOC" in environ or not sys.platform.startswith("linux"):
        return None
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    return {**environ, **{key: value for key, value in ALLOCATOR_ENV.items() if key not in environ}}


def reexec_with_allocator() -> None:
    """Replace this process (same PID, same arguments) by one under :func:`allocator_env`'s
    environment, before anything is imported that allocates much; returns where nothing changes."""
    env = allocator_env(os.environ)
    if env is not None:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


if __name__ == "__main__":  # before the imports below: a re-executed process pays for them once
    reexec_with_allocator()

import streamlit as st  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from pages.activity import VisitorActivity  # noqa: E402
from pages.compressed_static import CompressedStatic  # noqa: E402
from pages.plotly_preload import PlotlyPreload  # noqa: E402

# what ``streamlit run serve.py`` serves (Streamlit finds the assignment ``app = st.App(...)``)
MIDDLEWARE = [Middleware(VisitorActivity), Middleware(CompressedStatic), Middleware(PlotlyPreload)]
app = st.App(str(ROOT / "app.py"), middleware=MIDDLEWARE)

PRELOAD = (
    "torch",
    "torch._dynamo",
    "plotly.graph_objects",
    "plotly.io",
    "deo.race",
    "landscapes",
    "viz.surface_figs",
    "pages.common",
    "pages.surface_defaults",
)


WARM_MESSAGE = "DEO Lab: warm-up done in"  # printed (with the seconds) when the Surfaces link is ready
PAGES_MESSAGE = "DEO Lab: other pages' plain links computed in"  # then when warm_pages() is done
ENV_WARM_PAGES = "DEO_LAB_WARM_PAGES"  # "0": the warm-up leaves the other pages to their visitors
GIVE_WAY_TIMES = 20  # a page whose pool job gave way to visitors this often is left to its visitor
WARM_STOPPED = "DEO Lab: warm-up stopped:"  # an error ended it (the pages compute what it did not)


def preload(front_end: bool = False) -> None:
    """Import :data:`PRELOAD`, compute the plain link's desktop figures, run :func:`warm_race`, then
    the other views' figures (an error stops the warm-up, says :data:`WARM_STOPPED` and is left for
    the page to meet and report); with ``front_end`` (the running server's warm-up) also
    :func:`warm_front_end`. Says :data:`WARM_MESSAGE` on stderr then; the running server's warm-up
    goes on with :func:`warm_pages` and :func:`freeze_warm_state` and says :data:`PAGES_MESSAGE`."""
    import importlib
    import time

    start = time.perf_counter()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # the page imports it again and shows a readable error
            return
    import plotly.io as pio

    pio.templates["plotly_white"]  # Plotly loads a named template lazily
    from pages.threads import single_threaded

    # one intra-op thread and one BLAS thread, as app.py sets them at every run (process-wide: set
    # here once and left so, never restored from this thread while a visitor's script runs)
    single_threaded()
    try:
        from pages.surface_defaults import DEFAULT_VIEWS, precompute

        precompute(views=DEFAULT_VIEWS[:1])  # desktop first: what most first visitors ask for
        warm_race()
        precompute(views=DEFAULT_VIEWS[1:])
    except Exception as error:  # the page runs the real race and reports any error itself
        print(f"{WARM_STOPPED} {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return
    if front_end:
        warm_front_end()
    print(f"{WARM_MESSAGE} {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    if front_end:
        start = time.perf_counter()
        warmed = warm_pages() if os.environ.get(ENV_WARM_PAGES, "1") != "0" else []
        freeze_warm_state()
        seconds = time.perf_counter() - start
        print(f"{PAGES_MESSAGE} {seconds:.1f} s: {', '.join(warmed) or 'none'}", file=sys.stderr, flush=True)


def warm_pages(wait=None) -> list[str]:
    """Compute the plain links of the Dimer, Escape map, Networks and About pages into the shared caches
    (each page's ``precompute``: its defaults are defined once, for the page and for this), so that the
    first visitor of a link a lecturer shares to one of them waits for nothing but the transfer (after the
    warm-up a cold visit cost 2.5 s of script time on the Dimer page, 3.0 s on Networks, 6.9 s on the
    Escape map, which also showed a Run button when a loaded server estimated its map above 3 s, and 1.3 s
    on About). One page and view at a time (desktops first), each piece of it (a study, the map, a chart)
    only once no visitor has been served for ``pages.activity.QUIET_S`` (``wait``:
    :func:`pages.activity.wait_until_quiet`): a visitor who arrives meanwhile competes with one piece at
    most, never with work no one has asked for yet. A piece in the worker pool (on 2 cores the pool has
    one worker) is stopped once a visitor has been served for ``pages.workers.GONE_S``
    (``pages.activity.background``), and done again later (in CI a visitor's escape map waited 300 s for
    the one worker, most likely behind the warm-up's jobs at the pool's nice value). The Dimer page's
    studies run in this thread; the map, the network race and its slice in the worker pool.
    Returns the pages done; a page that fails is left for its first visitor, who sees the error the
    page reports."""
    from pages import about_charts, activity, common, dimer_charts, escape_map_defaults, network_charts

    wait = activity.wait_until_quiet if wait is None else wait
    pages = {
        "dimer": dimer_charts,
        "escape map": escape_map_defaults,
        "networks": network_charts,
        "about": about_charts,
    }
    failed = set()
    with activity.background():
        for view in common.DEFAULT_VIEWS:
            for name, module in pages.items():
                if name not in failed and not _precompute(module, view, wait):
                    failed.add(name)
    return [name for name in pages if name not in failed]


def _precompute(module, view, wait) -> bool:
    """``module.precompute`` of one view, again each time its job in the pool gave the worker to a
    visitor (at most :data:`GIVE_WAY_TIMES`); False when it failed or kept giving way."""
    from pages.workers import Cancelled

    for _ in range(GIVE_WAY_TIMES):
        try:
            module.precompute(views=(view,), between=wait)
            return True
        except Cancelled:
            continue
        except Exception:
            return False
    return False


def freeze_warm_state() -> int:
    """Move every object the process holds now — the imported modules and the warm-up's results,
    a few hundred thousand objects (383,532 in ``benchmarks/gc_pause.py``) — out of the cyclic
    garbage collector's reach (``gc.freeze()``), and return how many objects are frozen. They live
    as long as the server, and a full collection would otherwise walk all of them every time: the
    trim thread collects once a class has left (``pages.common.drop_unused``) and holds the GIL
    meanwhile, so every running session waits (``benchmarks/gc_pause.py``). Objects frozen are
    still freed by reference counting; only cyclic garbage among them would stay, and the warm-up
    leaves almost none (14 unreachable objects when measured). Called by the running server's
    warm-up only."""
    import gc

    gc.freeze()
    return gc.get_freeze_count()


def warm_race(steps: int = 3) -> None:
    """A ``steps``-step race of every preset on the default surface, from its default start."""
    from deo.presets import PRESETS
    from deo.race import OptimizerSpec, race, surface_problem
    from pages.common import DEFAULT_SURFACE, get_surface

    surface = get_surface(DEFAULT_SURFACE)
    race(surface_problem(surface, surface.default_start), [OptimizerSpec(key) for key in PRESETS], steps)


def warm_front_end() -> int:
    """Have this server gzip (or keep) Streamlit's front-end files before its first browser asks for them
    (:func:`pages.compressed_static.warm` through the server's own address): otherwise the first
    visitor waits while the ≈ 10 MB it loads are compressed. Returns how many files; 0 when the
    server is not reachable over TCP on a loopback-able address or serves under a base URL path."""
    from streamlit import config

    from pages.compressed_static import warm

    address = config.get_option("server.address") or "127.0.0.1"
    if config.get_option("server.baseUrlPath") or address.startswith("unix://"):
        return 0
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "localhost") else address
    host = f"[{host}]" if ":" in host else host
    return warm(f"http://{host}:{config.get_option('server.port')}")


def main() -> None:
    # Streamlit's own imports, and pandas, in this thread before any other thread runs and before the
    # server answers. Imported by one thread while another built a Plotly figure, pandas broke that
    # figure: Plotly's validators take pandas from sys.modules without importing it
    # (``get_module("pandas", should_load=False)``) and got the partially initialized module ("has no
    # attribute 'Series'"). The warm-up imported it after the desktop figures while the first
    # visitor's page imported it too, and the warm-up stopped there (2026-12-03: in CI's browser-test
    # servers, and by hand), so nothing after it was warmed.
    import pandas  # noqa: F401
    from streamlit.web import cli

    from pages.shared_deflate import install

    install()  # a message every browser of a class receives is compressed once (pages/shared_deflate.py)
    threading.Thread(target=preload, args=(True,), name="deo-preload", daemon=True).start()
    sys.argv = ["streamlit", "run", str(ROOT / "serve.py"), *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
