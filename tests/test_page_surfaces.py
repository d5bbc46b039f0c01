"""The Surfaces page as a person uses it (streamlit.testing.v1.AppTest on pages/surfaces.py).

The page is run directly (as ``st.navigation`` runs it from app.py). Races are cached per process,
so the default race runs once for this file; other tests use short budgets from the URL.
"""

from __future__ import annotations

import pytest
from apptest_helpers import assert_clean, no_exception, page_runner
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 240  # a cold race on a busy 2-core machine


run_page = page_runner("surfaces.py", TIMEOUT_S)


def results(at: AppTest):
    return at.dataframe[0].value.set_index("optimizer")


def test_default_page_races_gd_adam_and_both_deo_presets_without_errors():
    at = run_page()
    no_exception(at)
    assert not at.error
    assert at.title[0].value == "Surfaces"
    assert at.selectbox(key="surface").value == "saddle_plateau"
    # DEO-escape's random-direction control runs beside it by default (issue 11)
    assert at.multiselect(key="opt").value == ["gd", "adam", "deo_paper", "deo_escape", "deo_escape_random"]
    table = results(at)
    assert list(table.index) == [
        "GD",
        "Adam",
        "DEO (paper)",
        "DEO-escape",
        "DEO-escape — control: random fixed direction",
    ]
    # the story and the control's meaning are told beside the chart, with the table they rest on
    told = " ".join(c.value for c in at.caption)
    assert "control" in told and "controls.md" in told and "runs on GD's path" in told
    fates = " ".join(m.value for m in at.markdown)
    assert "escaped at step 269" in fates and "escaped at step 154" in fates
    assert (table["steps run"] <= 300).all()
    # a run that never escaped has no escape step: the table shows a dash, not Streamlit's grey "None"
    assert table.loc["DEO (paper)", "status"] == "stuck" and table["escape step"].isna()["DEO (paper)"]
    assert at.dataframe[0].proto.placeholder == "—"
    assert at.get("plotly_chart")  # the race figure and the loss curves


def test_changing_the_surface_moves_the_start_to_its_default_and_reruns():
    at = run_page(steps="30")
    at.selectbox(key="surface").set_value("rosenbrock").run()
    no_exception(at)
    assert (at.number_input(key="x0").value, at.number_input(key="y0").value) == (-2.0, 2.0)  # SURFACES.md
    assert any(m.value.startswith("$f(x, y) = ") and "100" in m.value for m in at.markdown)


def test_changing_optimizers_and_steps_changes_the_race():
    at = run_page(steps="30")
    at.multiselect(key="opt").set_value(["adam", "pgd"]).run()
    at.number_input(key="steps").set_value(20).run()
    no_exception(at)
    table = results(at)
    assert list(table.index) == ["Adam", "PGD"]
    assert (table["steps run"] <= 20).all()


def test_a_bad_formula_shows_a_readable_error_and_no_exception():
    at = run_page(surface="✏️ Type a formula", formula="x**", steps="20")
    no_exception(at)
    assert any("Formula not understood" in e.value for e in at.error)
    at.text_input(key="formula").set_value("x**2 - y**2").run()
    no_exception(at)
    assert not at.error
    assert at.dataframe  # the custom surface races


def test_a_bad_formulas_message_shows_verbatim_as_code_in_the_main_area_and_the_page_stays():
    at = run_page(surface="✏️ Type a formula", formula="x**2 - y**2", steps="20")
    assert at.dataframe and not at.error
    at.text_input(key="formula").set_value('__import__("os")').run()
    no_exception(at)
    # the input, the error and its message are in the main area (not the sidebar) ...
    assert at.main.text_input(key="formula").value == '__import__("os")'
    assert [e.value for e in at.main.error] == ["Formula not understood — fix it above:"]
    assert not at.sidebar.error
    # ... the message as code, so Markdown cannot turn __import__ into a bold "import"
    messages = [c.value for c in at.main.code]
    assert any("'__import__' is not allowed" in m for m in messages), messages
    # ... and the rest of the page stays: the last formula that worked still races and is drawn
    assert any("`x**2 - y**2`" in c.value for c in at.caption)
    assert at.dataframe and at.get("plotly_chart")
    assert results(at).index[0] == "GD"


def test_gd_with_lr_10_on_rosenbrock_is_marked_diverged_and_the_others_go_on():
    at = run_page(surface="Rosenbrock", opt=["GD", "Adam"], steps="40", **{"gd.lr": "10"})
    no_exception(at)
    assert at.number_input(key="gd.lr").value == 10.0
    table = results(at)
    assert table.loc["GD", "status"] == "diverged"
    assert table.loc["Adam", "status"] != "diverged"
    assert table.loc["Adam", "steps run"] == 40


def test_an_empty_optimizer_selection_says_what_to_do():
    at = run_page(steps="20")
    at.multiselect(key="opt").set_value([]).run()
    no_exception(at)
    assert any("at least one optimizer" in i.value for i in at.info)
    assert not at.dataframe


def test_a_start_outside_the_window_from_a_link_is_refused_with_a_message():
    at = run_page(x0="99", steps="20")
    no_exception(at)
    assert at.number_input(key="x0").value == 1.0  # saddle_plateau's default start
    assert any("outside the window" in w.value for w in at.warning)


def test_an_absurd_step_count_from_a_link_falls_back_to_a_bounded_budget():
    at = run_page(steps="1000000000", opt=["GD"])
    no_exception(at)
    steps = at.number_input(key="steps").value
    assert 10 <= steps <= 5000  # the widget's bounds (STEPS_MIN, STEPS_MAX)
    assert results(at).index.tolist() == ["GD"]


@pytest.mark.parametrize("lecture", ["true", "false"])
def test_the_url_restores_the_whole_configuration(lecture):
    at = run_page(
        surface="Double well",
        opt=["Adam", "DEO-escape"],
        steps="25",
        seed="3",
        x0="0.5",
        y0="-0.25",
        offset="0.001",
        clip="2",
        speed="2×",
        lecture=lecture,
        **{"adam.lr": "0.05"},
    )
    no_exception(at)
    assert at.selectbox(key="surface").value == "double_well"
    assert at.multiselect(key="opt").value == ["adam", "deo_escape"]
    assert at.number_input(key="steps").value == 25
    assert at.number_input(key="seed").value == 3
    assert (at.number_input(key="x0").value, at.number_input(key="y0").value) == (0.5, -0.25)
    assert at.number_input(key="offset").value == 0.001
    assert at.number_input(key="clip").value == 2.0
    assert at.number_input(key="adam.lr").value == 0.05
    assert at.select_slider(key="speed").value == 2.0
    assert any("Clipping on" in c.value for c in at.caption)
    assert list(results(at).index) == ["Adam", "DEO-escape"]


def test_runner_cache_is_bounded_lru_and_ignores_underscore_arguments():
    from pages.common import MAX_CACHE_ENTRIES, cache_runner

    calls = []

    @cache_runner
    def square(x, options, _progress=None):
        calls.append(x)
        return x * x

    assert square(3, {"a": [1, 2]}, _progress=print) == 9
    assert square(3, {"a": [1, 2]}, _progress=None) == 9  # same key: the callback is not part of it
    assert calls == [3]
    for x in range(MAX_CACHE_ENTRIES):
        square(100 + x, {})
    square(3, {"a": [1, 2]})  # evicted by the newer entries: computed again
    assert calls.count(3) == 2


def test_the_progress_bar_is_redrawn_at_most_every_tenth_of_a_second_and_at_the_end(monkeypatch):
    """A race reports every 1 % of its steps; the bar sends a message only when 0.1 s has passed
    since the last one it sent, and always for the end (fraction 1)."""
    import pages.common as common

    drawn = []

    class Bar:
        def progress(self, value, text=""):
            drawn.append((value, text))
            return self

    class Slot:
        def progress(self, value, text=""):
            drawn.append((value, text))
            return Bar()

        def empty(self):
            drawn.append("closed")

    monkeypatch.setattr(common.st, "empty", lambda: Slot())
    now = [100.0]
    report, close = common.progress_reporter("Racing…", clock=lambda: now[0])
    assert drawn == [(0.0, "Racing…")]
    for step in range(1, 100):  # 99 reports within 0.05 s: none drawn
        now[0] += 0.0005
        report(step / 100, f"step {step}")
    assert drawn == [(0.0, "Racing…")]
    now[0] += 0.06  # 0.1 s after the bar was drawn
    report(0.995, "step 199")
    report(0.996, "step 200")  # at once after: not drawn
    report(1.0, "done")  # the end: always drawn
    close()
    assert drawn == [(0.0, "Racing…"), (0.995, "Racing… step 199"), (1.0, "Racing… done"), "closed"]
    assert common.PROGRESS_EVERY_S == 0.1


def test_a_run_another_covers_is_named_under_the_loss_charts():
    """On Rosenbrock with the default optimizers Adam's loss lies under DEO (paper)'s and GD's under
    DEO-escape's (the chart draws them as bands); the caption says so, with the largest difference."""
    at = run_page(surface="Rosenbrock")
    no_exception(at)
    captions = " ".join(c.value for c in at.caption)
    assert "GD lies under DEO-escape on the left chart" in captions
    assert "Adam lies under DEO (paper) on the left chart" in captions
    assert "on the right chart" not in captions


def test_the_published_code_beside_a_clip_runs_unclipped_and_the_caption_says_so():
    at = run_page(opt=["GD", "DEO (published code)"], clip="0.5", steps="30")
    assert_clean(at)
    assert list(results(at).index) == ["GD", "DEO (published code)"]
    assert any(
        "for every optimizer but DEO (published code), whose code has no clipping" in c.value
        for c in at.caption
    )


@pytest.mark.parametrize(
    "query",
    [
        {"surface": "✏️ Type a formula", "formula": "x**2 + y**2"},
        {"surface": "Rosenbrock"},
    ],
    ids=["typed formula", "rosenbrock"],
)
def test_a_surface_without_a_saddle_never_reads_stuck_no_escape(query):
    """No saddle listed, no escape criterion: a run that used its steps is "out of steps", not
    "stuck: no escape" (every run on a typed bowl read "stuck" while reaching its minimum)."""
    at = run_page(**query, steps="100", opt=["GD", "Adam"])
    assert_clean(at)
    assert set(results(at)["status"]) <= {"out of steps", "converged"}
    fates = " ".join(m.value for m in at.markdown)
    assert "out of steps: 100 steps without converging" in fates and "no escape in" not in fates
    assert "so no escape is timed" in fates


def test_a_formula_defined_nowhere_in_the_window_says_so_and_each_run_is_undefined_at_its_start():
    at = run_page(surface="✏️ Type a formula", formula="log(-1 - x**2)", steps="20", opt=["GD"])
    no_exception(at)
    assert any("not defined (not finite) anywhere in the window" in w.value for w in at.warning)
    fates = " ".join(m.value for m in at.markdown)
    assert "undefined at its start" in fates and "diverged at step 0" not in fates
