"""pages/plotly_preload.py: Streamlit's HTML page gets the preload of its Plotly chunk in its head; every
other response passes through as Streamlit answered it. Driven as ASGI directly with the stand-in for
Streamlit of ``test_compressed_static``; the installed Streamlit's own files are checked too (a new
Streamlit build that renames the chunk must fail here, not silently drop the preload). The browser
side is in ``test_browser.py::test_a_new_browser_fetches_plotly_before_the_websocket_opens``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pages.plotly_preload import ETAG_SUFFIX, PlotlyPreload, plotly_chunk, preload_tags, with_preload
from tests.test_compressed_static import FakeStreamlit, get, run

CHUNK = "PlotlyChart.Ab1_-x.js"
NAVIGATION = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # Chromium's
PAGE = b"<!DOCTYPE html><html><head><title>Streamlit</title></head><body><div id=root></div></body></html>"


def html(body=PAGE, extra=()):
    return (
        200,
        [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache"),
         (b"etag", b'"4c65"'), (b"content-length", str(len(body)).encode()), *extra],
        body,
    )  # fmt: skip


def test_the_page_gets_the_preload_in_its_head_with_its_length_and_tag():
    streamlit = FakeStreamlit({"/": html(), "/Surfaces": html()})
    app = PlotlyPreload(streamlit, chunk=CHUNK)
    for path in ("/", "/Surfaces"):  # every page path is Streamlit's one HTML page
        status, headers, body = run(get(app, path, accept_encoding="gzip", accept=NAVIGATION))
        assert status == 200
        head = body[: body.index(b"</head>")]
        assert preload_tags(CHUNK) in head and body.replace(preload_tags(CHUNK), b"") == PAGE
        assert headers["content-length"] == str(len(body))
        assert headers["etag"] == '"4c65' + ETAG_SUFFIX.decode() + '"'
        assert headers["cache-control"] == "no-cache"
    tags = preload_tags(CHUNK).decode()
    url = f"./static/js/{CHUNK}"
    assert f'<link rel="modulepreload" crossorigin href="{url}">' in tags
    assert tags.count(CHUNK) == 2
    assert f'import("{url}")' in tags
    assert "requestIdleCallback(load)" in tags and "setTimeout(load, 0)" in tags


@pytest.mark.parametrize(
    "path, route, method",
    [
        ("/static/js/index.abc.js", (200, [(b"content-type", b"text/html")], PAGE), "GET"),  # an asset path
        ("/_stcore/health", (200, [(b"content-type", b"text/html")], PAGE), "GET"),
        ("/", html(), "HEAD"),
        ("/", (304, [(b"etag", b'"4c65"')], b""), "GET"),  # a revalidated page: the browser keeps its copy
        ("/manifest.json", (200, [(b"content-type", b"application/json")], b'{"name": "</head>"}'), "GET"),
        ("/", html(extra=[(b"content-encoding", b"gzip")]), "GET"),  # an encoded body is not touched
        ("/", html(body=PAGE.replace(b"</head>", b"")), "GET"),  # no head to add to
        ("/", html(body=PAGE.replace(b"<title>", f'<script src="{CHUNK}"></script><title>'.encode())), "GET"),
        ("/", html(), "GET, not asking for HTML"),  # a script or fetch (under a base URL path, say)
    ],
)
def test_everything_else_passes_through_as_streamlit_answered_it(path, route, method):
    streamlit = FakeStreamlit({path: route})
    accept = "*/*" if method.endswith("not asking for HTML") else NAVIGATION
    app = PlotlyPreload(streamlit, chunk=CHUNK)
    status, headers, body = run(get(app, path, method=method.split(",")[0], accept=accept))
    expected_status, expected_headers, expected_body = route
    assert (status, body) == (expected_status, expected_body)
    assert headers == {k.decode(): v.decode() for k, v in expected_headers}
    assert streamlit.calls == [path]


def test_without_a_chunk_the_page_is_left_alone():
    streamlit = FakeStreamlit({"/": html()})
    app = PlotlyPreload(streamlit)
    app.chunk = None  # what plotly_chunk() gives for a Streamlit build without (or with two) such chunks
    assert run(get(app, "/", accept=NAVIGATION))[2] == PAGE


def test_the_installed_streamlit_loads_the_chunk_the_page_preloads():
    """The chunk found is the one Streamlit's entry module imports lazily for ``st.plotly_chart`` (so
    the browser evaluates it once), and Streamlit's page has the head the tags go into."""
    import streamlit

    chunk = plotly_chunk()
    assert chunk is not None and re.fullmatch(r"PlotlyChart\.[\w-]+\.js", chunk)
    static = Path(streamlit.__file__).parent / "static"
    page = (static / "index.html").read_bytes()
    entry = re.search(rb'<script type="module" crossorigin src="\./static/js/(index\.[\w-]+\.js)"', page)
    assert entry is not None
    entry_module = (static / "static" / "js" / entry.group(1).decode()).read_bytes()
    assert f"import(`./{chunk}`)".encode() in entry_module
    assert with_preload(page, chunk) is not None
