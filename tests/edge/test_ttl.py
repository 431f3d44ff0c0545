"""Each TTL rule end to end: what the origin says, clamped by the cache policy."""

from __future__ import annotations

import time

import pytest

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, cache_policy, with_behaviors


def edge_with(origin: Origin, make_edge: EdgeFactory, **policy: int) -> object:
    return make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(**policy))))


def cached_twice(edge: object, path: str) -> bool:
    edge.get(path)  # type: ignore[attr-defined]
    return edge.get(path).headers["X-Cache"].startswith("Hit")  # type: ignore[attr-defined,no-any-return]


def test_it_honours_max_age_and_expires_the_object_after_it(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=100, max_ttl=1000)
    origin.route("/m", Answer(headers={"Cache-Control": "max-age=1"}))
    assert cached_twice(edge, "/m")
    time.sleep(1.2)
    assert edge.get("/m").headers["X-Cache"] == "Miss from edge-t"  # type: ignore[attr-defined]
    assert origin.hits("/m") == 2


def test_it_prefers_s_maxage_to_max_age(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=0, max_ttl=1000)
    origin.route("/s", Answer(headers={"Cache-Control": "max-age=0, s-maxage=60"}))
    assert cached_twice(edge, "/s")


def test_it_uses_expires_when_there_is_no_cache_control(origin: Origin, make_edge: EdgeFactory) -> None:
    from email.utils import formatdate

    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=0, max_ttl=1000)
    origin.route("/e", Answer(headers={"Expires": formatdate(time.time() + 60, usegmt=True),
                                       "Date": formatdate(time.time(), usegmt=True)}))
    origin.route("/past", Answer(headers={"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}))
    assert cached_twice(edge, "/e")
    assert not cached_twice(edge, "/past")


def test_it_uses_default_ttl_when_the_origin_says_nothing(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=1, max_ttl=1000)
    origin.route("/d", Answer())
    assert cached_twice(edge, "/d")
    time.sleep(1.2)
    assert edge.get("/d").headers["X-Cache"] == "Miss from edge-t"  # type: ignore[attr-defined]


def test_it_clamps_max_age_to_max_ttl(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=1, max_ttl=1)
    origin.route("/c", Answer(headers={"Cache-Control": "max-age=3600"}))
    assert cached_twice(edge, "/c")
    time.sleep(1.2)
    assert edge.get("/c").headers["X-Cache"] == "Miss from edge-t"  # type: ignore[attr-defined]


def test_it_raises_max_age_to_min_ttl(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=60, default_ttl=60, max_ttl=1000)
    origin.route("/low", Answer(headers={"Cache-Control": "max-age=0"}))
    assert cached_twice(edge, "/low")


@pytest.mark.parametrize("directive", ["no-store", "no-cache", "private"])
def test_it_honours_no_store_no_cache_and_private_when_min_ttl_is_zero(
    origin: Origin, make_edge: EdgeFactory, directive: str
) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=100, max_ttl=1000)
    origin.route("/n", Answer(headers={"Cache-Control": directive}))
    assert not cached_twice(edge, "/n")
    assert origin.hits("/n") == 2


def test_it_caches_no_store_for_min_ttl_like_cloudfront(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=30, default_ttl=100, max_ttl=1000)
    origin.route("/ns", Answer(headers={"Cache-Control": "no-store"}))
    assert cached_twice(edge, "/ns")


def test_it_does_not_cache_set_cookie_even_with_cookies_in_the_key(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = with_behaviors(
        origin.port,
        behavior("/keyed/*", cache_policy=cache_policy(cookies={"behavior": "allowlist", "names": ["s"]})),
        behavior(),
    )
    edge = make_edge(doc)
    origin.route("/plain", Answer(headers={"Set-Cookie": "s=1"}))
    origin.route("/keyed/x", Answer(headers={"Set-Cookie": "s=1"}))
    assert not cached_twice(edge, "/plain")
    for _ in range(2):
        edge.client.cookies.clear()
        last = edge.get("/keyed/x", headers={"Cookie": "s=1"})
    assert last.headers["X-Cache"] == "Miss from edge-t"
    assert origin.hits("/keyed/x") == 2


def test_it_does_not_cache_vary_star(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=100, max_ttl=1000)
    origin.route("/v", Answer(headers={"Vary": "*"}))
    assert not cached_twice(edge, "/v")


@pytest.mark.parametrize("status,cached", [(200, True), (203, True), (301, True), (410, True), (404, True),
                                           (302, False), (403, False)])
def test_it_caches_the_statuses_cloudfront_caches(
    origin: Origin, make_edge: EdgeFactory, status: int, cached: bool
) -> None:
    edge = edge_with(origin, make_edge, min_ttl=0, default_ttl=100, max_ttl=1000)
    headers = {"Location": "/elsewhere"} if status in (301, 302) else {}
    origin.route("/st", Answer(status=status, headers=headers))
    edge.client.follow_redirects = False
    first = edge.get("/st")  # type: ignore[attr-defined]
    second = edge.get("/st")  # type: ignore[attr-defined]
    assert first.status_code == second.status_code == status
    assert second.headers["X-Cache"].startswith("Hit") is cached
