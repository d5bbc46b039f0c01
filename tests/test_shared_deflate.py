"""pages/shared_deflate.py: a websocket message every browser of a class receives is compressed once.

Checked through websockets' own negotiation and its client-side extension (what a browser does): the
server requires ``server_no_context_takeover``, the client decodes every message to the payload sent,
a large payload sent to a second connection comes from the shared store (the same bytes), small ones
and fragments are compressed as before, the store is bounded, and ``serve.py``'s server negotiates it.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import BINARY, CONT, TEXT, Frame

from pages import shared_deflate
from pages.shared_deflate import MIN_BYTES, Compressed, SharedDeflate, SharedDeflateFactory

UVICORN_LIKE = {  # uvicorn 0.55's permessage-deflate settings
    "server_max_window_bits": 12,
    "client_max_window_bits": 12,
    "compress_settings": {"memLevel": 5},
}


def connect(
    shared: Compressed, client_params: dict | None = None
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """One negotiated connection: (the server's extension, the client's), as websockets negotiates them."""
    client_factory = ClientPerMessageDeflateFactory(**(client_params or {}))
    server_factory = SharedDeflateFactory.like(ServerPerMessageDeflateFactory(**UVICORN_LIKE), shared)
    response, server = server_factory.process_request_params(client_factory.get_request_params(), [])
    client = client_factory.process_response_params(response, [])
    return server, client


def payload(seed: int, size: int) -> bytes:
    """JSON-like bytes with repetitions (as a figure's JSON), different per seed."""
    rng = random.Random(seed)
    words = [f'"x{rng.randrange(1000)}":{rng.random():.6f}'.encode() for _ in range(64)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b","
    return bytes(out[:size])


def send(server: PerMessageDeflate, client: PerMessageDeflate, data: bytes, opcode=BINARY) -> Frame:
    wire = server.encode(Frame(opcode, data))
    assert wire.rsv1  # compressed
    assert client.decode(Frame(wire.opcode, bytes(wire.data), wire.fin, wire.rsv1)).data == data
    return wire


def test_the_server_requires_no_context_takeover_and_keeps_uvicorn_s_settings():
    shared = Compressed()
    server, client = connect(shared)
    assert isinstance(server, SharedDeflate)
    assert server.local_no_context_takeover and client.remote_no_context_takeover
    assert server.local_max_window_bits == 12 and server.compress_settings == {"memLevel": 5}
    assert not server.remote_no_context_takeover  # the browser's side keeps its context as before


def test_a_large_message_is_compressed_once_for_every_connection_that_receives_it():
    shared = Compressed()
    big, other = payload(1, 200_000), payload(2, 50_000)
    first = [send(*connect(shared), big)]
    assert (shared.hits, shared.misses) == (0, 1)
    for _ in range(3):  # later browsers: the same bytes, from the store, decoded to the payload
        server, client = connect(shared)
        send(server, client, other)
        first.append(send(server, client, big))
    assert (shared.hits, shared.misses) == (5, 2)  # each payload compressed once, then found
    assert len({bytes(frame.data) for frame in first}) == 1
    assert len(first[0].data) < len(big) / 4


def test_every_message_of_a_connection_decodes_whatever_came_from_the_store():
    """Small and large, text and binary, repeated and new, interleaved: the client (whose decoder
    starts every message afresh, as negotiated) gets each payload back."""
    shared = Compressed()
    sizes = [100, 30_000, 9_000, 30_000, 200, 70_000] * 3
    messages = [payload(seed % 3, size) for seed, size in enumerate(sizes)]
    for _ in range(2):
        server, client = connect(shared)
        for index, data in enumerate(messages):
            send(server, client, data, TEXT if index % 2 else BINARY)
    assert shared.hits >= 8


def test_small_messages_and_fragments_are_compressed_as_websockets_does():
    shared = Compressed()
    server, client = connect(shared)
    small = payload(3, MIN_BYTES - 1)
    send(server, client, small)
    head, tail = payload(4, 20_000), payload(5, 20_000)
    first = server.encode(Frame(BINARY, head, fin=False))
    last = server.encode(Frame(CONT, tail, fin=True))
    decoded = client.decode(Frame(BINARY, bytes(first.data), False, True)).data
    decoded += client.decode(Frame(CONT, bytes(last.data), True, False)).data
    assert decoded == head + tail
    assert shared.entries == {} and shared.misses == 0


def test_the_same_payload_under_other_compression_settings_is_kept_apart():
    shared = Compressed()
    big = payload(6, 40_000)
    server, client = connect(shared)
    send(server, client, big)
    other, other_client = connect(shared, {"server_max_window_bits": 10})
    assert other.local_max_window_bits == 10
    send(other, other_client, big)
    assert (shared.hits, shared.misses) == (0, 2) and len(shared.entries) == 2


def test_the_store_is_bounded_in_bytes_and_drops_the_least_recently_used():
    shared = Compressed(max_bytes=3000)
    for key in (b"a", b"b", b"c"):
        shared.put(key, bytes(1000))
    assert shared.get(b"a") is not None  # a used again: b is now the oldest
    shared.put(b"d", bytes(1000))
    assert set(shared.entries) == {b"a", b"c", b"d"} and shared.bytes == 3000
    shared.put(b"huge", bytes(5000))  # larger than the bound: not kept
    assert b"huge" not in shared.entries and shared.bytes <= shared.max_bytes
    shared.clear()
    assert shared.bytes == 0 and not shared.entries


def test_the_wire_bytes_are_plain_permessage_deflate():
    """What a browser's zlib inflates: raw deflate of the payload, the sync flush's empty block removed."""
    shared = Compressed()
    big = payload(7, 40_000)
    wire = bytes(connect(shared)[0].encode(Frame(BINARY, big)).data)
    inflater = zlib.decompressobj(wbits=-15)
    assert inflater.decompress(wire + b"\x00\x00\xff\xff") == big


@pytest.fixture
def restore_protocols():
    from uvicorn import config

    saved = dict(config.WS_PROTOCOLS)
    yield config.WS_PROTOCOLS
    config.WS_PROTOCOLS.clear()
    config.WS_PROTOCOLS.update(saved)


def test_install_gives_uvicorn_s_websockets_sansio_protocol_the_shared_deflate(restore_protocols):
    import uvicorn
    from uvicorn.server import ServerState

    assert shared_deflate.install()
    assert shared_deflate.install()  # twice: the same
    config = uvicorn.Config(lambda *args: None, ws="websockets-sansio")  # as Streamlit configures it
    config.load()
    assert config.ws_protocol_class is shared_deflate.SharedDeflateProtocol
    loop = asyncio.new_event_loop()
    try:
        state = ServerState()
        protocol = config.ws_protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
    finally:
        loop.close()
    [factory] = protocol.conn.available_extensions
    assert isinstance(factory, SharedDeflateFactory) and factory.server_no_context_takeover
    assert (factory.server_max_window_bits, factory.compress_settings) == (12, {"memLevel": 5})


def test_install_leaves_a_changed_protocol_table_alone(restore_protocols, monkeypatch):
    restore_protocols["websockets-sansio"] = "somewhere.else:Protocol"
    assert not shared_deflate.install()
    assert restore_protocols["websockets-sansio"] == "somewhere.else:Protocol"
    restore_protocols["websockets-sansio"] = shared_deflate.UVICORN_PROTOCOL
    monkeypatch.setitem(shared_deflate.TESTED, "websockets", ("99.",))  # an untested version
    assert not shared_deflate.install()
    assert restore_protocols["websockets-sansio"] == shared_deflate.UVICORN_PROTOCOL


def test_the_readme_server_negotiates_the_shared_deflate(app_url):
    """``python serve.py`` answers a browser's permessage-deflate offer with server_no_context_takeover."""
    from websockets.sync.client import connect as ws_connect

    url = app_url.replace("http://", "ws://") + "/_stcore/stream"
    with ws_connect(url, subprotocols=["streamlit"], compression="deflate", open_timeout=60) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    assert "permessage-deflate" in extensions and "server_no_context_takeover" in extensions, extensions



def test_a_class_s_compressed_messages_go_when_its_results_are_dropped(monkeypatch):
    """pages.common.drop_unused empties the store once a departed class's results are dropped (and
    leaves it when nothing is dropped)."""
    import pages.common as common

    shared_deflate.SHARED.put(b"key", b"compressed")
    session = {"id": "gone"}
    monkeypatch.setattr(common, "_session_id", lambda: session["id"])

    @common.cache_runner
    def result(i):
        return i

    try:
        later = time.monotonic() + common.unused_after_s() + 1
        assert common.drop_unused(now=later, connected=lambda s: True) == 0  # every session connected
        assert shared_deflate.SHARED.get(b"key") == b"compressed"  # nothing dropped: kept
        result(1)
        assert common.drop_unused(now=later, connected=lambda s: s != "gone") == 1
        assert shared_deflate.SHARED.entries == {} and shared_deflate.SHARED.bytes == 0
    finally:
        result.clear()
        shared_deflate.SHARED.clear()
