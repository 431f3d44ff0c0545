"""The demo origin: a small, honest HTTP origin to put distributions and benchmarks in front of.

It answers the way a well-configured web server does (validators, conditional requests, byte
ranges, per-path Cache-Control), so that what an edge does with it is what it would do with a
real origin. Big objects are generated deterministically at start-up instead of being committed.

    python -m demo.origin --listen 127.0.0.1:8090

``--listen HOST:0`` binds a free port; the first line on stdout always names the bound address.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")

# Generated objects claim a fixed modification time so validators survive restarts.
GENERATED_MTIME = 1704067200  # 2024-01-01T00:00:00Z

LARGE_SIZE = 20 * 1024 * 1024
LARGE_BLOCK = 1024 * 1024
STREAM_CHUNK = 64 * 1024
# Bodies up to this size are answered in one write; bigger ones are streamed.
INLINE_LIMIT = 256 * 1024
ECHO_BODY_LIMIT = 64 * 1024

IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = "no-store"

# ---- Representations ----


@dataclass(frozen=True)
class Representation:
    """One object the origin serves: ``size`` bytes of ``block`` repeated.

    Repeating a block lets a 20 MB file cost 1 MB of memory while every byte stays
    deterministic, so range requests and checksums can be verified from outside.
    """

    block: bytes
    size: int
    content_type: str
    cache_control: str
    etag: str
    last_modified: int
    extra_headers: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        headers = {
            "Content-Type": self.content_type,
            "Cache-Control": self.cache_control,
            "ETag": self.etag,
            "Last-Modified": formatdate(self.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        headers.update(self.extra_headers)
        object.__setattr__(self, "headers", headers)

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Yield the bytes of ``[start, end)`` in slices of at most STREAM_CHUNK."""
        view = memoryview(self.block)
        period = len(self.block)
        pos = start
        while pos < end:
            offset = pos % period
            take = min(STREAM_CHUNK, period - offset, end - pos)
            yield bytes(view[offset : offset + take])
            pos += take

    def slice(self, start: int, end: int) -> bytes:
        if self.size == len(self.block):
            return self.block[start:end]
        return b"".join(self.chunks(start, end))


def strong_etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'


def from_bytes(
    content: bytes,
    content_type: str,
    cache_control: str,
    last_modified: int = GENERATED_MTIME,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Representation:
    return Representation(
        block=content,
        size=len(content),
        content_type=content_type,
        cache_control=cache_control,
        etag=strong_etag(content),
        last_modified=last_modified,
        extra_headers=extra_headers,
    )


def from_file(
    relative: str,
    content_type: str,
    cache_control: str,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Representation:
    path = STATIC_DIR / relative
    return from_bytes(
        path.read_bytes(), content_type, cache_control, int(path.stat().st_mtime), extra_headers
    )


def seeded_bytes(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def fake_jpeg(size: int) -> bytes:
    """JPEG-looking bytes (SOI, JFIF header, EOI) so tools sniffing magic numbers agree."""
    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return header + seeded_bytes("photo.jpg", size - len(header) - 2) + b"\xff\xd9"


def build_catalog() -> dict[str, Representation]:
    """Every static path the origin serves, keyed by request path."""
    index = from_file("index.html", "text/html; charset=utf-8", "public, max-age=60")
    images = (("Surrogate-Key", "images"),)
    large_block = seeded_bytes("large.bin", LARGE_BLOCK)
    octets = "application/octet-stream"
    return {
        "/": index,
        "/index.html": index,
        "/img/logo.svg": from_file("img/logo.svg", "image/svg+xml", IMMUTABLE, images),
        "/img/photo.jpg": from_bytes(fake_jpeg(48 * 1024), "image/jpeg", IMMUTABLE, extra_headers=images),
        "/large.bin": Representation(
            block=large_block,
            size=LARGE_SIZE,
            content_type=octets,
            cache_control="public, max-age=86400",
            etag='"large-' + hashlib.sha256(large_block).hexdigest()[:12] + f'-{LARGE_SIZE}"',
            last_modified=GENERATED_MTIME,
        ),
        "/bench/1k": from_bytes(seeded_bytes("bench-1k", 1024), octets, "max-age=3600"),
        "/bench/100k": from_bytes(seeded_bytes("bench-100k", 100 * 1024), octets, "max-age=3600"),
        "/bench/nocache/1k": from_bytes(seeded_bytes("bench-nocache-1k", 1024), octets, NO_STORE),
    }


# ---- Conditional requests and ranges (pure) ----


class RangeNotSatisfiable(Exception):
    pass


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The single byte range ``value`` asks for, as ``[start, end)``.

    None means "ignore the header and send the whole object", which RFC 9110 allows for
    anything this origin does not support (other units, several ranges, bad syntax).
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first.isdigit() and not (first == "" and last.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    end = size if not last else min(size, int(last) + 1)
    return start, end


def opaque_tag(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches_any(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires."""
    if header.strip() == "*":
        return True
    ours = opaque_tag(etag)
    return any(opaque_tag(candidate) == ours for candidate in header.split(","))


def http_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def not_modified(headers: Mapping[str, str], rep: Representation) -> bool:
    """Whether the viewer's validators still match (If-None-Match wins over If-Modified-Since)."""
    inm = headers.get("If-None-Match")
    if inm is not None:
        return etag_matches_any(inm, rep.etag)
    ims = headers.get("If-Modified-Since")
    if ims is not None:
        since = http_date(ims)
        return since is not None and rep.last_modified <= since
    return False


def if_range_allows(value: str | None, rep: Representation) -> bool:
    """If-Range needs a strong match on the ETag or the exact Last-Modified date."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == rep.etag
    return http_date(value) == rep.last_modified


# ---- Handlers ----


class Origin:
    """Holds the catalog and counts requests per path, so benchmarks can prove an edge cached."""

    def __init__(self) -> None:
        self.catalog = build_catalog()
        self.hits: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=0)
        for path in self.catalog:
            app.router.add_get(path, self.serve_static)
        app.router.add_get("/health", self.health)
        app.router.add_get("/api/time", self.api_time)
        app.router.add_route("*", "/api/echo", self.api_echo)
        app.router.add_get("/_stats", self.stats)
        return app

    async def serve_static(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        rep = self.catalog[path]
        headers = request.headers
        if not_modified(headers, rep):
            return web.Response(status=304, headers=rep.headers)
        start, end, status = 0, rep.size, 200
        range_header = headers.get("Range")
        if range_header is not None and request.method == "GET" and if_range_allows(headers.get("If-Range"), rep):
            try:
                wanted = parse_range(range_header, rep.size)
            except RangeNotSatisfiable:
                return web.Response(
                    status=416,
                    headers={**rep.headers, "Content-Range": f"bytes */{rep.size}"},
                )
            if wanted is not None:
                start, end = wanted
                status = 206
        response_headers = rep.headers
        if status == 206:
            response_headers = {**rep.headers, "Content-Range": f"bytes {start}-{end - 1}/{rep.size}"}
        if end - start <= INLINE_LIMIT:
            return web.Response(status=status, body=rep.slice(start, end), headers=response_headers)
        response = web.StreamResponse(status=status, headers=response_headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method != "HEAD":
            for chunk in rep.chunks(start, end):
                await response.write(chunk)
        await response.write_eof()
        return response

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"}, headers={"Cache-Control": NO_STORE})

    async def api_time(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        now = time.time()
        return web.json_response(
            {"epoch": now, "iso": formatdate(now, usegmt=True)},
            headers={"Cache-Control": NO_STORE},
        )

    async def api_echo(self, request: web.Request) -> web.StreamResponse:
        """Report what arrived; the body is read streaming so huge uploads cost no memory."""
        self.hits[request.path] += 1
        digest = hashlib.sha256()
        length = 0
        kept = bytearray()
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
            if len(kept) < ECHO_BODY_LIMIT:
                kept += chunk[: ECHO_BODY_LIMIT - len(kept)]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query_string": request.query_string,
                "headers": [[name, value] for name, value in request.headers.items()],
                "remote": peer[0] if peer else None,
                "body": kept.decode("utf-8", errors="replace"),
                "body_length": length,
                "body_sha256": digest.hexdigest(),
                "body_truncated": length > len(kept),
            },
            headers={"Cache-Control": NO_STORE},
        )

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": dict(self.hits)}, headers={"Cache-Control": NO_STORE})


# ---- Process ----


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(host: str, port: int, access_log: bool) -> None:
    origin = Origin()
    if access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        runner = web.AppRunner(origin.app())
    else:
        runner = web.AppRunner(origin.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0]
    print(f"demo origin listening on http://{format_address(bound[0], bound[1])}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.origin", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8090), help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    host, port = args.listen
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(host, port, args.access_log))
    else:
        uvloop.run(serve(host, port, args.access_log))


if __name__ == "__main__":
    main(sys.argv[1:])
