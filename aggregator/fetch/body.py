"""Read a response body: decompress as it arrives, count decoded bytes, stop at the cap.

We decode ourselves instead of letting urllib3 do it so that no single read
can inflate past the cap: every ``decompress`` call is bounded by the room
left (``max_length``), so a gzip bomb costs at most the cap plus one chunk.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

from aggregator.errors import FetchError, TooLarge

CHUNK = 16 * 1024  #: bytes read from the socket at a time
PIECE = 64 * 1024  #: most bytes one decompress call may produce


class _Inflater:
    """One ``gzip`` or ``deflate`` layer; ``deflate`` accepts zlib and raw streams."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self.started = False
        self.obj = zlib.decompressobj(zlib.MAX_WBITS | 16 if self.gzip else zlib.MAX_WBITS)

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """Inflate ``data`` in pieces of at most ``PIECE`` bytes (the caller stops when full)."""
        while data:
            try:
                piece = self.obj.decompress(data, PIECE)
            except zlib.error:
                if self.gzip or self.started:
                    raise
                self.obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
                self.started = True
                continue
            self.started = True
            if piece:
                yield piece
            data = self.obj.unconsumed_tail
            if self.obj.eof:
                data = self.obj.unused_data.lstrip(b"\0")
                if not (self.gzip and data):
                    return
                self.obj = zlib.decompressobj(zlib.MAX_WBITS | 16)  # the next gzip member


def _decode(data: bytes, layers: list[_Inflater]) -> Iterator[bytes]:
    if not layers:
        yield data
        return
    for piece in layers[0].pieces(data):
        yield from _decode(piece, layers[1:])


def read_body(
    chunks: Iterable[bytes],
    content_encoding: str | None,
    limit: int,
    check: Callable[[], None] = lambda: None,
) -> bytes:
    """Join ``chunks``, decoded; ``TooLarge`` past ``limit`` decoded bytes.

    ``check`` runs before each chunk and at the end (the deadline raises from there).
    """
    names = [e.strip().lower() for e in (content_encoding or "").split(",")]
    layers = [_Inflater(e) for e in reversed(names) if e in ("gzip", "x-gzip", "deflate")]
    body = bytearray()
    for chunk in chunks:
        check()
        try:
            for piece in _decode(chunk, layers):
                body += piece
                if len(body) > limit:
                    after = " (after decompression)" if layers else ""
                    raise TooLarge(f"body over {size_text(limit)}{after}")
        except zlib.error as exc:
            raise FetchError(f"corrupt {content_encoding} body ({exc})") from exc
    check()
    return bytes(body)


def size_text(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
