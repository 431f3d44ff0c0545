"""Viewer conditionals, range math (single, multipart, 416), compression negotiation,
Vary secondary keys and invalidation path matching."""

from __future__ import annotations

import pytest

from edgeagent.config import Behavior, CachePolicy, NameSelector, compile_glob
from edgeagent.policy import RANGE_MULTI, RANGE_NONE, RANGE_SINGLE, RANGE_UNSATISFIABLE, \
    if_range_matches, is_compressible, multipart_plan, negotiate_encoding, not_modified, \
    parse_range, path_matches, vary_key, vary_names

LM = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"
LATER = "Mon, 07 Nov 1994 08:49:37 GMT"
NONE = NameSelector("none", (), frozenset())


# ---- Conditional requests ----


def test_if_none_match_with_the_same_etag_is_not_modified() -> None:
    assert not_modified({"if-none-match": '"v1"'}, '"v1"', None)


def test_if_none_match_uses_weak_comparison() -> None:
    assert not_modified({"if-none-match": 'W/"v1"'}, '"v1"', None)
    assert not_modified({"if-none-match": '"v1"'}, 'W/"v1"', None)


def test_if_none_match_lists_and_star() -> None:
    assert not_modified({"if-none-match": '"a", "v1" ,"b"'}, '"v1"', None)
    assert not_modified({"if-none-match": "*"}, '"v1"', None)
    assert not not_modified({"if-none-match": '"a", "b"'}, '"v1"', None)


def test_if_none_match_without_a_stored_etag_is_modified() -> None:
    assert not not_modified({"if-none-match": '"v1"'}, None, LM)


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    assert not not_modified({"if-none-match": '"other"', "if-modified-since": LATER},
                            '"v1"', LM)


def test_if_modified_since_compares_dates() -> None:
    assert not_modified({"if-modified-since": LM}, None, LM)
    assert not_modified({"if-modified-since": LATER}, None, LM)
    assert not not_modified({"if-modified-since": EARLIER}, None, LM)
    assert not not_modified({"if-modified-since": "garbage"}, None, LM)
    assert not not_modified({"if-modified-since": LM}, None, None)


def test_no_conditionals_means_modified() -> None:
    assert not not_modified({}, '"v1"', LM)


def test_if_range_needs_a_strong_etag_or_the_exact_date() -> None:
    assert if_range_matches(None, None, None)
    assert if_range_matches('"v1"', '"v1"', None)
    assert not if_range_matches('"v1"', 'W/"v1"', None)
    assert not if_range_matches('W/"v1"', 'W/"v1"', None)
    assert not if_range_matches('"v2"', '"v1"', None)
    assert if_range_matches(LM, None, LM)
    assert not if_range_matches(LATER, None, LM)
    assert not if_range_matches(LM, '"v1"', None)


# ---- Ranges ----


@pytest.mark.parametrize(
    ("header", "size", "ranges"),
    [
        ("bytes=0-99", 1000, ((0, 99),)),
        ("bytes=0-0", 1000, ((0, 0),)),
        ("bytes=500-", 1000, ((500, 999),)),
        ("bytes=-100", 1000, ((900, 999),)),
        ("bytes=-5000", 1000, ((0, 999),)),
        ("bytes=900-5000", 1000, ((900, 999),)),
        ("bytes=999-999", 1000, ((999, 999),)),
        ("Bytes = 1-2", 1000, ((1, 2),)),
        ("bytes=5000-6000, 10-20", 1000, ((10, 20),)),
        ("bytes=0-9,10-19", 1000, ((0, 19),)),
        ("bytes=0-50, 20-30", 1000, ((0, 50),)),
    ],
)
def test_single_ranges_resolve_to_inclusive_byte_positions(
        header: str, size: int, ranges: tuple[tuple[int, int], ...]) -> None:
    spec = parse_range(header, size)
    assert spec.kind == RANGE_SINGLE
    assert spec.ranges == ranges


def test_a_single_range_gives_content_range_and_length() -> None:
    spec = parse_range("bytes=10-19", 100)
    assert spec.content_range() == "bytes 10-19/100"
    assert spec.length() == 10


def test_multiple_ranges_keep_the_viewer_order() -> None:
    spec = parse_range("bytes=50-59, 0-9", 100)
    assert spec.kind == RANGE_MULTI
    assert spec.ranges == ((50, 59), (0, 9))


def test_overlapping_multiple_ranges_are_coalesced_in_order() -> None:
    spec = parse_range("bytes=50-59, 0-9, 55-70, 80-", 100)
    assert spec.kind == RANGE_MULTI
    assert spec.ranges == ((0, 9), (50, 70), (80, 99))


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0",
                                    "bytes=1000-1001, 2000-"])
def test_ranges_past_the_end_are_unsatisfiable(header: str) -> None:
    spec = parse_range(header, 1000)
    assert spec.kind == RANGE_UNSATISFIABLE
    assert spec.unsatisfied_range() == "bytes */1000"


@pytest.mark.parametrize("header", [None, "", "items=0-1", "bytes=", "bytes=a-b", "bytes=5-1",
                                    "bytes=-", "bytes=0-1-2", "bytes=1", "bytes=--5",
                                    "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 40, 2))])
def test_invalid_range_headers_are_ignored(header: str | None) -> None:
    assert parse_range(header, 1000).kind == RANGE_NONE


def test_ranges_of_an_empty_object_are_ignored() -> None:
    assert parse_range("bytes=0-", 0).kind == RANGE_NONE


def test_a_multipart_plan_has_the_exact_length_of_the_body_it_describes() -> None:
    body = bytes(range(100))
    spec = parse_range("bytes=0-9, 90-", 100)
    plan = multipart_plan(spec, "application/octet-stream", "BOUNDARY")
    assert plan.content_type == "multipart/byteranges; boundary=BOUNDARY"
    assembled = b"".join(head + body[first:last + 1] for head, first, last in plan.parts)
    assembled += plan.tail
    assert len(assembled) == plan.length
    assert assembled.startswith(b"\r\n--BOUNDARY\r\nContent-Type: application/octet-stream\r\n"
                                b"Content-Range: bytes 0-9/100\r\n\r\n" + body[:10])
    assert b"Content-Range: bytes 90-99/100\r\n\r\n" + body[90:] in assembled
    assert assembled.endswith(b"\r\n--BOUNDARY--\r\n")


def test_a_multipart_plan_omits_content_type_when_unknown() -> None:
    plan = multipart_plan(parse_range("bytes=0-0,2-2", 3), None, "B")
    assert all(b"Content-Type" not in head for head, _, _ in plan.parts)


# ---- Compression ----


def behavior(compress: bool, gzip: bool = True, brotli: bool = True) -> Behavior:
    policy = CachePolicy(id="p", name="p", min_ttl=0, default_ttl=1, max_ttl=1,
                         query_strings=NONE, headers=NONE, cookies=NONE,
                         enable_gzip=gzip, enable_brotli=brotli)
    return Behavior(index=0, path_pattern="*", target="o", viewer_protocol_policy="allow-all",
                    allowed_methods=frozenset({"GET", "HEAD"}),
                    cached_methods=frozenset({"GET", "HEAD"}), compress=compress,
                    cache_policy=policy, origin_request_policy=None, origins=(),
                    failover_status_codes=frozenset(), matches=compile_glob("*"))


def test_the_edge_compresses_only_when_the_behavior_says_so() -> None:
    assert negotiate_encoding("gzip, br", behavior(True)) == "br"
    assert negotiate_encoding("gzip, br", behavior(False)) is None


def test_the_edge_compresses_only_to_encodings_the_policy_enables() -> None:
    assert negotiate_encoding("gzip, br", behavior(True, brotli=False)) == "gzip"
    assert negotiate_encoding("br", behavior(True, brotli=False)) is None
    assert negotiate_encoding("gzip", behavior(True, gzip=False, brotli=False)) is None
    assert negotiate_encoding(None, behavior(True)) is None
    assert negotiate_encoding("identity", behavior(True)) is None


@pytest.mark.parametrize("ctype", ["text/html", "text/plain; charset=utf-8", "TEXT/CSS",
                                   "application/json", "application/javascript",
                                   "application/x-javascript", "image/svg+xml",
                                   "application/xml", "application/ld+json",
                                   "application/atom+xml", "text/javascript",
                                   "application/vnd.api+json"])
def test_text_json_js_css_svg_and_xml_are_compressible(ctype: str) -> None:
    assert is_compressible(ctype, 5000)


@pytest.mark.parametrize("ctype", ["image/png", "image/jpeg", "video/mp4", "application/zip",
                                   "application/octet-stream", "application/gzip", "", None])
def test_binary_types_are_not_compressible(ctype: str | None) -> None:
    assert not is_compressible(ctype, 5000)


def test_compressible_sizes_are_1000_to_10000000_bytes() -> None:
    assert not is_compressible("text/html", 999)
    assert is_compressible("text/html", 1000)
    assert is_compressible("text/html", 10_000_000)
    assert not is_compressible("text/html", 10_000_001)
    assert is_compressible("text/html", None)


# ---- Vary ----


def test_vary_names_are_normalised() -> None:
    assert vary_names("User-Agent, accept-encoding,ACCEPT-ENCODING") == (
        "accept-encoding", "user-agent")
    assert vary_names("") == ()
    assert vary_names(None) == ()
    assert vary_names("Accept, *") is None


def test_the_vary_key_follows_the_named_request_headers() -> None:
    names = ("accept-language",)
    assert vary_key(names, {"accept-language": "de"}) != vary_key(names,
                                                                  {"accept-language": "fr"})
    assert vary_key(names, {"accept-language": "de", "x": "1"}) == vary_key(
        names, {"accept-language": "de"})
    assert vary_key(names, {}) != vary_key(names, {"accept-language": ""})


def test_the_vary_key_normalises_whitespace_and_accept_encoding() -> None:
    assert vary_key(("accept",), {"accept": "a,  b"}) == vary_key(("accept",), {"accept": "a, b"})
    ae = ("accept-encoding",)
    assert vary_key(ae, {"accept-encoding": "gzip, deflate, br"}) == vary_key(
        ae, {"accept-encoding": "br"})
    assert vary_key(ae, {"accept-encoding": "gzip"}) != vary_key(ae, {"accept-encoding": "br"})
    assert vary_key(ae, {"accept-encoding": "deflate"}) == vary_key(
        ae, {"accept-encoding": "identity"})


# ---- Invalidation paths ----


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/index.html", "/index.html", True),
        ("index.html", "/index.html", True),
        ("/index.html", "/index.htm", False),
        ("/index.html", "/Index.html", False),
        ("/*", "/", True),
        ("/*", "/any/thing.css", True),
        ("*", "/x", True),
        ("/images/*", "/images/a/b.png", True),
        ("/images/*", "/images", False),
        ("/images/*", "/css/a.css", False),
        ("/images/*.png", "/images/a/b.png", True),
        ("/images/*.png", "/images/a/b.jpg", False),
        ("/a*c", "/abbbc", True),
        ("/a?x=1", "/a", True),
        ("/a?x=1", "/ab", False),
        ("/a*?x=1", "/abc", True),
        ("/a.c", "/abc", False),
        ("/a%20b", "/a%20b", True),
        ("/a%20b", "/a b", False),
    ],
)
def test_invalidation_paths_match_exactly_or_by_wildcard(pattern: str, path: str,
                                                         matches: bool) -> None:
    assert path_matches(pattern, path) is matches


# ---- Request ids ----


def test_request_ids_stay_unique_and_counted_in_hex_across_blocks() -> None:
    from edgeagent.server import ID_BLOCK, RequestIds

    ids = RequestIds()
    taken = [ids.next() for _ in range(3 * ID_BLOCK + 5)]
    assert len(set(taken)) == len(taken)
    prefix = ids.prefix + "-"
    assert all(rid.startswith(prefix) for rid in taken)
    assert [int(rid[len(prefix):], 16) for rid in taken] == list(range(len(taken)))
    assert RequestIds().prefix != ids.prefix  # another process's ids cannot collide with these
