"""Origin requests (failover across an origin group) and pass-through answers.

`_fetch` is the one way to an origin, for fills and pass-through alike. `_pass` streams an
origin's answer to one viewer without the cache: writes (whose success evicts the path),
uncacheable methods and answers, CachingDisabled behaviors and large range requests.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence

from .. import policy, s3sign
from ..config import Origin
from ..origin import INTERIM, OriginError, OriginResponse, origin_url
from ..stats import MISS
from .context import Ctx
from .heads import NOT_STORED, content_length, lower_map, reason
from .respond import Responding

log = logging.getLogger("edgeagent.proxy")


def _wire_text(value: str) -> str:
    """A viewer's header value (its bytes read as latin-1) as the text aiohttp writes back to
    the same bytes: aiohttp encodes header values as UTF-8, so UTF-8 bytes are decoded as
    such (else `café` reaches the origin encoded twice). Bytes that are not UTF-8 cannot be
    sent unchanged through aiohttp and keep today's form (docs/caching.md says so)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class PassThrough(Responding):
    """Origin requests and pass-through: the second phase of `Proxy`."""

    def _origin_request_headers(self, ctx: Ctx, origin: Origin, method: str) -> list[tuple[str, str]]:
        req = ctx.req
        headers = policy.origin_headers(ctx.behavior, method, req.headers, origin)
        for index, (name, value) in enumerate(headers):
            if not value.isascii():
                headers[index] = (name, _wire_text(value))
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
        query = policy.origin_query(behavior, ctx.query) if query is None else query
        last_error: OriginError | None = None
        began = time.monotonic()
        if not ctx.origin_began:
            ctx.origin_began = began
        for index, origin in enumerate(targets):
            final = index == len(targets) - 1
            headers = self._origin_request_headers(ctx, origin, method) + extra
            s3 = origin.s3
            if s3 is None:
                url = origin_url(origin, ctx.scheme, ctx.path, query)
            else:
                # Built encoded, so it is sent exactly as signed: no requoting on the way.
                url = origin_url(origin, ctx.scheme, s3sign.object_path(ctx.path), s3sign.object_query(query))
                if s3sign.signs(s3, headers):
                    headers = s3sign.sign(s3, method, str(url), headers, body is not None)
            ctx.metrics.origin_requests += 1
            interim = INTERIM.set(functools.partial(self._relay_interim, ctx)) if ctx.relay_interim else None
            try:
                response = await self.origins.request(origin, method, url, headers, body)
                if s3 is not None:
                    response = await s3sign.screen(origin, response)
            except OriginError as exc:
                last_error = exc
                if body is not None or final or (isinstance(exc, s3sign.S3Refused)
                                                 and exc.origin_status not in behavior.failover_status_codes):
                    raise
                ctx.metrics.origin_failures += 1
                log.info("failover from %s: %s", origin.id, exc)
                continue
            finally:
                if interim is not None:
                    INTERIM.reset(interim)
            if not final and response.status in behavior.failover_status_codes and body is None:
                log.info("failover from %s: status %d", origin.id, response.status)
                response.release()
                continue
            ctx.origin_fbl = time.monotonic() - began
            return response
        assert last_error is not None
        raise last_error

    def _relay_interim(self, ctx: Ctx, status: int, text: str, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """An origin's 1xx (100, 102, 103 ...) to the viewer that waits for this fetch, before
        its final answer (RFC 9110 15.2); never to an HTTP/1.0 viewer, and no second 100
        Continue when the edge sent its own as it began reading the viewer's body. Nothing of
        it is stored: the origin client hands it here and on to no response (origin.py)."""
        req = ctx.req
        if not ctx.relay_interim or ctx.started or req.version != "1.1" or ctx.conn.closed:
            return
        if status == 100 and req.body is not None and req.body.continued:
            return
        ctx.conn.write(self.heads.interim(status, text, headers))

    async def _pass(self, ctx: Ctx, write: bool) -> None:
        req = ctx.req
        ctx.relay_interim = True
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
        behavior = ctx.behavior
        if req.method not in behavior.cached_methods:
            fwd = "method"
        elif behavior.cache_policy.caching_disabled:
            fwd = "bypass"
        else:
            fwd = "uri-miss"  # an answer no one may share, or a large range
        ctx.cache_status = f"fwd={fwd}; fwd-status={response.status}"
        try:
            if write and 200 <= response.status < 300:
                # A successful write changes the resource: no variant of it may be served stale.
                self.store.invalidate(ctx.dist.id, [ctx.path], [])
            lower = lower_map(response.headers)
            if response.status in ctx.dist.error_responses and await self._custom_error(ctx, response.status):
                return
            ctx.metrics.pass_ += 1
            targeted = policy.targeted_names(ctx.behavior.cache_policy)
            headers = [(n, v) for n, v in response.headers if n.lower() not in NOT_STORED and n.lower() not in targeted]
            size = content_length(lower)
            # Not stored here, so the age is the origin's own (upstream caches included).
            age = policy.age_value(lower.get("age")) or 0
            writer = self._start_response(
                ctx, response.status, headers, size, "Miss", age, no_body=response.status in (204, 304)
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
        status = exc.status if isinstance(exc, s3sign.S3Refused) else 504 if exc.timeout else 502
        ctx.cache_status = f"fwd=uri-miss; detail={'origin-timeout' if exc.timeout else 'origin-unreachable'}"
        log.warning("request %s %s: %s", ctx.req.request_id, ctx.path, exc)
        if status in ctx.dist.error_responses and await self._custom_error(ctx, status):
            return
        if isinstance(exc, s3sign.S3Refused):
            await self._error(ctx, status, exc.viewer_text())
            return
        what = "did not answer in time" if exc.timeout else "could not be reached"
        await self._error(ctx, status, f"{status} {reason(status)}: the origin {what}.")
