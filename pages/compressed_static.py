"""Streamlit's front-end files, gzip-compressed once per server process and then served from memory.

Streamlit 1.67 sends its JavaScript uncompressed: its ``SelectiveGZipMiddleware`` skips
``/static/`` on purpose (gzip per request would cost CPU on every hit; it expects a proxy or a CDN in
front to compress and cache). A lecturer's laptop serving one link to a class has neither: every
new browser then downloads ≈ 9.9 MB (3.1 MB gzipped), thirty of them ≈ 300 MB over the room's
Wi-Fi, and the server's Python pushes every byte (≈ 0.3 s of its CPU per new browser,
``benchmarks/load.py``).

:class:`CompressedStatic` is an ASGI middleware (given to ``st.App`` by ``serve.py``): the first
``GET /static/…`` of a file that accepts gzip is answered by Streamlit as usual, compressed (in a
worker thread, once however many browsers ask at the same moment), kept, and every later request for
that path is answered from memory. Only responses Streamlit marks ``immutable`` are kept: its asset
names carry a content hash, so those bytes never change while the process runs, and the set of such
paths is the package's own (an unknown path gets the ``no-cache`` index page, which is passed on).
Memory is bounded by ``max_bytes`` (a response that does not fit is compressed for that request
only); Streamlit 1.67's text assets are 23 MB, 6.9 MB compressed.

Immutable responses that gzip would not shrink — under ``MIN_SIZE`` (Streamlit 1.67 has ~50 such
script chunks in a page load) or of a type that does not compress (fonts, images) — are kept as they
are, and served from memory the same way: a new browser's ~140 requests then never reach Streamlit's
file handler (a file ``stat``, ``open`` and ``read`` in worker threads per request).

Left as Streamlit answers them: other paths, other methods, ``Range`` requests, browsers that do not
accept gzip, responses that are not 200 and ``immutable``, already encoded, or that set a cookie (a
cached cookie would go to every visitor).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/static/"  # Streamlit's front-end assets (with no ``server.baseUrlPath``)
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MIN_SIZE = 1024  # bytes: below this gzip's header and a round trip outweigh the saving
LEVEL = 6  # zlib's default: level 9 saves 1 % more of PlotlyChart.js for twice the CPU
MAX_BYTES = 32 << 20  # bytes kept per process (Streamlit 1.67: 6.9 MB gzipped text, 2.3 MB fonts and images)
HOP_HEADERS = {b"content-length", b"etag", b"content-encoding"}  # rewritten for the gzip body


@dataclass(frozen=True)
class Kept:
    """A kept 200 response, gzipped or as it was: its headers (ready to send) and body."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes | None


class CompressedStatic:
    """ASGI middleware: gzip ``/static/`` responses once, then serve them from memory (module doc)."""

    def __init__(self, app, max_bytes: int = MAX_BYTES, level: int = LEVEL) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.level = level
        self.cached: dict[str, Kept] = {}
        self.plain: set[str] = set()  # paths Streamlit answered with something this leaves alone
        self._pending: dict[str, asyncio.Future] = {}

    @property
    def cached_bytes(self) -> int:
        """Bytes kept, compressed or as they were (≤ ``max_bytes``)."""
        return sum(len(entry.body) for entry in self.cached.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if not self._eligible(scope, path):
            await self.app(scope, receive, send)
            return
        entry = self.cached.get(path)
        if entry is None:
            pending = self._pending.get(path)
            if pending is not None:  # another browser's request is compressing it: wait for that one
                entry = await asyncio.shield(pending)
            if entry is None:
                entry = await self._fetch(scope, receive, send, path)
                if entry is None:  # already answered as Streamlit answered it
                    return
        etag = entry.etag
        if etag is not None and etag in request_header(scope, b"if-none-match").split(b", "):
            headers = [(k, v) for k, v in entry.headers if k in (b"cache-control", b"etag", b"vary")]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": list(entry.headers)})
        await send({"type": "http.response.body", "body": entry.body})

    def _eligible(self, scope: Scope, path: str) -> bool:
        return (
            scope["type"] == "http"
            and scope.get("method") == "GET"
            and path.startswith(PREFIX)
            and path not in self.plain
            and b"gzip" in request_header(scope, b"accept-encoding")
            and not request_header(scope, b"range")
        )

    async def _fetch(self, scope: Scope, receive: Receive, send: Send, path: str) -> Kept | None:
        """Ask Streamlit for ``path``; compress and keep a 200 response that qualifies and return it,
        or send any other response unchanged and return None."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[path] = future
        entry = None
        try:
            start, body = await capture_response(self.app, scope, receive)
            headers = {k.lower(): v for k, v in start.get("headers", [])}
            immutable = start["status"] == 200 and b"immutable" in headers.get(b"cache-control", b"")
            if not immutable or b"content-encoding" in headers or b"set-cookie" in headers:
                if immutable:  # never asked again (a bounded set of asset names)
                    self.plain.add(path)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return None
            compressible = headers.get(b"content-type", b"").decode("latin-1").startswith(COMPRESSIBLE)
            if len(body) < MIN_SIZE or not compressible:  # kept as it is: a small chunk, a font, an image
                entry = _as_is(start["headers"], body)
            else:
                packed = await anyio.to_thread.run_sync(lambda: gzip.compress(body, self.level, mtime=0))
                entry = _compressed(start["headers"], packed)
            if self.cached_bytes + len(entry.body) <= self.max_bytes:
                self.cached[path] = entry
            return entry
        finally:
            del self._pending[path]
            future.set_result(entry)  # waiting requests fetch for themselves when this is None


async def capture_response(app, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Run ``app`` for one HTTP request; its response start message and whole body."""
    start: Message = {}
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return start, b"".join(chunks)


def _etag(headers) -> bytes | None:
    return next((v for k, v in headers if k.lower() == b"etag"), None)


def _as_is(headers, body: bytes) -> Kept:
    """Streamlit's own 200 response, kept as it was sent (with its length, for a body sent whole)."""
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode()))
    return Kept(tuple(kept), body, _etag(headers))


def _compressed(headers, body: bytes) -> Kept:
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_HEADERS and k.lower() != b"vary"]
    etag = _etag(headers)
    if etag is not None:  # another representation, another tag: "abc" -> "abc-gzip"
        etag = suffixed_etag(etag, b"-gzip")
        kept.append((b"etag", etag))
    vary = [v for k, v in headers if k.lower() == b"vary"]
    kept += [
        (b"content-encoding", b"gzip"),
        (b"vary", b", ".join([*vary, b"Accept-Encoding"])),
        (b"content-length", str(len(body)).encode()),
    ]
    return Kept(tuple(kept), body, etag)


def suffixed_etag(etag: bytes, suffix: bytes) -> bytes:
    """The tag of another body made from the one ``etag`` names: ``"abc"`` -> ``"abc<suffix>"``."""
    return etag[:-1] + suffix + b'"' if etag.endswith(b'"') else etag + suffix


def front_end_paths() -> list[str]:
    """The URL paths of Streamlit's own front-end files (``/static/…``: scripts, styles, fonts,
    images): what a browser may ask for, and what :class:`CompressedStatic` keeps, gzipped or as
    they are (Streamlit 1.67: 357 files, 25 MB; ≈ 9 MB kept)."""
    import streamlit

    root = Path(streamlit.__file__).parent / "static"
    files = (path for path in (root / PREFIX.strip("/")).rglob("*") if path.is_file())
    return sorted("/" + path.relative_to(root).as_posix() for path in files)


def warm(base_url: str, paths: list[str] | None = None, timeout_s: float = 30.0) -> int:
    """Ask the server at ``base_url`` once for each of ``paths`` (default :func:`front_end_paths`),
    accepting gzip, so that its :class:`CompressedStatic` has compressed or kept them before the
    first browser asks (≈ 0.6 s of CPU, once). Returns how many were answered (200); stops at the
    first connection error (no server there)."""
    import urllib.request

    done = 0
    for path in front_end_paths() if paths is None else paths:
        request = urllib.request.Request(base_url + path, headers={"Accept-Encoding": "gzip"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
                done += response.status == 200
        except OSError:
            break
    return done


def request_header(scope: Scope, name: bytes) -> bytes:
    """The request header ``name`` (lower case), its values joined by ", "; b"" when absent."""
    return b", ".join(v for k, v in scope.get("headers", []) if k.lower() == name)
