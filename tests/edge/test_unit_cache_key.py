"""Cache key variants and what reaches the origin (policy.cache_key, origin_query,
origin_headers)."""

from __future__ import annotations

from typing import Any

from edgeagent.config import Behavior, Distribution, parse_document
from edgeagent.policy import cache_key, connection_listed, key_encoding, origin_headers, \
    origin_query, strip_hop_by_hop

DIST = "E2QWRUHAPOMQZL"


def sel(behavior: str = "none", *names: str) -> dict[str, Any]:
    return {"behavior": behavior, "names": list(names)}


def build(qs: dict[str, Any] | None = None, headers: dict[str, Any] | None = None,
          cookies: dict[str, Any] | None = None, gzip: bool = False, brotli: bool = False,
          orp: dict[str, Any] | None = None, compress: bool = False,
          custom_headers: list[dict[str, str]] | None = None) -> tuple[Distribution, Behavior]:
    doc = {
        "schema_version": 1, "version": 1,
        "distributions": [{
            "id": DIST, "domain_name": "d.cdn.localhost", "aliases": [],
            "default_root_object": "",
            "origins": [{
                "id": "web", "kind": "custom", "domain_name": "127.0.0.1", "origin_path": "",
                "http_port": 8090, "https_port": 443, "protocol_policy": "http-only",
                "connect_timeout": 1, "read_timeout": 1, "connection_attempts": 1,
                "custom_headers": custom_headers or [], "s3": None}],
            "origin_groups": [],
            "cache_behaviors": [{
                "path_pattern": "*", "target": "web", "viewer_protocol_policy": "allow-all",
                "allowed_methods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                "cached_methods": ["GET", "HEAD", "OPTIONS"], "compress": compress,
                "cache_policy": {
                    "id": "p", "name": "p", "min_ttl": 0, "default_ttl": 60, "max_ttl": 600,
                    "query_strings": qs or sel(), "headers": headers or sel(),
                    "cookies": cookies or sel(), "enable_gzip": gzip, "enable_brotli": brotli},
                "origin_request_policy": None if orp is None else {
                    "id": "o", "name": "o",
                    "query_strings": orp.get("query_strings", sel()),
                    "headers": orp.get("headers", sel()),
                    "cookies": orp.get("cookies", sel())},
            }],
            "custom_error_responses": [],
        }],
    }
    dist = parse_document(doc).distributions[DIST]
    return dist, dist.behaviors[0]


def key(dist: Distribution, b: Behavior, query: str = "", method: str = "GET",
        path: str = "/a", **headers: str) -> str:
    return cache_key(dist, b, method, path, query, {k.replace("_", "-"): v
                                                     for k, v in headers.items()})


# ---- Cache key ----


def test_the_key_holds_distribution_method_class_and_path() -> None:
    dist, b = build()
    k = key(dist, b)
    assert k.startswith(DIST) and "/a" in k
    assert key(dist, b, path="/b") != k


def test_get_and_head_share_a_key_but_options_does_not() -> None:
    dist, b = build()
    assert key(dist, b, method="GET") == key(dist, b, method="HEAD")
    assert key(dist, b, method="OPTIONS") != key(dist, b, method="GET")


def test_paths_are_case_sensitive_in_the_key() -> None:
    dist, b = build()
    assert key(dist, b, path="/A") != key(dist, b, path="/a")


def test_query_strings_are_ignored_when_the_policy_says_none() -> None:
    dist, b = build()
    assert key(dist, b, "a=1") == key(dist, b, "a=2") == key(dist, b)


def test_all_query_strings_are_in_the_key_in_sorted_order() -> None:
    dist, b = build(qs=sel("all"))
    assert key(dist, b, "a=1&b=2") == key(dist, b, "b=2&a=1")
    assert key(dist, b, "a=1") != key(dist, b, "a=2")
    assert key(dist, b, "a=1") != key(dist, b)


def test_duplicate_query_values_keep_their_order() -> None:
    dist, b = build(qs=sel("all"))
    assert key(dist, b, "a=1&a=2") != key(dist, b, "a=2&a=1")
    assert key(dist, b, "a=1&b=0&a=2") == key(dist, b, "b=0&a=1&a=2")


def test_only_allowlisted_query_strings_enter_the_key() -> None:
    dist, b = build(qs=sel("allowlist", "v"))
    assert key(dist, b, "v=1&utm=x") == key(dist, b, "utm=y&v=1")
    assert key(dist, b, "v=1") != key(dist, b, "v=2")


def test_denylisted_query_strings_stay_out_of_the_key() -> None:
    dist, b = build(qs=sel("denylist", "utm"))
    assert key(dist, b, "v=1&utm=x") == key(dist, b, "v=1&utm=y")
    assert key(dist, b, "v=1") != key(dist, b, "v=2")


def test_query_string_names_are_case_sensitive() -> None:
    dist, b = build(qs=sel("allowlist", "v"))
    assert key(dist, b, "V=1") == key(dist, b)


def test_allowlisted_headers_enter_the_key_and_absence_differs_from_empty() -> None:
    dist, b = build(headers=sel("allowlist", "x-device"))
    assert key(dist, b, x_device="mobile") != key(dist, b, x_device="desktop")
    assert key(dist, b, x_device="") != key(dist, b)
    assert key(dist, b, x_device="mobile", x_other="1") == key(dist, b, x_device="mobile")


def test_cookies_enter_the_key_only_when_selected() -> None:
    dist, b = build()
    assert key(dist, b, cookie="s=1") == key(dist, b)
    dist, b = build(cookies=sel("allowlist", "lang"))
    assert key(dist, b, cookie="lang=de; s=1") == key(dist, b, cookie="s=2; lang=de")
    assert key(dist, b, cookie="lang=de") != key(dist, b, cookie="lang=fr")
    dist, b = build(cookies=sel("all"))
    assert key(dist, b, cookie="a=1; b=2") == key(dist, b, cookie="b=2; a=1")
    assert key(dist, b, cookie="a=1") != key(dist, b, cookie="a=2")
    dist, b = build(cookies=sel("denylist", "track"))
    assert key(dist, b, cookie="a=1; track=x") == key(dist, b, cookie="track=y; a=1")


def test_accept_encoding_enters_the_key_normalised_when_compression_is_enabled() -> None:
    dist, b = build(gzip=True, brotli=True)
    assert key(dist, b, accept_encoding="gzip, deflate, br") == key(dist, b,
                                                                    accept_encoding="br")
    assert key(dist, b, accept_encoding="gzip") == key(dist, b, accept_encoding="x-gzip, gzip")
    assert key(dist, b, accept_encoding="gzip") != key(dist, b, accept_encoding="br")
    assert key(dist, b, accept_encoding="deflate") == key(dist, b)


def test_accept_encoding_is_not_in_the_key_when_the_policy_disables_it() -> None:
    dist, b = build()
    assert key(dist, b, accept_encoding="gzip") == key(dist, b, accept_encoding="br") == key(
        dist, b)


def test_key_encoding_honours_q_values_and_enabled_encodings() -> None:
    _, both = build(gzip=True, brotli=True)
    _, gzip_only = build(gzip=True)
    p = both.cache_policy
    assert key_encoding("br;q=0, gzip", p) == "gzip"
    assert key_encoding("gzip;q=0", p) == ""
    assert key_encoding("*", p) == "br"
    assert key_encoding("*;q=0.5, br;q=0", p) == "gzip"
    assert key_encoding("br", gzip_only.cache_policy) == ""
    assert key_encoding("br, gzip", gzip_only.cache_policy) == "gzip"
    assert key_encoding(None, p) == ""
    assert key_encoding("gzip;q=abc", p) == ""


def test_parts_of_the_key_cannot_be_confused_with_each_other() -> None:
    dist, b = build(qs=sel("all"), headers=sel("allowlist", "x-a"))
    assert key(dist, b, "x-a:1") != key(dist, b, x_a="1")


# ---- What reaches the origin ----


def test_only_the_key_query_reaches_the_origin_without_a_request_policy() -> None:
    _, b = build(qs=sel("allowlist", "v"))
    assert origin_query(b, "utm=1&v=2&w=3") == "v=2"
    _, b = build()
    assert origin_query(b, "utm=1") == ""


def test_the_request_policy_adds_query_strings_in_viewer_order() -> None:
    _, b = build(qs=sel("allowlist", "v"), orp={"query_strings": sel("allowlist", "w")})
    assert origin_query(b, "w=3&utm=1&v=2") == "w=3&v=2"
    _, b = build(orp={"query_strings": sel("all")})
    assert origin_query(b, "b=1&a=2") == "b=1&a=2"
    _, b = build(orp={"query_strings": sel("denylist", "utm")})
    assert origin_query(b, "b=1&utm=2") == "b=1"


def headers_of(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(pairs)


def test_without_a_request_policy_only_key_headers_reach_the_origin() -> None:
    _, b = build(headers=sel("allowlist", "x-device"))
    sent = headers_of(origin_headers(b, "GET", {
        "x-device": "m", "user-agent": "ua", "authorization": "secret", "host": "edge"}))
    assert sent == {"x-device": "m"}


def test_the_all_viewer_policy_forwards_everything_but_hop_by_hop_and_edge_owned() -> None:
    _, b = build(orp={"headers": sel("all")})
    sent = headers_of(origin_headers(b, "GET", {
        "user-agent": "ua", "x-custom": "1", "connection": "keep-alive, x-hop",
        "x-hop": "secret", "keep-alive": "timeout=5", "te": "trailers",
        "transfer-encoding": "chunked", "upgrade": "h2c", "proxy-authorization": "p",
        "trailer": "x", "host": "edge", "content-length": "3", "if-none-match": '"a"',
        "range": "bytes=0-1"}))
    assert sent == {"user-agent": "ua", "x-custom": "1"}


def test_a_request_policy_allowlist_adds_its_headers_to_the_key_headers() -> None:
    _, b = build(headers=sel("allowlist", "x-device"),
                 orp={"headers": sel("allowlist", "origin", "x-device")})
    sent = origin_headers(b, "GET", {"x-device": "m", "origin": "o", "x-other": "1"})
    assert sent == [("origin", "o"), ("x-device", "m")]


def test_a_header_denylist_forwards_the_rest() -> None:
    _, b = build(orp={"headers": sel("denylist", "user-agent")})
    sent = headers_of(origin_headers(b, "GET", {"user-agent": "ua", "x-a": "1"}))
    assert sent == {"x-a": "1"}


def test_cookies_reach_the_origin_only_when_selected() -> None:
    _, b = build()
    assert "cookie" not in headers_of(origin_headers(b, "GET", {"cookie": "a=1"}))
    _, b = build(cookies=sel("allowlist", "a"), orp={"cookies": sel("allowlist", "c")})
    sent = headers_of(origin_headers(b, "GET", {"cookie": "a=1; b=2; c=3"}))
    assert sent["cookie"] == "a=1; c=3"


def test_the_normalised_accept_encoding_reaches_the_origin() -> None:
    _, b = build(gzip=True)
    sent = headers_of(origin_headers(b, "GET", {"accept-encoding": "gzip, deflate, br"}))
    assert sent["accept-encoding"] == "gzip"
    _, b = build()
    assert "accept-encoding" not in headers_of(origin_headers(b, "GET", {
        "accept-encoding": "gzip"}))


def test_body_description_headers_are_forwarded_for_uploads() -> None:
    _, b = build()
    viewer = {"content-type": "application/json", "content-length": "2",
              "content-encoding": "gzip"}
    sent = headers_of(origin_headers(b, "POST", viewer))
    assert sent == {"content-type": "application/json", "content-encoding": "gzip"}
    assert origin_headers(b, "GET", viewer) == []


def test_origin_custom_headers_replace_viewer_headers_of_the_same_name() -> None:
    dist, b = build(orp={"headers": sel("all")},
                    custom_headers=[{"name": "X-Secret", "value": "origin"}])
    sent = origin_headers(b, "GET", {"x-secret": "viewer", "x-a": "1"}, dist.origins["web"])
    assert sent == [("x-a", "1"), ("x-secret", "origin")]


def test_connection_listed_names_are_lowercased_tokens() -> None:
    assert connection_listed({"connection": "Keep-Alive, X-Foo"}) == {"keep-alive", "x-foo"}
    assert connection_listed({}) == frozenset()


def test_hop_by_hop_response_headers_are_stripped() -> None:
    kept = strip_hop_by_hop([("Content-Type", "text/plain"), ("Connection", "close, X-Hop"),
                             ("X-Hop", "1"), ("Transfer-Encoding", "chunked"),
                             ("Keep-Alive", "5"), ("ETag", '"a"')])
    assert kept == [("Content-Type", "text/plain"), ("ETag", '"a"')]
