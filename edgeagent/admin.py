"""Edge admin API (docs/edge-config.md, "Edge admin API"), on its own listener.

It is low-traffic, so it runs on aiohttp.web rather than on the viewer protocol. Signed
requests carry `X-Edge-Timestamp`, a random `X-Edge-Nonce` and `X-Edge-Signature` = hex
HMAC-SHA256 keyed with SHA-256(token); the edge keeps every accepted nonce for the accepted
clock window so a captured request cannot be replayed, while a legitimate retry of the same
body in the same second (a new nonce) still goes through.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from .accesslog import TAIL_RECORDS
from .errors import InvalidDocumentError, StaleConfigError
from .limits import CLOCK_SKEW_SECONDS as CLOCK_SKEW
from .limits import load_json

NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
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


def signing_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def sign(key: bytes, timestamp: int, nonce: str, method: str, path: str, body: bytes) -> str:
    """The signature the control plane sends (docs/edge-config.md); also used by tests."""
    message = f"{timestamp}\n{nonce}\n{method}\n{path}\n".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Verifier:
    """Checks signatures, clock skew and replays."""

    def __init__(self, token: str | None, clock: Callable[[], float] = time.time) -> None:
        self.key = signing_key(token) if token else None
        self.clock = clock
        self.seen: dict[str, float] = {}

    def check(self, timestamp: str | None, nonce: str | None, signature: str | None, method: str, path: str,
              body: bytes) -> str | None:
        """None when the request is authentic, else the reason it is not."""
        assert self.key is not None
        if not timestamp or not signature or not nonce:
            return "missing X-Edge-Timestamp, X-Edge-Nonce or X-Edge-Signature"
        if not NONCE.match(nonce):
            return "X-Edge-Nonce must be 16-128 letters, digits, '-' or '_'"
        try:
            ts = int(timestamp)
        except ValueError:
            return "X-Edge-Timestamp must be an integer"
        now = self.clock()
        if abs(now - ts) > CLOCK_SKEW:
            return "X-Edge-Timestamp too far from the edge clock"
        expected = sign(self.key, ts, nonce, method, path, body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            return "bad signature"
        self._forget(now)
        if nonce in self.seen:
            return "replayed request"
        self.seen[nonce] = ts
        return None

    def _forget(self, now: float) -> None:
        if len(self.seen) > 256:
            self.seen = {nonce: ts for nonce, ts in self.seen.items() if abs(now - ts) <= CLOCK_SKEW}


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
            request.headers.get("X-Edge-Timestamp"),
            request.headers.get("X-Edge-Nonce"),
            request.headers.get("X-Edge-Signature"),
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
        error = _invalidation_error(payload)
        if error:
            return _json(400, {"error": error})
        removed = target.apply_invalidation(
            payload["id"], payload["distribution_id"], list(payload["paths"]), list(payload["tags"])
        )
        return _json(200, {"id": payload["id"], "removed": removed})

    async def logs_tail(request: web.Request) -> web.Response:
        distribution_id = request.query.get("distribution", "")
        if not distribution_id:
            return _json(400, {"error": "distribution: required"})
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= TAIL_RECORDS:
            return _json(400, {"error": f"limit: must be an integer from 1 to {TAIL_RECORDS}"})
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


def _invalidation_error(payload: object) -> str:
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    if not isinstance(payload.get("id"), int) or isinstance(payload.get("id"), bool):
        return "id: must be an integer"
    if not isinstance(payload.get("distribution_id"), str):
        return "distribution_id: must be a string"
    for field in ("paths", "tags"):
        values = payload.get(field)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return f"{field}: must be a list of strings"
    for index, path in enumerate(payload["paths"]):
        if not path.startswith("/"):
            return f"paths[{index}]: must start with /"
    return ""


async def start_admin(target: AdminTarget, token: str | None, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(target, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner
