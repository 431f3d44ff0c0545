"""Viewer HTTP/1.1 server: an `asyncio.Protocol` on uvloop with the httptools parser.

No ASGI layer: measured on a 2-core machine like the edge's, an ASGI server (uvicorn,
granian) cost 8-15 µs per cache hit over a bare asyncio.Protocol with the httptools parser,
more than a whole cache hit here (docs/performance.md has the edge's own figures). The
protocol parses, keeps requests in pipeline order, and hands each one to the application:
first to a synchronous fast path (a memory hit answered inside the parser callback, no
task, no await), otherwise to a task running the slow path.
Back-pressure both ways: reading pauses while the transport's write buffer is above its
high-water mark, while too many pipelined requests wait, and while a streamed request
body is not consumed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol, cast

import httptools

MAX_PIPELINE = 32
BODY_BUFFER_HIGH = 1024 * 1024
WRITE_BUFFER_HIGH = 512 * 1024
MAX_HEADERS_BYTES = 64 * 1024
MAX_URL_BYTES = 16 * 1024

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_HEADER_NAMES = {
    n.encode(): n.lower()
    for n in (
        "Host", "host", "User-Agent", "user-agent", "Accept", "accept", "Accept-Encoding", "accept-encoding",
        "Connection", "connection", "Cookie", "cookie", "Range", "range", "If-None-Match", "if-none-match",
        "If-Modified-Since", "if-modified-since", "Content-Length", "content-length", "X-Request-Id",
        "x-request-id", "Accept-Language", "accept-language", "Content-Type", "content-type",
    )
}  # fmt: skip

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@=+/-]{1,128}")


def valid_request_id(value: str) -> bool:
    """Whether a viewer's X-Request-Id may be echoed (a token, not arbitrary text)."""
    return _REQUEST_ID.fullmatch(value) is not None


class ClientDisconnected(Exception):
    """The viewer went away: the handler stops writing and gives up quietly."""


class MalformedBody(Exception):
    """The viewer's request body is not valid HTTP/1.1 framing (a bad chunk): a 400 to the
    viewer, never an origin failure, even when it is found while the body streams out."""


class Application(Protocol):
    """What the protocol needs from the viewer application (proxy.Proxy)."""

    closing: bool

    def hit(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        conn: HttpConnection,
        keep_alive: bool = True,
        version: str = "1.1",
    ) -> bool: ...

    def reject(self, request: Request, conn: HttpConnection) -> None: ...

    def handle(self, request: Request, conn: HttpConnection) -> Awaitable[None]: ...

    def connection_opened(self, conn: HttpConnection) -> None: ...

    def connection_closed(self, conn: HttpConnection) -> None: ...


ID_BLOCK = 0x100
_LOW_HEX = [f"{low:02x}" for low in reversed(range(ID_BLOCK))]


class RequestIds:
    """Per-process unique ids, cheaper than uuid4: a random prefix and a counter in hex.

    Ids are made 256 at a time (the counter's leading hex digits formatted once, its last
    two from a table) into `pool`, which hands them out with `list.pop`: taking an id is a C
    call, where formatting one on the hit path cost several times that (docs/performance.md,
    "Access log cost"). A block is small so that making one is no pause (about 0.1 ms).
    """

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.high = -1
        self.pool: list[str] = []

    def next(self) -> str:
        return self.pool.pop() if self.pool else self.refill()

    def refill(self) -> str:
        """The next block's ids into `pool`; returns the first."""
        self.high += 1
        block = f"{self.prefix}-{self.high:x}"
        self.pool = [block + low for low in _LOW_HEX]
        return self.pool.pop()


REQUEST_IDS = RequestIds()


# ---- Request and its body ----


class BodyStream:
    """A request body delivered as the parser produces it, bounded by pausing the socket."""

    __slots__ = ("_conn", "_chunks", "_size", "_done", "_error", "_waiter", "_continue", "continued")

    def __init__(self, conn: HttpConnection, expect_continue: bool = False) -> None:
        self._conn = conn
        self._continue = expect_continue
        self.continued = False  # this edge sent the viewer its 100 Continue
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def buffered(self) -> int:
        return self._size

    @property
    def done(self) -> bool:
        return self._done

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._wake()
        if self._size > BODY_BUFFER_HIGH:
            self._conn.update_reading()

    def finish(self) -> None:
        self._done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._wake()

    async def read(self) -> bytes:
        """Next chunk, b"" at the end; raises ClientDisconnected if the viewer left mid-body."""
        if self._continue:
            # The viewer waits for this before sending the body (RFC 9110 10.1.1); it is
            # sent only once the body is really wanted, so a refused upload is never sent.
            self._continue = False
            if not self._done:
                self._conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.continued = True
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        chunk = self._chunks.popleft()
        before = self._size
        self._size -= len(chunk)
        if before > BODY_BUFFER_HIGH >= self._size:
            self._conn.update_reading()
        return chunk

    async def iterate(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read()
            if not chunk:
                return
            yield chunk


class Request:
    """One parsed viewer request; header names are lowercased, repeated fields joined."""

    __slots__ = (
        "method",
        "target",
        "headers",
        "version",
        "keep_alive",
        "client_ip",
        "body",
        "has_body",
        "complete",
        "bad",
        "status",
        "_request_id",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        version: str,
        keep_alive: bool,
        client_ip: str,
        body: BodyStream | None,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.client_ip = client_ip
        self.body = body
        self.has_body = body is not None
        self.complete = False
        self.bad = ""
        self.status = 400  # of the refusal, when `bad` is set
        self._request_id: str | None = None

    @property
    def path(self) -> str:
        """The target without its query (computed on use: a memoised hit never needs it)."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def request_id(self) -> str:
        """The viewer's own X-Request-Id when it is a sane token, else a fresh one."""
        rid = self._request_id
        if rid is None:
            incoming = self.headers.get("x-request-id")
            if incoming is not None and valid_request_id(incoming):
                rid = incoming
            else:
                rid = REQUEST_IDS.next()
            self._request_id = rid
        return rid


def _bad_request(reason: str, client_ip: str) -> Request:
    request = Request("GET", "/", {}, "1.1", False, client_ip, None)
    request.bad = reason
    request.complete = True
    return request


# ---- Connection protocol ----


class HttpConnection(asyncio.Protocol):
    """One viewer connection: parsing, pipelining in order, flow control."""

    def __init__(self, app: Application, scheme: str = "http") -> None:
        self.app = app
        # The scheme of the listener this connection came in on: "http" (plain TCP) today,
        # "https" once the edge terminates TLS. admission.viewer_scheme reads it.
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.closed = False
        self.close_after = False
        self.current: Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.pending: deque[Request] = deque()
        self.write_paused = False
        self.reading_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._request: Request | None = None
        self._plain: tuple[str, str, dict[str, str]] | None = None
        self._stopped_parsing = False

    # -- asyncio callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only lookalikes.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.app.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.connection_closed(self)
        lost = ClientDisconnected()
        request = self.current
        if request is not None and request.body is not None:
            request.body.fail(lost)
        for queued in self.pending:
            if queued.body is not None:
                queued.body.fail(lost)
        self.pending.clear()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(lost)
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.update_reading()
        if self.current is None:
            self._next()

    def data_received(self, data: bytes) -> None:
        if self._stopped_parsing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # What follows the request is not HTTP any more: answer it, then close.
            self._stop_parsing()
        except httptools.HttpParserCallbackError:
            self._reject(self._request_error or "bad request")
        except httptools.HttpParserError as exc:
            self._reject(f"malformed request: {exc}", 505 if "HTTP version" in str(exc) else 400)

    def eof_received(self) -> bool | None:
        self._stop_parsing()
        request = self._request
        if request is not None and request.body is not None and not request.complete:
            request.body.fail(ClientDisconnected())
        if self.current is None and not self.pending:
            return False
        return True

    # -- httptools callbacks (the hot path: keep them short) --

    _request_error = ""

    # No on_message_begin: per-message state is reset when headers complete, which saves
    # one Python callback per request.

    def on_url(self, url: bytes) -> None:
        url = self._url + url if self._url else url
        self._url = url
        if len(url) > MAX_URL_BYTES:
            self._request_error = "request target too long"
            raise ValueError(self._request_error)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADERS_BYTES:
            self._request_error = "request header fields too large"
            raise ValueError(self._request_error)
        key = _HEADER_NAMES.get(name) or name.decode("latin-1").lower()
        headers = self._headers
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value.decode("latin-1")
        else:
            headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parser = self.parser
        headers = self._headers
        self._headers = {}
        self._header_bytes = 0
        url = self._url
        self._url = b""
        if (
            "host" in headers
            and "connection" not in headers
            and "content-length" not in headers
            and "transfer-encoding" not in headers
            and url[:1] == b"/"
            and parser.should_keep_alive()
        ):
            # The common request, tested first with the fewest operations: no Request
            # object until the hit path declines it.
            raw_method = parser.get_method()
            self._plain = (_METHODS.get(raw_method) or raw_method.decode("latin-1"), url.decode("latin-1"), headers)
            self._request = None
            return
        target = url.decode("latin-1")
        if target[:1] != "/":
            target = self._origin_form(target, headers, "host" in headers or parser.get_http_version() != "1.1")
        has_body = "content-length" in headers or "transfer-encoding" in headers
        if has_body and "transfer-encoding" not in headers and headers["content-length"] in ("0", ""):
            has_body = False
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        keep_alive = parser.should_keep_alive()
        if not has_body and keep_alive and target[:1] == "/" and "host" in headers and "connection" not in headers:
            # An absolute-form target or an empty Content-Length, otherwise as common.
            self._plain = (method, target, headers)
            self._request = None
            return
        # get_http_version() allocates a string per call: an HTTP/1.1 keep-alive request
        # without a Connection field needs no look (a 1.0 one is never keep-alive without it).
        if keep_alive and "connection" not in headers and "host" in headers:
            version = "1.1"
        else:
            version = parser.get_http_version()
        request = Request(
            method,
            target,
            headers,
            version,
            keep_alive,
            self.client_ip,
            BodyStream(self, headers.get("expect", "").lower() == "100-continue") if has_body else None,
        )
        if target[:1] != "/":
            request.bad = "invalid request target"
        elif request.version != "1.1" and request.version != "1.0":
            # httptools accepts 0.9 and 2.0 on a request line; neither is spoken here.
            request.bad = "HTTP version not supported"
            request.status = 505
        elif "host" not in headers and request.version == "1.1":
            request.bad = "missing Host header"
        elif "transfer-encoding" in headers and headers["transfer-encoding"].strip().lower() != "chunked":
            # RFC 9112 6.1/6.3: a request's final coding must be chunked, and the edge
            # decodes no other (`xchunked`, `chunked, gzip`, `gzip, chunked`): refused
            # before any of the body is read, so no framing guess reaches the origin.
            request.bad = "unsupported Transfer-Encoding"
        if request.bad:
            self._request = request
            self._stop_parsing()
            self._dispatch(request)
            return
        self._request = request
        if has_body:
            self._dispatch(request)

    def on_body(self, body: bytes) -> None:
        request = self._request
        if request is not None and request.body is not None:
            request.body.feed(body)

    def on_message_complete(self) -> None:
        plain = self._plain
        if plain is not None:
            self._plain = None
            method, target, headers = plain
            idle = self.current is None and not self.pending and not self.write_paused
            # Inline fast path: a hit is answered without leaving this callback.
            if idle and self.app.hit(method, target, headers, self):
                if self.close_after or self.app.closing:
                    self.close()
                return
            declined = Request(method, target, headers, "1.1", True, self.client_ip, None)
            declined.complete = True
            if idle:
                self.current = declined
                self.task = asyncio.get_running_loop().create_task(self._run(declined))
            else:
                self._dispatch(declined)
            return
        request = self._request
        if request is None:
            return
        request.complete = True
        if request.body is not None:
            request.body.finish()
            return
        if self.current is None and not self.pending and not self.write_paused:
            self._start(request)
            return
        self._dispatch(request)

    @staticmethod
    def _origin_form(target: str, headers: dict[str, str], set_host: bool) -> str:
        """An absolute-form target (`GET http://host/path`) reduced to path and query; with
        `set_host`, its authority replaces the Host header (RFC 9112 3.2.2), so it picks the
        distribution (an HTTP/1.1 request without Host stays a 400 all the same, 3.2).
        Anything else is returned as it came (then refused as an invalid target)."""
        try:
            url = httptools.parse_url(target.encode("latin-1"))
        except httptools.HttpParserInvalidURLError:
            return target
        if url.schema is None or url.schema.lower() not in (b"http", b"https") or not url.host:
            return target
        if set_host:
            host = url.host.decode("latin-1")
            if ":" in host:
                host = f"[{host}]"
            headers["host"] = host if url.port is None else f"{host}:{url.port}"
        path = url.path.decode("latin-1") if url.path else "/"
        return path + ("?" + url.query.decode("latin-1") if url.query else "")

    # -- pipeline --

    def _dispatch(self, request: Request) -> None:
        if self.current is not None or self.pending or self.write_paused:
            self.pending.append(request)
            if len(self.pending) >= MAX_PIPELINE:
                self.update_reading()
            return
        self._start(request)

    def _start(self, request: Request) -> None:
        self.current = request
        if request.bad:
            self.app.reject(request, self)
            self.response_done(request)
            return
        if not request.has_body and self.app.hit(
            request.method, request.target, request.headers, self, request.keep_alive, request.version
        ):
            self.response_done(request)
            return
        self.task = asyncio.get_running_loop().create_task(self._run(request))

    async def _run(self, request: Request) -> None:
        try:
            await self.app.handle(request, self)
        except (ClientDisconnected, asyncio.CancelledError):
            self.abort()
            return
        except Exception:
            self.abort()
            raise
        self.task = None
        self.response_done(request)

    def response_done(self, request: Request) -> None:
        """Called once the whole response is written; moves on to the next pipelined request."""
        self.current = None
        if self.closed:
            return
        if not request.keep_alive or self.close_after or not request.complete or request.bad:
            self.close()
            return
        if self.pending:
            self._next()
        elif self.app.closing:
            self.close()

    def _next(self) -> None:
        while self.current is None and self.pending and not self.closed and not self.write_paused:
            request = self.pending.popleft()
            self._start(request)
        self.update_reading()

    # -- flow control --

    def update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        request = self._request
        want_pause = (
            self._stopped_parsing
            or self.write_paused
            or len(self.pending) >= MAX_PIPELINE
            or (request is not None and request.body is not None and request.body.buffered > BODY_BUFFER_HIGH)
        )
        if want_pause and not self.reading_paused:
            self.reading_paused = True
            transport.pause_reading()
        elif not want_pause and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def _stop_parsing(self) -> None:
        self._stopped_parsing = True
        self.close_after = True
        self.update_reading()

    def _reject(self, reason: str, status: int = 400) -> None:
        self._stop_parsing()
        request = self._request
        if request is not None and request.body is not None and not request.complete and not request.bad:
            # The framing broke inside this request's body (a bad chunk): the request
            # itself is answered 400 by whoever reads its body, and nothing follows it.
            request.body.fail(MalformedBody(reason))
            return
        bad = _bad_request(reason, self.client_ip)
        bad.status = status
        self._dispatch(bad)

    # -- writing, for the application --

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ClientDisconnected()
        assert self.transport is not None
        self.transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        """One writev for head and body: no copy of the body, one syscall."""
        if self.closed:
            raise ClientDisconnected()
        assert self.transport is not None
        self.transport.writelines(parts)

    async def drain(self) -> None:
        if self.closed:
            raise ClientDisconnected()
        if self.write_paused:
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await waiter

    def keep_alive(self, request: Request) -> bool:
        return request.keep_alive and not self.close_after and not self.app.closing

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection mid-response: the viewer must not mistake a partial body for a whole one."""
        self.close_after = True
        self.current = None
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def close_if_idle(self) -> None:
        """Shutdown: idle keep-alive connections go now, busy ones after their response."""
        self.close_after = True
        if self.current is None and not self.pending:
            self.close()


async def start_server(app: Application, host: str, port: int, scheme: str = "http") -> asyncio.Server:
    """A viewer listener; every connection it accepts carries `scheme`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpConnection(app, scheme), host, port, backlog=2048, reuse_address=True
    )
