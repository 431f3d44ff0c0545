"""Vary matching: equivalent spellings of a request header share one stored variant, and
only provably equivalent ones do (policy.vary_key, docs/caching.md "Vary")."""

from __future__ import annotations

import httpx
import pytest

from edgeagent.policy import vary_key

from .conftest import DOMAIN, Answer, Edge, EdgeFactory, Origin, distribution, document


def key(name: str, value: str | None) -> str:
    return vary_key((name,), {} if value is None else {name: value})


# ---- The pure rule ----


@pytest.mark.parametrize(("a", "b"), [
    ("en-US,fr;q=0.5", "fr;q=0.5, en-us"),
    ("en-US, fr;q=0.5", "EN-us ,  FR;Q=0.50"),
    ("de;q=0.9, en", "en;q=1.0, de;q=0.900"),
    ("da, en-gb;q=0.8, en;q=0.7", "en;q=0.7,en-gb;q=0.8,da"),
    ("en,,fr", "en, fr"),
])
def test_equivalent_accept_language_lists_share_a_key(a: str, b: str) -> None:
    assert key("accept-language", a) == key("accept-language", b)


@pytest.mark.parametrize(("a", "b"), [
    ("en, fr", "fr, en"),  # equal weights: the order may be the viewer's preference
    ("en", "en;q=0.5"),
    ("en;q=0", "en"),
    ("en", ""),
    ("en;level=1", "en"),  # not a weighted token list: only whitespace is normalised
    ("en;q=2", "en;q=1"),  # not a qvalue
])
def test_different_accept_language_lists_keep_their_own_keys(a: str, b: str) -> None:
    assert key("accept-language", a) != key("accept-language", b)


def test_an_absent_header_and_an_empty_one_differ() -> None:
    assert key("accept-language", None) != key("accept-language", "")
    assert key("x-mode", None) != key("x-mode", "")


def test_accept_charset_is_normalised_like_accept_language() -> None:
    assert key("accept-charset", "UTF-8, iso-8859-1;q=0.5") == key("accept-charset", "iso-8859-1;q=0.5,utf-8")


@pytest.mark.parametrize(("a", "b"), [("gzip, br", "br , GZIP"), ("gzip;q=1.0, deflate", "deflate, gzip"),
                                      ("identity", "")])
def test_accept_encoding_is_reduced_to_the_coding_it_selects(a: str, b: str) -> None:
    assert key("accept-encoding", a) == key("accept-encoding", b)
    assert key("accept-encoding", "gzip") != key("accept-encoding", "br")


def test_other_headers_only_have_their_whitespace_collapsed() -> None:
    assert key("x-mode", "  a   b ") == key("x-mode", "a b")
    assert key("x-mode", "A") != key("x-mode", "a")
    assert key("x-mode", "a,b") != key("x-mode", "b,a")


# ---- Through a real edge ----


def ask(edge: Edge, path: str, **headers: str) -> str:
    answer = httpx.get(edge.url + path, headers={"Host": DOMAIN, **headers}, timeout=30)
    assert answer.status_code == 200
    return answer.headers["X-Cache"].split()[0]


def test_equivalent_requests_share_a_stored_variant(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/lang", Answer(headers={"Cache-Control": "max-age=3600", "Vary": "accept-language, X-Mode"}))
    assert ask(edge, "/lang", **{"Accept-Language": "en-US,fr;q=0.5", "X-Mode": "a b"}) == "Miss"
    assert ask(edge, "/lang", **{"Accept-Language": "FR;q=0.50 , en-us", "X-Mode": "a   b"}) == "Hit"
    assert ask(edge, "/lang", **{"Accept-Language": "fr, en-US", "X-Mode": "a b"}) == "Miss"
    assert ask(edge, "/lang", **{"Accept-Language": "en-US,fr;q=0.5", "X-Mode": "A B"}) == "Miss"
    assert origin.hits("/lang") == 3


def test_accept_encoding_spellings_share_a_variant_when_the_origin_varies_on_it(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    origin.route("/enc", Answer(headers={"Cache-Control": "max-age=3600", "Vary": "Accept-Encoding"}))
    assert ask(edge, "/enc", **{"Accept-Encoding": "gzip, deflate"}) == "Miss"
    assert ask(edge, "/enc", **{"Accept-Encoding": "deflate , GZIP;q=1.0"}) == "Hit"
    assert ask(edge, "/enc", **{"Accept-Encoding": "br"}) == "Miss"
