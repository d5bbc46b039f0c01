"""serve.py: the README's server command warms the interpreter before its first visitor."""

import math
import sys
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serve  # noqa: E402


def test_warm_race_runs_every_preset_on_the_default_surface(monkeypatch):
    import importlib

    from deo.presets import PRESETS
    from pages.common import DEFAULT_SURFACE

    race_module = importlib.import_module("deo.race")  # the module (``deo.race`` may name the function)
    calls = []
    real = race_module.race

    def spy(problem, optimizers, steps, **kwargs):
        calls.append((problem.name, [s.key for s in optimizers], steps))
        return real(problem, optimizers, steps, **kwargs)

    monkeypatch.setattr(race_module, "race", spy)
    serve.warm_race(steps=2)
    assert calls == [(DEFAULT_SURFACE, list(PRESETS), 2)]


def test_serve_runs_its_st_app_with_the_given_options(monkeypatch):
    """``streamlit run serve.py``: Streamlit finds ``serve.app`` (``st.App`` over app.py with the
    compressed-static middleware) and serves it with the options given to serve.py."""
    import streamlit as st
    from streamlit.web import cli
    from streamlit.web.server.app_discovery import discover_asgi_app

    seen = {}
    monkeypatch.setattr(cli, "main", lambda: seen.setdefault("argv", list(sys.argv)))
    monkeypatch.setattr(serve, "preload", lambda front_end=False: None)
    monkeypatch.setattr(sys, "argv", ["serve.py", "--server.port", "8502"])
    serve.main()
    assert seen["argv"] == ["streamlit", "run", str(ROOT / "serve.py"), "--server.port", "8502"]
    found = discover_asgi_app(ROOT / "serve.py")
    assert found.is_asgi_app and found.app_name == "app", found
    assert isinstance(serve.app, st.App)  # its middleware is checked on a live server (test_browser.py)


def test_preload_says_when_the_warm_up_is_done(capsys, one_torch_thread):
    # one_torch_thread restores the test process's thread count after preload() sets it to 1
    serve.preload()
    assert serve.WARM_MESSAGE in capsys.readouterr().err  # benchmarks/app.py waits for this line


def test_the_warm_up_imports_its_modules_before_the_desktop_figures(monkeypatch, one_torch_thread):
    import importlib

    import pages.surface_defaults as defaults

    events = []
    real_import, real_precompute = importlib.import_module, defaults.precompute

    def spy_import(name, *args, **kwargs):
        events.append(("import", name))
        return real_import(name, *args, **kwargs)

    def spy_precompute(*args, **kwargs):
        events.append(("precompute", kwargs.get("views")))
        return real_precompute(*args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", spy_import)
    monkeypatch.setattr(defaults, "precompute", spy_precompute)
    serve.preload()
    first = events.index(("precompute", defaults.DEFAULT_VIEWS[:1]))
    assert all(("import", name) in events[:first] for name in serve.PRELOAD)


def test_pandas_is_imported_before_the_warm_up_thread_and_the_server_start(monkeypatch):
    """A pandas import in one thread broke a Plotly figure built in another (below), and stopped the
    warm-up when the first visitor's page imported pandas beside it: serve.main imports it first."""
    from streamlit.web import cli

    seen = []
    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def spy_import(name, *args, **kwargs):
        if name == "pandas":
            seen.append("pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", spy_import)
    monkeypatch.setattr(serve.threading.Thread, "start", lambda self: seen.append(self.name))
    monkeypatch.setattr(cli, "main", lambda: seen.append("server"))
    monkeypatch.setattr(sys, "argv", ["serve.py"])
    serve.main()
    assert seen == ["pandas", "deo-preload", "server"]


def test_a_plotly_figure_built_while_pandas_is_half_imported_fails(monkeypatch):
    """Why pandas goes first (plotly 7.1): Plotly's validators read pandas from sys.modules without
    importing it, so a module another thread is still initializing breaks the figure."""
    import types

    import plotly.graph_objects as go

    monkeypatch.setitem(sys.modules, "pandas", types.ModuleType("pandas"))  # as mid-import
    with pytest.raises(AttributeError, match="Series"):
        go.Scatter(x=[1, 2], y=[3, 4])


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_server_s_warm_up_freezes_what_it_built_and_a_plain_preload_does_not(
    monkeypatch, one_torch_thread
):
    """The running server's warm-up ends with gc.freeze(): a later full collection (the trim thread's,
    once a class has left) walks only what came after it. preload() without the server (this test
    process, benchmarks) leaves the collector alone."""
    import gc

    monkeypatch.setattr(serve, "warm_front_end", lambda: 0)  # no server to ask here
    monkeypatch.setattr(serve, "warm_pages", lambda: [])  # the other pages: tested below
    assert gc.get_freeze_count() == 0
    try:
        serve.preload()
        assert gc.get_freeze_count() == 0
        serve.preload(front_end=True)
        frozen = gc.get_freeze_count()
        assert frozen > 100_000  # torch, Streamlit, plotly and the warm results
        cycle = _Cycle()  # cyclic garbage made after the freeze is collected as always
        probe = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert probe() is None
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("query", [{}, {"big": "true"}], ids=["desktop", "projector"])
def test_after_the_warm_up_a_visit_of_the_plain_link_computes_nothing(one_torch_thread, query):
    """serve.py's precompute and the Surfaces page build the same request (pages/surface_defaults.py):
    the first visitor of the shared link gets the race, its figure and loss curves from the cache."""
    from pages.common import cached_race_figure, cached_surface_race, cached_trace_figure
    from pages.surface_defaults import precompute
    from tests.apptest_helpers import assert_clean, page_runner

    cached = {"race": cached_surface_race, "figure": cached_race_figure, "curves": cached_trace_figure}
    precompute()
    before = {name: fn.stats() for name, fn in cached.items()}
    at = page_runner("surfaces.py", 240)(**query)
    assert_clean(at)
    after = {name: fn.stats() for name, fn in cached.items()}
    assert len(at.get("plotly_chart")) == 3  # the race and the two loss curves, drawn
    for name in cached:
        assert after[name]["computations"] == before[name]["computations"], name  # nothing computed
        assert after[name]["hits"] > before[name]["hits"], name  # every one came from the cache


@pytest.mark.parametrize(
    "address, base_path, expected",
    [
        (None, "", "http://127.0.0.1:8599"),
        ("0.0.0.0", "", "http://127.0.0.1:8599"),
        ("::", "", "http://127.0.0.1:8599"),
        ("192.0.2.7", "", "http://192.0.2.7:8599"),
        ("::1", "", "http://[::1]:8599"),
        (None, "lab", None),  # under a base URL path the middleware leaves the files alone
        ("unix:///tmp/deo.sock", "", None),
    ],
)
def test_the_warm_up_asks_its_own_server_for_the_front_end_files(monkeypatch, address, base_path, expected):
    from streamlit import config

    import pages.compressed_static as compressed_static

    options = {"server.address": address, "server.baseUrlPath": base_path, "server.port": 8599}
    monkeypatch.setattr(config, "get_option", lambda key: options[key])
    asked = []
    monkeypatch.setattr(compressed_static, "warm", lambda base: asked.append(base) or 7)
    assert serve.warm_front_end() == (7 if expected else 0)
    assert asked == ([expected] if expected else [])


def test_the_server_parses_http_with_httptools_and_runs_on_uvloop():
    """requirements.txt installs httptools and uvloop. Streamlit leaves uvicorn's ``http`` at "auto",
    which then takes httptools (HTTP parsed in C, not pure-Python h11), and its bootstrap runs the
    server's event loop on uvloop when it imports (benchmarks/front_end.py --http-ab measures the
    difference and lists the modules the server process loaded)."""
    import uvicorn
    import uvloop
    from streamlit.web import bootstrap
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async def asgi(scope, receive, send):  # pragma: no cover - never called
        raise AssertionError

    config = uvicorn.Config(asgi)
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    assert bootstrap._get_uvloop_loop_factory() is uvloop.new_event_loop


def test_the_server_runs_under_glibc_malloc_with_two_arenas():
    """serve.allocator_env: Python's objects from glibc's malloc (whose malloc_trim gives a closed class's
    pages back; pymalloc's arenas stay pinned by a few survivors), at most two glibc arenas; a user's own
    PYTHONMALLOC or MALLOC_ARENA_MAX is kept (benchmarks/memory_after_close.py measures both)."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        assert serve.allocator_env({}) is None
        return
    assert serve.allocator_env({"HOME": "/root"}) == {
        "HOME": "/root",
        "PYTHONMALLOC": "malloc",
        "MALLOC_ARENA_MAX": "2",
    }
    assert serve.allocator_env({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"
    assert serve.allocator_env({"PYTHONMALLOC": "pymalloc"}) is None  # the user chose
    assert serve.allocator_env({"PYTHONMALLOC": "malloc"}) is None  # already re-executed


def test_serve_re_executes_itself_with_the_same_arguments_once(monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    monkeypatch.setattr(sys, "orig_argv", ["python3", "serve.py", "--server.port", "8502"])
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    serve.reexec_with_allocator()
    if serve.allocator_env(os.environ) is None:  # not glibc: runs as it is
        assert calls == []
        return
    [(path, argv, env)] = calls
    assert path == sys.executable and argv == [sys.executable, "serve.py", "--server.port", "8502"]
    assert env["PYTHONMALLOC"] == "malloc"
    monkeypatch.setenv("PYTHONMALLOC", "malloc")
    serve.reexec_with_allocator()
    assert len(calls) == 1  # the re-executed process goes on


def test_the_running_readme_server_is_the_re_executed_process(app_url):
    """``python serve.py`` as the tests (and the README) start it: the same process id now runs under
    serve.py's allocator environment."""
    import platform

    from conftest import SERVER_PIDS

    environ = Path(f"/proc/{SERVER_PIDS[app_url]}/environ").read_bytes().split(b"\0")
    expected = [b"PYTHONMALLOC=malloc", b"MALLOC_ARENA_MAX=2"] if platform.libc_ver()[0] == "glibc" else []
    assert all(item in environ for item in expected), expected
    cmdline = Path(f"/proc/{SERVER_PIDS[app_url]}/cmdline").read_bytes().split(b"\0")
    assert b"serve.py" in cmdline


def test_after_the_escape_map_warm_up_its_plain_link_computes_nothing_and_asks_for_no_run(
    one_torch_thread, monkeypatch
):
    """serve.py's precompute of the Escape map and the page build the same request
    (pages/escape_map_defaults.py): its first visitor gets the map and its charts from the cache, and
    no Run button even where the server is slow enough for the estimate to ask for one."""
    from pages import estimates
    from pages.common import cached_escape_map
    from pages.escape_map_defaults import escape_charts, precompute
    from tests.apptest_helpers import assert_clean, page_runner

    precompute(views=((False, False),))
    cached = {"map": cached_escape_map, "charts": escape_charts}
    before = {name: fn.stats() for name, fn in cached.items()}
    # a machine 1000× slower: a map not in the cache would wait for a Run press
    monkeypatch.setattr(estimates, "escape_map_seconds_per_row_eval", lambda *a, **k: 1.0)
    at = page_runner("escape_map.py", 240)()
    assert_clean(at)
    assert not [b for b in at.button if b.label == "Run"]
    assert len(at.get("plotly_chart")) == 2  # the maps and the histogram, drawn
    after = {name: fn.stats() for name, fn in cached.items()}
    for name in cached:
        assert after[name]["computations"] == before[name]["computations"], name  # nothing computed
        assert after[name]["hits"] > before[name]["hits"], name  # every one came from the cache


def test_after_the_dimer_warm_up_its_plain_link_computes_nothing(one_torch_thread):
    """serve.py's precompute of the Dimer page and the page build the same request
    (pages/dimer_charts.py): its first visitor gets the studies, the saddle search and the five charts
    from the cache."""
    from pages.common import cached_surface_race, function_counts
    from pages.dimer_charts import precompute
    from tests.apptest_helpers import assert_clean, page_runner

    def counts() -> dict:
        own = {k: v for k, v in function_counts().items() if k.startswith("dimer_charts.py:")}
        own["race"] = cached_surface_race.stats()
        return own

    precompute(views=((False, False),))
    before = counts()
    assert len([k for k in before if k != "race"]) >= 9  # the studies, the grid and the five charts
    at = page_runner("dimer.py", 240)()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 5
    after = counts()
    computed = {k: v["computations"] - before[k]["computations"] for k, v in after.items()}
    assert not any(computed.values()), computed
    for name in ("overview_chart", "rotation_chart", "convergence_chart", "finite_difference_chart"):
        key = f"dimer_charts.py:{name}"
        assert after[key]["hits"] > before[key]["hits"], name
    assert after["race"]["hits"] > before["race"]["hits"]


def test_after_the_networks_warm_up_its_plain_link_computes_nothing(one_torch_thread):
    """serve.py's precompute of the Networks page and the page build the same request
    (pages/network_charts.py): its first visitor gets the race, the slice and the charts from the
    cache."""
    from pages import network_charts
    from pages.estimates import network_race, network_slice

    cached = {
        "race": network_race,
        "slice": network_slice,
        "loss": network_charts.loss_charts,
        "diagnostics": network_charts.diagnostics_charts,
        "slice charts": network_charts.slice_charts,
    }
    network_charts.precompute(views=((False, False),))
    assert_visit_only_hits("networks.py", cached, charts=7)


def test_after_the_about_warm_up_its_plain_link_builds_no_chart():
    """serve.py's precompute of the About page and the page ask for the same charts
    (pages/about_charts.py): its first visitor gets the three findings charts from the cache."""
    from pages import about_charts

    about_charts.precompute(views=((False, False),))
    assert about_charts.findings_chart.stats()["entries"] >= 3
    cached = {"charts": about_charts.findings_chart, "csv": about_charts.read_csv}
    assert_visit_only_hits("about.py", cached, charts=3)


def assert_visit_only_hits(page: str, cached: dict, charts: int) -> None:
    """A default visit of ``page`` (AppTest) draws ``charts`` charts and every cached function in
    ``cached`` (name: function) is hit and computes nothing."""
    from tests.apptest_helpers import assert_clean, page_runner

    before = {name: fn.stats() for name, fn in cached.items()}
    at = page_runner(page, 240)()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == charts
    after = {name: fn.stats() for name, fn in cached.items()}
    for name in cached:
        assert after[name]["computations"] == before[name]["computations"], name  # nothing computed
        assert after[name]["hits"] > before[name]["hits"], name  # every one came from the cache


def test_the_server_s_warm_up_computes_every_page_s_plain_link_after_the_surfaces_one(
    monkeypatch, capsys, one_torch_thread
):
    """The Surfaces link is ready (WARM_MESSAGE, which the benchmarks wait for) before the other pages
    are computed; then the Dimer, Escape map and Networks links, and the freeze covers them too."""
    import gc

    events = []
    real = serve.warm_pages
    monkeypatch.setenv(serve.ENV_WARM_PAGES, "1")  # the test servers' default (conftest) is off
    monkeypatch.setattr(serve, "warm_front_end", lambda: events.append("front end") or 0)
    def warm_pages():
        events.append(("pages", capsys.readouterr().err))
        return real(wait=lambda: 0.0)

    monkeypatch.setattr(serve, "warm_pages", warm_pages)
    monkeypatch.setattr(serve, "freeze_warm_state", lambda: events.append("freeze") or 0)
    try:
        serve.preload(front_end=True)
    finally:
        gc.unfreeze()
    assert events[0] == "front end" and events[2] == "freeze"
    assert events[1][0] == "pages" and serve.WARM_MESSAGE in events[1][1]  # said before the pages
    assert serve.PAGES_MESSAGE in capsys.readouterr().err
    assert real(wait=lambda: 0.0) == ["dimer", "escape map", "networks", "about"]  # every page, no error


def test_the_pages_warm_up_waits_for_a_quiet_server_before_each_piece(monkeypatch):
    """A visitor is never kept waiting by work no one asked for: warm_pages goes page by page and view
    by view (desktops first), and each page's precompute waits (``between``) until no visitor's
    script has run for a while before each of its pieces."""
    from pages import about_charts, dimer_charts, escape_map_defaults, network_charts
    from pages.common import DEFAULT_VIEWS

    steps = []
    pages = (
        ("dimer", dimer_charts),
        ("escape map", escape_map_defaults),
        ("networks", network_charts),
        ("about", about_charts),
    )

    def stub(name, fails=False):
        def precompute(views, between):
            between()
            steps.append((name, views))
            if fails:
                raise RuntimeError("no worker pool here")

        return precompute

    for name, module in pages:
        monkeypatch.setattr(module, "precompute", stub(name, fails=name == "escape map"))
    assert serve.warm_pages(wait=lambda: steps.append("wait")) == ["dimer", "networks", "about"]
    expected = []
    for view in DEFAULT_VIEWS:
        for name, _ in pages:
            if name != "escape map" or view == DEFAULT_VIEWS[0]:  # a failed page is not tried again
                expected += ["wait", (name, (view,))]
    assert steps == expected


@pytest.mark.parametrize("page", ["dimer_charts", "escape_map_defaults", "network_charts", "about_charts"])
def test_each_page_s_precompute_waits_before_every_piece(one_torch_thread, page):
    """The pieces: the Dimer page's saddle search and five charts, the escape map and its charts, the
    network race, its slice and three charts, About's three findings charts; the wait comes before
    each, never inside one."""
    import importlib

    from pages import common

    module = importlib.import_module(f"pages.{page}")
    module.precompute(views=common.DEFAULT_VIEWS[:1])  # computed once: the pieces below are hits
    before = sum(v["computations"] for v in common.function_counts().values())
    waits = []
    module.precompute(views=common.DEFAULT_VIEWS[:1], between=lambda: waits.append(1))
    pieces = {"dimer_charts": 6, "escape_map_defaults": 2, "network_charts": 5, "about_charts": 3}
    assert len(waits) == pieces[page]
    assert sum(v["computations"] for v in common.function_counts().values()) == before


def test_a_quiet_server_is_one_whose_visitors_scripts_ended_long_enough_ago(monkeypatch):
    from pages import activity

    clock = [1000.0]
    monkeypatch.setattr(activity, "_clock", lambda: clock[0])
    monkeypatch.setitem(activity._STATE, "running", 0)
    monkeypatch.setitem(activity._STATE, "last", -math.inf)
    assert activity.quiet_for() == math.inf  # no visitor yet
    with activity.script_run():
        clock[0] += 2.0
        assert activity.quiet_for() == 0.0  # a run in progress
        slept = []

        def sleep(seconds):  # time passes; the run ends 1 s into the first wait
            if not slept:
                activity._STATE.update(running=0, last=clock[0] + 1.0)
            slept.append(seconds)
            clock[0] += seconds

        assert activity.wait_until_quiet(quiet_s=5.0, sleep=sleep) == sum(slept)
        assert activity.quiet_for() >= 5.0 and clock[0] >= 1002.0 + 1.0 + 5.0
        activity._STATE["running"] = 1  # as it was: the context manager counts it down
    assert activity._STATE["running"] == 0 and activity.quiet_for() == 0.0
    clock[0] += 5.0
    assert activity.quiet_for() == 5.0
    assert activity.wait_until_quiet(quiet_s=5.0, sleep=lambda s: 1 / 0) == 0.0  # quiet: no sleep


def test_a_script_that_stops_or_fails_still_ends_its_run(monkeypatch):
    from pages import activity

    monkeypatch.setitem(activity._STATE, "running", 0)
    with pytest.raises(RuntimeError), activity.script_run():
        raise RuntimeError("a page's error, or Streamlit's StopException")
    assert activity._STATE["running"] == 0


def test_a_browser_loading_the_app_is_activity_and_a_health_check_is_not(monkeypatch):
    from pages import activity

    clock = [50.0]
    monkeypatch.setattr(activity, "_clock", lambda: clock[0])
    monkeypatch.setitem(activity._STATE, "running", 0)
    monkeypatch.setitem(activity._STATE, "last", -math.inf)
    served = []

    async def app(scope, receive, send):
        served.append(scope["path"])

    middleware = activity.VisitorActivity(app)

    def run(kind, path):  # the coroutine never suspends: driven by hand (a suite's event loop may be running)
        with pytest.raises(StopIteration):
            middleware({"type": kind, "path": path}, None, None).send(None)
    run("http", "/_stcore/health")
    assert activity.quiet_for() == math.inf
    run("http", "/static/js/index.js")
    assert activity.quiet_for() == 0.0
    clock[0] += 3.0
    run("websocket", "/_stcore/stream")
    clock[0] += 1.0
    assert activity.quiet_for() == 1.0
    assert served == ["/_stcore/health", "/static/js/index.js", "/_stcore/stream"]  # every one passed on
    assert any(m.cls is activity.VisitorActivity for m in serve.MIDDLEWARE)


def test_without_the_pages_warm_up_the_server_still_freezes(monkeypatch, capsys, one_torch_thread):
    import gc

    events = []
    monkeypatch.setenv(serve.ENV_WARM_PAGES, "0")
    monkeypatch.setattr(serve, "warm_front_end", lambda: 0)
    monkeypatch.setattr(serve, "warm_pages", lambda: events.append("pages") or [])
    monkeypatch.setattr(serve, "freeze_warm_state", lambda: events.append("freeze") or 0)
    try:
        serve.preload(front_end=True)
    finally:
        gc.unfreeze()
    assert events == ["freeze"]
    assert f"{serve.PAGES_MESSAGE}" in capsys.readouterr().err


def test_a_warm_up_job_in_the_pool_gives_way_to_a_visitor_and_is_done_again(monkeypatch):
    """On 2 cores the pool has one worker: background work asks workers.run to stop its job once a
    visitor is being served (session_alive outside a session, in activity.background()), and
    warm_pages does that page again when the server is quiet."""
    from pages import about_charts, activity, common, dimer_charts, escape_map_defaults, network_charts
    from pages.workers import Cancelled

    assert common.session_alive() is None  # no session, no background work: nothing to watch
    clock = [10.0]
    monkeypatch.setattr(activity, "_clock", lambda: clock[0])
    monkeypatch.setitem(activity._STATE, "running", 0)
    monkeypatch.setitem(activity._STATE, "last", -math.inf)
    with activity.background():
        alive = common.session_alive()
        assert alive is activity.server_quiet and alive()
        with activity.script_run():  # a visitor's script runs: the background job should stop
            assert not alive()
        clock[0] += activity.BUSY_S
        assert alive()
    assert not activity.in_background()

    calls = []
    for module in (dimer_charts, network_charts, about_charts):
        monkeypatch.setattr(module, "precompute", lambda views, between: None)

    def escape_map(views, between):
        calls.append(views)
        if len(calls) == 1:
            raise Cancelled("stopped: the session that asked for this was closed")

    monkeypatch.setattr(escape_map_defaults, "precompute", escape_map)
    assert serve.warm_pages(wait=lambda: None) == ["dimer", "escape map", "networks", "about"]
    assert len(calls) == 1 + len(common.DEFAULT_VIEWS)  # the first view twice, then the others
