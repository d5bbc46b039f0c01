"""Send a cached figure's JSON instead of serialising it again on every rerun.

``st.plotly_chart(fig)`` turns the figure into a dict (``fig.to_dict()``) and then into JSON
(``plotly.io.to_json(dict, validate=False)``) on every script run. For the animated race figure
(≈ 1 MB of JSON) that encoding was about half of the server CPU an additional visitor of an
already computed link costs (py-spy, warm ``AppTest`` runs of pages/surfaces.py), and most of a
view-only rerun.

:func:`wire_ready` serialises a frozen, cached figure once (``viz.surface_figs.AnimatedFigure``:
``to_dict`` always returns the same dict) and remembers that JSON; :func:`install` wraps
``plotly.io.to_json`` so that, for exactly that dict object, the remembered string is returned —
the same string the original function produced for it. Any other call goes to Plotly unchanged.
The memo lives on the figure (a weak registry keyed by the dict's id), so it goes when the cache
evicts the figure.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_LOCK = threading.Lock()
_BY_DICT_ID: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id(frozen dict) -> figure
_ORIGINAL: list = []  # plotly.io.to_json before install()
STATS = {"served": 0}  # JSON strings served from the memo (tests read it)


def _to_json(fig: Any, *args: Any, **kwargs: Any) -> str:
    if not args and set(kwargs) <= {"validate"} and isinstance(fig, dict):
        owner = _BY_DICT_ID.get(id(fig))
        memo = getattr(owner, "_wire_json", None) if owner is not None else None
        if memo is not None and memo[0] is fig:
            STATS["served"] += 1
            return memo[1]
    return _ORIGINAL[0](fig, *args, **kwargs)


def install() -> None:
    """Wrap ``plotly.io.to_json`` (once per process; Streamlit looks it up at every call)."""
    import plotly.io

    with _LOCK:
        if not _ORIGINAL:
            _ORIGINAL.append(plotly.io.to_json)
            plotly.io.to_json = _to_json


def wire_ready(fig: Any) -> Any:
    """Serialise a frozen figure (its ``to_dict`` returns one shared dict) once, as
    ``st.plotly_chart`` would, and serve that JSON for it from now on; returns ``fig``.
    A figure that composes its own JSON (``wire_json()``, ``viz.surface_figs.RaceFigure``: the
    JSON of its dict, assembled from pieces encoded once) is served that string instead.
    A figure without ``freeze`` is returned as it is."""
    if not hasattr(fig, "freeze"):
        return fig
    install()
    frozen = fig.to_dict()
    if frozen is not fig.to_dict():  # not frozen: nothing stable to remember
        return fig
    own = getattr(fig, "wire_json", None)
    fig._wire_json = (frozen, own() if own is not None else _ORIGINAL[0](frozen, validate=False))
    with _LOCK:
        _BY_DICT_ID[id(frozen)] = fig
    return fig


def wire_bytes(fig: Any) -> int:
    """Length of the remembered JSON (0 when none): for the cache's byte budget."""
    memo = getattr(fig, "_wire_json", None)
    return len(memo[1]) if memo else 0
