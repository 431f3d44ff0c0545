"""Cache-Status (RFC 9211) on every response, beside X-Cache: the edge's own member, named
after the edge, says what the cache did (hit, forwarded and why, stored, the freshness left)."""

from __future__ import annotations

import socket
import time

from tests.edge.conftest import ALL_METHODS, Answer, EdgeFactory, Origin, behavior, cache_policy, \
    custom_origin, distribution, document, with_behaviors

NAME = "edge-t"


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_miss_says_it_was_stored_and_for_how_long_and_a_hit_says_hit(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/a", Answer(body=b"abc", headers={"Cache-Control": "max-age=3600"}))
    miss = edge.get("/a")
    assert miss.headers["x-cache"] == f"Miss from {NAME}"
    assert miss.headers["cache-status"] == f"{NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=3600"
    hit = edge.get("/a")  # the fast path's precomputed head
    assert hit.headers["x-cache"] == f"Hit from {NAME}" and hit.headers["cache-status"] == f"{NAME}; hit"
    ranged = edge.get("/a", headers={"Range": "bytes=0-0"})  # a hit on the slow path
    assert ranged.status_code == 206 and ranged.headers["cache-status"] == f"{NAME}; hit"


def test_a_refresh_hit_says_it_forwarded_a_stale_object_and_got_304(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/r", Answer(body=b"same", headers={"Cache-Control": "max-age=0", "ETag": '"v1"'}))
    edge.get("/r")
    refreshed = edge.get("/r")
    assert refreshed.headers["x-cache"] == f"RefreshHit from {NAME}"
    assert refreshed.headers["cache-status"] == f"{NAME}; fwd=stale; fwd-status=304"


def test_a_changed_object_after_revalidation_is_a_stale_forward_that_was_stored(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/c", Answer(body=b"v1", headers={"Cache-Control": "max-age=0", "ETag": '"v1"'}),
                 Answer(body=b"v2", headers={"Cache-Control": "max-age=60", "ETag": '"v2"'}))
    edge.get("/c")
    changed = edge.get("/c")
    assert changed.content == b"v2"
    assert changed.headers["cache-status"] == f"{NAME}; fwd=stale; fwd-status=200; stored; ttl=60"


def test_a_stale_object_served_for_an_origin_error_says_so(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))
    origin.route("/s", Answer(body=b"old", headers={"Cache-Control": "max-age=0, stale-if-error=60", "ETag": '"s"'}),
                 Answer(status=503, body=b"down"))
    edge.get("/s")
    stale = edge.get("/s")
    assert stale.content == b"old"
    assert stale.headers["cache-status"] == f"{NAME}; fwd=stale; fwd-status=503; detail=stale-if-error"


def test_a_stale_object_served_while_it_is_refreshed_is_a_hit_with_a_negative_ttl(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))
    origin.route("/w", Answer(body=b"old", headers={"Cache-Control": "max-age=1, stale-while-revalidate=60"}),
                 Answer(body=b"new", delay=0.5, headers={"Cache-Control": "max-age=60"}))
    edge.get("/w")
    time.sleep(2.1)
    stale = edge.get("/w")
    assert stale.content == b"old"
    member = stale.headers["cache-status"]
    assert member.startswith(f"{NAME}; hit; ttl=-") and member.endswith("; detail=stale-while-revalidate"), member


def test_pass_through_says_why_it_forwarded(origin: Origin, make_edge: EdgeFactory) -> None:
    disabled = behavior("/live/*", cache_policy=cache_policy(0, 0, 0))
    edge = make_edge(with_behaviors(origin.port, disabled, behavior(allowed_methods=ALL_METHODS)))
    origin.route("/live/feed", Answer(body=b"now"))
    origin.route("/private", Answer(body=b"mine", headers={"Cache-Control": "private"}))
    assert edge.get("/live/feed").headers["cache-status"] == f"{NAME}; fwd=bypass; fwd-status=200"
    assert edge.request("POST", "/echo", content=b"x").headers["cache-status"] == f"{NAME}; fwd=method; fwd-status=200"
    uncacheable = edge.get("/private")
    assert uncacheable.headers["cache-status"] == f"{NAME}; fwd=uri-miss; fwd-status=200"  # not stored


def test_the_edges_own_errors_say_what_happened(origin: Origin, make_edge: EdgeFactory) -> None:
    down = distribution(origin.port, origins=[custom_origin(dead_port())])
    edge = make_edge(document(down))
    failed = edge.get("/x")
    assert failed.status_code == 502
    assert failed.headers["cache-status"] == f"{NAME}; fwd=uri-miss; detail=origin-unreachable"
    unknown = edge.get("/x", headers={"Host": "nobody.example"})
    assert unknown.status_code == 404 and unknown.headers["cache-status"] == f"{NAME}; detail=refused"
    bad = edge.get("/a%2Fb")  # a path without a normal form
    assert bad.status_code == 400 and bad.headers["cache-status"] == f"{NAME}; detail=refused"


def test_an_upstream_caches_member_is_kept_in_front_of_the_edges(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/u", Answer(body=b"u", headers={"Cache-Control": "max-age=60", "Cache-Status": "shield; hit"}))
    first = edge.get("/u").headers["cache-status"]
    assert first == f"shield; hit, {NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    assert edge.get("/u").headers["cache-status"] == f"shield; hit, {NAME}; hit"
