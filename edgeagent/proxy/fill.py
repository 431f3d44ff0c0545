"""Cached methods on a miss: collapsed origin fetches (`Fill`), what they store, and how they answer.

One `Fill` per cache key fetches from the origin, streams the body into the store and to
every viewer subscribed to it, pausing for the slowest subscriber so memory stays bounded.
What a fill decides is pure and kept apart from its I/O: `revalidated_meta` (a 304 merged
into the stored object), `passes_big_range`, `plan_store` (what is stored and shared),
compress.edge_coding (compression) and policy.stale_if_error (a stale object standing in
for an origin failure). `_run_fill` only fetches, applies those verdicts and streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import policy
from ..config import Behavior, Distribution
from ..origin import OriginError, OriginResponse
from ..server import ClientDisconnected
from ..stats import MISS
from ..store import CachedObject, ObjectMeta, Writer
from .compress import Encoder, compressed_headers, edge_coding, make_encoder
from .context import Ctx
from .passthrough import PassThrough
from .heads import NOT_STORED, content_length, for_304, header, lower_map

log = logging.getLogger("edgeagent.proxy")

SUBSCRIBER_BUFFER = 1024 * 1024
REPLAY_LIMIT = 8 * 1024 * 1024
BIG_OBJECT_MEMORY = 300.0


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
    age: int = 0
    # This edge's Cache-Status parameters for the answer (Ctx.cache_status); "" for the default.
    cache_status: str = ""


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


# ---- what a fill decides (pure) ----


def _validators(headers: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    return header(headers, "etag"), header(headers, "last-modified")


# Fields a 304 never updates on a stored object (RFC 9111 3.2 lets a cache keep those its
# stored body depends on): the framing, and the coding of the body as stored (which may be
# this edge's own compression).
_NOT_UPDATED = NOT_STORED | {"content-length", "content-encoding", "transfer-encoding"}


def _merge_304(stored: tuple[tuple[str, str], ...], fresh: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Stored headers updated with those of a 304 (RFC 9111 3.2, 4.3.4): every field the 304
    carries replaces all the stored lines of that name (in the stored position), stored
    fields it does not carry are kept, and new ones are added at the end."""
    updates: dict[str, list[tuple[str, str]]] = {}
    for name, value in fresh:
        if name.lower() not in _NOT_UPDATED:
            updates.setdefault(name.lower(), []).append((name, value))
    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in stored:
        lname = name.lower()
        if lname not in updates:
            out.append((name, value))
        elif lname not in placed:
            placed.add(lname)
            out.extend(updates[lname])
    for lname, lines in updates.items():
        if lname not in placed:
            out.extend(lines)
    return out


def _lifetime(decision: policy.Decision, now: float) -> dict[str, Any]:
    """The ObjectMeta fields a caching decision sets, for a new object and a revalidated one alike.

    `origin_age` is the corrected initial age (RFC 9111 4.2.3): with `stored_at` it is all
    policy.freshness needs, on this edge and after a restart.
    """
    return {
        "stored_at": now,
        "ttl": decision.ttl,
        "stale_while_revalidate": decision.stale_while_revalidate,
        "stale_if_error": decision.stale_if_error,
        "must_revalidate": decision.must_revalidate,
        "origin_age": decision.initial_age,
    }


def _for_viewers(headers: Sequence[tuple[str, str]], behavior: Behavior) -> list[tuple[str, str]]:
    """Headers without the targeted cache-control fields this edge obeys: they speak to
    this cache, not to the viewer's (docs/caching.md)."""
    targeted = policy.targeted_names(behavior.cache_policy)
    return [(n, v) for n, v in headers if n.lower() not in targeted]


def _targeted(lower: Mapping[str, str], behavior: Behavior) -> tuple[tuple[str, str], ...]:
    """The targeted fields of a response, as ObjectMeta.targeted keeps them."""
    return tuple((n, lower[n]) for n in policy.targeted_names(behavior.cache_policy) if n in lower)


def revalidated_meta(
    stale: ObjectMeta, fresh_headers: Sequence[tuple[str, str]], behavior: Behavior, now: float,
    requested_at: float | None = None,
    authorized: bool = False,
) -> ObjectMeta | None:
    """A stored object after its origin answered 304: headers updated, TTL and validators recomputed.

    The age is the 304's own (its Age and Date, or none): the validation is what the object's
    age now counts from. Targeted fields the 304 does not repeat are the stored ones. None
    when the update makes it an answer for one viewer only (a Set-Cookie, a new Vary,
    `private` on an authorized request: policy.private_to_viewer).
    """
    merged = _merge_304(stale.headers, list(fresh_headers))
    lower = lower_map(merged)
    own = lower_map(fresh_headers)
    for name in ("age", "date"):
        lower.pop(name, None)
        if name in own:
            lower[name] = own[name]
    for name, value in stale.targeted:
        lower.setdefault(name, value)
    decision = policy.decide(stale.status, lower, behavior.cache_policy, "GET", now, requested_at=requested_at,
                             authorized=authorized)
    if decision.reason in policy.PRIVATE_REASONS:
        return None
    return replace(
        stale,
        headers=tuple(_for_viewers(merged, behavior)),
        etag=lower.get("etag", stale.etag),
        last_modified=lower.get("last-modified", stale.last_modified),
        targeted=_targeted(lower, behavior),
        **_lifetime(decision, now),
    )


def passes_big_range(ranged: bool, status: int, length: int | None, limit: int) -> bool:
    """A range request for an object above the pass-through size goes to the origin uncached."""
    return ranged and status == 200 and length is not None and length > limit


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a fill does with an origin answer: the headers and length viewers get, the
    coding the edge compresses with (None: none), what is stored (None: nothing), and
    whether other viewers may share it (an answer the cache may not keep is not theirs)."""

    headers: list[tuple[str, str]]
    length: int | None
    coding: str | None
    meta: ObjectMeta | None
    shareable: bool
    age: int = 0


def plan_store(
    dist: Distribution,
    behavior: Behavior,
    path: str,
    request_headers: Mapping[str, str],
    status: int,
    response_headers: Sequence[tuple[str, str]],
    ranged: bool,
    now: float,
    requested_at: float | None = None,
) -> StorePlan:
    """The store decision and the compression choice for an origin answer (received at
    `now` for a request sent at `requested_at`)."""
    headers = _for_viewers([(n, v) for n, v in response_headers if n.lower() not in NOT_STORED], behavior)
    lower = lower_map(response_headers)
    length = content_length(lower)
    cache_policy = behavior.cache_policy
    authorized = policy.forwarded_authorization(behavior, request_headers)
    decision = policy.decide(status, lower, cache_policy, "GET", now, dist.error_responses.get(status),
                             requested_at=requested_at, authorized=authorized)
    vary_names = policy.vary_names(lower.get("vary"))
    if vary_names and cache_policy.encoding_in_key:
        vary_names = tuple(n for n in vary_names if n != "accept-encoding")
    encoding = lower.get("content-encoding", "")
    coding = edge_coding(request_headers.get("accept-encoding"), behavior, status, lower, length, ranged)
    if coding is not None:
        encoding = coding
        headers = compressed_headers(headers, coding)
        length = None
    meta: ObjectMeta | None = None
    if decision.cacheable and vary_names is not None:
        meta = ObjectMeta(
            distribution_id=dist.id,
            path=path,
            status=status,
            headers=tuple(headers),
            etag=header(headers, "etag"),
            last_modified=lower.get("last-modified"),
            content_type=lower.get("content-type"),
            encoding=encoding,
            tags=policy.surrogate_keys(lower.get("surrogate-key")),
            vary=vary_names,
            vary_key=policy.vary_key(vary_names, request_headers) if vary_names else "",
            targeted=_targeted(lower, behavior),
            **_lifetime(decision, now),
        )
    return StorePlan(headers, length, coding, meta, decision.cacheable, decision.initial_age)


# ---- the fill phase ----


class Filling(PassThrough):
    """Cached methods: lookup, collapsing and origin fills; the third phase of `Proxy`."""

    async def _cached(self, ctx: Ctx) -> None:
        req = ctx.req
        if ctx.behavior.cache_policy.caching_disabled:
            # CachingDisabled: every request is its own origin request, never collapsed.
            await self._pass(ctx, write=False)
            return
        key = ctx.key = policy.cache_key(ctx.dist, ctx.behavior, req.method, ctx.path, ctx.query, req.headers)
        now = time.time()
        obj = self.store.lookup(key, req.headers)
        if obj is not None:
            verdict, age = policy.freshness(obj.meta, now)
            if verdict == policy.FRESH:
                await self._serve_object(ctx, obj, "Hit")
                return
            if verdict == policy.SERVE_STALE:
                self._start_fill(ctx, key, obj)
                ctx.metrics.stale_served += 1
                ctx.cache_status = f"hit; ttl={obj.meta.ttl - age}; detail=stale-while-revalidate"
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
            ctx.metrics.collapsed += 1
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
        ctx.relay_interim = owner  # the fill's fetch is this viewer's own
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
            if head.cache_status:
                ctx.cache_status = head.cache_status if owner else head.cache_status + "; collapsed"
            if head.kind == "object" and head.obj is not None:
                if head.stale:
                    ctx.metrics.stale_served += 1
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
            ctx.metrics.collapsed += 1
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
            await self._send_head_only(ctx, 304, for_304(headers), head.result, head.age)
            return
        ranges = policy.RangeSpec(policy.RANGE_NONE)
        if status == 200 and length is not None and "range" in req.headers:
            spec = policy.parse_range(req.headers["range"], length)
            if policy.if_range_matches(req.headers.get("if-range"), etag, last_modified):
                ranges = spec
        ctx.metrics.miss += 1
        if ranges.kind == policy.RANGE_UNSATISFIABLE:
            ctx.metrics.count_status(416)
            ctx.status = 416
            await self._send_simple(
                req, ctx.conn, 416, "416 Range Not Satisfiable.", head.result,
                extra=[("Content-Range", ranges.unsatisfied_range())], metrics=None,
            )  # fmt: skip
            return
        if ranges.kind == policy.RANGE_SINGLE:
            first, last = ranges.ranges[0]
            out = [(n, v) for n, v in headers] + [("Content-Range", ranges.content_range())]
            writer = self._start_response(ctx, 206, out, last - first + 1, head.result, head.age)
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
        writer = self._start_response(ctx, status, headers, length, head.result, head.age)
        if ctx.head_only:
            writer.finish()
            return
        async for chunk in sub.iterate(fill):
            await writer.send(chunk)
        writer.finish()

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
            requested_at = time.time()
            try:
                response = await self._fetch(ctx, "GET" if ctx.req.method == "HEAD" else ctx.req.method, extra, None)
            except OriginError as exc:
                ctx.metrics.origin_failures += 1
                if stale is not None and policy.stale_if_error(stale.meta, time.time(), None):
                    fill.head.set_result(FillHead("object", obj=stale, result="Hit", stale=True,
                                                  cache_status="fwd=stale; detail=stale-if-error"))
                elif stale is not None and stale.meta.must_revalidate:
                    # RFC 9111 4.2.4: a stale response that must be revalidated is replaced
                    # by a 504 when the origin cannot revalidate it.
                    fill.head.set_result(FillHead("error", error=OriginError(
                        exc.origin_id, "the stored response must be revalidated and the origin is unreachable", True)))
                else:
                    fill.head.set_result(FillHead("error", error=exc))
                fill.finish()
                return
            now = time.time()
            status = response.status
            if status == 304 and stale is not None:
                authorized = policy.forwarded_authorization(ctx.behavior, ctx.req.headers)
                meta = revalidated_meta(stale.meta, response.headers, ctx.behavior, now, requested_at, authorized)
                ctx.origin_done()
                response.release()
                response = None
                if meta is None:
                    # No longer an answer the cache may share: drop it, every waiter asks on its own.
                    self.store.remove(fill.key)
                    fill.head.set_result(FillHead("pass"))
                else:
                    fill.head.set_result(FillHead("object", obj=self.store.refresh(stale, meta), result="RefreshHit"))
                fill.finish()
                return
            if stale is not None and status >= 500 and policy.stale_if_error(stale.meta, now, status):
                fill.head.set_result(FillHead("object", obj=stale, result="Hit", stale=True,
                                              cache_status=f"fwd=stale; fwd-status={status}; detail=stale-if-error"))
                fill.finish()
                return
            length = content_length(lower_map(response.headers))
            if passes_big_range(ranged, status, length, self.settings.range_passthrough_bytes):
                self.big_objects[fill.key] = now + BIG_OBJECT_MEMORY
                fill.head.set_result(FillHead("pass"))
                fill.finish()
                return
            plan = plan_store(ctx.dist, ctx.behavior, ctx.path, ctx.req.headers, status, response.headers, ranged, now,
                              requested_at)
            encoder: Encoder | None = make_encoder(plan.coding) if plan.coding is not None else None
            if plan.meta is not None:
                writer = self.store.begin(fill.key, plan.meta, plan.length)
            outcome = f"fwd={'stale' if stale is not None else 'uri-miss'}; fwd-status={status}"
            if plan.meta is not None:
                outcome += f"; stored; ttl={plan.meta.ttl - policy.age(plan.meta.stored_at, now, plan.meta.origin_age)}"
            head = FillHead("stream", status, plan.headers, plan.length, "Miss", shareable=plan.shareable, age=plan.age,
                            cache_status=outcome)
            fill.head.set_result(head)
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
            ctx.metrics.origin_bytes += received
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
            ctx.metrics.origin_failures += 1
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
