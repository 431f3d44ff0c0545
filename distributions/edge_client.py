"""The signed HTTP client for edges: requests to their admin API (docs/edge-config.md),
signed as cdncontract/signing.py defines.

Pushes go to every edge in parallel with httpx, each with its own timeout and a few
retries with backoff, so one slow or dead edge never holds up the others.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from cdncontract import signing

PUSH_TIMEOUT = httpx.Timeout(3.0, connect=1.0)
RETRY_DELAYS = (0.1, 0.4, 1.2)


def signed_headers(key_hex: str, method: str, path: str, body: bytes) -> dict[str, str]:
    """`key_hex` is the edge's token hash as the control plane stores it: the signing key in hex."""
    return {"Content-Type": "application/json",
            **signing.signed_headers(bytes.fromhex(key_hex), method, path, body)}


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


Payload = Any  # a JSON value, or a function of the Target giving its own (a config sealed for that edge)


async def _broadcast(targets: list[Target], method: str, path: str, payload: Payload) -> list[Outcome]:
    async with httpx.AsyncClient(timeout=PUSH_TIMEOUT, verify=_ssl_context()) as client:
        return list(await asyncio.gather(*(
            _send(client, t, method, path, payload(t) if callable(payload) else payload) for t in targets)))


def broadcast(targets: list[Target], method: str, path: str, payload: Payload) -> list[Outcome]:
    if not targets:
        return []
    return asyncio.run(_broadcast(targets, method, path, payload))


# ---- Reads from every edge ----

TAIL_TIMEOUT = httpx.Timeout(2.0, connect=0.5)


@dataclass(frozen=True)
class Lines:
    """One edge's NDJSON answer, parsed; `error` says why there is none."""

    name: str
    records: list[dict[str, Any]]
    error: str = ""


async def _fetch_lines(client: httpx.AsyncClient, target: Target, path: str) -> Lines:
    """One signed GET, no retry: a reader would rather list a slow edge than wait for it."""
    try:
        response = await client.get(target.url.rstrip("/") + path,
                                    headers=signed_headers(target.key_hex, "GET", path, b""))
    except httpx.HTTPError as exc:
        return Lines(target.name, [], f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if response.status_code != 200:
        try:
            detail = str(response.json().get("error", ""))
        except (ValueError, AttributeError):
            detail = ""
        return Lines(target.name, [], detail or f"HTTP {response.status_code}")
    try:
        records = [json.loads(line) for line in response.text.splitlines() if line]
    except ValueError as exc:
        return Lines(target.name, [], f"unreadable answer: {exc}")
    return Lines(target.name, [r for r in records if isinstance(r, dict)])


async def _gather_lines(targets: list[Target], path: str) -> list[Lines]:
    async with httpx.AsyncClient(timeout=TAIL_TIMEOUT, verify=_ssl_context()) as client:
        return list(await asyncio.gather(*(_fetch_lines(client, t, path) for t in targets)))


def _timestamp(record: dict[str, Any]) -> float:
    value = record.get("timestamp")
    return float(value) if isinstance(value, (int, float)) else 0.0


def recent_requests(targets: list[Target], distribution_id: str, limit: int) -> dict[str, Any]:
    """The distribution's most recent access log lines from every edge, merged by time.

    Each edge is asked for `limit` lines in parallel; the newest `limit` of all of them are
    kept, oldest first, each with the `edge` that served it. An edge that does not answer
    is listed under `errors` rather than failing the whole answer.
    """
    path = f"/logs/tail?distribution={quote(distribution_id, safe='')}&limit={limit}"
    answers = asyncio.run(_gather_lines(targets, path)) if targets else []
    merged = [dict(record, edge=answer.name) for answer in answers for record in answer.records]
    merged.sort(key=_timestamp)
    return {
        "distribution_id": distribution_id,
        "edges": sorted(answer.name for answer in answers if not answer.error),
        "errors": [{"edge": answer.name, "error": answer.error} for answer in answers if answer.error],
        "records": merged[-limit:],
    }
