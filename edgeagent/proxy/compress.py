"""Compression at the edge: the choice of a coding, the encoders and the headers they change."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Protocol

import brotli

from .. import policy
from ..config import Behavior


def edge_coding(
    accept_encoding: str | None, behavior: Behavior, status: int, lower: Mapping[str, str], length: int | None,
    ranged: bool,
) -> str | None:
    """The coding the edge compresses an origin answer with, or None to pass it as it came.

    Only a whole 200 the origin sent uncompressed, of a compressible type and size, for a
    viewer and behavior that accept br or gzip.
    """
    target = policy.negotiate_encoding(accept_encoding, behavior)
    if (
        target
        and not lower.get("content-encoding")
        and status == 200
        and policy.is_compressible(lower.get("content-type"), length)
        and not ranged
    ):
        return target
    return None


class Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def end(self) -> bytes: ...


class GzipEncoder:
    def __init__(self) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def feed(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def end(self) -> bytes:
        return self._z.flush()


class BrotliEncoder:
    def __init__(self) -> None:
        self._c = brotli.Compressor(quality=5)

    def feed(self, data: bytes) -> bytes:
        return bytes(self._c.process(data))

    def end(self) -> bytes:
        return bytes(self._c.finish())


def make_encoder(encoding: str) -> Encoder:
    return BrotliEncoder() if encoding == "br" else GzipEncoder()


def compressed_headers(headers: list[tuple[str, str]], encoding: str) -> list[tuple[str, str]]:
    """The origin's headers for a body the edge compressed: no length, a weak ETag, Vary."""
    out: list[tuple[str, str]] = []
    vary_seen = False
    for name, value in headers:
        lname = name.lower()
        if lname == "content-length":
            continue
        if lname == "etag" and not value.startswith("W/"):
            value = "W/" + value
        if lname == "vary":
            vary_seen = True
            if "accept-encoding" not in value.lower():
                value = f"{value}, Accept-Encoding"
        out.append((name, value))
    out.append(("Content-Encoding", encoding))
    if not vary_seen:
        out.append(("Vary", "Accept-Encoding"))
    return out
