"""Request handling: routing, the hit fast path, the miss path and pass-through.

The hot path is `Proxy.fast`: synchronous, called from the parser callback, answering a
fresh memory hit with one `writelines` of the object's pre-serialised head (built once per
stored object), a per-request tail (Age, X-Request-Id) and the body bytes. Everything else
(conditionals, ranges, disk bodies, misses, revalidation, errors, writes) runs in
`Proxy.handle` as a task, with the same headers and semantics.

Misses are collapsed: one `Fill` per cache key fetches from the origin, streams the body
into the store and to every viewer subscribed to it, pausing for the slowest subscriber
so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol

import brotli

from .. import policy
from ..accesslog import SIMPLE_CONTENT_TYPE, Line, protocol_version, range_bounds, result_type
from ..config import Behavior, Distribution, EdgeConfig, ErrorResponse, Origin
from ..accesslog import AccessLog
from ..cli import Settings
from ..metrics import DistributionStats, Metrics
from ..origin import OriginClient, OriginError, OriginResponse, origin_url
from ..server import REQUEST_IDS, ClientDisconnected, HttpConnection, Request, valid_request_id
from ..stats import BLOCKED, EDGE, HIT, MISS, Counters, StatsCollector
from ..store import CachedObject, ObjectMeta, Store, Writer
from . import admission as admission_mod
from .admission import ADMIT, FORBIDDEN, REDIRECT, Admission, viewer_scheme
from .respond import DATE, NOT_STORED, Heads, content_length, for_304, header, lower_map, reason


log = logging.getLogger("edgeagent.proxy")

FILE_CHUNK = 256 * 1024
SUBSCRIBER_BUFFER = 1024 * 1024
REPLAY_LIMIT = 8 * 1024 * 1024
ERROR_PAGE_LIMIT = 1024 * 1024
BIG_OBJECT_MEMORY = 300.0
ROUTE_MEMO = 8192

_clock = time.perf_counter


# ---- Per-request context ----


class Ctx:
    """A request routed to its distribution and behavior, with the config it started on."""

    __slots__ = (
        "req", "conn", "config", "dist", "behavior", "path", "scheme", "stats", "head_only", "key", "started",
        "status", "outcome", "sent", "result", "content_type", "content_range", "origin_began", "origin_fbl",
        "origin_lbl",
    )  # fmt: skip

    def __init__(
        self,
        req: Request,
        conn: HttpConnection,
        config: EdgeConfig,
        dist: Distribution,
        behavior: Behavior,
        path: str,
        scheme: str,
        stats: DistributionStats,
    ) -> None:
        self.req = req
        self.conn = conn
        self.config = config
        self.dist = dist
        self.behavior = behavior
        self.path = path
        self.scheme = scheme
        self.stats = stats
        self.head_only = req.method == "HEAD"
        self.key = ""
        self.started = False
        # What the control-plane stats record once the response is done (stats.py).
        self.status = 0
        self.outcome = EDGE
        self.sent = 0
        # What the access log adds: the X-Cache result, response fields, origin timings.
        # A response that never reaches _start_response is one of the edge's plain texts.
        self.result = "Error"
        self.content_type: str | None = SIMPLE_CONTENT_TYPE
        self.content_range: str | None = None
        self.origin_began = 0.0
        self.origin_fbl: float | None = None
        self.origin_lbl: float | None = None

    def origin_done(self) -> None:
        """The origin's body has been read to its end (origin-lbl)."""
        if self.origin_began:
            self.origin_lbl = time.monotonic() - self.origin_began


class Route:
    """One entry of the fast path's routing memo: the admission verdict for its memo key
    (Host, target, Accept-Encoding, scheme, method), and what a hit derives from it.

    `serve` is True when the verdict lets a fast-path hit through (admitted, cached,
    memoisable); otherwise the request goes to `Proxy.handle`, which answers the verdict.
    `key` is the cache key, "" when it depends on more headers. It also holds what the
    access log wants per request that the memo key already fixes (Host, the target's path
    and query, the distribution's tail ring).
    """

    __slots__ = ("config", "admission", "serve", "dist", "behavior", "path", "key", "scheme", "stats", "counters",
                 "host", "uri_stem", "uri_query", "tail")  # fmt: skip

    def __init__(
        self,
        config: EdgeConfig,
        admission: Admission,
        key: str,
        stats: DistributionStats,
        counters: Counters,
        host: str,
        target: str,
        tail: deque[Line] | None,
    ) -> None:
        assert admission.dist is not None and admission.behavior is not None
        self.config = config
        self.admission = admission
        self.serve = admission.kind == ADMIT and admission.cached and admission.memoisable
        self.dist = admission.dist
        self.behavior = admission.behavior
        self.path = admission.path
        self.scheme = admission.scheme
        self.key = key
        self.stats = stats
        self.counters = counters
        self.host = host
        stem, _, query = target.partition("?")
        self.uri_stem = stem
        self.uri_query = query or None
        self.tail = tail


# ---- Collapsed origin fetches ----


@dataclass
class FillHead:
    """What a fill learned from the origin, handed to every subscriber.

    kind: `stream` (a body follows through the subscription), `object` (serve `obj`:
    a RefreshHit or a stale object), `error` (502/504), `pass` (this response cannot be
    shared or cached: each waiter fetches on its own).
    """

    kind: str
    status: int = 0
    headers: list[tuple[str, str]] | None = None
    length: int | None = None
    result: str = "Miss"
    obj: CachedObject | None = None
    error: OriginError | None = None
    shareable: bool = True
    stale: bool = False


class Subscription:
    """One viewer's cursor into a fill's body."""

    __slots__ = ("chunks", "pending", "_wake", "_drained", "owner", "closed")

    def __init__(self, chunks: list[bytes], owner: bool) -> None:
        self.chunks: deque[bytes] = deque(chunks)
        self.pending = sum(len(c) for c in chunks)
        self._wake: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self.owner = owner
        self.closed = False

    def push(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.pending += len(chunk)
        self.wake()

    def wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait_drained(self) -> None:
        while self.pending > SUBSCRIBER_BUFFER and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _mark_drained(self) -> None:
        if self._drained is not None and not self._drained.done() and self.pending <= SUBSCRIBER_BUFFER:
            self._drained.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.chunks.clear()
        self.pending = 0
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def iterate(self, fill: Fill) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.pending -= len(chunk)
                self._mark_drained()
                yield chunk
            if fill.error is not None:
                raise fill.error
            if fill.finished:
                return
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake


class Fill:
    """One origin fetch for one cache key, shared by every concurrent miss on that key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.head: asyncio.Future[FillHead] = asyncio.get_running_loop().create_future()
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.subscribers: list[Subscription] = []
        self.finished = False
        self.error: BaseException | None = None
        self.done = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self, owner: bool = False) -> Subscription | None:
        """None once the beginning of a large body is gone: the caller waits for `done`."""
        if self.replay is None:
            return None
        sub = Subscription(self.replay, owner)
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    async def publish(self, chunk: bytes) -> None:
        if self.replay is not None:
            self.replay.append(chunk)
            self.replay_size += len(chunk)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
        for sub in self.subscribers:
            sub.push(chunk)
        for sub in list(self.subscribers):
            await sub.wait_drained()

    def finish(self, error: BaseException | None = None) -> None:
        self.finished = True
        self.error = error
        self.replay = None
        for sub in self.subscribers:
            sub.wake()
        if not self.head.done():
            self.head.set_result(FillHead("error", error=OriginError("?", repr(error), False)))
        if not self.done.done():
            self.done.set_result(None)


# ---- Encoders for compression at the edge ----


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


# ---- The proxy ----


class ConfigSource(Protocol):
    """Where the running config is read, once per request (agent.RunningConfig)."""

    config: EdgeConfig | None


class Proxy:
    """The viewer-facing application behind server.HttpConnection."""

    def __init__(
        self,
        running: ConfigSource,
        store: Store,
        metrics: Metrics,
        stats: StatsCollector,
        origins: OriginClient,
        settings: Settings,
        access_log: AccessLog | None,
    ) -> None:
        self.running = running
        self.store = store
        self.metrics = metrics
        self.stats = stats
        self.origins = origins
        self.settings = settings
        self.access_log = access_log
        self.trust_forwarded_proto = settings.trust_forwarded_proto
        self.heads = Heads(settings.name, settings.pop)
        self.via = self.heads.via
        self.closing = False
        self.connections: set[HttpConnection] = set()
        self.fills: dict[str, Fill] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.big_objects: dict[str, float] = {}
        self.routes: dict[tuple[str | None, str, str | None, str, str], Route] = {}
        self._boundary_counter = 0

    # -- connection bookkeeping (server.Application) --

    def connection_opened(self, conn: HttpConnection) -> None:
        self.connections.add(conn)
        self.metrics.connections_open += 1
        self.metrics.connections_total += 1

    def connection_closed(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        self.metrics.connections_open -= 1

    # ---- the hit fast path ----

    def reject(self, req: Request, conn: HttpConnection) -> None:
        """A malformed request: 400, and the connection closes after it."""
        self.metrics.bad_requests += 1
        conn.write(self._simple_bytes(req, 400, f"400 Bad Request: {req.bad}.", "Error", keep_alive=False))
        self._log(req, self._scheme(req, conn), None, 400, 0, "Error", 0.0)

    def _log(
        self,
        req: Request,
        scheme: str,
        distribution_id: str | None,
        status: int,
        sent: int,
        result: str,
        taken: float,
        ctx: Ctx | None = None,
    ) -> None:
        """The access log line of a slow-path answer; `ctx` is None when no distribution took it."""
        access_log = self.access_log
        if access_log is None:
            return
        headers = req.headers
        path, _, query = req.target.partition("?")
        first, last = range_bounds(ctx.content_range) if ctx is not None else (None, None)
        access_log.add(Line(
            time.time(), distribution_id, access_log.pop, req.client_ip, req.method, headers.get("host", ""), path,
            status, sent, result_type(status, result), result, req.request_id, scheme,
            protocol_version(req.version), round(taken, 3), query or None, headers.get("referer"),
            headers.get("user-agent"), headers.get("cookie") if access_log.cookies else None,
            ctx.content_type if ctx is not None else SIMPLE_CONTENT_TYPE, first, last,
            None if ctx is None or ctx.origin_fbl is None else round(ctx.origin_fbl, 3),
            None if ctx is None or ctx.origin_lbl is None else round(ctx.origin_lbl, 3),
        ))  # fmt: skip

    def _scheme(self, req: Request, conn: HttpConnection) -> str:
        """The viewer's scheme for a request the slow path takes (admission.viewer_scheme)."""
        return viewer_scheme(conn.scheme, req.headers, self.trust_forwarded_proto)

    def hit(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        conn: HttpConnection,
        keep_alive: bool = True,
        version: str = "1.1",
    ) -> bool:
        """Answer a fresh memory hit synchronously; False hands the request to `handle`.

        Takes the parsed fields rather than a Request: the common hit never builds one.
        """
        began = _clock()
        if method != "GET" and method != "HEAD":
            return False
        if "range" in headers or "if-none-match" in headers or "if-modified-since" in headers:
            return False
        config = self.running.config
        scheme = conn.scheme
        if self.trust_forwarded_proto:
            scheme = viewer_scheme(scheme, headers, True)
        host = headers.get("host")
        route = self.routes.get((host, target, headers.get("accept-encoding"), scheme, method))
        if route is None or route.config is not config:
            route = self._route(method, target, headers, config, scheme)
            if route is None:
                return False
        if not route.serve:
            # Refused, or not served from the cache: `handle` answers the same verdict.
            return False
        key = route.key or policy.cache_key(
            route.dist, route.behavior, method, route.path, target.partition("?")[2], headers
        )
        obj = self.store.lookup(key, headers)
        if obj is None:
            return False
        body = obj.body
        if body is None:
            return False
        meta = obj.meta
        status = meta.status
        if status in route.dist.error_responses:
            return False
        now = time.time()
        if obj.age_from <= now < obj.age_until:
            # Same whole second of residence as the last verdict: same Age, still fresh.
            age = obj.age
            age_line = obj.age_line
        else:
            verdict, age = policy.freshness(meta, now)
            if verdict != policy.FRESH:
                return False
            age_line = b"Age: %d\r\nX-Request-Id: %s-" % (age, REQUEST_IDS.prefix_bytes)
            resident = now - meta.stored_at
            if resident > 0:
                obj.age = age
                obj.age_line = age_line
                obj.age_from = meta.stored_at + int(resident)
                obj.age_until = obj.age_from + 1
        head = obj.head
        if head is None:
            head = obj.head = self.heads.object_head(obj)
        end = b"\r\n" if keep_alive and not conn.close_after and not self.closing else b"Connection: close\r\n\r\n"
        incoming = headers.get("x-request-id")
        if incoming is not None and valid_request_id(incoming):
            tail = b"Age: %d\r\nX-Request-Id: %s\r\n%s" % (age, incoming.encode("latin-1"), end)
        else:
            incoming = None
            ids = REQUEST_IDS
            ids.counter += 1
            tail = b"%s%x\r\n%s" % (age_line, ids.counter, end)
        stats = route.stats
        stats.hit += 1
        if status < 300:
            stats.status_2xx += 1
        else:
            stats.count_status(status)
        transport = conn.transport
        assert transport is not None
        if method == "HEAD" or status == 204 or status == 304:
            transport.writelines((head, tail))
            sent = 0
        else:
            transport.writelines((head, tail, body))
            sent = len(body)
            stats.bytes_out += sent
        # The latency bucket is the time this hit really took: from the call to the last
        # byte handed to the transport.
        route.counters.fast_hit(status, sent, _clock() - began)
        access_log = self.access_log
        if access_log is not None:
            # The access log's whole cost here: one Line built in C, encoded later by its thread.
            # time-taken is 0: the response was handed to the socket within this callback.
            line = Line(
                now, route.dist.id, access_log.pop, conn.client_ip, method, route.host, route.uri_stem, status,
                sent, "Hit" if status < 400 else "Error", "Hit",
                incoming or "%s-%x" % (REQUEST_IDS.prefix, REQUEST_IDS.counter),
                scheme, "HTTP/1.1" if version == "1.1" else protocol_version(version), 0.0, route.uri_query,
                headers.get("referer"), headers.get("user-agent"),
                headers.get("cookie") if access_log.cookies else None, meta.content_type,
            )  # fmt: skip
            assert route.tail is not None
            route.tail.append(line)
            if len(access_log.pending) < access_log.capacity:
                access_log.pending.append(line)
            else:
                access_log.dropped += 1
        return True

    def _route(
        self, method: str, target: str, headers: dict[str, str], config: EdgeConfig | None, scheme: str
    ) -> Route | None:
        """A new memo entry: the admission verdict for its key, and the cache key when the
        memo key fixes it. None (nothing memoised) for a host no distribution serves."""
        host = headers.get("host")
        admission = admission_mod.admit(config, scheme, method, host, target)
        dist = admission.dist
        if config is None or dist is None or admission.behavior is None:
            return None
        key = ""
        cp = admission.behavior.cache_policy
        if admission.kind == ADMIT and cp.headers.behavior == "none" and cp.cookies.behavior == "none":
            key = policy.cache_key(dist, admission.behavior, "GET", admission.path, target.partition("?")[2], headers)
        tail = self.access_log.ring(dist.id) if self.access_log is not None else None
        route = Route(
            config, admission, key, self.metrics.for_distribution(dist.id), self.stats.counters(dist.id),
            host or "", target, tail,
        )  # fmt: skip
        if len(self.routes) >= ROUTE_MEMO:
            self.routes.clear()
        self.routes[(host, target, headers.get("accept-encoding"), scheme, method)] = route
        return route

    # ---- the slow path ----

    async def handle(self, req: Request, conn: HttpConnection) -> None:
        if req.bad:
            self.reject(req, conn)
            return
        config = self.running.config
        scheme = self._scheme(req, conn)
        admission = admission_mod.admit(config, scheme, req.method, req.headers.get("host"), req.target)
        dist, behavior = admission.dist, admission.behavior
        if config is None or dist is None or behavior is None:
            self.metrics.unknown_host += 1
            self._log(req, admission.scheme, None, 404, 0, "Error", 0.0)
            await self._send_simple(req, conn, 404, admission.text, "Error")
            return
        stats = self.metrics.for_distribution(dist.id)
        ctx = Ctx(req, conn, config, dist, behavior, admission.path, admission.scheme, stats)
        began = time.monotonic()
        try:
            if admission.kind != ADMIT:
                await self._refuse(ctx, admission)
                return
            try:
                if admission.cached:
                    await self._cached(ctx)
                else:
                    await self._pass(ctx, write=req.method not in ("GET", "HEAD", "OPTIONS"))
            except OriginError as exc:
                stats.origin_failures += 1
                if ctx.started:
                    # Part of the body is out: only a cut connection tells the viewer it is short.
                    log.warning("request %s %s: origin failed mid-body: %s", req.request_id, ctx.path, exc)
                    conn.abort()
                    return
                await self._origin_failed(ctx, exc)
        finally:
            taken = time.monotonic() - began
            self.stats.record(dist.id, ctx.status, ctx.outcome, ctx.sent, taken)
            self._log(req, admission.scheme, dist.id, ctx.status, ctx.sent, ctx.result, taken, ctx)

    async def _refuse(self, ctx: Ctx, admission: Admission) -> None:
        """Answer an admission refusal (the same verdict for a request the cache could answer)."""
        if admission.kind == REDIRECT:
            assert admission.location is not None
            ctx.status = admission.status
            ctx.result = "Redirect"
            await self._send_simple(
                ctx.req, ctx.conn, admission.status, admission.text, "Error",
                extra=[("Location", admission.location)], stats=ctx.stats,
            )  # fmt: skip
            return
        assert admission.kind == FORBIDDEN
        ctx.outcome = BLOCKED
        extra = [("Allow", admission.allow)] if admission.allow is not None else None
        await self._error(ctx, admission.status, admission.text, extra)

    # ---- cached methods ----

    async def _cached(self, ctx: Ctx) -> None:
        req = ctx.req
        if ctx.behavior.cache_policy.caching_disabled:
            # CachingDisabled: every request is its own origin request, never collapsed.
            await self._pass(ctx, write=False)
            return
        key = ctx.key = policy.cache_key(ctx.dist, ctx.behavior, req.method, ctx.path, req.query, req.headers)
        now = time.time()
        obj = self.store.lookup(key, req.headers)
        if obj is not None:
            verdict, _ = policy.freshness(obj.meta, now)
            if verdict == policy.FRESH:
                await self._serve_object(ctx, obj, "Hit")
                return
            if verdict == policy.SERVE_STALE:
                self._start_fill(ctx, key, obj)
                ctx.stats.stale_served += 1
                await self._serve_object(ctx, obj, "Hit")
                return
        range_header = req.headers.get("range")
        if range_header is not None and self.big_objects.get(key, 0) > now:
            await self._pass(ctx, write=False)
            return
        fill = self.fills.get(key)
        owner = fill is None
        if fill is None:
            fill = self._start_fill(ctx, key, obj, ranged=range_header is not None)
        else:
            ctx.stats.collapsed += 1
        await self._serve_fill(ctx, fill, owner)

    def _start_fill(self, ctx: Ctx, key: str, stale: CachedObject | None, ranged: bool = False) -> Fill:
        existing = self.fills.get(key)
        if existing is not None:
            return existing
        fill = Fill(key)
        self.fills[key] = fill
        task = asyncio.get_running_loop().create_task(self._run_fill(ctx, fill, stale, ranged))
        fill.task = task
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return fill

    async def _serve_fill(self, ctx: Ctx, fill: Fill, owner: bool) -> None:
        ctx.outcome = MISS
        sub = fill.subscribe(owner)
        try:
            if owner:
                # The fetch this request started is bounded by the origin's own timeouts.
                head = await asyncio.shield(fill.head)
            else:
                try:
                    head = await asyncio.wait_for(asyncio.shield(fill.head), self.settings.collapse_timeout)
                except asyncio.TimeoutError:
                    head = FillHead("pass")
            if head.kind == "object" and head.obj is not None:
                if head.stale:
                    ctx.stats.stale_served += 1
                await self._serve_object(ctx, head.obj, head.result)
                return
            if head.kind == "error" and head.error is not None:
                raise head.error
            if head.kind == "pass" or (not head.shareable and not (sub is not None and sub.owner)):
                await self._pass(ctx, write=False)
                return
            if sub is None:
                await self._serve_after(ctx, fill)
                return
            assert head.headers is not None
            if head.status in ctx.dist.error_responses and await self._custom_error(ctx, head.status):
                return
            await self._stream_fill(ctx, fill, sub, head)
        finally:
            if sub is not None:
                fill.unsubscribe(sub)

    async def _serve_after(self, ctx: Ctx, fill: Fill) -> None:
        """A late joiner of a large fill: wait for the store (bounded), or fetch on its own."""
        try:
            await asyncio.wait_for(asyncio.shield(fill.done), self.settings.collapse_timeout)
        except asyncio.TimeoutError:
            await self._pass(ctx, write=False)
            return
        obj = self.store.lookup(ctx.key, ctx.req.headers)
        if obj is not None:
            ctx.stats.collapsed += 1
            await self._serve_object(ctx, obj, "Hit")
        else:
            await self._pass(ctx, write=False)

    async def _stream_fill(self, ctx: Ctx, fill: Fill, sub: Subscription, head: FillHead) -> None:
        req = ctx.req
        assert head.headers is not None
        headers = head.headers
        length = head.length
        status = head.status
        etag, last_modified = _validators(headers)
        if status == 200 and policy.not_modified(req.headers, etag, last_modified):
            await self._send_head_only(ctx, 304, for_304(headers), head.result)
            return
        ranges = policy.RangeSpec(policy.RANGE_NONE)
        if status == 200 and length is not None and "range" in req.headers:
            spec = policy.parse_range(req.headers["range"], length)
            if policy.if_range_matches(req.headers.get("if-range"), etag, last_modified):
                ranges = spec
        ctx.stats.miss += 1
        if ranges.kind == policy.RANGE_UNSATISFIABLE:
            ctx.stats.count_status(416)
            ctx.status = 416
            await self._send_simple(
                req, ctx.conn, 416, "416 Range Not Satisfiable.", head.result,
                extra=[("Content-Range", ranges.unsatisfied_range())], stats=None,
            )  # fmt: skip
            return
        if ranges.kind == policy.RANGE_SINGLE:
            first, last = ranges.ranges[0]
            out = [(n, v) for n, v in headers] + [("Content-Range", ranges.content_range())]
            writer = self._start_response(ctx, 206, out, last - first + 1, head.result)
            if ctx.head_only:
                writer.finish()
                return
            position = 0
            async for chunk in sub.iterate(fill):
                end = position + len(chunk)
                if end > first and position <= last:
                    await writer.send(chunk[max(0, first - position) : last + 1 - position])
                position = end
                if position > last:
                    break
            writer.finish()
            return
        writer = self._start_response(ctx, status, headers, length, head.result)
        if ctx.head_only:
            writer.finish()
            return
        async for chunk in sub.iterate(fill):
            await writer.send(chunk)
        writer.finish()

    # ---- the fill task: origin fetch, store, broadcast ----

    async def _run_fill(self, ctx: Ctx, fill: Fill, stale: CachedObject | None, ranged: bool) -> None:
        writer: Writer | None = None
        response: OriginResponse | None = None
        try:
            extra: list[tuple[str, str]] = []
            if stale is not None:
                if stale.meta.etag:
                    extra.append(("If-None-Match", stale.meta.etag))
                if stale.meta.last_modified:
                    extra.append(("If-Modified-Since", stale.meta.last_modified))
            try:
                response = await self._fetch(ctx, "GET" if ctx.req.method == "HEAD" else ctx.req.method, extra, None)
            except OriginError as exc:
                ctx.stats.origin_failures += 1
                if stale is not None and policy.stale_if_error(stale.meta, time.time(), None):
                    fill.head.set_result(FillHead("object", obj=stale, result="Hit", stale=True))
                else:
                    fill.head.set_result(FillHead("error", error=exc))
                fill.finish()
                return
            now = time.time()
            status = response.status
            if status == 304 and stale is not None:
                merged = _merge_304(stale.meta.headers, response.headers)
                lower = lower_map(merged)
                decision = policy.decide(stale.meta.status, lower, ctx.behavior.cache_policy, "GET", now)
                meta = replace(
                    stale.meta,
                    headers=tuple(merged),
                    stored_at=now,
                    ttl=decision.ttl,
                    stale_while_revalidate=decision.stale_while_revalidate,
                    stale_if_error=decision.stale_if_error,
                    must_revalidate=decision.must_revalidate,
                    origin_age=_int_header(lower.get("age")),
                    etag=lower.get("etag", stale.meta.etag),
                    last_modified=lower.get("last-modified", stale.meta.last_modified),
                )
                refreshed = self.store.refresh(stale, meta)
                ctx.origin_done()
                response.release()
                response = None
                fill.head.set_result(FillHead("object", obj=refreshed, result="RefreshHit"))
                fill.finish()
                return
            if stale is not None and status >= 500 and policy.stale_if_error(stale.meta, now, status):
                fill.head.set_result(FillHead("object", obj=stale, result="Hit", stale=True))
                fill.finish()
                return
            headers = [(n, v) for n, v in response.headers if n.lower() not in NOT_STORED]
            lower = lower_map(response.headers)
            length = content_length(lower)
            if ranged and status == 200 and length is not None and length > self.settings.range_passthrough_bytes:
                self.big_objects[fill.key] = now + BIG_OBJECT_MEMORY
                fill.head.set_result(FillHead("pass"))
                fill.finish()
                return
            error_response = ctx.dist.error_responses.get(status)
            decision = policy.decide(status, lower, ctx.behavior.cache_policy, "GET", now, error_response)
            vary_names = policy.vary_names(lower.get("vary"))
            if vary_names and ctx.behavior.cache_policy.encoding_in_key:
                vary_names = tuple(n for n in vary_names if n != "accept-encoding")
            encoder: Encoder | None = None
            encoding = lower.get("content-encoding", "")
            target = policy.negotiate_encoding(ctx.req.headers.get("accept-encoding"), ctx.behavior)
            if (
                target
                and not encoding
                and status == 200
                and policy.is_compressible(lower.get("content-type"), length)
                and not ranged
            ):
                encoder = make_encoder(target)
                encoding = target
                headers = _compressed_headers(headers, target)
                length = None
            if decision.cacheable and vary_names is not None:
                meta = ObjectMeta(
                    distribution_id=ctx.dist.id,
                    path=ctx.path,
                    status=status,
                    headers=tuple(headers),
                    stored_at=now,
                    ttl=decision.ttl,
                    stale_while_revalidate=decision.stale_while_revalidate,
                    stale_if_error=decision.stale_if_error,
                    must_revalidate=decision.must_revalidate,
                    origin_age=_int_header(lower.get("age")),
                    etag=header(headers, "etag"),
                    last_modified=lower.get("last-modified"),
                    content_type=lower.get("content-type"),
                    encoding=encoding,
                    tags=policy.surrogate_keys(lower.get("surrogate-key")),
                    vary=vary_names,
                    vary_key=policy.vary_key(vary_names, ctx.req.headers) if vary_names else "",
                )
                writer = self.store.begin(fill.key, meta, length)
            # An answer the cache may not keep is not another viewer's either.
            shareable = decision.cacheable
            fill.head.set_result(FillHead("stream", status, headers, length, "Miss", shareable=shareable))
            received = 0
            async for chunk in response.chunks():
                received += len(chunk)
                if encoder is not None:
                    chunk = encoder.feed(chunk)
                    if not chunk:
                        continue
                if writer is not None and not writer.write(chunk):
                    writer.abort()
                    writer = None
                await fill.publish(chunk)
            if encoder is not None:
                tail = encoder.end()
                if tail:
                    if writer is not None:
                        writer.write(tail)
                    await fill.publish(tail)
            ctx.stats.origin_bytes += received
            ctx.origin_done()
            self.stats.count_origin_bytes(ctx.dist.id, received)
            response.release()
            response = None
            if writer is not None:
                writer.commit()
                writer = None
            fill.finish()
        except asyncio.CancelledError:
            fill.finish(ClientDisconnected())
            raise
        except OriginError as exc:
            ctx.stats.origin_failures += 1
            log.warning("origin body failed for %s: %s", ctx.path, exc)
            fill.finish(exc)
        except Exception as exc:
            log.exception("fill failed for %s", ctx.path)
            fill.finish(exc)
        finally:
            if writer is not None:
                writer.abort()
            if response is not None:
                response.release()
            if self.fills.get(fill.key) is fill:
                del self.fills[fill.key]

    # ---- origin requests ----

    def _origin_request_headers(self, ctx: Ctx, origin: Origin, method: str) -> list[tuple[str, str]]:
        req = ctx.req
        headers = policy.origin_headers(ctx.behavior, method, req.headers, origin)
        forwarded = req.headers.get("x-forwarded-for")
        headers.append(("X-Forwarded-For", f"{forwarded}, {req.client_ip}" if forwarded else req.client_ip))
        headers.append(("X-Forwarded-Proto", ctx.scheme))
        via = req.headers.get("via")
        headers.append(("Via", f"{via}, {self.via}" if via else self.via))
        return headers

    async def _fetch(
        self,
        ctx: Ctx,
        method: str,
        extra: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        query: str | None = None,
    ) -> OriginResponse:
        """Try each target in failover order; the last failure is raised or returned."""
        behavior = ctx.behavior
        targets = behavior.origins
        query = policy.origin_query(behavior, ctx.req.query) if query is None else query
        last_error: OriginError | None = None
        began = time.monotonic()
        if not ctx.origin_began:
            ctx.origin_began = began
        for index, origin in enumerate(targets):
            final = index == len(targets) - 1
            headers = self._origin_request_headers(ctx, origin, method) + extra
            url = origin_url(origin, ctx.scheme, ctx.path, query)
            ctx.stats.origin_requests += 1
            try:
                response = await self.origins.request(origin, method, url, headers, body)
            except OriginError as exc:
                last_error = exc
                if body is not None or final:
                    raise
                ctx.stats.origin_failures += 1
                log.info("failover from %s: %s", origin.id, exc)
                continue
            if not final and response.status in behavior.failover_status_codes and body is None:
                log.info("failover from %s: status %d", origin.id, response.status)
                response.release()
                continue
            ctx.origin_fbl = time.monotonic() - began
            return response
        assert last_error is not None
        raise last_error

    # ---- pass-through (writes, uncacheable answers, big ranges) ----

    async def _pass(self, ctx: Ctx, write: bool) -> None:
        req = ctx.req
        extra: list[tuple[str, str]] = []
        body: AsyncIterator[bytes] | None = None
        if write and req.body is not None:
            body = req.body.iterate()
            length = req.headers.get("content-length")
            if length is not None and "transfer-encoding" not in req.headers:
                extra.append(("Content-Length", length))
        elif write and req.method in ("POST", "PUT", "PATCH"):
            extra.append(("Content-Length", "0"))
        if not write:
            for name in ("range", "if-range", "if-none-match", "if-modified-since"):
                value = req.headers.get(name)
                if value is not None:
                    extra.append((name, value))
        ctx.outcome = MISS
        response = await self._fetch(ctx, req.method, extra, body)
        try:
            if write and 200 <= response.status < 300:
                # A successful write changes the resource: no variant of it may be served stale.
                self.store.invalidate(ctx.dist.id, [ctx.path], [])
            lower = lower_map(response.headers)
            if response.status in ctx.dist.error_responses and await self._custom_error(ctx, response.status):
                return
            ctx.stats.pass_ += 1
            headers = [(n, v) for n, v in response.headers if n.lower() not in NOT_STORED]
            size = content_length(lower)
            writer = self._start_response(
                ctx, response.status, headers, size, "Miss", no_body=response.status in (204, 304)
            )
            if req.method != "HEAD" and response.status not in (204, 304):
                async for chunk in response.chunks():
                    ctx.stats.origin_bytes += len(chunk)
                    self.stats.count_origin_bytes(ctx.dist.id, len(chunk))
                    await writer.send(chunk)
                ctx.origin_done()
            writer.finish()
        finally:
            response.release()

    # ---- serving stored objects ----

    async def _serve_object(self, ctx: Ctx, obj: CachedObject, result: str) -> None:
        req = ctx.req
        meta = obj.meta
        now = time.time()
        age = policy.age(meta.stored_at, now, meta.origin_age)
        ctx.stats.hit += result == "Hit"
        ctx.stats.refresh_hit += result == "RefreshHit"
        ctx.outcome = HIT
        if meta.status in ctx.dist.error_responses and await self._custom_error(ctx, meta.status):
            return
        if meta.status == 200 and policy.not_modified(req.headers, meta.etag, meta.last_modified):
            await self._send_head_only(ctx, 304, for_304(list(meta.headers)), result, age)
            return
        spec = policy.RangeSpec(policy.RANGE_NONE)
        if meta.status == 200 and "range" in req.headers and policy.if_range_matches(
            req.headers.get("if-range"), meta.etag, meta.last_modified
        ):
            spec = policy.parse_range(req.headers["range"], obj.size)
        if spec.kind == policy.RANGE_UNSATISFIABLE:
            ctx.status = 416
            await self._send_simple(
                req, ctx.conn, 416, "416 Range Not Satisfiable.", result,
                extra=[("Content-Range", spec.unsatisfied_range())], stats=ctx.stats,
            )  # fmt: skip
            return
        headers = list(meta.headers)
        if spec.kind == policy.RANGE_SINGLE:
            first, last = spec.ranges[0]
            headers.append(("Content-Range", spec.content_range()))
            writer = self._start_response(ctx, 206, headers, last - first + 1, result, age)
            if not ctx.head_only:
                await self._send_body(writer, obj, first, last)
            writer.finish()
            return
        if spec.kind == policy.RANGE_MULTI:
            self._boundary_counter += 1
            boundary = f"edge{os.getpid():x}{self._boundary_counter:x}"
            plan = policy.multipart_plan(spec, meta.content_type, boundary)
            headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
            headers.append(("Content-Type", plan.content_type))
            writer = self._start_response(ctx, 206, headers, plan.length, result, age)
            if not ctx.head_only:
                for part_head, first, last in plan.parts:
                    await writer.send(part_head)
                    await self._send_body(writer, obj, first, last)
                await writer.send(plan.tail)
            writer.finish()
            return
        if result == "Hit" and obj.body is not None:
            head = obj.head
            if head is None:
                head = obj.head = self.heads.object_head(obj)
            ctx.stats.count_status(meta.status)
            ctx.status = meta.status
            ctx.result = result
            ctx.content_type = meta.content_type
            tail = b"Age: %d\r\nX-Request-Id: %s\r\n\r\n" % (age, req.request_id.encode("latin-1"))
            if not ctx.conn.keep_alive(req):
                tail = b"Connection: close\r\n" + tail
            if ctx.head_only or meta.status in (204, 304):
                ctx.conn.write(head + tail)
            else:
                ctx.conn.writelines((head, tail, obj.body))
                ctx.stats.bytes_out += obj.size
                ctx.sent += obj.size
            await ctx.conn.drain()
            return
        writer = self._start_response(ctx, meta.status, headers, obj.size, result, age)
        if not ctx.head_only and meta.status not in (204, 304):
            await self._send_body(writer, obj, 0, obj.size - 1)
        writer.finish()

    async def _send_body(self, writer: ResponseWriter, obj: CachedObject, first: int, last: int) -> None:
        if last < first:
            return
        if obj.body is not None:
            await writer.send(obj.body[first : last + 1])
            return
        try:
            fh = obj.open_body()
        except FileNotFoundError as exc:
            raise ClientDisconnected() from exc
        with fh:
            fh.seek(first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = fh.read(min(FILE_CHUNK, remaining))
                if not chunk:
                    raise ClientDisconnected()
                remaining -= len(chunk)
                await writer.send(chunk)

    # ---- custom error responses and edge errors ----

    async def _custom_error(self, ctx: Ctx, status: int) -> bool:
        """Serve the distribution's error page for `status`; False when there is none to serve."""
        er: ErrorResponse | None = ctx.dist.error_responses.get(status)
        if er is None or not er.response_page_path or er.response_page_path == ctx.path:
            return False
        page = await self._load_page(ctx, er.response_page_path)
        if page is None:
            return False
        code = er.response_code or status
        headers, body = page
        headers = [(n, v) for n, v in headers if n.lower() not in ("etag", "last-modified", "content-range")]
        writer = self._start_response(ctx, code, headers, len(body), "Error")
        if not ctx.head_only:
            await writer.send(body)
        writer.finish()
        return True

    async def _load_page(self, ctx: Ctx, page_path: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """An error page fetched through the distribution's own behavior and cache."""
        behavior = ctx.dist.match_behavior(page_path)
        page_req = Request("GET", page_path, {"host": ctx.dist.domain_name}, "1.1", True, ctx.req.client_ip, None)
        page_ctx = Ctx(page_req, ctx.conn, ctx.config, ctx.dist, behavior, page_path, ctx.scheme, ctx.stats)
        key = page_ctx.key = policy.cache_key(ctx.dist, behavior, "GET", page_path, "", page_req.headers)
        obj = self.store.lookup(key, page_req.headers)
        now = time.time()
        if obj is not None and policy.freshness(obj.meta, now)[0] == policy.FRESH:
            if obj.meta.status != 200 or obj.size > ERROR_PAGE_LIMIT:
                return None
            return list(obj.meta.headers), obj.read()
        fill = self._start_fill(page_ctx, key, None)
        sub = fill.subscribe()
        try:
            head = await asyncio.shield(fill.head)
            if head.kind != "stream" or head.status != 200 or sub is None or head.headers is None:
                return None
            parts: list[bytes] = []
            size = 0
            async for chunk in sub.iterate(fill):
                size += len(chunk)
                if size > ERROR_PAGE_LIMIT:
                    return None
                parts.append(chunk)
            return head.headers, b"".join(parts)
        except OriginError:
            return None
        finally:
            if sub is not None:
                fill.unsubscribe(sub)

    async def _origin_failed(self, ctx: Ctx, exc: OriginError) -> None:
        status = 504 if exc.timeout else 502
        log.warning("request %s %s: %s", ctx.req.request_id, ctx.path, exc)
        if status in ctx.dist.error_responses and await self._custom_error(ctx, status):
            return
        what = "did not answer in time" if exc.timeout else "could not be reached"
        await self._error(ctx, status, f"{status} {reason(status)}: the origin {what}.")

    async def _error(self, ctx: Ctx, status: int, text: str, extra: list[tuple[str, str]] | None = None) -> None:
        ctx.stats.error += 1
        ctx.status = status
        await self._send_simple(ctx.req, ctx.conn, status, text, "Error", extra=extra, stats=ctx.stats)

    # ---- response writing ----

    def _simple_bytes(
        self,
        req: Request,
        status: int,
        text: str,
        result: str,
        extra: list[tuple[str, str]] | None = None,
        keep_alive: bool = True,
    ) -> bytes:
        """One of the edge's own short plain-text answers (errors, redirects)."""
        body = f"{text}\nRequest ID: {req.request_id}\n".encode()
        headers = [("Date", DATE.now()), ("Content-Type", SIMPLE_CONTENT_TYPE), ("Cache-Control", "no-store")]
        if extra:
            headers += extra
        heads = self.heads
        head = heads.head(status, headers, f"Content-Length: {len(body)}\r\n", result)
        head += heads.tail(None, req.request_id, not keep_alive)
        return head if req.method == "HEAD" else head + body

    async def _send_simple(
        self,
        req: Request,
        conn: HttpConnection,
        status: int,
        text: str,
        result: str,
        extra: list[tuple[str, str]] | None = None,
        stats: DistributionStats | None = None,
    ) -> None:
        if stats is not None:
            stats.count_status(status)
        conn.write(self._simple_bytes(req, status, text, result, extra, conn.keep_alive(req)))
        await conn.drain()

    async def _send_head_only(
        self, ctx: Ctx, status: int, headers: list[tuple[str, str]], result: str, age: int | None = None
    ) -> None:
        writer = self._start_response(ctx, status, headers, None, result, age, no_body=True)
        writer.finish()

    def _start_response(
        self,
        ctx: Ctx,
        status: int,
        headers: list[tuple[str, str]],
        length: int | None,
        result: str,
        age: int | None = None,
        no_body: bool = False,
    ) -> ResponseWriter:
        req = ctx.req
        keep_alive = ctx.conn.keep_alive(req)
        chunked = False
        framing = ""
        if no_body or status in (204, 304) or (status < 200):
            pass
        elif length is not None:
            framing = f"Content-Length: {length}\r\n"
        elif req.version == "1.1" and not ctx.head_only:
            framing = "Transfer-Encoding: chunked\r\n"
            chunked = True
        elif not ctx.head_only:
            keep_alive = False
        if not keep_alive:
            ctx.conn.close_after = True
        heads = self.heads
        head = heads.head(status, headers, framing, result) + heads.tail(age or 0, req.request_id, not keep_alive)
        ctx.content_type = header(headers, "content-type")
        content_range = header(headers, "content-range")
        if content_range is not None:
            ctx.content_range = content_range
        ctx.stats.count_status(status)
        ctx.status = status
        ctx.result = result
        ctx.started = True
        return ResponseWriter(ctx, chunked, head)

    # ---- shutdown ----

    def invalidated(self, distribution_id: str) -> None:
        """Forget range pass-through memories: an invalidated object may come back smaller."""
        prefix = distribution_id + "\x00"
        for key in [k for k in self.big_objects if k.startswith(prefix)]:
            del self.big_objects[key]

    async def drain(self, timeout: float) -> None:
        """Graceful shutdown: idle connections close now, busy ones after their response."""
        self.closing = True
        for conn in list(self.connections):
            conn.close_if_idle()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.wait(list(self.background), timeout=1)


class ResponseWriter:
    """Body writing for the slow path: chunked framing, byte counting, back-pressure.

    The head is held back until the first body bytes (or the end) so a small response
    leaves in one writev instead of two writes.
    """

    __slots__ = ("ctx", "chunked", "head")

    def __init__(self, ctx: Ctx, chunked: bool, head: bytes) -> None:
        self.ctx = ctx
        self.chunked = chunked
        self.head = head

    async def send(self, data: bytes) -> None:
        if not data:
            return
        conn = self.ctx.conn
        head, self.head = self.head, b""
        if self.chunked:
            conn.writelines((head, b"%x\r\n" % len(data), data, b"\r\n"))
        elif head:
            conn.writelines((head, data))
        else:
            conn.write(data)
        self.ctx.stats.bytes_out += len(data)
        self.ctx.sent += len(data)
        await conn.drain()

    def finish(self) -> None:
        head, self.head = self.head, b""
        if self.chunked:
            self.ctx.conn.write(head + b"0\r\n\r\n")
        elif head:
            self.ctx.conn.write(head)


# ---- header helpers ----


def _validators(headers: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    return header(headers, "etag"), header(headers, "last-modified")


def _int_header(value: str | None) -> int:
    if value is None or not value.strip().isdigit():
        return 0
    return int(value.strip())


def _merge_304(stored: tuple[tuple[str, str], ...], fresh: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Stored headers updated with those of a 304 (RFC 9111 4.3.4), framing fields excepted."""
    updates = {n.lower(): (n, v) for n, v in fresh if n.lower() not in NOT_STORED and n.lower() != "content-length"}
    out = [updates.pop(n.lower(), (n, v)) for n, v in stored]
    out.extend(updates.values())
    return out


def _compressed_headers(headers: list[tuple[str, str]], encoding: str) -> list[tuple[str, str]]:
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
