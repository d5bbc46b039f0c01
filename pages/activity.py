"""Is a visitor being served? What the server's warm-up of pages no one has asked for yet waits on.

A visitor's activity: a browser loading the app (a front-end file, its websocket: :class:`VisitorActivity`,
a middleware of ``serve.py``) and every script run (app.py's whole run: :func:`script_run`). A server is
*quiet* once none of it has happened for :data:`QUIET_S` seconds: a browser still draws for seconds
after the script run that fed it ended. On 2 cores, with the other pages computed at once beside
it, a first visitor of Surfaces 3 s after serve.py's warm-up waited 5.96 instead of 4.51 s for the
chart (``benchmarks/front_end.py --first-visits 5``); ``serve.warm_pages`` waits for a quiet server
before each piece of work.

No Streamlit, torch or numpy here: the middleware imports it before anything else is loaded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_S = 5.0  # a server is quiet this long after the last activity (its browser still draws)
_LOCK = threading.Lock()
_STATE = {"running": 0, "last": -math.inf}  # script runs in progress; the last activity (_clock())
_clock = time.monotonic  # the activity's clock (a test sets its own)


_LOCAL = threading.local()
BUSY_S = 1.0  # background work in the worker pool gives way once a visitor has been active this recently


@contextmanager
def background() -> Iterator[None]:
    """Work this thread does for no one yet (serve.py's warm-up of the pages): its jobs in the worker
    pool give the worker back to a visitor (:func:`pages.common.session_alive`)."""
    _LOCAL.background = True
    try:
        yield
    finally:
        _LOCAL.background = False


def in_background() -> bool:
    return getattr(_LOCAL, "background", False)


def server_quiet() -> bool:
    """For a background job's ``alive``: False while a visitor is being served (a script runs, or
    one ran or a browser loaded the app less than :data:`BUSY_S` ago)."""
    return quiet_for() >= BUSY_S


def note_activity() -> None:
    """Something a visitor's browser asked for, now."""
    with _LOCK:
        _STATE["last"] = _clock()


@contextmanager
def script_run() -> Iterator[None]:
    """Around a visitor's script run (app.py's whole run): activity from its start to its end."""
    with _LOCK:
        _STATE["running"] += 1
        _STATE["last"] = _clock()
    try:
        yield
    finally:
        with _LOCK:
            _STATE["running"] -= 1
            _STATE["last"] = _clock()


def quiet_for() -> float:
    """Seconds since the last activity (0 while a script runs; inf before any)."""
    with _LOCK:
        return 0.0 if _STATE["running"] else _clock() - _STATE["last"]


def wait_until_quiet(quiet_s: float = QUIET_S, poll_s: float = 0.25, sleep=time.sleep) -> float:
    """Block until there has been no activity for ``quiet_s`` seconds; returns the seconds waited
    (for work that may wait, such as serve.py's warm-up of the pages no one has asked for yet)."""
    waited = 0.0
    while (quiet := quiet_for()) < quiet_s:
        pause = max(poll_s, quiet_s - quiet)
        sleep(pause)
        waited += pause
    return waited


class VisitorActivity:
    """ASGI middleware: a browser loading the app (a request under ``/static/``, a websocket) is a
    visitor's activity. Health checks and other requests are not."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "websocket" or (kind == "http" and "/static/" in scope.get("path", "")):
            note_activity()
        await self.app(scope, receive, send)
