"""Writing answers: bodies, stored objects, the edge's own texts and custom error pages.

`ResponseWriter` writes a body (chunked framing, byte counting, back-pressure).
`Responding` serves a stored object (viewer conditionals, ranges, memory or disk bodies),
starts every slow-path response through the one head builder (heads.Heads), sends the
edge's short plain-text answers (errors, redirects) and the distributions' custom error
pages (fetched through the distribution's own behavior and cache).
"""

from __future__ import annotations

import asyncio
import os
import time

from cdncontract.paths import PathError, normalise_path

from .. import policy
from ..accesslog import SIMPLE_CONTENT_TYPE
from ..config import ErrorResponse
from ..prometheus import DistributionMetrics
from ..origin import OriginError
from ..server import ClientDisconnected, HttpConnection, Request
from ..stats import HIT
from ..store import CachedObject
from .context import Ctx, ProxyState
from .heads import DATE, for_304, header

FILE_CHUNK = 256 * 1024
ERROR_PAGE_LIMIT = 1024 * 1024


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
        self.ctx.metrics.bytes_out += len(data)
        self.ctx.sent += len(data)
        await conn.drain()

    def finish(self) -> None:
        head, self.head = self.head, b""
        if self.chunked:
            self.ctx.conn.write(head + b"0\r\n\r\n")
        elif head:
            self.ctx.conn.write(head)


class Responding(ProxyState):
    """Writing answers: the first phase of `Proxy`, used by every later one (pass-through, fills, hits)."""

    async def _serve_object(self, ctx: Ctx, obj: CachedObject, result: str) -> None:
        req = ctx.req
        meta = obj.meta
        now = time.time()
        age = policy.age(meta.stored_at, now, meta.origin_age)
        ctx.metrics.hit += result == "Hit"
        ctx.metrics.refresh_hit += result == "RefreshHit"
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
                extra=[("Content-Range", spec.unsatisfied_range())], metrics=ctx.metrics,
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
        if result == "Hit" and obj.body is not None and not ctx.cache_status:
            head = obj.head
            if head is None:
                head = obj.head = self.heads.object_head(obj)
            ctx.metrics.count_status(meta.status)
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
                ctx.metrics.bytes_out += obj.size
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

    async def _custom_error(self, ctx: Ctx, status: int) -> bool:
        """Serve the distribution's error page for `status`; False when there is none to serve."""
        er: ErrorResponse | None = ctx.dist.error_responses.get(status)
        if er is None or not er.response_page_path:
            return False
        try:
            # The page is fetched and keyed like a viewer's request for it (in the normal form).
            page_path = normalise_path(er.response_page_path.encode("utf-8"))
        except PathError:
            return False
        if page_path == ctx.path:
            return False
        page = await self._load_page(ctx, page_path)
        if page is None:
            return False
        code = er.response_code or status
        if not ctx.cache_status:
            ctx.cache_status = "hit" if ctx.outcome == HIT else "fwd=uri-miss"
        if "detail=" not in ctx.cache_status:
            ctx.cache_status += "; detail=error-page"
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
        page_ctx = Ctx(page_req, ctx.conn, ctx.config, ctx.dist, behavior, page_path, ctx.scheme, ctx.metrics)
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

    async def _error(self, ctx: Ctx, status: int, text: str, extra: list[tuple[str, str]] | None = None) -> None:
        ctx.metrics.error += 1
        ctx.status = status
        await self._send_simple(
            ctx.req, ctx.conn, status, text, "Error", extra=extra, metrics=ctx.metrics, cache_status=ctx.cache_status
        )

    def _simple_bytes(
        self,
        req: Request,
        status: int,
        text: str,
        result: str,
        extra: list[tuple[str, str]] | None = None,
        keep_alive: bool = True,
        cache_status: str = "",
    ) -> bytes:
        """One of the edge's own short plain-text answers (errors, redirects)."""
        body = f"{text}\nRequest ID: {req.request_id}\n".encode()
        headers = [("Date", DATE.now()), ("Content-Type", SIMPLE_CONTENT_TYPE), ("Cache-Control", "no-store")]
        if extra:
            headers += extra
        heads = self.heads
        head = heads.head(status, headers, f"Content-Length: {len(body)}\r\n", result, cache_status)
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
        metrics: DistributionMetrics | None = None,
        cache_status: str = "",
    ) -> None:
        if metrics is not None:
            metrics.count_status(status)
        conn.write(self._simple_bytes(req, status, text, result, extra, conn.keep_alive(req), cache_status))
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
        head = heads.head(status, headers, framing, result, ctx.cache_status)
        head += heads.tail(age or 0, req.request_id, not keep_alive)
        ctx.content_type = header(headers, "content-type")
        content_range = header(headers, "content-range")
        if content_range is not None:
            ctx.content_range = content_range
        ctx.metrics.count_status(status)
        ctx.status = status
        ctx.result = result
        ctx.started = True
        return ResponseWriter(ctx, chunked, head)
