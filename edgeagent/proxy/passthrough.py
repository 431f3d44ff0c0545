"""Origin requests (failover across an origin group) and pass-through answers.

`_fetch` is the one way to an origin, for fills and pass-through alike. `_pass` streams an
origin's answer to one viewer without the cache: writes (whose success evicts the path),
uncacheable methods and answers, CachingDisabled behaviors and large range requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from .. import policy
from ..config import Origin
from ..origin import OriginError, OriginResponse, origin_url
from ..stats import MISS
from .context import Ctx
from .heads import NOT_STORED, content_length, lower_map, reason
from .respond import Responding

log = logging.getLogger("edgeagent.proxy")


class PassThrough(Responding):
    """Origin requests and pass-through: the second phase of `Proxy`."""

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
            ctx.metrics.origin_requests += 1
            try:
                response = await self.origins.request(origin, method, url, headers, body)
            except OriginError as exc:
                last_error = exc
                if body is not None or final:
                    raise
                ctx.metrics.origin_failures += 1
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
            ctx.metrics.pass_ += 1
            headers = [(n, v) for n, v in response.headers if n.lower() not in NOT_STORED]
            size = content_length(lower)
            writer = self._start_response(
                ctx, response.status, headers, size, "Miss", no_body=response.status in (204, 304)
            )
            if req.method != "HEAD" and response.status not in (204, 304):
                async for chunk in response.chunks():
                    ctx.metrics.origin_bytes += len(chunk)
                    self.stats.count_origin_bytes(ctx.dist.id, len(chunk))
                    await writer.send(chunk)
                ctx.origin_done()
            writer.finish()
        finally:
            response.release()

    async def _origin_failed(self, ctx: Ctx, exc: OriginError) -> None:
        status = 504 if exc.timeout else 502
        log.warning("request %s %s: %s", ctx.req.request_id, ctx.path, exc)
        if status in ctx.dist.error_responses and await self._custom_error(ctx, status):
            return
        what = "did not answer in time" if exc.timeout else "could not be reached"
        await self._error(ctx, status, f"{status} {reason(status)}: the origin {what}.")
