"""The signed HTTP client for edges: requests to their admin API (docs/edge-config.md),
signed as cdncontract/signing.py defines.

Pushes fan out to every edge at once, each edge with its own deadline, and each outcome is
handed to the caller as soon as that edge answers (or its deadline passes): a slow, hung or
dead edge costs the others nothing, and holds the calling worker thread no longer than
PUSH_DEADLINE. Nothing here sleeps to retry; a push that failed is sent again by the next
fleet tick, and the edge's own heartbeat pulls what it missed anyway.
"""

from __future__ import annotations

import asyncio
import functools
import json
import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx

from cdncontract import signing

PUSH_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=1.0, sock_read=2.0)
PUSH_DEADLINE = 3.0  # seconds for everything one edge is sent in one fan-out


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
class Request:
    method: str
    path: str
    payload: Any


@dataclass(frozen=True)
class Outcome:
    name: str
    status: int  # 0: unreachable, or no answer before the deadline
    body: dict[str, Any]
    error: str = ""
    request: Request | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _send(session: aiohttp.ClientSession, target: Target, request: Request) -> Outcome:
    body = json.dumps(request.payload, separators=(",", ":")).encode()
    try:
        async with session.request(request.method, target.url.rstrip("/") + request.path, data=body,
                                   headers=signed_headers(target.key_hex, request.method, request.path, body)) as answer:
            status, raw = answer.status, await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:  # refused, reset, or no answer within PUSH_TIMEOUT
        return Outcome(target.name, 0, {}, _error(exc), request)
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    error = "" if status == 200 else str(data.get("error", f"HTTP {status}"))
    return Outcome(target.name, status, data, error, request)


async def _send_in_order(session: aiohttp.ClientSession, target: Target, requests: list[Request], deadline: float,
                         report: Callable[[Outcome], None]) -> None:
    """One edge's requests in order, within one deadline; the first failure ends the edge's turn."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    for request in requests:
        try:
            outcome = await asyncio.wait_for(_send(session, target, request), max(until - loop.time(), 0.0))
        except TimeoutError:
            outcome = Outcome(target.name, 0, {}, f"no answer within the {deadline:g} s push deadline", request)
        report(outcome)
        if not outcome.ok:
            return


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs ~160 ms, more than a whole push."""
    return httpx.create_ssl_context()


async def _fan_out(plan: list[tuple[Target, list[Request]]], deadline: float, report: Callable[[Outcome], None]) -> None:
    """aiohttp, not httpx: httpx's pool examines every connection on every request, so a
    thousand concurrent pushes cost it seconds of CPU (docs/performance.md, "The control plane
    driving many edges")."""
    connector = aiohttp.TCPConnector(limit=0, ssl=_ssl_context())  # a thousand edges at once, none waiting
    async with aiohttp.ClientSession(connector=connector, timeout=PUSH_TIMEOUT) as session:
        await asyncio.gather(*(_send_in_order(session, target, requests, deadline, report)
                               for target, requests in plan if requests))


def fan_out(plan: list[tuple[Target, list[Request]]], deadline: float | None = None) -> Iterator[list[Outcome]]:
    """Send every edge its requests at once; yield the outcomes as soon as they are known.

    The requests run on an event loop in a thread of their own, so the caller (a Celery task)
    can record outcomes in the database while the other edges are still answering. Each
    batch holds every outcome that arrived while the caller recorded the previous one (at
    least one): with a thousand edges answering together the caller writes a few batches,
    not a thousand rows one by one, and an outcome never waits for a batch to fill.
    """
    if not any(requests for _, requests in plan):
        return
    outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_fan_out(plan, PUSH_DEADLINE if deadline is None else deadline, outcomes.put))
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            outcomes.put(None)

    thread = threading.Thread(target=run, name="edge-fan-out", daemon=True)
    thread.start()
    finished = False
    while not finished:
        batch = [outcomes.get()]
        while not outcomes.empty():
            batch.append(outcomes.get())
        finished = batch[-1] is None
        ready = [outcome for outcome in batch if outcome is not None]
        if ready:
            yield ready
    thread.join()
    if failure:
        raise failure[0]


def broadcast(targets: list[Target], method: str, path: str, payload: Any) -> list[Outcome]:
    """The same request to every target; the outcomes once every edge answered or ran out of time."""
    return [outcome for batch in fan_out([(target, [Request(method, path, payload)]) for target in targets])
            for outcome in batch]


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
