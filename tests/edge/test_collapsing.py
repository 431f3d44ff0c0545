"""Request collapsing: concurrent misses for one key make exactly one origin request."""

from __future__ import annotations

import asyncio

import httpx

from tests.edge.conftest import DOMAIN, Answer, Edge, Origin, pattern_bytes


async def fetch_many(edge: Edge, path: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers={"Host": DOMAIN}) as client:
        return list(await asyncio.gather(*(client.get(edge.url + path) for _ in range(count))))


def test_it_collapses_100_concurrent_cold_requests_into_one_origin_fetch(origin: Origin, edge: Edge) -> None:
    body = pattern_bytes(64 * 1024)
    origin.route("/cold", Answer(body=body, delay=0.5))
    responses = asyncio.run(fetch_many(edge, "/cold", 100))
    assert [r.status_code for r in responses] == [200] * 100
    assert all(r.content == body for r in responses)
    assert origin.hits("/cold") == 1


def test_it_collapses_a_streamed_large_body_for_every_waiter(origin: Origin, edge: Edge) -> None:
    origin.route("/large", Answer(size=20 * 1024 * 1024, delay=0.3))
    responses = asyncio.run(fetch_many(edge, "/large", 10))
    assert all(len(r.content) == 20 * 1024 * 1024 for r in responses)
    assert responses[3].content[:1000] == pattern_bytes(1000)
    assert origin.hits("/large") == 1


def test_it_does_not_share_an_uncacheable_answer_between_viewers(origin: Origin, edge: Edge) -> None:
    origin.route("/private", Answer(body=b"yours", delay=0.3, headers={"Cache-Control": "private"}))
    responses = asyncio.run(fetch_many(edge, "/private", 5))
    assert all(r.content == b"yours" for r in responses)
    assert origin.hits("/private") == 5
