"""Hostile links: every page's URL parameters fed values no control can take (AppTest through app.py).

``?steps=inf`` used to blank the Surfaces page with ``OverflowError`` (Streamlit's number-input URL
seeding calls ``int()`` before its finiteness check). ``pages.url_params.vet_query_params`` now drops
such values before any widget is built and says so; out-of-range and wrong-type values fall back to
the control's default with a notice. Each page is run with *all* its URL-bound controls set to one
hostile value at a time: no exception box, no traceback text, a notice, bounded time.
"""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from pages.url_params import MAX_VALUE_CHARS, problem_with, vet_params

APP = "../app.py"  # relative to this file (AppTest.from_file resolves against the caller)
TIMEOUT_S = 240  # one cold page run on the busy 2-core machine
PAGES = ("surfaces", "dimer", "networks", "escape_map", "about")
WIDGET_KINDS = (
    "number_input",
    "slider",
    "select_slider",
    "selectbox",
    "multiselect",
    "radio",
    "checkbox",
    "toggle",
    "text_input",
)
HUGE = "9" * 100_000  # a 100 000-digit number
LONG = "x" * 100_000  # a 100 kB string
HOSTILE = {
    "inf": "inf",
    "-inf": "-inf",
    "1e400": "1e400",
    "nan": "NaN",
    "huge": HUGE,
    "negative": "-5",
    "100kB": LONG,
    "repeated": ["1", "inf", "2", "-1e400"],
    "wrong type": "[1, 2]",
}
DROPPED = ("inf", "-inf", "1e400", "nan", "repeated")  # values pages.url_params itself drops
TRACEBACK_MARKERS = ("Traceback", 'File "/', "OverflowError", "site-packages")


def run(page: str, query: dict) -> tuple[AppTest, float]:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params.update(query)
    at.switch_page(f"pages/{page}.py")
    t0 = time.perf_counter()
    at.run()
    return at, time.perf_counter() - t0


def url_keys(at: AppTest) -> list[str]:
    """Keys of the page's widgets (every keyed control of this app is bound to the URL)."""
    keys = []
    for kind in WIDGET_KINDS:
        keys += [w.key for w in getattr(at, kind) if w.key]
    return keys


def page_text(at: AppTest) -> str:
    parts = []
    for node in at._tree:
        for attr in ("value", "message", "stack_trace", "body", "label"):
            try:
                value = getattr(node, attr, None)
            except Exception:
                continue
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, list):
                parts += [str(v) for v in value]
    return "\n".join(parts)


def assert_no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    text = page_text(at)
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"{marker!r} on the page"


@pytest.fixture(scope="module")
def page_keys(one_torch_thread) -> dict[str, list[str]]:
    keys = {}
    for page in PAGES:
        at, _ = run(page, {})
        assert_no_traceback(at)
        keys[page] = url_keys(at)
    return keys


@pytest.mark.parametrize("page", PAGES)
def test_every_url_parameter_of_every_page_survives_hostile_values(page, page_keys):
    keys = sorted({*page_keys[page], "big", "lecture"})  # app.py's sidebar toggles are on every page
    if page != "about":
        assert len(keys) > 10
    for name, value in HOSTILE.items():
        at, seconds = run(page, {key: value for key in keys})
        assert_no_traceback(at)
        assert seconds < TIMEOUT_S, (name, seconds)
        notices = [w.value for w in at.warning if "link were ignored" in w.value]
        if name in DROPPED:  # dropped before any widget, with a notice at the top of the page
            assert notices, (page, name, [w.value for w in at.warning])
        assert all(len(n) < 2000 for n in notices)  # a short notice, not the 100 kB value


def test_steps_inf_on_the_surfaces_page_falls_back_to_the_default_with_a_notice(one_torch_thread):
    at, _ = run("surfaces", {"steps": "inf", "seed": "1e400"})
    assert_no_traceback(at)
    assert at.number_input(key="steps").value == 300 and at.number_input(key="seed").value == 0
    (notice,) = [w.value for w in at.warning if "link were ignored" in w.value]
    assert "steps='inf': not a finite number" in notice and "seed='1e400'" in notice
    assert "steps" not in at.query_params and "seed" not in at.query_params  # the link is cleaned


def test_out_of_range_and_wrong_type_values_fall_back_to_the_defaults(one_torch_thread):
    at, _ = run("escape_map", {"em.steps": "-5", "em.seed": "abc", "em.resolution": "100000"})
    assert_no_traceback(at)
    assert at.number_input(key="em.steps").value == 300 and at.number_input(key="em.seed").value == 0
    assert at.slider(key="em.resolution").value == 30


def test_a_100kB_formula_and_an_over_limit_formula_in_the_link_are_refused_readably(one_torch_thread):
    custom = "✏️ Type a formula"
    at, _ = run("surfaces", {"surface": custom, "formula": LONG, "steps": "20"})
    assert_no_traceback(at)
    assert any("formula='xxxx" in w.value and "too long" in w.value for w in at.warning)
    at, _ = run("surfaces", {"surface": custom, "formula": "1e6**51*x", "steps": "20"})
    assert_no_traceback(at)
    assert any("Formula not understood" in e.value for e in at.error)


def test_a_clean_link_is_left_alone(one_torch_thread):
    at, _ = run("surfaces", {"steps": "40", "seed": "3", "surface": "Rosenbrock"})
    assert_no_traceback(at)
    assert not [w.value for w in at.warning if "link were ignored" in w.value]
    assert at.number_input(key="steps").value == 40 and at.number_input(key="seed").value == 3


# ------------------------------------------------------------------------------------ the pure part


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e400", "nan", "-NaN", HUGE, "1e300", LONG])
def test_values_no_control_can_take_are_refused(value):
    assert problem_with(value) is not None


@pytest.mark.parametrize("value", ["300", "-1.5", "1e-6", "0", "x**2 - y**2", "Rosenbrock", "true", ""])
def test_ordinary_values_pass(value):
    assert problem_with(value) is None


def test_vet_params_caps_keys_values_and_lengths():
    params = {f"k{i}": ["1"] for i in range(300)}
    kept, notices = vet_params(params)
    assert len(kept) == 200 and any("first 200 parameters" in n for n in notices)
    kept, notices = vet_params({"opt": ["GD"] * 100, "k" * 200: ["1"], "f": ["y" * (MAX_VALUE_CHARS + 1)]})
    assert kept == {"opt": ["GD"] * 32}
    assert len(notices) == 3 and all(len(n) < 300 for n in notices)
    kept, notices = vet_params({"steps": ["1", "inf", "2"]})
    assert kept == {"steps": ["1", "2"]} and notices == ["steps='inf': not a finite number"]


def test_a_renamed_parameter_is_read_under_its_new_name_unless_the_link_has_both():
    renamed = {"steps": "em.steps", "seed": "em.seed"}
    kept, notices = vet_params({"steps": ["40"], "seed": ["inf"], "x": ["1"]}, renamed)
    assert kept == {"em.steps": ["40"], "x": ["1"]}
    assert notices == ["em.seed='inf': not a finite number"]
    kept, _ = vet_params({"steps": ["40"], "em.steps": ["50"]}, renamed)
    assert kept == {"steps": ["40"], "em.steps": ["50"]}  # the new name wins; the old one is named as unknown


def test_an_escape_map_link_from_before_its_prefix_opens_with_no_notice(one_torch_thread):
    """The Escape map's parameters took the prefix ``em.``; an old link is read under the new names
    (and the link rewritten), without a notice naming the old ones as settings the page lacks."""
    at, _ = run("escape_map", {"resolution": "5", "steps": "20", "seed": "3", "opt": ["GD", "Adam"]})
    assert_no_traceback(at)
    assert not [w.value for w in at.warning if "link" in w.value]
    assert (at.slider(key="em.resolution").value, at.number_input(key="em.steps").value) == (5, 20)
    assert at.number_input(key="em.seed").value == 3 and at.multiselect(key="em.opt").value == ["gd", "adam"]
    assert "steps" not in at.query_params and at.query_params["em.steps"] == "20"


def test_the_escape_map_link_that_held_a_core_for_8_minutes_is_refused_with_a_sentence(one_torch_thread):
    heavy = {"em.opt": ["DEO (paper)", "DEO-escape", "Dimer saddle search"], "em.resolution": "100"}
    for key in ("deo_paper", "deo_escape", "dimer_saddle_search"):
        heavy |= {f"em.{key}.rotations": "50", f"em.{key}.rotate_every": "1", f"em.{key}.scheme": "central"}
    at, seconds = run("escape_map", heavy)
    assert_no_traceback(at)
    assert at.multiselect(key="em.opt").value == ["deo_paper", "deo_escape", "dimer_saddle_search"]
    assert at.number_input(key="em.deo_escape.rotations").value == 50
    assert any("page's budget" in e.value and "lower the grid" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert seconds < 60  # refused before any work
