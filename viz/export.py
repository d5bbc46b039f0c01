"""Standalone HTML of a figure: one file that plays the animation offline.

plotly.js is embedded (``include_plotlyjs=True``, about 4.8 MB): the app and its downloads must work
without a network, so a CDN link is not an option. Keep the figure itself small (the race figure
for export uses fewer frames and path vertices) to stay near the 5 MB target of ``UX.md``.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
import plotly.io as pio

EXPORT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}


def standalone_html(fig: go.Figure, title: str = "DEO Lab") -> str:
    """The complete HTML page of ``fig`` with plotly.js inlined; animation frames included.

    ``fig.to_dict()`` is used (so :class:`viz.surface_figs.AnimatedFigure` keeps its plain frames);
    the animation does not start by itself — press ▶ Play.
    """
    body = pio.to_html(
        fig.to_dict(),
        include_plotlyjs=True,
        full_html=False,
        auto_play=False,
        config=EXPORT_CONFIG,
        validate=False,
        default_width="100%",
        default_height="90vh",
    )
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f'<title>{html.escape(title)}</title>\n</head>\n<body style="margin: 0; font-family: sans-serif;">\n'
        f'<h3 style="margin: 8px 16px;">{html.escape(title)}</h3>\n{body}\n</body>\n</html>\n'
    )
