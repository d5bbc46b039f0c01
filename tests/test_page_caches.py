"""One computation per link on every page: a function a page's script decorates with
``pages.common.cache_runner`` is a new object at every run of that script, and must still find what
earlier runs and other sessions computed; a second visitor of a link builds no figure again.

Before: the cache keyed on the function object, so the Dimer page recomputed its studies (the
finite-difference sweep, sd vs fourier) and rebuilt its five figures at every run and for every
visitor (1.2 s of server CPU per visit), and the About and Networks pages rebuilt their figures."""

from __future__ import annotations

import runpy
import textwrap

import pytest
from apptest_helpers import assert_clean, page_runner

from pages import common, network_charts
from pages.estimates import network_race

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def counts_of(file_name: str) -> dict[str, int]:
    """Computations of every cached function of ``file_name``, by qualified name."""
    return {
        key.split(":", 1)[1]: value["computations"]
        for key, value in common.function_counts().items()
        if key.split(":", 1)[0] == file_name
    }


def hits_of(file_name: str) -> int:
    return sum(v["hits"] for k, v in common.function_counts().items() if k.split(":", 1)[0] == file_name)


def test_a_function_a_script_defines_again_at_every_run_shares_one_cache(tmp_path):
    """As Streamlit runs a page: the file executed again in a fresh namespace (``runpy``)."""
    script = tmp_path / "page_like.py"
    source = """
        from pages.common import cache_runner

        CALLS = []


        @cache_runner
        def square(x):
            CALLS.append(x)
            return x * x
    """
    script.write_text(textwrap.dedent(source))
    first = runpy.run_path(str(script))
    assert first["square"](7) == 49
    second = runpy.run_path(str(script))  # a rerun: new module namespace, new function object
    assert second["square"] is not first["square"]
    assert second["square"](7) == 49
    assert second["CALLS"] == []  # served from the first run's cache
    assert second["square"].stats()["computations"] == 1
    assert second["square"].stats()["hits"] == 1
    # the two objects are one function for the cache: clearing through either empties it
    first["square"].clear()
    assert second["square"].stats()["entries"] == 0

    script.write_text(textwrap.dedent(source).replace("x * x", "x * x + 1"))  # an edited page
    edited = runpy.run_path(str(script))
    assert edited["square"](7) == 50  # a new function: its own cache
    assert edited["CALLS"] == [7]


def test_functions_of_the_same_name_in_two_files_keep_separate_caches(tmp_path):
    for name, value in (("a.py", 1), ("b.py", 2)):
        (tmp_path / name).write_text(
            "from pages.common import cache_runner\n\n\n@cache_runner\ndef value():\n"
            f"    return {value}\n"
        )
    assert runpy.run_path(str(tmp_path / "a.py"))["value"]() == 1
    assert runpy.run_path(str(tmp_path / "b.py"))["value"]() == 2


def test_a_second_visitor_of_the_dimer_page_computes_and_builds_nothing():
    run = page_runner("dimer.py", 240)
    link = {"dm.x": "-0.41", "dm.y": "1.37", "dm.angle": "35"}  # a point of its own: no other test's
    assert_clean(run(**link))
    first = counts_of("dimer_charts.py")
    # the five studies and grids, and the five figures, were computed or built by this first visitor
    for name in ("rotation_run", "rotation_convergence", "finite_difference_errors", "overview_chart",
                 "rotation_chart", "convergence_chart", "finite_difference_chart", "saddle_search_chart"):
        assert first.get(name, 0) >= 1, name
    hits = hits_of("dimer_charts.py")

    second = run(**link)  # another session, same link
    assert_clean(second)
    assert counts_of("dimer_charts.py") == first
    assert hits_of("dimer_charts.py") >= hits + 8

    second.select_slider(key="dm.length").set_value(1e-2).run()  # changes the rotation, not the sweep
    assert_clean(second)
    now = counts_of("dimer_charts.py")
    changed = {k: v - first.get(k, 0) for k, v in now.items() if v != first.get(k, 0)}
    assert changed == {
        "rotation_run": 1, "rotation_chart": 1, "rotation_convergence": 1, "convergence_chart": 1,
    }  # fmt: skip


def test_a_second_visitor_of_the_about_page_builds_no_figure():
    run = page_runner("about.py", 120)
    assert_clean(run(**{"ab.loss": "train_loss"}))
    first = counts_of("about_charts.py")
    assert first.get("findings_chart", 0) >= 2  # the published curves and the tuned learning rates
    assert_clean(run(**{"ab.loss": "train_loss"}))
    assert counts_of("about_charts.py") == first


def test_a_second_visitor_of_the_networks_page_builds_no_figure():
    run = page_runner("networks.py", 240)
    link = {"nw.problem": "xor", "nw.steps": "37", "nw.seed": "5"}  # a race of its own
    assert_clean(run(**link))
    charts = (network_charts.loss_charts, network_charts.diagnostics_charts, network_charts.slice_charts)
    built = [f.stats()["computations"] for f in charts]
    hits = [f.stats()["hits"] for f in charts]
    second = run(**link)
    assert_clean(second)
    assert [f.stats()["computations"] for f in charts] == built
    assert all(f.stats()["hits"] > h for f, h in zip(charts, hits, strict=True))
    races = network_race.stats()["computations"]
    second.checkbox(key="nw.log").check().run()  # a new view of the same race: charts, no race
    assert_clean(second)
    # the loss and slice charts are drawn on a log axis; the diagnostics do not depend on it
    assert [f.stats()["computations"] for f in charts] == [built[0] + 1, built[1], built[2] + 1]
    assert network_race.stats()["computations"] == races


def test_a_second_visitor_of_the_escape_map_builds_no_figure():
    run = page_runner("escape_map.py", 240)
    link = {"em.resolution": "6", "em.steps": "23", "em.seed": "11"}  # a map of its own
    assert_clean(run(**link))
    first = counts_of("escape_map_defaults.py")
    assert first.get("escape_charts", 0) >= 1
    assert_clean(run(**link))
    assert counts_of("escape_map_defaults.py") == first


def test_available_says_cached_or_being_computed_for_another_session():
    """``available``: a second session's page sees a computation in flight (and waits for it instead
    of asking for a Run press); ``contains`` only a finished one."""
    import threading

    release, started = threading.Event(), threading.Event()

    @common.cache_runner
    def slow(x):
        started.set()
        release.wait(30)
        return x + 1

    slow.clear()
    assert not slow.available(1) and not slow.contains(1)
    worker = threading.Thread(target=slow, args=(1,))
    worker.start()
    try:
        assert started.wait(30)
        assert slow.available(1) and not slow.contains(1)
        assert not slow.available(2)
    finally:
        release.set()
        worker.join(30)
    assert slow.available(1) and slow.contains(1)
    assert slow(1) == 2 and slow.stats()["computations"] == 1
    slow.clear()


@pytest.mark.parametrize("page", ["escape_map.py", "networks.py"])
def test_a_result_being_computed_for_another_session_is_waited_for_without_a_run_button(monkeypatch, page):
    """Every request asks for Run here (``RUN_BUTTON_SECONDS`` 0) unless its result is available: one
    another session computes (``available`` True) is shown without the button."""
    import pages.estimates
    from pages.common import cached_escape_map

    monkeypatch.setattr(pages.estimates, "RUN_BUTTON_SECONDS", 0.0)
    link = {"em.resolution": "5", "em.steps": "21", "em.seed": "31"} if page == "escape_map.py" else {
        "nw.steps": "20", "nw.seed": "31", "nw.grid": "11"
    }  # fmt: skip
    run = page_runner(page, 240)
    assert [b.label for b in run(**link).button] == ["Run"]
    fns = [cached_escape_map] if page == "escape_map.py" else [network_race, pages.estimates.network_slice]
    for fn in fns:
        monkeypatch.setattr(fn, "available", lambda *args, **kwargs: True)
    at = run(**link)
    assert_clean(at)
    assert not at.button and at.get("plotly_chart")
