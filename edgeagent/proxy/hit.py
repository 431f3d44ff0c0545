"""The hit fast path: a fresh memory hit answered inside the parser callback.

`HitPath.hit` is synchronous, called by server.HttpConnection before any task exists. It
answers a fresh memory hit with one `writelines` of the object's pre-serialised head (built
once per stored object, respond.Heads), a per-request tail (Age, X-Request-Id) and the body.
What it derives from the request line alone is memoised per (Host, target, Accept-Encoding,
scheme, method) in a `Route`: the admission verdict (admission.admit_route, computed once per
entry) and the cache key. The freshness verdict is policy.freshness, memoised per object
for the rest of the second it was computed in. Anything else (conditionals, ranges, disk
bodies, misses, refusals, error pages) returns False and runs in `Proxy.handle`.

A route on a behavior that trusts key groups (signed URLs and cookies) is never served from
the memo alone: its verdict depends on the query, the cookies, the clock and the client, so
every request runs `admission.check_signed` first, and only an admitted one is a fast hit.
"""

from __future__ import annotations

import time
from collections import deque

import msgspec

from .. import policy
from ..accesslog import BATCH_LINES, Line
from ..config import EdgeConfig
from ..prometheus import DistributionMetrics
from ..server import REQUEST_IDS, HttpConnection, valid_request_id
from ..stats import Counters
from . import admission as admission_mod
from .admission import ADMIT, Admission, viewer_scheme
from .fill import Filling

ROUTE_MEMO = 8192
NO_TAIL: deque[Line] = deque(maxlen=0)  # a route's tail ring when the access log is off

_clock = time.perf_counter


class Route:
    """One entry of the fast path's routing memo: the admission verdict for its memo key
    (Host, target, Accept-Encoding, scheme, method), and what a hit derives from it.

    `serve` is True when the verdict lets a fast-path hit through (admitted, cached,
    memoisable); otherwise the request goes to `Proxy.handle`, which answers the verdict.
    `signed` is True when it would, but for the signature each request must carry
    (`admission.check_signed`).
    `key` is the cache key, "" when it depends on more headers. It also holds what the
    access log wants per request that the memo key already fixes (Host, the target's path
    and query, the distribution's tail ring).
    """

    __slots__ = ("config", "admission", "serve", "signed", "dist", "behavior", "path", "key", "scheme", "metrics",
                 "counters", "host", "uri_stem", "uri_query", "tail", "log_obj", "log_fixed")  # fmt: skip

    def __init__(
        self,
        config: EdgeConfig,
        admission: Admission,
        key: str,
        metrics: DistributionMetrics,
        counters: Counters,
        host: str,
        target: str,
        tail: deque[Line],
    ) -> None:
        assert admission.dist is not None and admission.behavior is not None
        self.config = config
        self.admission = admission
        admitted = admission.kind == ADMIT and admission.cached and admission.memoisable
        self.serve = admitted and not admission.signed
        self.signed = admitted and admission.signed
        self.dist = admission.dist
        self.behavior = admission.behavior
        self.path = admission.path
        self.scheme = admission.scheme
        self.key = key
        self.metrics = metrics
        self.counters = counters
        self.host = host
        stem, _, query = target.partition("?")
        self.uri_stem = stem
        self.uri_query = query or None
        self.tail = tail
        # The access log's `Line.fixed` for the last object this route served over HTTP/1.1.
        self.log_obj: object = None
        self.log_fixed = msgspec.Raw(b"")


class HitPath(Filling):
    """The fast path: the fourth phase of `Proxy`, tried first for every plain GET or HEAD."""

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
        key_id = None
        if not route.serve:
            if not route.signed:
                # Refused, or not served from the cache: `handle` answers the same verdict.
                return False
            signed = admission_mod.check_signed(
                route.admission, host, target, headers.get("cookie"), conn.client_ip, time.time()
            )
            if signed.kind != ADMIT:
                return False  # `handle` refuses it, with the same verdict
            key_id = signed.key_id
        key = route.key or policy.cache_key(
            route.dist, route.behavior, method, route.path, route.admission.query, headers
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
            age_line = obj.age_line
        else:
            verdict, age = policy.freshness(meta, now)
            if verdict != policy.FRESH:
                return False
            age_line = b"Age: %d\r\nX-Request-Id: " % age
            resident = now - meta.stored_at
            if resident > 0:
                obj.age_line = age_line
                obj.age_from = meta.stored_at + int(resident)
                obj.age_until = obj.age_from + 1
        head = obj.head
        if head is None:
            head = obj.head = self.heads.object_head(obj)
        end = b"\r\n\r\n" if keep_alive and not conn.close_after and not self.closing else b"\r\nConnection: close\r\n\r\n"
        request_id = headers.get("x-request-id")
        if request_id is None or not valid_request_id(request_id):
            ids = REQUEST_IDS.pool  # RequestIds.next, inlined
            request_id = ids.pop() if ids else REQUEST_IDS.refill()
        tail = age_line + request_id.encode() + end  # ASCII either way: valid_request_id, or hex
        metrics = route.metrics
        metrics.hit += 1
        if status < 300:
            metrics.status_2xx += 1
        else:
            metrics.count_status(status)
        transport = conn.transport
        assert transport is not None
        if method == "HEAD" or status == 204 or status == 304:
            transport.writelines((head, tail))
            sent = 0
        else:
            transport.writelines((head, tail, body))
            sent = len(body)
            metrics.bytes_out += sent
        # The latency bucket is the time this hit really took: from the call to the last
        # byte handed to the transport.
        taken = _clock() - began
        route.counters.fast_hit(status, sent, taken)
        if key_id is not None:
            route.counters.signed(key_id)
        access_log = self.access_log
        if access_log is not None:
            # The access log's whole cost here: one small Line built in C, encoded with its
            # batch; what the route and the object fix is encoded once per pair.
            if route.log_obj is obj and version == "1.1":
                fixed = route.log_fixed
            else:
                fixed = access_log.fixed(
                    route.dist.id, method, route.host, route.uri_stem, route.uri_query, status, sent,
                    "Hit", scheme, version, meta.content_type,
                )  # fmt: skip
                if version == "1.1":
                    route.log_obj = obj
                    route.log_fixed = fixed
            line = Line(
                now, conn.client_ip, request_id, taken, fixed, headers.get("referer"), headers.get("user-agent"),
                headers.get("cookie") if access_log.cookies else None,
            )  # fmt: skip
            if key_id is not None:
                line.x_key_pair_id = key_id  # set apart: an unsigned hit builds the Line as before
            route.tail.append(line)
            batch = access_log.batch
            batch.append(line)
            if len(batch) >= BATCH_LINES:
                access_log.seal()
        return True

    def _route(
        self, method: str, target: str, headers: dict[str, str], config: EdgeConfig | None, scheme: str
    ) -> Route | None:
        """A new memo entry: the admission verdict for its key, and the cache key when the
        memo key fixes it. None (nothing memoised) for a host no distribution serves."""
        host = headers.get("host")
        admission = admission_mod.admit_route(config, scheme, method, host, target)
        dist = admission.dist
        if config is None or dist is None or admission.behavior is None:
            return None
        key = ""
        cp = admission.behavior.cache_policy
        if admission.kind == ADMIT and cp.headers.behavior == "none" and cp.cookies.behavior == "none":
            key = policy.cache_key(dist, admission.behavior, "GET", admission.path, admission.query, headers)
        tail = self.access_log.ring(dist.id) if self.access_log is not None else NO_TAIL
        route = Route(
            config, admission, key, self.metrics.for_distribution(dist.id), self.stats.counters(dist.id),
            host or "", target, tail,
        )  # fmt: skip
        if len(self.routes) >= ROUTE_MEMO:
            self.routes.clear()
        self.routes[(host, target, headers.get("accept-encoding"), scheme, method)] = route
        return route
