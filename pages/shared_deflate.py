"""One compression per class: a websocket message that many browsers receive is deflated once.

Every browser that opens a link gets the same large messages: the race chart (≈ 700 KB of JSON),
its loss charts, the tables. Streamlit computes them once per class (the shared caches), but the
websocket's permessage-deflate compressed each again for every browser, ≈ 15–25 ms of the server's
CPU per visitor (``benchmarks/results/front_end_shared_deflate.md``), with the interpreter lock held.

Here the server negotiates permessage-deflate without context takeover on its side
(``server_no_context_takeover``, RFC 7692 §7.1.1.1: a server may always require it), so each message
it sends is compressed on its own, from an empty window, and the same payload always gives the same
bytes. :class:`SharedDeflate` then keeps the compressed form of each large payload (keyed by a
128-bit BLAKE2b digest of the payload and the compression settings, bounded in bytes, least recently
used dropped first; emptied when the server drops a departed class's results,
``pages.common.drop_unused``) and sends it again to every browser that gets the same payload. A browser
decompresses it exactly as before: the wire format is permessage-deflate's.

What it costs: a message no longer reuses the previous messages' window, so small messages compress a
little worse (the large ones, which make up the bytes, are unchanged: each holds its own repetitions).

Installed by ``serve.py`` (:func:`install`) for uvicorn's ``websockets-sansio`` protocol, the one
Streamlit 1.67 runs; the extension classes are websockets' public extension API, the hook into uvicorn
is its protocol table (``uvicorn.config.WS_PROTOCOLS``), tested with uvicorn 0.55 and websockets 17.4
(``requirements.txt``). With other versions :func:`install` leaves the server as Streamlit builds it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from uvicorn import config as uvicorn_config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import BINARY, TEXT, Frame
from websockets.typing import ExtensionParameter

MIN_BYTES = 8 << 10  # a payload under this is compressed for its browser only (hashing it saves little)
MAX_BYTES = 8 << 20  # compressed bytes kept per process (the default race chart: ≈ 0.1 MB)
PROTOCOL = "websockets-sansio"  # the uvicorn protocol Streamlit 1.67 asks for
UVICORN_PROTOCOL = "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol"
TESTED = {"uvicorn": ("0.55",), "websockets": ("17.",)}  # version prefixes install() accepts


class Compressed:
    """The compressed payloads kept: digest → bytes, least recently used first, ≤ ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[bytes, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            value = self.entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: bytes, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old)
            self.entries[key] = value
            self.bytes += len(value)
            while self.bytes > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self.bytes = 0


SHARED = Compressed()  # one per server process: every connection's extension reads and fills it


class SharedDeflate(PerMessageDeflate):
    """permessage-deflate whose whole messages of at least :data:`MIN_BYTES`, compressed without
    context takeover, come from (or go into) a :class:`Compressed` shared by every connection."""

    def __init__(self, *args: Any, shared: Compressed = SHARED, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = shared
        settings = tuple(sorted((self.compress_settings or {}).items()))
        self._salt = repr((self.local_max_window_bits, settings)).encode()

    def encode(self, frame: Frame) -> Frame:
        whole = frame.fin and frame.opcode in (TEXT, BINARY)  # a message in one frame
        if not (whole and self.local_no_context_takeover and len(frame.data) >= MIN_BYTES):
            return super().encode(frame)
        digest = self._salt + hashlib.blake2b(frame.data, digest_size=16).digest()
        data = self.shared.get(digest)
        if data is None:
            encoded = super().encode(frame)
            self.shared.put(digest, bytes(encoded.data))
            return encoded
        return Frame(frame.opcode, data, frame.fin, True, frame.rsv2, frame.rsv3)


class SharedDeflateFactory(ServerPerMessageDeflateFactory):
    """websockets' server permessage-deflate factory with ``server_no_context_takeover`` required, whose
    extensions are :class:`SharedDeflate` over ``shared``."""

    def __init__(self, *, shared: Compressed = SHARED, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "server_no_context_takeover": True})
        self.shared = shared

    @classmethod
    def like(
        cls, factory: ServerPerMessageDeflateFactory, shared: Compressed = SHARED
    ) -> SharedDeflateFactory:
        """The same negotiation settings as ``factory`` (uvicorn's), with the server's side compressed
        message by message."""
        return cls(
            shared=shared,
            client_no_context_takeover=factory.client_no_context_takeover,
            server_max_window_bits=factory.server_max_window_bits,
            client_max_window_bits=factory.client_max_window_bits,
            compress_settings=factory.compress_settings,
            require_client_max_window_bits=factory.require_client_max_window_bits,
        )

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, extension = super().process_request_params(params, accepted_extensions)
        shared = SharedDeflate(
            extension.remote_no_context_takeover,
            extension.local_no_context_takeover,
            extension.remote_max_window_bits,
            extension.local_max_window_bits,
            extension.compress_settings,
            shared=self.shared,
        )
        return response, shared


class SharedDeflateProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with its permessage-deflate factory replaced by
    :class:`SharedDeflateFactory` (the same settings)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.available_extensions = [
            SharedDeflateFactory.like(factory) if type(factory) is ServerPerMessageDeflateFactory else factory
            for factory in self.conn.available_extensions or []
        ]


def _tested() -> bool:
    from importlib.metadata import version

    return all(version(name).startswith(prefixes) for name, prefixes in TESTED.items())


def install() -> bool:
    """Make uvicorn's ``websockets-sansio`` protocol (the one Streamlit asks for) use
    :class:`SharedDeflateFactory`; True when installed. Call before the server starts. Leaves uvicorn
    as it is (False) with versions other than those tested or a protocol table that changed."""
    table = uvicorn_config.WS_PROTOCOLS
    ours = f"{__name__}:{SharedDeflateProtocol.__name__}"
    current = table.get(PROTOCOL)
    if current == ours:
        return True
    if current != UVICORN_PROTOCOL or not _tested():
        return False
    table[PROTOCOL] = ours
    return True

