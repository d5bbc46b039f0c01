"""Serving a class: shared bounded caches, one computation per configuration, view-only changes
that never rerun the race, and the animated figure's size on the wire (issue 9)."""

from __future__ import annotations

import json
import threading
import time
import zlib

import numpy as np
import pytest


def _deflate(text: str) -> int:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)  # what permessage-deflate sends
    return len(c.compress(text.encode()) + c.flush())


def test_cache_is_bounded_in_bytes_and_evicts_least_recently_used(monkeypatch):
    import pages.common as common

    monkeypatch.setattr(common, "MAX_CACHE_BYTES", 3_000_000)
    calls = []

    @common.cache_runner
    def block(i):
        calls.append(i)
        return np.zeros(1_000_000 // 8)  # 1 MB

    for i in range(5):
        block(i)
    assert block.stats()["entries"] <= 3
    assert block.stats()["bytes"] <= 3_000_000
    assert common.cache_bytes() <= 3_000_000
    block(4)  # the most recent one is still there
    assert calls == [0, 1, 2, 3, 4]
    block(0)  # the oldest was evicted: computed again
    assert calls == [0, 1, 2, 3, 4, 0]
    block.clear()
    assert block.stats()["entries"] == 0


def test_a_result_larger_than_the_budget_is_returned_but_not_kept(monkeypatch):
    import pages.common as common

    monkeypatch.setattr(common, "MAX_CACHE_BYTES", 1000)

    @common.cache_runner
    def big(i):
        return np.zeros(10_000)

    assert big(1).shape == (10_000,)
    bound = common.MAX_CACHE_ENTRIES
    expected = {"computations": 1, "hits": 0, "entries": 0, "max_entries": bound, "bytes": 0,
                "session_entries": 0}
    assert big.stats() == expected


def test_concurrent_sessions_asking_the_same_key_compute_it_once():
    from pages.common import cache_runner

    started = threading.Event()
    calls = []

    @cache_runner
    def slow(x):
        calls.append(x)
        started.set()
        time.sleep(0.3)
        return x * 2

    results = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [42] * 6
    assert calls == [21]
    assert slow.stats()["computations"] == 1 and slow.stats()["hits"] == 5


def test_a_failed_computation_lets_the_waiting_session_try_again():
    from pages.common import cache_runner

    attempts = []

    @cache_runner
    def flaky(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1
    assert len(attempts) == 2


def test_nbytes_counts_the_trace_arrays():
    import deo
    import landscapes
    from deo.race import OptimizerSpec, race, surface_problem
    from pages.common import nbytes

    s = landscapes.SURFACES["saddle"]
    traces = race(surface_problem(s, s.starts[0]), [OptimizerSpec("gd")], 50)
    arrays = sum(v.nbytes for v in vars(traces[0]).values() if isinstance(v, np.ndarray))
    assert isinstance(traces[0], deo.Trace)
    assert arrays <= nbytes(traces) <= arrays + 20_000


def test_view_only_changes_never_rerun_the_race():
    """Speed, dimer zoom, arrows, what is drawn, the log axis and the tabs: the race is computed once."""
    from streamlit.testing.v1 import AppTest

    from pages.common import cached_race_figure, cached_surface_race

    cached_surface_race.clear()
    cached_race_figure.clear()
    before = cached_surface_race.stats()["computations"]
    at = AppTest.from_file("../pages/surfaces.py", default_timeout=300)
    at.run()
    assert not at.exception
    assert cached_surface_race.stats()["computations"] == before + 1
    at.selectbox(key="zoom").set_value("1000").run()
    at.radio(key="arrows").set_value("scale").run()
    at.select_slider(key="speed").set_value(2.0).run()
    at.checkbox(key="show_dimer").uncheck().run()
    at.checkbox(key="show_arrows").uncheck().run()
    at.checkbox(key="log_loss").check().run()
    assert not at.exception
    assert cached_surface_race.stats()["computations"] == before + 1  # never recomputed
    charts = [c for c in at.get("plotly_chart")]
    assert charts
    at.number_input(key="steps").set_value(120).run()  # a real change: a new race
    assert cached_surface_race.stats()["computations"] == before + 2


def test_default_race_figure_is_under_300_kb_on_the_wire():
    import plotly.io as pio

    import landscapes
    from deo.race import OptimizerSpec, race, surface_problem
    from viz.surface_figs import race_figure

    s = landscapes.SURFACES["saddle_plateau"]
    keys = ["gd", "adam", "deo_paper", "deo_escape", "deo_escape_random"]  # the page's default five
    traces = race(surface_problem(s, s.starts[0]), [OptimizerSpec(k) for k in keys], 300)
    fig = race_figure(s, traces, start=s.starts[0])
    text = pio.to_json(fig, validate=False)
    assert len(json.loads(text)["frames"]) >= 250  # one frame per step (at most MAX_FRAMES)
    assert _deflate(text) <= 300_000
    frozen = fig.freeze()
    assert frozen.to_dict() is frozen.to_dict()  # serialised once
    assert pio.to_json(frozen, validate=False) == text


def test_the_server_compresses_its_websocket():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableWebsocketCompression"] is True


def test_the_server_does_not_collect_all_garbage_after_every_run():
    # Streamlit's default runs gc.collect(2) after each script run: ≈0.5 s of server CPU per view
    # change and per visitor with torch and the cached figures in the process (.streamlit/config.toml)
    import tomllib
    from pathlib import Path

    from streamlit import config as st_config

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    # the option exists under that name in the pinned Streamlit, and the server (started from the
    # repository root, as the README and the tests start it) reads it
    assert st_config.get_option("runner.postScriptGC") is False


def test_no_page_relies_on_magic_which_the_server_turns_off():
    """``runner.magicEnabled = false``: Streamlit's magic would rewrite bare expressions into
    ``st.write`` calls (an AST pass each time it compiles a page). No script the app runs has such an
    expression — Streamlit's own rewrite of each finds none (it finds the one in a control snippet) —
    so turning it off changes no page."""
    import ast
    import re
    import tomllib
    from pathlib import Path

    from streamlit import config as st_config
    from streamlit.runtime.scriptrunner import magic

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["magicEnabled"] is False
    assert st_config.get_option("runner.magicEnabled") is False

    def magic_writes(source: str, name: str) -> list[str]:
        tree = magic.add_magic(source, name)
        return [
            ast.unparse(node)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "transparent_write"
        ]

    control = magic_writes("import streamlit as st\nx = 1\nx\n", "control.py")
    assert control == ["__streamlitmagic__.transparent_write(x)"]
    app = (root / "app.py").read_text()
    scripts = ["app.py", *re.findall(r'st\.Page\(\s*"(pages/\w+\.py)"', app)]
    assert len(scripts) == 7, scripts  # app.py and its six pages
    for script in scripts:
        assert magic_writes((root / script).read_text(), script) == [], script


def test_release_memory_looks_up_malloc_trim_once(monkeypatch):
    """The trim thread calls release_memory every TRIM_EVERY_S: libc is found once, not by running
    ``ldconfig -p`` (ctypes.util.find_library) on every call."""
    import ctypes.util

    import pages.common as common

    calls = []
    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: calls.append(name) or real(name))
    common._malloc_trim.cache_clear()
    try:
        first = [common.release_memory() for _ in range(3)]
    finally:
        common._malloc_trim.cache_clear()
    assert calls == ["c"]
    assert all(isinstance(done, bool) for done in first)


def test_results_of_sessions_that_left_are_dropped_and_the_warm_up_s_are_kept(monkeypatch):
    """A class's links go once its sessions have all left (not connected, unused for
    unused_after_s()); what serve.py's warm-up computed outside any session stays; a result a connected
    session asked for stays however long it is idle."""
    import pages.common as common

    session = {"id": None}
    monkeypatch.setattr(common, "_session_id", lambda: session["id"])
    connected = {"a": True, "b": True}
    is_connected = lambda s: connected.get(s, True)  # noqa: E731  (other tests' sessions: kept)
    calls = []

    @common.cache_runner
    def result(i):
        calls.append(i)
        return np.zeros(10)

    try:
        result(0)  # the warm-up: no session
        session["id"] = "a"
        result(0)  # a session reads the warm-up's result: it stays pinned
        result(1)
        session["id"] = "b"
        result(1)
        result(2)
        assert result.stats()["session_entries"] == 2
        later = time.monotonic() + common.unused_after_s() + 1
        assert common.drop_unused(now=later, connected=is_connected) == 0  # both still connected
        connected["b"] = False
        assert common.drop_unused(now=later, connected=is_connected) == 1  # 2: only b asked for it
        assert common.drop_unused(now=time.monotonic(), connected=lambda s: False) == 0  # used just now
        connected["a"] = False
        assert common.drop_unused(now=later, connected=is_connected) == 1  # 1: a and b have left
        assert result.stats()["entries"] == 1 and result.stats()["session_entries"] == 0
        session["id"] = None
        result(0)
        assert calls == [0, 1, 2]  # the warm-up's result was never computed again
        session["id"] = "c"
        result(1)  # asked for again: computed again
        assert calls == [0, 1, 2, 1]
    finally:
        result.clear()
    assert set(common._USERS) <= set(common._CACHE)  # no user record outlives its result


def test_closed_sessions_past_their_ttl_are_removed_from_streamlit_s_store(monkeypatch):
    """The trim thread's reap_expired_sessions: Streamlit's own MemorySessionStorage keeps an expired
    session until a write or a length query; the reap removes it on the server's event loop (here a
    loop in a thread, as the server's), leaves a live one, and says how many went."""
    import asyncio
    import threading
    import types

    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_session_storage import MemorySessionStorage

    import pages.common as common

    storage = MemorySessionStorage(ttl_seconds=60)
    now = [1000.0]
    storage._cache._timer = lambda: now[0]  # the cache's clock, moved by the test
    for sid in ("left", "stays"):
        storage.save(types.SimpleNamespace(session=types.SimpleNamespace(id=sid)))
        now[0] += 30
    now[0] += 1  # "left" saved 61 s ago: expired; "stays" 31 s ago
    assert set(storage._cache._data) == {"left", "stays"}  # expired, still stored

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runtime = types.SimpleNamespace(
        _session_mgr=types.SimpleNamespace(_session_storage=storage),
        _get_async_objs=lambda: types.SimpleNamespace(eventloop=loop),
    )
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: runtime))
    try:
        assert common.reap_expired_sessions() == 1
        assert set(storage._cache._data) == {"stays"}
        assert common.reap_expired_sessions() == 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_the_streamlit_internals_the_reap_uses_exist_in_the_pinned_version():
    """requirements.txt pins Streamlit 1.67: its session manager keeps the store in _session_storage,
    the memory store its TTL cache in _cache (with expire()), the runtime its loop in
    _get_async_objs().eventloop. Outside a running server the reap does nothing."""
    import inspect

    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_session_storage import MemorySessionStorage
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    import pages.common as common

    assert "self._session_storage = session_storage" in inspect.getsource(WebsocketSessionManager.__init__)
    assert callable(MemorySessionStorage()._cache.expire)
    from streamlit.runtime.runtime import AsyncObjects

    assert callable(Runtime._get_async_objs) and "eventloop" in AsyncObjects.__annotations__
    assert common.stored_session_cache() is None and common.reap_expired_sessions() == 0
