"""Talking to edges: signed requests to their admin API (docs/edge-config.md).

Pushes go to every edge in parallel with httpx, each with its own timeout and a few
retries with backoff, so one slow or dead edge never holds up the others.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

PUSH_TIMEOUT = httpx.Timeout(3.0, connect=1.0)
RETRY_DELAYS = (0.1, 0.4, 1.2)


def signature(key_hex: str, timestamp: int, nonce: str, method: str, path: str, body: bytes) -> str:
    """HMAC-SHA256 keyed with SHA-256(token), which the control plane stores as the token's hash."""
    message = f"{timestamp}\n{nonce}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(bytes.fromhex(key_hex), message, hashlib.sha256).hexdigest()


def signed_headers(key_hex: str, method: str, path: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    nonce = secrets.token_hex(16)  # a retry of the same body in the same second is not a replay
    return {
        "Content-Type": "application/json",
        "X-Edge-Timestamp": str(timestamp),
        "X-Edge-Nonce": nonce,
        "X-Edge-Signature": signature(key_hex, timestamp, nonce, method, path, body),
    }


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    key_hex: str


@dataclass(frozen=True)
class Outcome:
    name: str
    status: int  # 0: unreachable
    body: dict[str, Any]
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


async def _send(client: httpx.AsyncClient, target: Target, method: str, path: str, payload: Any) -> Outcome:
    body = json.dumps(payload, separators=(",", ":")).encode()
    last_error = ""
    for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
        if delay:
            await asyncio.sleep(delay)
        try:
            response = await client.request(method, target.url.rstrip("/") + path, content=body,
                                            headers=signed_headers(target.key_hex, method, path, body))
        except httpx.HTTPError as exc:
            last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            continue
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 500 and attempt < len(RETRY_DELAYS):
            last_error = f"HTTP {response.status_code}"
            continue
        return Outcome(target.name, response.status_code, data if isinstance(data, dict) else {},
                       "" if response.status_code == 200 else str(data.get("error", f"HTTP {response.status_code}")))
    return Outcome(target.name, 0, {}, last_error or "unreachable")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs ~160 ms, more than a whole push."""
    return httpx.create_ssl_context()


async def _broadcast(targets: list[Target], method: str, path: str, payload: Any) -> list[Outcome]:
    async with httpx.AsyncClient(timeout=PUSH_TIMEOUT, verify=_ssl_context()) as client:
        return list(await asyncio.gather(*(_send(client, t, method, path, payload) for t in targets)))


def broadcast(targets: list[Target], method: str, path: str, payload: Any) -> list[Outcome]:
    if not targets:
        return []
    return asyncio.run(_broadcast(targets, method, path, payload))
