"""Compression at the edge: gzip or brotli, stored once per encoding, with Vary."""

from __future__ import annotations

import gzip

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, cache_policy, with_behaviors

TEXT = b"compress me please, " * 500


def compressing_edge(origin: Origin, make_edge: EdgeFactory) -> object:
    policy = cache_policy(enable_gzip=True, enable_brotli=True)
    return make_edge(with_behaviors(origin.port, behavior(compress=True, cache_policy=policy)))


def test_it_serves_gzip_and_brotli_stored_once_per_encoding(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = compressing_edge(origin, make_edge)
    origin.route("/t.txt", Answer(body=TEXT, headers={"Content-Type": "text/plain"}))
    for _ in range(2):
        gz = edge.get("/t.txt", headers={"Accept-Encoding": "gzip"})  # type: ignore[attr-defined]
        br = edge.get("/t.txt", headers={"Accept-Encoding": "gzip, deflate, br"})  # type: ignore[attr-defined]
        plain = edge.get("/t.txt", headers={"Accept-Encoding": "identity"})  # type: ignore[attr-defined]
    assert gz.headers["Content-Encoding"] == "gzip" and gz.content == TEXT
    assert br.headers["Content-Encoding"] == "br" and br.content == TEXT
    assert gz.num_bytes_downloaded < len(TEXT) / 10 and br.num_bytes_downloaded < len(TEXT) / 10
    assert "Content-Encoding" not in plain.headers and plain.content == TEXT
    assert "Accept-Encoding" in gz.headers["Vary"] and "Accept-Encoding" in br.headers["Vary"]
    assert gz.headers["X-Cache"] == br.headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/t.txt") == 3


def test_it_does_not_compress_small_or_binary_responses(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = compressing_edge(origin, make_edge)
    origin.route("/small.txt", Answer(body=b"tiny", headers={"Content-Type": "text/plain"}))
    origin.route("/img.png", Answer(body=TEXT, headers={"Content-Type": "image/png"}))
    small = edge.get("/small.txt", headers={"Accept-Encoding": "gzip"})  # type: ignore[attr-defined]
    image = edge.get("/img.png", headers={"Accept-Encoding": "gzip"})  # type: ignore[attr-defined]
    assert "Content-Encoding" not in small.headers and small.content == b"tiny"
    assert "Content-Encoding" not in image.headers and image.content == TEXT


def test_it_keeps_an_origin_compressed_body_as_is(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = compressing_edge(origin, make_edge)
    packed = gzip.compress(TEXT)
    origin.route("/pre.txt", Answer(body=packed, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"}))
    response = edge.get("/pre.txt", headers={"Accept-Encoding": "gzip"})  # type: ignore[attr-defined]
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content == TEXT and response.num_bytes_downloaded == len(packed)
    assert origin.seen("/pre.txt")[0].headers["Accept-Encoding"] == "gzip"


def test_it_does_not_compress_when_the_behavior_says_not_to(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(compress=False)))
    origin.route("/raw.txt", Answer(body=TEXT, headers={"Content-Type": "text/plain"}))
    response = edge.get("/raw.txt", headers={"Accept-Encoding": "gzip, br"})  # type: ignore[attr-defined]
    assert "Content-Encoding" not in response.headers and response.content == TEXT
