"""Edge admin API (docs/edge-config.md, "Edge admin API"), on its own listener.

It is low-traffic, so it runs on aiohttp.web rather than on the viewer protocol. Requests
other than /health and /metrics are signed as cdncontract/signing.py defines, and checked
there too (signature, clock skew, replays).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from cdncontract.errors import ContractError
from cdncontract.invalidations import parse_invalidation
from cdncontract.limits import MAX_TAIL_RECORDS, load_json
from cdncontract.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier

from .errors import InvalidDocumentError, StaleConfigError

MAX_BODY = 64 * 1024 * 1024


class AdminTarget(Protocol):
    """What the admin API drives (agent.Agent)."""

    name: str
    pop: str

    @property
    def version(self) -> int: ...

    def document(self) -> dict[str, Any] | None: ...

    def apply_config(self, doc: object) -> int: ...

    def apply_invalidation(self, inv_id: int, distribution_id: str, paths: list[str], tags: list[str]) -> int: ...

    def metrics_text(self) -> str: ...

    def access_log_tail(self, distribution_id: str, limit: int) -> bytes | None: ...


def _json(status: int, payload: object) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


def build_app(target: AdminTarget, token: str | None) -> web.Application:
    verifier = Verifier(token)

    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "GET" and request.path in ("/health", "/metrics"):
            return await handler(request)
        if verifier.key is None:
            return _json(403, {"error": "this edge was started without a token: signed endpoints are disabled"})
        body = await request.read()
        reason = verifier.check(
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(NONCE_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            request.method,
            request.raw_path,
            body,
        )
        if reason is not None:
            return _json(401, {"error": reason})
        return await handler(request)

    async def health(request: web.Request) -> web.Response:
        return _json(200, {"status": "ok", "name": target.name, "pop": target.pop, "version": target.version})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=target.metrics_text().encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def get_config(request: web.Request) -> web.Response:
        doc = target.document()
        if doc is None:
            return _json(404, {"error": "no config yet", "version": 0})
        return _json(200, doc)

    async def put_config(request: web.Request) -> web.Response:
        try:
            doc = load_json(await request.read())
        except ValueError as exc:
            return _json(400, {"error": f"body is not JSON: {exc}", "version": target.version})
        try:
            version = target.apply_config(doc)
        except InvalidDocumentError as exc:
            return _json(400, {"error": str(exc), "version": target.version})
        except StaleConfigError as exc:
            return _json(409, {"error": str(exc), "version": target.version})
        return _json(200, {"version": version})

    async def post_invalidation(request: web.Request) -> web.Response:
        try:
            payload = load_json(await request.read())
        except ValueError as exc:
            return _json(400, {"error": f"body is not JSON: {exc}"})
        try:
            invalidation = parse_invalidation(payload)
        except ContractError as exc:
            return _json(400, {"error": f"{exc.where}: {exc.problem}" if exc.where else exc.problem})
        removed = target.apply_invalidation(*invalidation)
        return _json(200, {"id": invalidation.id, "removed": removed})

    async def logs_tail(request: web.Request) -> web.Response:
        distribution_id = request.query.get("distribution", "")
        if not distribution_id:
            return _json(400, {"error": "distribution: required"})
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_TAIL_RECORDS:
            return _json(400, {"error": f"limit: must be an integer from 1 to {MAX_TAIL_RECORDS}"})
        body = target.access_log_tail(distribution_id, int(raw_limit))
        if body is None:
            return _json(404, {"error": "the access log is off on this edge"})
        return web.Response(body=body, headers={"Content-Type": "application/x-ndjson"})

    app = web.Application(middlewares=[authenticate], client_max_size=MAX_BODY)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/config", get_config)
    app.router.add_put("/config", put_config)
    app.router.add_post("/invalidations", post_invalidation)
    app.router.add_get("/logs/tail", logs_tail)
    return app


async def start_admin(target: AdminTarget, token: str | None, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(target, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner
