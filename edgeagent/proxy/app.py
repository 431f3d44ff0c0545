"""The proxy: the application server.HttpConnection drives, running each request by phase.

`Proxy.hit` (hit.py) is tried first, inside the parser callback. Every other request runs
`Proxy.handle` as a task: admission (admission.admit, the same verdict as the fast path's),
then the cache (fill.Filling._cached) or pass-through (passthrough.PassThrough._pass), the
answer (respond.Responding), and last the stats record and the access log line. The agent
builds it with its collaborators (context.ProxyState) and only wires.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cdncontract.cache_key import distribution_prefix

from ..accesslog import CLIENT_COMM_ERROR, SIMPLE_CONTENT_TYPE, Line, range_bounds
from ..origin import OriginError
from ..server import ClientDisconnected, HttpConnection, MalformedBody, Request
from ..stats import BLOCKED, CLIENT_ABORT
from . import admission as admission_mod
from .admission import ADMIT, BAD_REQUEST, FORBIDDEN, REDIRECT, Admission, viewer_scheme
from .context import Ctx
from .heads import reason
from .hit import HitPath

log = logging.getLogger("edgeagent.proxy")


class Proxy(HitPath):
    """The viewer-facing application behind server.HttpConnection."""

    # -- connection bookkeeping (server.Application) --

    def connection_opened(self, conn: HttpConnection) -> None:
        self.connections.add(conn)
        self.metrics.connections_open += 1
        self.metrics.connections_total += 1

    def connection_closed(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        self.metrics.connections_open -= 1

    # ---- the slow path ----

    def reject(self, req: Request, conn: HttpConnection) -> None:
        """A malformed request: 400, and the connection closes after it."""
        self.metrics.bad_requests += 1
        status = req.status
        text = f"{status} {reason(status)}: {req.bad}."
        conn.write(self._simple_bytes(req, status, text, "Error", keep_alive=False))
        self._log(req, self._scheme(req, conn), None, status, 0, "Error", 0.0)

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
        fixed = access_log.fixed(
            distribution_id, req.method, headers.get("host", ""), path, query or None, status, sent, result, scheme,
            req.version, ctx.content_type if ctx is not None else SIMPLE_CONTENT_TYPE,
        )  # fmt: skip
        access_log.add(Line(
            time.time(), req.client_ip, req.request_id, taken, fixed, headers.get("referer"),
            headers.get("user-agent"), headers.get("cookie") if access_log.cookies else None, first, last,
            None if ctx is None else ctx.origin_fbl, None if ctx is None else ctx.origin_lbl,
            x_key_pair_id=ctx.key_id if ctx is not None else None,
        ), distribution_id)  # fmt: skip

    def _scheme(self, req: Request, conn: HttpConnection) -> str:
        """The viewer's scheme for a request the slow path takes (admission.viewer_scheme)."""
        return viewer_scheme(conn.scheme, req.headers, self.trust_forwarded_proto)

    async def handle(self, req: Request, conn: HttpConnection) -> None:
        if req.bad:
            self.reject(req, conn)
            return
        config = self.running.config
        scheme = self._scheme(req, conn)
        headers = req.headers
        admission = admission_mod.admit(config, scheme, req.method, headers.get("host"), req.target,
                                        headers.get("cookie"), req.client_ip, time.time())
        dist, behavior = admission.dist, admission.behavior
        if config is None or dist is None or behavior is None:
            self.metrics.unknown_host += 1
            self._log(req, admission.scheme, None, 404, 0, "Error", 0.0)
            await self._send_simple(req, conn, 404, admission.text, "Error")
            return
        metrics = self.metrics.for_distribution(dist.id)
        ctx = Ctx(req, conn, config, dist, behavior, admission.path, admission.scheme, metrics, admission.query)
        ctx.key_id = admission.key_id
        began = time.monotonic()
        aborted = False
        try:
            if admission.kind != ADMIT:
                if admission.reason:
                    # A signed URL or cookie refused: the reason is for the operator, never the viewer.
                    metrics.signed_refused += 1
                    log.info("request %s refused: signed request for %s %s from %s (key %s): %s", req.request_id,
                             dist.id, req.target.partition("?")[0], req.client_ip or "-", admission.key_id or "-",
                             admission.reason)
                await self._refuse(ctx, admission)
                return
            try:
                if admission.cached:
                    await self._cached(ctx)
                else:
                    await self._pass(ctx, write=req.method not in ("GET", "HEAD", "OPTIONS"))
            except (OriginError, MalformedBody) as exc:
                malformed = req.body.error if req.body is not None else None
                if isinstance(malformed, MalformedBody):
                    # The viewer's chunked body broke while it streamed to the origin: the
                    # viewer's fault (400), not the origin's; the connection closes after it.
                    self.metrics.bad_requests += 1
                    if ctx.started:
                        conn.abort()
                        return
                    await self._error(ctx, 400, f"400 Bad Request: {malformed}.")
                    return
                assert isinstance(exc, OriginError)
                metrics.origin_failures += 1
                if ctx.started:
                    # Part of the body is out: only a cut connection tells the viewer it is short.
                    log.warning("request %s %s: origin failed mid-body: %s", req.request_id, ctx.path, exc)
                    conn.abort()
                    return
                await self._origin_failed(ctx, exc)
        except (ClientDisconnected, asyncio.CancelledError):
            # The viewer left before the response was whole (its connection's loss cancels
            # this task): a client abort, not a 2xx. CloudFront logs the status it had
            # started to send (000 before any) and an Error whose detail is ClientCommError.
            aborted = True
            raise
        finally:
            taken = time.monotonic() - began
            if ctx.key_id is not None and admission.kind == ADMIT:
                self.stats.count_signed(dist.id, ctx.key_id)
            if aborted:
                self.stats.record(dist.id, CLIENT_ABORT, ctx.outcome, ctx.sent, taken)
                self._log(req, admission.scheme, dist.id, ctx.status if ctx.started else 0, ctx.sent,
                          CLIENT_COMM_ERROR, taken, ctx)
            else:
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
                extra=[("Location", admission.location)], metrics=ctx.metrics,
            )  # fmt: skip
            return
        if admission.kind == BAD_REQUEST:
            self.metrics.bad_requests += 1
            await self._error(ctx, admission.status, admission.text)
            return
        assert admission.kind == FORBIDDEN
        ctx.outcome = BLOCKED
        extra = [("Allow", admission.allow)] if admission.allow is not None else None
        await self._error(ctx, admission.status, admission.text, extra)

    # ---- invalidation and shutdown ----

    def invalidated(self, distribution_id: str) -> None:
        """Forget range pass-through memories: an invalidated object may come back smaller."""
        prefix = distribution_prefix(distribution_id)
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
