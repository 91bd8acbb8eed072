"""Bounded content decoding: the decoded size is counted while decompressing, chunk by chunk.

httpx's own decoders expand each network chunk completely, so one 64 KiB chunk of a brotli bomb
can become gigabytes before anyone counts. Here every decompressor is asked for at most the bytes
still allowed, so a bomb stops at the cap plus one small step.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

# Content-Encodings we advertise and can decode with a bound.
ACCEPT_ENCODING = "gzip, deflate, br"


class BodyTooLargeError(Exception):
    """The decoded body passed the configured cap."""


class UnsupportedEncodingError(Exception):
    """The server used a Content-Encoding we did not ask for."""


class _Decoder(Protocol):
    def feed(self, data: bytes, room: int) -> bytes: ...


class _Identity:
    def feed(self, data: bytes, room: int) -> bytes:
        return data


class _Zlib:
    """gzip (wbits 16+15) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self.first = True
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            return self._feed(data, room)
        except zlib.error:
            if self.gzip or not self.first:
                raise
            self.d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate without the zlib header
            return self._feed(data, room)
        finally:
            self.first = False

    def _feed(self, data: bytes, room: int) -> bytes:
        out = bytearray()
        # Ask for one byte more than allowed: getting it proves the body is too large.
        chunk = self.d.decompress(data, room + 1)
        out += chunk
        while self.d.unconsumed_tail and len(out) <= room:
            out += self.d.decompress(self.d.unconsumed_tail, room + 1 - len(out))
        return bytes(out)


class _Brotli:
    def __init__(self) -> None:
        self.d = brotli.Decompressor()

    def feed(self, data: bytes, room: int) -> bytes:
        out = bytearray(self.d.process(data, output_buffer_limit=room + 1))
        while not self.d.can_accept_more_data() and len(out) <= room:
            more = self.d.process(b"", output_buffer_limit=room + 1 - len(out))
            if not more:
                break
            out += more
        return bytes(out)


class BoundedBody:
    """Accumulates a response body, decoding Content-Encoding, never past `limit` decoded bytes."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self.limit = limit
        self.body = bytearray()
        self.decoders: list[_Decoder] = []
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        # Codings are listed in the order applied, so they are undone in reverse.
        for coding in reversed(codings):
            if coding in ("identity", ""):
                continue
            if coding in ("gzip", "x-gzip"):
                self.decoders.append(_Zlib(gzip=True))
            elif coding == "deflate":
                self.decoders.append(_Zlib(gzip=False))
            elif coding == "br":
                self.decoders.append(_Brotli())
            else:
                raise UnsupportedEncodingError(f"unsupported Content-Encoding {coding!r}")
        if not self.decoders:
            self.decoders.append(_Identity())

    def feed(self, raw: bytes) -> None:
        """Add one raw network chunk. Raises BodyTooLargeError past the cap."""
        room = self.limit - len(self.body)
        data = raw
        try:
            for i, decoder in enumerate(self.decoders):
                # Inner layers may legitimately be larger than the final room only if a later
                # layer shrinks them, which no real encoding stack does; bound every layer.
                data = decoder.feed(data, room if i == len(self.decoders) - 1 else self.limit)
        except (zlib.error, brotli.error) as exc:
            raise ValueError(f"corrupt compressed body: {exc}") from exc
        if len(data) > room:
            raise BodyTooLargeError(f"decoded body larger than {self.limit:,} bytes")
        self.body += data

    def result(self) -> bytes:
        return bytes(self.body)
