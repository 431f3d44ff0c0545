"""No answer meant for one viewer is ever served to another (docs/caching.md).

Each case is two (or more) viewers on separate connections against a real edge and a real
origin: the first sends what could make the answer its own (Authorization, a reflected
header, cookies, a Vary'd header, a conditional, a range), the second asks plainly, and
the second must never get the first one's answer. The reflecting origin echoes the request
headers that matter into the body, so "the first viewer's answer" is visible in bytes.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from edgeagent.config import CachePolicy, NameSelector, parse_document
from edgeagent.policy import decide, origin_headers

from .conftest import (DOMAIN, Answer, Edge, EdgeFactory, Origin, behavior, cache_policy, distribution, document,
                       reset_around, running)

REFLECTED = ("authorization", "x-forwarded-host", "forwarded", "x-original-url", "x-http-method-override",
             "x-mode", "cookie")


class ReflectingOrigin(Origin):
    """The test origin, but a 200 body names the reflected request headers it received."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await super()._handle(request)
        if isinstance(response, web.Response) and response.status == 200 and request.method != "HEAD":
            response.body = ";".join(f"{n}={request.headers.get(n, '-')}" for n in REFLECTED).encode()
        return response


@pytest.fixture(scope="module")
def _reflecting_server() -> Iterator[ReflectingOrigin]:
    yield from running(ReflectingOrigin())


@pytest.fixture
def origin(_reflecting_server: ReflectingOrigin) -> Iterator[ReflectingOrigin]:
    yield from reset_around(_reflecting_server)


def viewer(edge: Edge, path: str, **headers: str) -> httpx.Response:
    """One request from a viewer of its own: a new connection, no cookie jar."""
    return httpx.get(edge.url + path, headers={"Host": DOMAIN, **headers}, timeout=30)


# ---- The managed policies, as the control plane seeds them ----

_MANAGED = importlib.import_module("distributions.migrations.0002_managed_policies")


def _selector(spec: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"behavior": spec.get(f"{kind}_behavior", "none"), "names": sorted(spec.get(kind, []))}


def managed_origin_request_policy(name: str) -> dict[str, Any] | None:
    if name == "none":
        return None
    spec = next(p for p in _MANAGED.ORIGIN_REQUEST_POLICIES if p["name"] == name)
    return {"id": spec["id"], "name": name,
            **{kind: _selector(spec, kind) for kind in ("query_strings", "headers", "cookies")}}


def managed_cache_policy(name: str) -> dict[str, Any]:
    spec = next(p for p in _MANAGED.CACHE_POLICIES if p["name"] == name)
    return cache_policy(spec["min_ttl"], spec["default_ttl"], spec["max_ttl"], id=spec["id"], name=name,
                        enable_gzip=spec["enable_gzip"], enable_brotli=spec["enable_brotli"])


ORIGIN_REQUEST_POLICIES = ["none"] + [p["name"] for p in _MANAGED.ORIGIN_REQUEST_POLICIES]
CACHE_POLICIES = [p["name"] for p in _MANAGED.CACHE_POLICIES]


def edge_for(origin: Origin, make_edge: EdgeFactory, orp: str = "none", cp: dict[str, Any] | None = None,
             extra: list[str] | None = None, **behavior_fields: Any) -> Edge:
    b = behavior(cache_policy=cp or cache_policy(), origin_request_policy=managed_origin_request_policy(orp),
                 **behavior_fields)
    return make_edge(document(distribution(origin.port, cache_behaviors=[b])), extra=extra)


def test_every_managed_origin_request_policy_is_covered() -> None:
    assert {"AllViewer", "CORS-S3Origin"} <= set(ORIGIN_REQUEST_POLICIES)


# ---- Authorization ----


@pytest.mark.parametrize("cp_name", CACHE_POLICIES)
@pytest.mark.parametrize("orp", ORIGIN_REQUEST_POLICIES)
def test_an_authorized_answer_never_reaches_an_anonymous_viewer(
        origin: Origin, make_edge: EdgeFactory, orp: str, cp_name: str) -> None:
    edge = edge_for(origin, make_edge, orp, managed_cache_policy(cp_name))
    origin.route("/account", Answer(headers={"Cache-Control": "max-age=3600"}))
    alice = viewer(edge, "/account", Authorization="Bearer alice")
    anonymous = viewer(edge, "/account")
    assert alice.status_code == anonymous.status_code == 200
    assert "alice" not in anonymous.text
    forwarded = [s.headers.get("Authorization") for s in origin.seen("/account")]
    if cp_name == "CachingDisabled" and orp == "AllViewer":
        # Nothing is stored under CachingDisabled: CloudFront lets AllViewer forward it.
        assert forwarded == ["Bearer alice", None] and "authorization=Bearer alice" in alice.text
    else:
        # Not in the cache key: never forwarded on a cached method, so alice's answer is anonymous.
        assert "Bearer alice" not in forwarded and "alice" not in alice.text


def test_an_answer_keyed_on_authorization_is_stored_only_when_it_says_public(
        origin: Origin, make_edge: EdgeFactory) -> None:
    keyed = cache_policy(headers={"behavior": "allowlist", "names": ["authorization"]})
    edge = edge_for(origin, make_edge, "AllViewer", keyed)
    origin.route("/private", Answer(headers={"Cache-Control": "max-age=3600"}))
    origin.route("/public", Answer(headers={"Cache-Control": "public, max-age=3600"}))

    # RFC 9111 3.5: without public / s-maxage / must-revalidate, not even alice gets it again.
    for _ in range(2):
        assert viewer(edge, "/private", Authorization="Bearer alice").headers["X-Cache"].startswith("Miss")
    assert origin.hits("/private") == 2
    assert "alice" not in viewer(edge, "/private").text

    first = viewer(edge, "/public", Authorization="Bearer alice")
    again = viewer(edge, "/public", Authorization="Bearer alice")
    assert "authorization=Bearer alice" in first.text and again.headers["X-Cache"].startswith("Hit")
    for other in ({}, {"Authorization": "Bearer bob"}):
        answer = viewer(edge, "/public", **other)
        assert answer.headers["X-Cache"].startswith("Miss") and "alice" not in answer.text


@pytest.mark.parametrize("directive", ["s-maxage=3600", "max-age=3600, must-revalidate"])
def test_s_maxage_and_must_revalidate_also_let_an_authorized_answer_be_stored(
        origin: Origin, make_edge: EdgeFactory, directive: str) -> None:
    keyed = cache_policy(headers={"behavior": "allowlist", "names": ["authorization"]})
    edge = edge_for(origin, make_edge, cp=keyed)
    origin.route("/shared", Answer(headers={"Cache-Control": directive}))
    viewer(edge, "/shared", Authorization="Bearer alice")
    assert viewer(edge, "/shared", Authorization="Bearer alice").headers["X-Cache"].startswith("Hit")
    assert "alice" not in viewer(edge, "/shared").text


def test_authorization_of_a_write_reaches_the_origin(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge, allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"])
    answer = httpx.post(edge.url + "/api", content=b"{}", timeout=30,
                        headers={"Host": DOMAIN, "Authorization": "Bearer alice"})
    assert answer.status_code == 200
    assert origin.seen("/api")[0].headers.get("Authorization") == "Bearer alice"


# ---- Unkeyed inputs ----


@pytest.mark.parametrize(("name", "value"), [
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "host=evil.example;proto=https"),
    ("X-Original-URL", "/evil"),
])
def test_a_host_or_url_override_is_not_forwarded_unless_it_is_in_the_key(
        origin: Origin, make_edge: EdgeFactory, name: str, value: str) -> None:
    edge = edge_for(origin, make_edge, "AllViewer")
    origin.route("/page", Answer(headers={"Cache-Control": "max-age=3600"}))
    poisoner = viewer(edge, "/page", **{name: value})
    victim = viewer(edge, "/page")
    assert "evil" not in poisoner.text and "evil" not in victim.text
    assert victim.headers["X-Cache"].startswith("Hit")
    assert origin.seen("/page")[0].headers.get(name) is None


def test_a_host_override_in_the_cache_key_reaches_the_origin_and_keys_the_answer(
        origin: Origin, make_edge: EdgeFactory) -> None:
    keyed = cache_policy(headers={"behavior": "allowlist", "names": ["x-forwarded-host"]})
    edge = edge_for(origin, make_edge, "AllViewer", keyed)
    origin.route("/page", Answer(headers={"Cache-Control": "max-age=3600"}))
    assert "x-forwarded-host=evil.example" in viewer(edge, "/page", **{"X-Forwarded-Host": "evil.example"}).text
    victim = viewer(edge, "/page")
    assert victim.headers["X-Cache"].startswith("Miss") and "evil" not in victim.text


def test_a_method_override_never_reaches_the_origin_even_in_the_key(origin: Origin, make_edge: EdgeFactory) -> None:
    keyed = cache_policy(headers={"behavior": "allowlist", "names": ["x-http-method-override"]})
    edge = edge_for(origin, make_edge, "AllViewer", keyed)
    origin.route("/thing", Answer(headers={"Cache-Control": "max-age=3600"}))
    assert "x-http-method-override=-" in viewer(edge, "/thing", **{"X-HTTP-Method-Override": "DELETE"}).text
    assert origin.seen("/thing")[0].method == "GET"


def test_key_only_and_never_forwarded_headers_follow_one_rule() -> None:
    """The pure rule behind the cases above, for each kind of behavior."""
    def b(methods: list[str], cached: list[str], max_ttl: int, key: list[str]) -> Any:
        doc = document(distribution(8080, cache_behaviors=[behavior(
            allowed_methods=methods, cached_methods=cached, origin_request_policy=managed_origin_request_policy(
                "AllViewer"),
            cache_policy=cache_policy(0, 0, max_ttl, headers={"behavior": "allowlist" if key else "none",
                                                             "names": key}))]))
        return next(iter(parse_document(doc).distributions.values())).behaviors[0]

    viewer_headers = {"authorization": "a", "x-forwarded-host": "h", "x-http-method-override": "DELETE", "x-a": "1"}
    everything = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached = b(["GET", "HEAD"], ["GET", "HEAD"], 3600, [])
    assert dict(origin_headers(cached, "GET", viewer_headers)) == {"x-a": "1"}
    keyed = b(["GET", "HEAD"], ["GET", "HEAD"], 3600, ["authorization", "x-forwarded-host"])
    assert dict(origin_headers(keyed, "GET", viewer_headers)) == {"authorization": "a", "x-forwarded-host": "h",
                                                                  "x-a": "1"}
    disabled = b(["GET", "HEAD"], ["GET", "HEAD"], 0, [])
    assert dict(origin_headers(disabled, "GET", viewer_headers)) == {"authorization": "a", "x-forwarded-host": "h",
                                                                     "x-a": "1"}
    writes = b(everything, ["GET", "HEAD"], 3600, [])
    assert dict(origin_headers(writes, "POST", viewer_headers)) == {"authorization": "a", "x-forwarded-host": "h",
                                                                    "x-a": "1"}
    assert dict(origin_headers(writes, "GET", viewer_headers)) == {"x-a": "1"}


# ---- Cookies ----


@pytest.mark.parametrize(("orp", "cookies"), [
    ("none", {"behavior": "none", "names": []}),
    ("AllViewer", {"behavior": "none", "names": []}),
    ("none", {"behavior": "allowlist", "names": ["country"]}),
    ("AllViewer", {"behavior": "all", "names": []}),
])
def test_a_set_cookie_answer_is_never_replayed_to_another_viewer(
        origin: Origin, make_edge: EdgeFactory, orp: str, cookies: dict[str, Any]) -> None:
    edge = edge_for(origin, make_edge, orp, cache_policy(min_ttl=60, cookies=cookies))
    origin.route("/cart",
                 Answer(headers={"Cache-Control": "max-age=3600", "Set-Cookie": "session=alice"}),
                 Answer(headers={"Cache-Control": "max-age=3600", "Set-Cookie": "session=bob"}))
    alice = viewer(edge, "/cart", Cookie="country=uk")
    bob = viewer(edge, "/cart", Cookie="country=uk")
    assert alice.headers["Set-Cookie"] == "session=alice"
    assert bob.headers["Set-Cookie"] == "session=bob" and bob.headers["X-Cache"].startswith("Miss")


def test_a_304_that_adds_a_set_cookie_drops_the_stored_object(origin: Origin, make_edge: EdgeFactory) -> None:
    import time

    edge = edge_for(origin, make_edge)
    plain = {"Cache-Control": "max-age=1", "ETag": '"v1"'}
    origin.route("/doc",
                 Answer(headers=plain),
                 Answer(headers={**plain, "Set-Cookie": "session=alice"}),  # the 304 to the edge's revalidation
                 Answer(headers={**plain, "Set-Cookie": "session=alice"}, honour_conditionals=False),
                 Answer(headers={**plain, "Set-Cookie": "session=bob"}, honour_conditionals=False))
    assert viewer(edge, "/doc").status_code == 200
    time.sleep(2.1)  # let it go stale: the next request revalidates
    alice = viewer(edge, "/doc")
    bob = viewer(edge, "/doc")
    assert alice.headers.get("Set-Cookie") == "session=alice"
    assert bob.headers.get("Set-Cookie") == "session=bob" and bob.headers["X-Cache"].startswith("Miss")


# ---- Vary ----


def test_vary_on_a_header_the_policy_does_not_forward_still_separates_viewers(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/v", Answer(headers={"Cache-Control": "max-age=3600", "Vary": "X-Mode"}))
    assert viewer(edge, "/v", **{"X-Mode": "a"}).headers["X-Cache"].startswith("Miss")
    assert viewer(edge, "/v", **{"X-Mode": "b"}).headers["X-Cache"].startswith("Miss")
    assert viewer(edge, "/v").headers["X-Cache"].startswith("Miss")
    assert viewer(edge, "/v", **{"X-Mode": "a"}).headers["X-Cache"].startswith("Hit")
    assert all(s.headers.get("X-Mode") is None for s in origin.seen("/v"))


def test_vary_on_a_forwarded_header_gives_each_viewer_its_own_variant(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge, "AllViewer")
    origin.route("/v", Answer(headers={"Cache-Control": "max-age=3600", "Vary": "X-Mode"}))
    assert "x-mode=a" in viewer(edge, "/v", **{"X-Mode": "a"}).text
    assert "x-mode=b" in viewer(edge, "/v", **{"X-Mode": "b"}).text
    assert "x-mode=-" in viewer(edge, "/v").text


@pytest.mark.parametrize("vary", ["*", "X-Forwarded-For", "Accept, X-Forwarded-Proto"])
def test_vary_star_and_vary_on_connection_derived_headers_are_never_stored(
        origin: Origin, make_edge: EdgeFactory, vary: str) -> None:
    edge = edge_for(origin, make_edge, "AllViewer", cache_policy(min_ttl=60))
    origin.route("/v", Answer(headers={"Cache-Control": "max-age=3600", "Vary": vary}))
    for _ in range(2):
        assert viewer(edge, "/v").headers["X-Cache"].startswith("Miss")
    assert origin.hits("/v") == 2


# ---- Conditional and range requests that fill the cache ----


def test_a_conditional_miss_gets_its_304_and_the_next_viewer_the_whole_answer(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/c", Answer(headers={"Cache-Control": "max-age=3600", "ETag": '"e1"'}))
    first = viewer(edge, "/c", **{"If-None-Match": '"e1"'})
    assert first.status_code == 304 and first.content == b""
    plain = viewer(edge, "/c")
    assert plain.status_code == 200 and plain.text.startswith("authorization=") and plain.headers["X-Cache"].startswith("Hit")
    assert all(s.headers.get("If-None-Match") is None for s in origin.seen("/c"))


def test_a_range_miss_gets_its_206_and_the_next_viewer_the_whole_answer(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/r", Answer(headers={"Cache-Control": "max-age=3600"}))
    first = viewer(edge, "/r", Range="bytes=0-3")
    assert first.status_code == 206 and first.content == b"auth"
    plain = viewer(edge, "/r")
    assert plain.status_code == 200 and plain.text.startswith("authorization=-;")
    assert origin.seen("/r")[0].headers.get("Range") is None


def test_a_plain_viewer_joining_a_conditional_fill_gets_the_whole_answer(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/slow", Answer(headers={"Cache-Control": "max-age=3600", "ETag": '"e1"'}, delay=0.5))
    answers: dict[str, httpx.Response] = {}

    def ask(name: str, **headers: str) -> None:
        answers[name] = viewer(edge, "/slow", **headers)

    conditional = threading.Thread(target=ask, args=("conditional",), kwargs={"If-None-Match": '"e1"'})
    ranged = threading.Thread(target=ask, args=("ranged",), kwargs={"Range": "bytes=0-3"})
    conditional.start()
    ranged.start()
    ask("plain")
    conditional.join(30)
    ranged.join(30)
    assert answers["conditional"].status_code == 304
    assert answers["ranged"].status_code == 206 and answers["ranged"].content == b"auth"
    assert answers["plain"].status_code == 200 and answers["plain"].text.startswith("authorization=-;")
    assert origin.hits("/slow") == 1


def test_under_caching_disabled_the_origins_304_and_206_go_to_their_viewer_only(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge, cp=managed_cache_policy("CachingDisabled"))
    origin.route("/d", Answer(headers={"ETag": '"e1"'}))
    assert viewer(edge, "/d", **{"If-None-Match": '"e1"'}).status_code == 304
    plain = viewer(edge, "/d")
    assert plain.status_code == 200 and plain.text.startswith("authorization=-;")


def test_a_passed_through_big_range_is_not_what_the_next_viewer_gets(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge, extra=["--range-passthrough-size", "4K"])
    whole = Answer(headers={"Cache-Control": "max-age=3600"}, size=64 * 1024)
    part = Answer(status=206, headers={"Cache-Control": "max-age=3600", "Content-Range": "bytes 0-9/65536"},
                  body=b"0123456789")
    # The fill sees a big object and hands the viewer's own Range to the origin.
    origin.route("/big", whole, part, whole)
    first = viewer(edge, "/big", Range="bytes=0-9")
    assert first.status_code == 206 and first.content == b"0123456789"
    assert origin.seen("/big")[1].headers.get("Range") == "bytes=0-9"
    for _ in range(2):
        plain = viewer(edge, "/big")
        assert plain.status_code == 200 and len(plain.content) == 64 * 1024
    assert plain.headers["X-Cache"].startswith("Hit")


@pytest.mark.parametrize("answer", [
    Answer(status=206, headers={"Cache-Control": "max-age=3600", "Content-Range": "bytes 0-3/17"}, body=b"part"),
    Answer(status=304, headers={"Cache-Control": "max-age=3600", "ETag": '"e1"'}, body=b""),
])
def test_a_partial_or_not_modified_answer_to_a_plain_request_is_never_stored(
        origin: Origin, make_edge: EdgeFactory, answer: Answer) -> None:
    edge = edge_for(origin, make_edge, cp=cache_policy(min_ttl=60))
    origin.route("/odd", answer, Answer(headers={"Cache-Control": "max-age=3600"}))
    assert viewer(edge, "/odd").status_code == answer.status
    second = viewer(edge, "/odd")
    assert second.status_code == 200 and second.text.startswith("authorization=-;")


# ---- The pure store rule ----


def decision(authorized: bool = False, min_ttl: int = 0, **headers: str) -> Any:
    none = NameSelector("none", (), frozenset())
    cp = CachePolicy("p", "p", min_ttl, 86400, 31536000, none, none, none, False, False)
    return decide(200, {k.replace("_", "-"): v for k, v in headers.items()}, cp, "GET", 0.0, authorized=authorized)


@pytest.mark.parametrize(("cache_control", "stored"), [
    ("max-age=3600", False), ("", False), ("private, max-age=60", False),
    ("public, max-age=3600", True), ("s-maxage=60", True), ("max-age=60, must-revalidate", True),
])
def test_an_authorized_answer_is_stored_only_when_it_says_it_may_be(cache_control: str, stored: bool) -> None:
    got = decision(authorized=True, min_ttl=30, cache_control=cache_control)
    assert got.cacheable is stored and got.reason == ("ok" if stored else "authorization")
    # The same answer to a request without Authorization: the minimum TTL stores it.
    assert decision(min_ttl=30, cache_control=cache_control).cacheable


@pytest.mark.parametrize(("vary", "reason"), [("*", "vary-star"), ("Accept, *", "vary-star"),
                                              ("x-forwarded-for", "vary-connection"),
                                              ("Accept-Encoding, X-Forwarded-Proto", "vary-connection")])
def test_vary_that_no_request_can_match_is_never_stored_whatever_the_minimum_ttl(vary: str, reason: str) -> None:
    got = decision(min_ttl=3600, cache_control="public, max-age=60", vary=vary)
    assert not got.cacheable and got.reason == reason
    assert decision(min_ttl=3600, cache_control="max-age=60", vary="Accept-Language, Via").cacheable
