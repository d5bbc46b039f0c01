"""serve.py: the README's server command warms the interpreter before its first visitor."""

import sys
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
