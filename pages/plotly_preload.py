"""The browser starts loading Plotly's front-end code with the page, not after the first chart arrives.

Streamlit 1.67's front end loads the code that draws ``st.plotly_chart`` — its ``PlotlyChart`` chunk,
plotly.js inside it, 4.7 MB (1.4 MB gzipped) — only when the first Plotly element reaches the browser
(a lazy ``import()``). A new visitor's Chromium therefore downloads, compiles and runs plotly.js
*after* the race figure has arrived, and the chart waits for all of it (``benchmarks/app.py
--first-visits``: "browser render", ≈ 2 s of a new visitor's 3.6 s on the 2-core machine).

Every page of DEO Lab draws Plotly charts, so that code is always needed.
:class:`PlotlyPreload` is an ASGI middleware (given to ``st.App`` by ``serve.py``, beside
:class:`pages.compressed_static.CompressedStatic`) that adds two elements to the head of the HTML page
Streamlit serves (:func:`preload_tags`):

- ``<link rel="modulepreload">`` of the chunk: the browser fetches and compiles it in parallel with
  Streamlit's own scripts, instead of after the figure;
- a module script that imports it when the browser's main thread is first idle
  (``requestIdleCallback``): once Streamlit's front end has started and opened its websocket, while
  the server runs the script, plotly.js is evaluated (≈ 1 s of a 2-core machine's main thread), not
  after the figure has arrived. Evaluating it at once instead (a plain ``import()``) delayed
  Streamlit's own start by as much, and the chart came no sooner.

ES modules are evaluated once per document and URL, so Streamlit's own lazy ``import()`` gets the same
module (already evaluated, or being evaluated). Where the chunk is not found (another Streamlit build)
nothing is added. ``benchmarks/front_end.py --against <tree>`` measures a new browser's time to the
chart with and without it.

Only ``GET`` requests that accept HTML, answered ``200`` with ``text/html`` and no content encoding, are
rewritten (the index page, ≈ 8 KB, which Streamlit serves uncompressed with ``Cache-Control:
no-cache``): another body, so another ``ETag`` (Streamlit's with a suffix).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pages.compressed_static import (
    PREFIX,
    Receive,
    Scope,
    Send,
    capture_response,
    request_header,
    suffixed_etag,
)

CHUNK = re.compile(r"PlotlyChart\.[A-Za-z0-9_-]+\.js")  # Vite's name: the component, its content hash
ETAG_SUFFIX = b"-plotly"
SKIP = (PREFIX, "/_stcore/", "/media/", "/app/static/", "/component/")  # never an HTML page
# Only a request that accepts HTML (a browser's navigation sends ``Accept: text/html,…``; its script,
# style and fetch requests do not) has its response captured: under a ``server.baseUrlPath`` the
# asset paths do not start with SKIP's prefixes, and they still pass straight through.


@cache
def plotly_chunk() -> str | None:
    """The file name of Streamlit's ``PlotlyChart`` chunk (e.g. ``PlotlyChart.D9Z0_fxz.js``), or None
    when the installed Streamlit has none or more than one."""
    import streamlit

    folder = Path(streamlit.__file__).parent / "static" / PREFIX.strip("/") / "js"
    names = [path.name for path in folder.glob("PlotlyChart.*.js") if CHUNK.fullmatch(path.name)]
    return names[0] if len(names) == 1 else None


def preload_tags(chunk: str) -> bytes:
    """The elements added to the page's ``<head>`` (module doc): the chunk's ``modulepreload`` link and
    a module script importing it at the first idle moment (``setTimeout`` where the browser has no
    ``requestIdleCallback``; a failed import is left to Streamlit's own, which reports it). The URL is
    relative, like Streamlit's own asset links."""
    url = f"./{PREFIX.strip('/')}/js/{chunk}"
    script = (
        f'const load = () => import("{url}").catch(() => {{}}); '
        'if ("requestIdleCallback" in window) requestIdleCallback(load); else setTimeout(load, 0);'
    )
    link = f'<link rel="modulepreload" crossorigin href="{url}">'
    return f'{link}<script type="module">{script}</script>'.encode()


def with_preload(html: bytes, chunk: str) -> bytes | None:
    """``html`` with :func:`preload_tags` before ``</head>``; None when there is no ``</head>`` or the
    page already names the chunk."""
    if chunk.encode() in html:
        return None
    at = html.find(b"</head>")
    if at < 0:
        return None
    return html[:at] + preload_tags(chunk) + html[at:]


class PlotlyPreload:
    """ASGI middleware: Streamlit's HTML page with :func:`preload_tags` in its head (module doc)."""

    def __init__(self, app, chunk: str | None = None) -> None:
        self.app = app
        self.chunk = chunk if chunk is not None else plotly_chunk()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            self.chunk is None
            or scope["type"] != "http"
            or scope.get("method") != "GET"
            or path.startswith(SKIP)
            or b"text/html" not in request_header(scope, b"accept")
        ):
            await self.app(scope, receive, send)
            return
        start, body = await capture_response(self.app, scope, receive)
        headers = list(start.get("headers", []))
        named = {k.lower(): v for k, v in headers}
        page = None
        if (
            start.get("status") == 200
            and named.get(b"content-type", b"").startswith(b"text/html")
            and b"content-encoding" not in named
        ):
            page = with_preload(body, self.chunk)
        if page is not None:
            body, headers = page, _rewritten(headers, len(page))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _rewritten(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """The page's headers for the longer body: its length, and its ETag with :data:`ETAG_SUFFIX`."""
    out = []
    for key, value in headers:
        name = key.lower()
        if name == b"content-length":
            value = str(length).encode()
        elif name == b"etag":
            value = suffixed_etag(value, ETAG_SUFFIX)
        out.append((key, value))
    return out
