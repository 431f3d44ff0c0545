"""Cache-key variants end to end: query strings, headers, cookies, and Vary."""

from __future__ import annotations

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, cache_policy, with_behaviors


def test_it_ignores_the_query_string_when_the_policy_leaves_it_out(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior()))
    origin.route("/q", Answer())
    edge.get("/q?a=1")
    assert edge.get("/q?a=2").headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/q") == 1


def test_it_keys_on_allowlisted_query_strings_in_any_order(origin: Origin, make_edge: EdgeFactory) -> None:
    policy = cache_policy(query_strings={"behavior": "allowlist", "names": ["a", "b"]})
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=policy)))
    origin.route("/q", Answer())
    edge.get("/q?a=1&b=2&utm=x")
    assert edge.get("/q?b=2&a=1&utm=y").headers["X-Cache"] == "Hit from edge-t"
    assert edge.get("/q?a=2&b=2").headers["X-Cache"] == "Miss from edge-t"
    assert [s.query for s in origin.seen("/q")] == ["a=1&b=2", "a=2&b=2"]


def test_it_keeps_duplicate_query_values_in_order(origin: Origin, make_edge: EdgeFactory) -> None:
    policy = cache_policy(query_strings={"behavior": "all", "names": []})
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=policy)))
    origin.route("/dup", Answer())
    edge.get("/dup?a=1&a=2")
    assert edge.get("/dup?a=2&a=1").headers["X-Cache"] == "Miss from edge-t"
    assert edge.get("/dup?a=1&a=2").headers["X-Cache"] == "Hit from edge-t"


def test_it_keys_on_allowlisted_headers_and_forwards_them(origin: Origin, make_edge: EdgeFactory) -> None:
    policy = cache_policy(headers={"behavior": "allowlist", "names": ["x-device"]})
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=policy)))
    origin.route("/h", Answer())
    edge.get("/h", headers={"X-Device": "mobile"})
    assert edge.get("/h", headers={"X-Device": "mobile"}).headers["X-Cache"] == "Hit from edge-t"
    assert edge.get("/h", headers={"X-Device": "desktop"}).headers["X-Cache"] == "Miss from edge-t"
    assert [s.headers.get("X-Device") for s in origin.seen("/h")] == ["mobile", "desktop"]


def test_it_keys_on_allowlisted_cookies_only(origin: Origin, make_edge: EdgeFactory) -> None:
    policy = cache_policy(cookies={"behavior": "allowlist", "names": ["lang"]})
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=policy)))
    origin.route("/c", Answer())
    edge.get("/c", headers={"Cookie": "lang=de; tracking=1"})
    assert edge.get("/c", headers={"Cookie": "tracking=2; lang=de"}).headers["X-Cache"] == "Hit from edge-t"
    assert edge.get("/c", headers={"Cookie": "lang=fr"}).headers["X-Cache"] == "Miss from edge-t"
    assert origin.seen("/c")[0].headers["Cookie"] == "lang=de"


def test_it_stores_one_variant_per_vary_header_value(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior()))
    origin.route("/v", Answer(headers={"Vary": "X-Lang"}))
    edge.get("/v", headers={"X-Lang": "de"})
    assert edge.get("/v", headers={"X-Lang": "de"}).headers["X-Cache"] == "Hit from edge-t"
    assert edge.get("/v", headers={"X-Lang": "fr"}).headers["X-Cache"] == "Miss from edge-t"
    assert edge.get("/v", headers={"X-Lang": "fr"}).headers["X-Cache"] == "Hit from edge-t"
    assert edge.get("/v").headers["X-Cache"] == "Miss from edge-t"
    assert origin.hits("/v") == 3
