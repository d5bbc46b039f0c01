"""Bounding-box geometry for the browser tests (Playwright's ``bounding_box()`` dicts), and a page
that draws Plotly figures one after another."""

from __future__ import annotations

import json
from pathlib import Path

import plotly


def overlap(a: dict, b: dict) -> bool:
    """Whether two boxes ``{"x", "y", "width", "height"}`` share any area."""
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_DRAW = """async fig => {
    const gd = document.getElementById("chart");
    Plotly.purge(gd);
    await Plotly.newPlot(gd, fig.data, fig.layout, {});
}"""


def figure_page(chromium, width: int, height: int = 1400):
    """A blank Chromium page with plotly.js loaded once (a standalone HTML page per figure embedded
    its 4.8 MB every time), for :func:`draw`."""
    page = chromium.new_page(viewport={"width": width, "height": height})
    page.set_content('<html><body style="margin:0"><div id="chart"></div></body></html>')
    page.add_script_tag(path=str(PLOTLY_JS))
    return page


def draw(page, fig) -> None:
    """Draw ``fig`` (data and layout; no frames) in :func:`figure_page`'s page, replacing the last
    one; returns once plotly.js has drawn it."""
    page.evaluate(_DRAW, json.loads(fig.to_json()))


def toolbar_covers(page) -> list[str]:
    """The legend entries that Plotly's toolbar covers in :func:`figure_page`'s drawn figure, with
    the pointer over the plot (where a desktop shows the toolbar)."""
    page.locator("rect.nsewdrag").first.hover()
    bar = page.locator(".modebar").first.bounding_box()
    assert bar and bar["width"] > 0, "no toolbar drawn"
    entries = page.locator("g.legend").first.locator("g.traces").all()
    assert entries, "no legend entries drawn"
    return [entry.text_content() for entry in entries if overlap(bar, entry.bounding_box())]
