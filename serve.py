"""Start DEO Lab with its heavy imports warmed while the server waits for its first visitor.

``python serve.py [streamlit options]`` is ``streamlit run app.py [streamlit options]`` plus one
background thread that imports what the first visitor's script would otherwise import inside its
own run (Streamlit runs app.py only when a browser connects): torch, ``torch._dynamo`` (torch
imports it lazily at the first ``Optimizer.step``), plotly and its ``plotly_white`` template,
pandas, and the app's own modules. ``benchmarks/app.py --browser`` measures the first visitor's
time to the chart with both commands.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent

PRELOAD = (
    "torch",
    "torch._dynamo",
    "plotly.graph_objects",
    "plotly.io",
    "pandas",
    "deo.race",
    "landscapes",
    "viz.surface_figs",
    "pages.common",
)


def preload() -> None:
    """Import :data:`PRELOAD` (errors are left for the page to meet and report)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # the page imports it again and shows a readable error
            return
    import plotly.io as pio

    pio.templates["plotly_white"]  # Plotly loads a named template lazily


def main() -> None:
    from streamlit.web import cli  # Streamlit's own imports first, in this thread

    sys.path.insert(0, str(ROOT))
    threading.Thread(target=preload, name="deo-preload", daemon=True).start()
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
