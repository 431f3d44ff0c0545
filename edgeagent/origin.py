"""Origin client for the miss path.

aiohttp's `ClientSession` is used rather than httpx: with 64 concurrent 1 KiB misses it
costs about 80 µs of CPU per request against about 790 µs for httpx's pool (see
docs/performance.md), and the miss-path target is within 2x of nginx. One session holds a
keep-alive pool per origin host, port and TLS settings; per-origin timeouts and the
SSLContext are passed per request (one context per distinct `OriginTLS`, so equal settings
share a pool across config versions). Bodies are never decompressed or buffered here: the
caller streams them.

Every connection's socket is made by `_socket_factory`, which sees the address actually
dialled, after resolution: that is where origins in the operator's network are refused
(cdncontract.addresses, when the fleet setting is on) and where the edge's own listeners
are refused always, so neither a literal address nor a name that resolves differently
later (DNS rebinding) gets past it.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import contextvars
import functools
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from cdncontract import addresses, origin_tls
from cdncontract.headers import HOP_BY_HOP

from .config import Origin, OriginTLS

_REFUSED = "origin address refused"
_MAX_CONTEXTS = 256
_OLD_POOL_GRACE = 120.0  # seconds


log = logging.getLogger("edgeagent.origin")

# Who wants the origin's interim (1xx) responses to the request the current task sends:
# called with the status, reason and raw header lines of each, before the final answer.
Interim = Callable[[int, str, Sequence[tuple[bytes, bytes]]], None]
INTERIM: contextvars.ContextVar[Interim | None] = contextvars.ContextVar("edge_interim", default=None)


class OriginProtocol(ResponseHandler):
    """aiohttp's connection protocol, with two things it lacks for a proxy.

    Interim responses: aiohttp reads a 1xx and drops it; here each is handed to the
    INTERIM callback of the request that asked (RFC 9110 15.2: a proxy forwards them), and
    never reaches the final response, its headers or the cache.
    Stray bytes: once the final answer's body is complete, anything more the origin sends
    before the next request (a body longer than its Content-Length, a second response
    nobody asked for) would be read as the answer to the next request sent on this pooled
    connection, i.e. served to another viewer. The connection is closed instead, as nginx
    does ("upstream sent more data than specified in Content-Length").
    """

    _complete = False
    _on_interim: Interim | None = None

    def set_response_params(self, **kwargs: Any) -> None:
        # Called by aiohttp once per request, before it is sent.
        self._complete = False
        self._on_interim = INTERIM.get()
        super().set_response_params(**kwargs)

    def _final_eof(self) -> None:
        self._complete = True

    def _stray(self) -> None:
        log.warning("origin sent bytes after a complete response: connection closed")
        self._should_close = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._complete and data:
            self._stray()
            return
        super().data_received(data)

    def feed_data(self, data: Any, size: int = 0) -> None:
        if self._complete:
            self._stray()
            return
        message, payload = data
        code = message.code
        if 100 <= code < 200 and code != 101:
            callback = self._on_interim
            if callback is not None:
                try:
                    callback(code, message.reason, message.raw_headers)
                except Exception:
                    log.exception("forwarding an interim response")
        else:
            payload.on_eof(self._final_eof)  # at once when it is already whole (or empty)
        super().feed_data(data, size)


class OriginError(Exception):
    """The origin could not answer: `timeout` maps to 504, anything else to 502."""

    def __init__(self, origin_id: str, reason: str, timeout: bool) -> None:
        super().__init__(f"origin {origin_id}: {reason}")
        self.origin_id = origin_id
        self.timeout = timeout


class OriginResponse:
    """An origin answer whose body has not been read yet."""

    __slots__ = ("status", "reason", "headers", "_response", "origin_id")

    def __init__(self, origin_id: str, response: aiohttp.ClientResponse) -> None:
        self.origin_id = origin_id
        self.status = response.status
        self.reason = response.reason or ""
        self._response = response
        headers: list[tuple[str, str]] = []
        hop = _connection_tokens(response.raw_headers)
        for raw_name, raw_value in response.raw_headers:
            name = raw_name.decode("latin-1")
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in hop:
                continue
            headers.append((name, raw_value.decode("latin-1")))
        self.headers = headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; a stalled origin raises OriginError(timeout)."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise OriginError(self.origin_id, f"read timeout: {exc}", True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise OriginError(self.origin_id, f"body: {exc!r}", False) from exc

    def release(self) -> None:
        """Return the connection to the pool, or drop it when the body was not read to the end."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def _connection_tokens(raw_headers: Sequence[tuple[bytes, bytes]]) -> frozenset[str]:
    tokens: set[str] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip())
    return frozenset(tokens)


_NON_ASCII = re.compile(r"[^\x21-\x7e]")


def _escape(match: re.Match[str]) -> str:
    return "%%%02X" % ord(match.group())


def origin_url(origin: Origin, viewer_scheme: str, path: str, query: str) -> URL:
    """Absolute URL of `path` on `origin` (S3 origins are addressed path-style by base_url).

    `path` is in its normal form (cdncontract.paths.normalise_path: no dot segment, every
    byte a URL may carry). The URL is built `encoded`, so it is sent byte for byte: nothing
    after the origin path or bucket is resolved or re-encoded on the way, and no spelling of
    a viewer path can leave the prefix. Bytes of the viewer's query that a URL may not carry
    raw are percent-encoded (aiohttp would send them UTF-8 encoded a second time).
    """
    if query:
        base = f"{origin.base_url(viewer_scheme)}{path}?{_NON_ASCII.sub(_escape, query)}"
    else:
        base = origin.base_url(viewer_scheme) + path
    return URL(base, encoded=True)


def tls_context(tls: OriginTLS) -> ssl.SSLContext:
    """A verifying client context for `tls`: its CA bundle (else the system store), protocols, client certificate.

    `load_cert_chain` reads only files, so the client key is written to a mode 0600 file
    (mkstemp) in /dev/shm (memory, never on disk) when there is one, loaded and unlinked at
    once, whether loading worked or not.
    """
    ctx = ssl.create_default_context(cadata=tls.ca_bundle or None)
    low, high = origin_tls.protocol_bounds(tls.ssl_protocols)
    ctx.minimum_version = ssl.TLSVersion[low]
    ctx.maximum_version = ssl.TLSVersion[high]
    if tls.client_certificate:
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="origin-client-", suffix=".pem", dir=shm)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(tls.client_key.rstrip("\n") + "\n" + tls.client_certificate)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
    return ctx


def _is_local(ip: str, family: int) -> bool:
    """Whether `ip` is one of this host's addresses (what a listener on 0.0.0.0 or :: answers on)."""
    if addresses.internal_class(ip) in ("loopback", "unspecified"):
        return True
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((ip, 0))
    except OSError:
        return False
    return True


class OriginClient:
    """One pooled keep-alive aiohttp session shared by every origin of every distribution.

    `configure` sets the address policy: `refuse_internal` (the fleet setting) and the
    edge's own listening ports, which are never an origin.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[OriginTLS, ssl.SSLContext] = {}
        self._refuse_internal = False
        self._own_ports: frozenset[int] = frozenset()
        self._retired: set[aiohttp.ClientSession] = set()

    def configure(self, *, refuse_internal: bool | None = None, own_ports: Iterable[int] | None = None) -> None:
        """Change the address policy; connections pooled under the old one are not reused."""
        changed = False
        if refuse_internal is not None and refuse_internal != self._refuse_internal:
            self._refuse_internal = refuse_internal
            changed = True
        if own_ports is not None and frozenset(own_ports) != self._own_ports:
            self._own_ports = frozenset(own_ports)
            changed = True
        if changed and self._session is not None:
            # New requests get a new pool at once; answers still streaming from the old one
            # get a grace before it is closed.
            old, self._session = self._session, None
            self._retired.add(old)
            loop = asyncio.get_running_loop()
            loop.call_later(_OLD_POOL_GRACE, lambda: loop.create_task(self._retire(old)))

    def _socket_factory(self, addr_info: Any) -> socket.socket:
        family, type_, proto, _, address = addr_info
        ip, port = address[0], address[1]
        if self._refuse_internal:
            found = addresses.internal_class(ip)
            if found is not None:
                raise OSError(f"{_REFUSED}: {ip} is a {found} address (refuse_internal_origins)")
        if port in self._own_ports and _is_local(ip, family):
            raise OSError(f"{_REFUSED}: {ip}:{port} is this edge's own listener")
        return socket.socket(family=family, type=type_, proto=proto)

    def _context(self, tls: OriginTLS) -> ssl.SSLContext:
        ctx = self._contexts.get(tls)
        if ctx is None:
            if len(self._contexts) >= _MAX_CONTEXTS:
                self._contexts.clear()
            ctx = self._contexts[tls] = tls_context(tls)
        return ctx

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=0,
                keepalive_timeout=30,
                ssl=self._context(OriginTLS()),
                ttl_dns_cache=60,
                socket_factory=self._socket_factory,
            )
            # Not public API (aiohttp 3.x): the connector builds each connection's protocol
            # with this factory. OriginProtocol forwards 1xx and refuses stray bytes.
            connector._factory = functools.partial(  # type: ignore[assignment]
                OriginProtocol, loop=asyncio.get_running_loop())
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                read_bufsize=256 * 1024,
                max_line_size=16 * 1024,
                max_field_size=16 * 1024,
            )
        return self._session

    async def request(
        self,
        origin: Origin,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> OriginResponse:
        """Send one request, making up to `connection_attempts` connection attempts.

        As CloudFront: a connection that times out (`connect_timeout`) or is refused is
        tried again; a slow answer on an established connection (`read_timeout`) is not, nor
        a TLS failure or a refused address, which another attempt cannot change. A request
        with a streamed body is tried once: the body cannot be replayed. The error names the
        attempts made.
        """
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=origin.connect_timeout, sock_read=origin.read_timeout
        )
        ssl_arg: ssl.SSLContext | bool = True
        if url.scheme == "https":
            try:
                ssl_arg = self._context(origin.tls)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise OriginError(origin.id, f"TLS settings cannot be loaded: {exc.__class__.__name__}", False) from None
        attempts = 1 if body is not None else max(1, origin.connection_attempts)
        last: OriginError | None = None
        for attempt in range(1, attempts + 1):
            tried = f"(attempt {attempt} of {attempts})"
            try:
                response = await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                    compress=None,
                    ssl=ssl_arg,
                )
            except aiohttp.ConnectionTimeoutError as exc:
                last = OriginError(origin.id, f"connect timeout after {origin.connect_timeout}s {tried}: {exc}", True)
                continue
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise OriginError(origin.id, f"timeout: {exc}", True) from exc
            except aiohttp.ClientConnectorCertificateError as exc:
                cert_error = exc.certificate_error
                why = getattr(cert_error, "verify_message", "") or str(cert_error)
                raise OriginError(origin.id, f"TLS certificate not accepted: {why}", False) from exc
            except aiohttp.ClientConnectorSSLError as exc:
                raise OriginError(origin.id, f"TLS handshake failed: {exc.os_error}", False) from exc
            except aiohttp.ClientConnectorError as exc:
                if _REFUSED in str(exc.os_error):
                    raise OriginError(origin.id, str(exc.os_error), False) from exc
                if ssl_arg is not True and isinstance(exc.os_error, ConnectionResetError):
                    raise OriginError(origin.id, "TLS handshake failed: the origin closed the connection (no SSL "
                                                 "protocol in common, or it wants a client certificate)", False) from exc
                last = OriginError(origin.id, f"connect {tried}: {exc}", False)
                continue
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise OriginError(origin.id, repr(exc), False) from exc
            return OriginResponse(origin.id, response)
        assert last is not None
        raise last

    async def _retire(self, session: aiohttp.ClientSession) -> None:
        self._retired.discard(session)
        await session.close()

    async def close(self) -> None:
        for session in list(self._retired):
            await self._retire(session)
        if self._session is not None:
            await self._session.close()
            self._session = None
