"""Routing, hits and misses, the edge's own headers, and what reaches the origin."""

from __future__ import annotations

from tests.edge.conftest import (
    DOMAIN,
    Answer,
    Edge,
    EdgeFactory,
    Origin,
    behavior,
    cache_policy,
    distribution,
    document,
    with_behaviors,
)


def test_it_serves_a_miss_then_a_hit_with_edge_headers(origin: Origin, edge: Edge) -> None:
    origin.route("/a.txt", Answer(body=b"alpha", headers={"Content-Type": "text/plain", "Cache-Control": "max-age=60"}))
    first = edge.get("/a.txt")
    second = edge.get("/a.txt")
    assert first.status_code == 200 and first.content == b"alpha"
    assert first.headers["X-Cache"] == "Miss from edge-t"
    assert second.headers["X-Cache"] == "Hit from edge-t"
    assert second.content == b"alpha"
    assert second.headers["Via"].endswith("1.1 edge-t (edgeagent)")
    assert second.headers["X-Edge-Location"] == "tst"
    assert int(second.headers["Age"]) >= 0
    assert second.headers["Content-Type"] == "text/plain"
    assert origin.hits("/a.txt") == 1


def test_it_answers_head_from_the_cached_get(origin: Origin, edge: Edge) -> None:
    origin.route("/h", Answer(body=b"0123456789"))
    edge.get("/h")
    head = edge.request("HEAD", "/h")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "10"
    assert head.content == b""
    assert head.headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/h") == 1


def test_it_answers_404_with_a_short_body_for_an_unknown_host(origin: Origin, edge: Edge) -> None:
    response = edge.get("/x", headers={"Host": "nobody.example"})
    assert response.status_code == 404
    assert "no distribution" in response.text
    assert origin.requests == []


def test_it_ignores_the_port_and_case_of_the_host_header(origin: Origin, edge: Edge) -> None:
    origin.route("/p", Answer(body=b"port"))
    response = edge.get("/p", headers={"Host": DOMAIN.upper() + ":8080"})
    assert response.status_code == 200 and response.content == b"port"


def test_it_routes_aliases_with_exact_names_before_wildcards(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = document(
        distribution(origin.port, aliases=["*.example.test", "www.example.test"]),
        distribution(origin.port, id="E0000000000002", domain_name="e0000000000002.cdn.localhost",
                     aliases=["static.example.test"]),
    )
    edge = make_edge(doc)
    origin.route("/r", Answer(body=b"routed"))
    assert edge.get("/r", headers={"Host": "www.example.test"}).status_code == 200
    assert edge.get("/r", headers={"Host": "a.b.example.test"}).status_code == 200
    assert edge.get("/r", headers={"Host": "static.example.test"}).status_code == 200
    assert edge.get("/r", headers={"Host": "example.test"}).status_code == 404


def test_it_serves_the_default_root_object_for_slash_only(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port, default_root_object="index.html")))
    origin.route("/index.html", Answer(body=b"<h1>home</h1>"))
    origin.route("/", Answer(body=b"root listing"))
    assert edge.get("/").content == b"<h1>home</h1>"
    assert origin.hits("/index.html") == 1 and origin.hits("/") == 0


def test_it_picks_the_first_matching_behavior(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = with_behaviors(
        origin.port,
        behavior("/api/*", cache_policy=cache_policy(0, 0, 0)),
        behavior("*.jpg"),
        behavior("*"),
    )
    edge = make_edge(doc)
    origin.route("/api/users", Answer(body=b"users"))
    origin.route("/img/a.jpg", Answer(body=b"jpeg"))
    edge.get("/api/users")
    assert edge.get("/api/users").headers["X-Cache"] == "Miss from edge-t"
    edge.get("/img/a.jpg")
    assert edge.get("/img/a.jpg").headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/api/users") == 2 and origin.hits("/img/a.jpg") == 1


def test_it_adds_forwarding_headers_and_strips_hop_by_hop_ones(origin: Origin, edge: Edge) -> None:
    origin.route("/fwd", Answer(body=b"ok", headers={"Connection": "X-Secret", "X-Secret": "origin-only",
                                                     "Keep-Alive": "timeout=5"}))
    response = edge.get("/fwd", headers={"X-Forwarded-For": "203.0.113.9", "Connection": "X-Drop",
                                         "X-Drop": "1", "Via": "1.1 front"})
    seen = origin.seen("/fwd")[0]
    assert seen.headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["Via"] == "1.1 front, 1.1 edge-t (edgeagent)"
    assert "X-Drop" not in seen.headers
    assert "X-Secret" not in response.headers
    assert "Keep-Alive" not in response.headers


def test_it_sends_only_the_cache_key_to_the_origin_without_a_request_policy(origin: Origin, edge: Edge) -> None:
    origin.route("/only", Answer(body=b"k"))
    edge.get("/only?a=1", headers={"Cookie": "session=1", "X-Custom": "v", "User-Agent": "ua"})
    seen = origin.seen("/only")[0]
    assert seen.query == ""
    assert "Cookie" not in seen.headers and "X-Custom" not in seen.headers


def test_it_echoes_a_valid_request_id_and_replaces_an_invalid_one(origin: Origin, edge: Edge) -> None:
    origin.route("/id", Answer(body=b"id"))
    assert edge.get("/id", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = edge.get("/id", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert generated and " " not in generated
    assert edge.get("/id").headers["X-Request-Id"] != edge.get("/id").headers["X-Request-Id"]


def test_it_adds_origin_path_and_custom_headers(origin: Origin, make_edge: EdgeFactory) -> None:
    from tests.edge.conftest import custom_origin

    doc = document(distribution(origin.port, origins=[custom_origin(
        origin.port, origin_path="/prefix", custom_headers=[{"name": "X-Origin-Secret", "value": "s3cr3t"}])]))
    edge = make_edge(doc)
    origin.route("/prefix/file", Answer(body=b"prefixed"))
    response = edge.get("/file", headers={"X-Origin-Secret": "viewer-value"})
    assert response.content == b"prefixed"
    assert origin.seen("/prefix/file")[0].headers["X-Origin-Secret"] == "s3cr3t"


def test_it_fetches_s3_origins_path_style(origin: Origin, make_edge: EdgeFactory) -> None:
    from tests.edge.conftest import custom_origin

    s3 = custom_origin(origin.port, kind="s3", domain_name="bucket.s3.amazonaws.com",
                       s3={"bucket": "media", "region": "eu-central-1",
                           "endpoint_url": f"http://127.0.0.1:{origin.port}"})
    edge = make_edge(document(distribution(origin.port, origins=[s3])))
    origin.route("/media/cat.jpg", Answer(body=b"meow"))
    assert edge.get("/cat.jpg").content == b"meow"
