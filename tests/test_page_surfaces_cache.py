"""One computation per link on the Surfaces page: a second visitor of a computed link and view-only
changes reuse the cached race, its figures and the figure's JSON (counters of the cached functions,
``pages.common.cache_runner``'s ``stats()``, and ``pages.plotly_wire.STATS``)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
from apptest_helpers import no_exception, page_runner

from pages import plotly_wire
from pages.common import cached_race_figure, cached_race_layers, cached_surface_race, cached_trace_figure
from viz.surface_figs import FrozenFigure

run_page = page_runner("surfaces.py", 240)
LINK = {"steps": "30", "seed": "424242"}  # a link of its own: no other test computes it


def computations() -> dict:
    return {
        "race": cached_surface_race.stats()["computations"],
        "race figure": cached_race_figure.stats()["computations"],
        "race layers": cached_race_layers.stats()["computations"],
        "trace figures": cached_trace_figure.stats()["computations"],
    }


def race_chart_spec(at) -> dict:
    charts = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec).get("frames")]
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def legend_names(spec: dict) -> dict:
    """Legend entry per legend group (the grey key entries name each kind of drawing)."""
    return {t["legendgroup"]: t["name"] for t in spec["data"] if t.get("showlegend") and t.get("legendgroup")}


def test_a_second_visitor_and_view_only_changes_never_recompute_the_race_or_rebuild_its_figures():
    first = run_page(**LINK)
    no_exception(first)
    after_first = computations()
    served = plotly_wire.STATS["served"]

    second = run_page(**LINK)  # another session opens the same link
    no_exception(second)
    assert computations() == after_first  # nothing computed or built again
    # the JSON of the race figure and of both loss figures (the open tab) was not encoded again
    assert plotly_wire.STATS["served"] >= served + 3
    assert race_chart_spec(second) == race_chart_spec(first)

    second.selectbox(key="zoom").set_value("10").run()  # a view the link had not drawn yet
    no_exception(second)
    drawn = computations()
    assert drawn["race"] == after_first["race"]
    assert drawn["race figure"] == after_first["race figure"] + 1
    assert drawn["race layers"] == after_first["race layers"]  # only the view drawn on them
    assert legend_names(race_chart_spec(second))["dimer"] == "dimer (ΔR ×10)"

    second.selectbox(key="zoom").set_value("auto").run()  # back: the figure on screen before
    second.checkbox(key="log_loss").check().run()  # the loss curves on a log axis: built once
    second.checkbox(key="log_loss").uncheck().run()
    no_exception(second)
    assert computations() == {**drawn, "trace figures": drawn["trace figures"] + 2}
    assert race_chart_spec(second) == race_chart_spec(first)


def test_the_remembered_json_is_plotlys_own_serialisation_and_other_figures_pass_through():
    plotly_wire.install()
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[1.5, float("nan"), 2.0]), layout={"title": "t"})
    fig = plotly_wire.wire_ready(FrozenFigure(figure).freeze())
    assert fig.to_dict() is fig.to_dict()  # one shared dict
    assert json.loads(pio.to_json(fig.to_dict(), validate=False)) == json.loads(figure.to_json())
    expected = plotly_wire._ORIGINAL[0](fig.to_dict(), validate=False)
    served = plotly_wire.STATS["served"]
    assert pio.to_json(fig.to_dict(), validate=False) == expected
    assert plotly_wire.STATS["served"] == served + 1
    assert plotly_wire.wire_bytes(fig) == len(expected)
    other = go.Figure(go.Scatter(x=[1], y=[2])).to_dict()  # not remembered: Plotly serialises it
    assert json.loads(pio.to_json(other, validate=False))["data"][0]["y"] == [2]
    assert plotly_wire.STATS["served"] == served + 1
    assert plotly_wire.wire_ready(go.Figure()) is not None  # no freeze: returned unchanged


VIEW_CHANGES = [  # (widget, key, a value the link has not drawn, what the figure then says)
    ("select_slider", "speed", 4.0, lambda spec: spec["layout"]["updatemenus"][0]["buttons"][0]["args"][1]),
    (
        "selectbox",
        "zoom",
        "1000",
        lambda spec: legend_names(spec)["dimer"],
    ),
    ("radio", "arrows", "scale", lambda spec: spec["frames"][5]["data"]),
    ("checkbox", "show_dimer", False, lambda spec: len(spec["frames"][0]["data"])),
    ("checkbox", "show_arrows", False, lambda spec: len(spec["frames"][0]["data"])),
    ("checkbox", "show_vmin", False, lambda spec: len(spec["frames"][0]["data"])),
]


def test_every_view_control_draws_a_new_view_on_the_cached_race_without_recomputing_it():
    at = run_page(steps="20", seed="424243")  # a link of its own
    no_exception(at)
    base = computations()
    default = race_chart_spec(at)
    for n, (widget, key, value, seen) in enumerate(VIEW_CHANGES, start=1):
        getattr(at, widget)(key=key).set_value(value).run()  # a value never drawn for this race
        no_exception(at)
        spec = race_chart_spec(at)
        assert seen(spec) != seen(default), key  # the figure shows the new view
        assert computations() == {**base, "race figure": base["race figure"] + n}, key  # no race, no layers
    for widget, key, _, _ in VIEW_CHANGES:  # every control back: each of those views was drawn before
        element = getattr(at, widget)(key=key)
        element.set_value(
            True if widget == "checkbox" else {"speed": 1.0, "zoom": "auto", "arrows": "direction"}[key]
        )
    at.run()
    no_exception(at)
    assert race_chart_spec(at) == default
    assert computations()["race figure"] == base["race figure"] + len(VIEW_CHANGES)  # a cache hit
