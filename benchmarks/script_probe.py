"""What a Streamlit script run costs the server, measured in-process under ``AppTest``.

Shared by ``benchmarks/app.py`` and ``benchmarks/race_speed.py`` (whose workers load this file by
path from this repository, so a tree measured side by side is measured by the same code). Imports
only Streamlit.

- :func:`script_cpu_probe`: the thread CPU of every script run from now on (the script thread only:
  ``AppTest``'s own bookkeeping in the main thread is not the server's cost), with one compiled
  page shared by every ``AppTest``, as a server's sessions share it;
- :func:`race_chart_probe`: the script CPU of the current run up to the moment the first animated
  Plotly chart (the race chart) was queued for the browser;
- :func:`deflated`: the bytes permessage-deflate sends for a message.
"""

from __future__ import annotations

import time
import zlib

_RUN = {"t0": None, "chart": None}  # the current run's start (thread CPU) and its race chart's time


def deflated(text: str) -> int:
    """Bytes of ``text`` after permessage-deflate (zlib level 6, raw deflate, as tornado sends)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return len(c.compress(text.encode()) + c.flush())


def script_cpu_probe() -> list[float]:
    """Thread CPU seconds of every Streamlit script run in this process from now on. Every
    ``AppTest`` shares one compiled-script cache from now on, as a server's sessions do (``AppTest``
    makes a new one per run and compiles the page again each time)."""
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    app_test.ScriptCache = lambda: shared
    # the script runner AppTest starts makes its own cache too (streamlit 1.67): without this, every
    # run compiled the page again (tens of ms of script CPU a server never spends after its first run)
    local_script_runner.ScriptCache = lambda: shared

    runs: list[float] = []
    original = script_runner.ScriptRunner._run_script
    if getattr(original, "_probe", None) is not None:
        return original._probe

    def timed_run(self, rerun_data):
        _RUN["t0"], _RUN["chart"] = time.thread_time(), None
        try:
            return original(self, rerun_data)
        finally:
            runs.append(time.thread_time() - _RUN["t0"])

    timed_run._probe = runs
    script_runner.ScriptRunner._run_script = timed_run
    return runs


def race_chart_probe() -> None:
    """From now on, note the script CPU (since the run's start, :func:`script_cpu_probe`) at which
    each run queues its first animated Plotly chart; read it with :func:`race_chart_cpu`."""
    from streamlit.runtime.scriptrunner_utils import script_run_context

    context = script_run_context.ScriptRunContext
    if getattr(context.enqueue, "_probe", False):
        return
    enqueue = context.enqueue

    def watched(self, msg):
        enqueue(self, msg)
        if _RUN["chart"] is None and _RUN["t0"] is not None and msg.WhichOneof("type") == "delta":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "plotly_chart" and '"frames"' in element.plotly_chart.spec:
                _RUN["chart"] = time.thread_time() - _RUN["t0"]

    watched._probe = True
    context.enqueue = watched


def race_chart_cpu() -> float | None:
    """The last run's script CPU until its race chart was queued (None: no animated chart)."""
    return _RUN["chart"]
