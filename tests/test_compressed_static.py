"""pages/compressed_static.py: Streamlit's immutable front-end files are gzipped once (or kept as they
are when gzip would not shrink them) and then served from memory; everything else passes through as
Streamlit answered it. Driven as ASGI directly, with
a stand-in for Streamlit that counts its calls."""

from __future__ import annotations

import asyncio
import gzip
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from pages.compressed_static import MIN_SIZE, CompressedStatic

JS = b"function plot(){return 'saddle';}\n" * 400  # ~14 kB of compressible text
IMMUTABLE = b"public, immutable, max-age=31536000"


class FakeStreamlit:
    """An ASGI app answering every path with (status, headers, body) from ``routes`` (else 404);
    counts its calls, and can be made to wait so that requests overlap."""

    def __init__(self, routes: dict, gate: asyncio.Event | None = None) -> None:
        self.routes, self.gate, self.calls = routes, gate, []

    async def __call__(self, scope, receive, send) -> None:
        self.calls.append(scope["path"])
        if self.gate is not None:
            await self.gate.wait()
        status, headers, body = self.routes.get(scope["path"], (404, [], b"not found"))
        if any(k == b"range" for k, _ in scope["headers"]) and status == 200:
            status, body = 206, body[:100]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await send({"type": "http.response.body", "body": body[len(body) // 2 :]})


def asset(body=JS, content_type=b"application/javascript", cache=IMMUTABLE, extra=()):
    return (
        200,
        [(b"content-type", content_type), (b"cache-control", cache), (b"etag", b'"abc"'), *extra],
        body,
    )


async def get(app, path: str, **headers) -> tuple[int, dict, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": headers.pop("method", "GET"),
        "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def run(coro):
    """``asyncio.run`` in a thread of its own: Playwright's sync API (the browser tests, same process)
    leaves an event loop running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_an_asset_is_compressed_once_and_then_served_from_memory():
    streamlit = FakeStreamlit({"/static/js/index.abc.js": asset()})
    app = CompressedStatic(streamlit)

    async def twice():
        return [await get(app, "/static/js/index.abc.js", accept_encoding="gzip, br") for _ in range(2)]

    for status, headers, body in run(twice()):
        assert status == 200 and gzip.decompress(body) == JS
        assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        assert headers["content-length"] == str(len(body)) and len(body) < len(JS) / 10
        assert headers["etag"] == '"abc-gzip"' and headers["cache-control"] == IMMUTABLE.decode()
        assert headers["content-type"] == "application/javascript"
    assert streamlit.calls == ["/static/js/index.abc.js"]  # the second came from memory
    assert app.cached_bytes == len(body)


def test_browsers_asking_at_the_same_moment_share_one_compression():
    async def crowd():
        gate = asyncio.Event()
        streamlit = FakeStreamlit({"/static/js/a.js": asset()}, gate)
        app = CompressedStatic(streamlit)
        tasks = [asyncio.create_task(get(app, "/static/js/a.js", accept_encoding="gzip")) for _ in range(30)]
        while not streamlit.calls:
            await asyncio.sleep(0)
        gate.set()
        return streamlit, await asyncio.gather(*tasks)

    streamlit, answers = run(crowd())
    assert streamlit.calls == ["/static/js/a.js"]
    assert all(status == 200 and gzip.decompress(body) == JS for status, _, body in answers)


def test_a_revalidation_with_the_gzip_tag_is_answered_not_modified():
    app = CompressedStatic(FakeStreamlit({"/static/js/a.js": asset()}))

    async def revalidate():
        await get(app, "/static/js/a.js", accept_encoding="gzip")
        return await get(app, "/static/js/a.js", accept_encoding="gzip", if_none_match='"abc-gzip"')

    status, headers, body = run(revalidate())
    assert status == 304 and body == b"" and headers["etag"] == '"abc-gzip"'


@pytest.mark.parametrize(
    "path, route, headers",
    [
        ("/static/js/a.js", asset(), {}),  # the browser does not accept gzip
        ("/static/js/a.js", asset(), {"accept_encoding": "gzip", "range": "bytes=0-99"}),
        ("/static/js/a.js", asset(), {"accept_encoding": "gzip", "method": "HEAD"}),
        ("/media/a.js", asset(), {"accept_encoding": "gzip"}),  # not a front-end file
        ("/static/js/x.js", asset(b"<html>" * 400, b"text/html", b"no-cache"), {"accept_encoding": "gzip"}),
        ("/static/js/a.js", asset(extra=[(b"set-cookie", b"s=1")]), {"accept_encoding": "gzip"}),
        ("/static/js/a.js", asset(extra=[(b"content-encoding", b"br")]), {"accept_encoding": "gzip"}),
        ("/static/js/missing.js", None, {"accept_encoding": "gzip"}),  # 404
    ],
    ids=["no-gzip", "range", "head", "media", "no-cache", "cookie", "encoded", "404"],
)
def test_everything_else_passes_through_as_streamlit_answered_it(path, route, headers):
    streamlit = FakeStreamlit({path: route} if route else {})
    app = CompressedStatic(streamlit)
    direct = run(get(streamlit, path, **dict(headers)))
    for _ in range(2):
        assert run(get(app, path, **dict(headers))) == direct
    assert not app.cached and app.cached_bytes == 0


@pytest.mark.parametrize(
    "path, route",
    [
        ("/static/a.woff2", asset(b"\x00\x01" * 4000, b"font/woff2")),  # does not compress
        ("/static/js/tiny.js", asset(b"x" * (MIN_SIZE - 1))),  # too small to gain from gzip
    ],
    ids=["font", "small"],
)
def test_an_immutable_file_gzip_would_not_shrink_is_kept_as_it_is_and_served_from_memory(path, route):
    streamlit = FakeStreamlit({path: route})
    app = CompressedStatic(streamlit)
    status, headers, body = run(get(streamlit, path, accept_encoding="gzip"))
    for _ in range(3):
        assert run(get(app, path, accept_encoding="gzip")) == (
            status, {**headers, "content-length": str(len(body))}, body,
        )  # fmt: skip
    assert streamlit.calls == [path, path]  # the direct request above, then once through the app
    assert "content-encoding" not in headers and app.cached_bytes == len(body) == len(route[2])
    revalidated = run(get(app, path, accept_encoding="gzip", if_none_match='"abc"'))
    assert revalidated[0] == 304 and revalidated[2] == b""


def test_memory_is_bounded_and_a_file_that_does_not_fit_is_compressed_for_its_request_only():
    routes = {f"/static/js/{i}.js": asset(JS + bytes([i]) * 2000) for i in range(4)}
    streamlit = FakeStreamlit(routes)
    one = len(gzip.compress(routes["/static/js/0.js"][2], 6, mtime=0))
    app = CompressedStatic(streamlit, max_bytes=2 * one + one // 2)

    async def all_twice():
        return [await get(app, path, accept_encoding="gzip") for path in [*routes, *routes]]

    answers = run(all_twice())
    for path, (_, _, body) in zip([*routes, *routes], answers):
        assert gzip.decompress(body) == routes[path][2]
    assert len(app.cached) == 2 and app.cached_bytes <= app.max_bytes
    assert len(streamlit.calls) == 2 + 2 * 2  # the two that fit were asked once, the others each time


def test_the_front_end_paths_are_streamlits_own_files():
    import streamlit

    from pages.compressed_static import front_end_paths

    paths = front_end_paths()
    root = Path(streamlit.__file__).parent / "static"
    assert len(paths) > 100 and all(p.startswith("/static/") for p in paths)
    assert all((root / p.lstrip("/")).is_file() for p in paths)
    assert any("PlotlyChart" in p for p in paths)  # the largest a page of ours loads (≈ 4.7 MB)
    assert any(p.endswith(".woff2") for p in paths)  # fonts, kept as they are
    assert any((root / p.lstrip("/")).stat().st_size < MIN_SIZE for p in paths)  # small chunks too


def test_warm_asks_for_every_path_once_accepting_gzip_counts_the_answers_and_stops_where_none_come():
    from pages.compressed_static import warm

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Accept-Encoding")))
            body = gzip.compress(b"x" * 2000)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert warm(base, ["/static/js/a.js", "/static/css/b.css"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/static/js/a.js", "gzip"), ("/static/css/b.css", "gzip")]
    assert warm(base, ["/static/js/a.js", "/static/js/b.js"], timeout_s=2) == 0  # nobody there now
