"""Back-pressure and bounds: slow readers, pipelined floods, collapse waits, shutdown."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import httpx

from tests.edge.conftest import DOMAIN, Answer, Edge, EdgeFactory, Origin, distribution, document, pattern_bytes


def test_it_stops_reading_a_pipelining_client_that_does_not_read_its_answers(origin: Origin, edge: Edge) -> None:
    body = pattern_bytes(100 * 1024)
    origin.route("/flood", Answer(body=body))
    edge.get("/flood")
    baseline_kb = edge.rss_high_water_kb()
    request = f"GET /flood HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 5
        while sent < 20_000 and time.monotonic() < deadline:
            try:
                sock.send(request)
                sent += 1
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(0.5)
    assert edge.rss_high_water_kb() - baseline_kb < 60 * 1024
    assert edge.get("/flood").content == body


def test_it_bounds_how_long_a_collapsed_request_waits(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)), extra=["--collapse-timeout", "0.5"])
    origin.route("/slow", Answer(body=b"eventually", delay=2))

    async def two() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10, headers={"Host": DOMAIN}) as client:
            first = asyncio.create_task(client.get(edge.url + "/slow"))
            await asyncio.sleep(0.2)
            second = asyncio.create_task(client.get(edge.url + "/slow"))
            return [await first, await second]

    responses = asyncio.run(two())
    assert [r.content for r in responses] == [b"eventually", b"eventually"]
    assert origin.hits("/slow") == 2


def test_it_cuts_requests_still_running_after_the_shutdown_timeout(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)), extra=["--shutdown-timeout", "0.5"])
    origin.route("/stuck", Answer(delay=4))
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(f"GET /stuck HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
        deadline = time.monotonic() + 5
        while origin.hits("/stuck") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert edge.stop(signal.SIGTERM, timeout=3.5) == 0
        assert sock.recv(1024) == b""


def test_it_caches_options_when_cached_methods_include_it(origin: Origin, make_edge: EdgeFactory) -> None:
    from tests.edge.conftest import behavior

    methods = ["GET", "HEAD", "OPTIONS"]
    edge = make_edge(document(distribution(origin.port, cache_behaviors=[
        behavior("/cors/*", allowed_methods=methods, cached_methods=methods),
        behavior("*", allowed_methods=methods),
    ])))  # fmt: skip
    origin.route("/cors/a", Answer(body=b"", headers={"Access-Control-Allow-Origin": "*"}))
    origin.route("/other", Answer(body=b""))
    edge.request("OPTIONS", "/cors/a")
    assert edge.request("OPTIONS", "/cors/a").headers["X-Cache"] == "Hit from edge-t"
    edge.request("OPTIONS", "/other")
    assert edge.request("OPTIONS", "/other").headers["X-Cache"] == "Miss from edge-t"
    assert origin.hits("/cors/a", "OPTIONS") == 1 and origin.hits("/other", "OPTIONS") == 2
