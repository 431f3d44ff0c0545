"""Protocol details against an origin that sends exactly the bytes named (issue 10)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.edge.conftest import ALL_METHODS, DOMAIN, Edge, EdgeFactory, behavior, cache_policy, distribution, document
from tests.edge.test_no_leaks import managed_origin_request_policy
from tests.edge.raw_origin import RawAnswer, RawOrigin


@pytest.fixture
def raw() -> Iterator[RawOrigin]:
    server = RawOrigin().start()
    yield server
    server.stop()


@pytest.fixture
def raw_edge(raw: RawOrigin, make_edge: EdgeFactory) -> Edge:
    return make_edge(document(distribution(raw.port, cache_behaviors=[behavior(allowed_methods=ALL_METHODS)])))


def exchange(edge: Edge, payload: bytes, timeout: float = 10) -> bytes:
    """Everything the edge sends until it closes (the last request must ask it to)."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def req(path: str, extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: {DOMAIN}\r\n{extra}\r\n".encode()


# ---- Request framing from the viewer ----

BAD_BODIES = {
    "bad chunk size": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "LF-only chunk lines": b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "chunk longer than its size": b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    "xchunked": b"Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "chunked not final": b"Transfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "gzip then chunked": b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_malformed_request_body_is_a_400_not_an_origin_failure(raw: RawOrigin, raw_edge: Edge, case: str) -> None:
    raw.route("/up", RawAnswer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    raw.route("/after", RawAnswer(ok(b"still serving")))
    head = f"POST /up HTTP/1.1\r\nHost: {DOMAIN}\r\n".encode()
    data = exchange(raw_edge, head + BAD_BODIES[case])
    assert data.startswith(b"HTTP/1.1 400 "), data[:80]
    assert data.count(b"HTTP/1.1 ") == 1
    metrics = raw_edge.admin("GET", "/metrics").text
    assert not any(line.startswith("edge_origin_failures_total") and not line.endswith(" 0")
                   for line in metrics.splitlines()), metrics
    # The edge keeps serving the next viewer.
    assert raw_edge.get("/after").content == b"still serving"


@pytest.mark.parametrize("version", ["2.0", "0.9", "1.2", "3.0"])
def test_a_request_line_with_another_http_version_is_505(raw: RawOrigin, raw_edge: Edge, version: str) -> None:
    raw.route("/v", RawAnswer(ok(b"versioned")))
    data = exchange(raw_edge, f"GET /v HTTP/{version}\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 505 "), data[:80]
    assert raw.seen("/v") == []
    assert raw_edge.get("/v").content == b"versioned"
    assert exchange(raw_edge, req("/v", "Connection: close\r\n", "1.0")).startswith(b"HTTP/1.1 200 ")


def test_non_ascii_header_bytes_reach_the_origin_byte_for_byte(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(raw.port, cache_behaviors=[
        behavior(origin_request_policy=managed_origin_request_policy("AllViewer"))])))
    raw.route("/h", RawAnswer(ok(b"h")))
    data = exchange(edge, b"GET /h HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\nX-Name: caf\xc3\xa9\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ")
    (seen,) = raw.seen("/h")
    assert b"\r\nx-name: caf\xc3\xa9\r\n" in seen.head.lower(), seen.head


# ---- Content-Length disagreeing with the bytes sent ----


def test_stray_origin_bytes_are_never_the_answer_to_the_next_request(raw: RawOrigin, raw_edge: Edge) -> None:
    # The body is whole, then (on the kept-alive origin connection) a response nobody asked for.
    raw.route("/late", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 3\r\n\r\nabc",
                                 hold=0.3, later=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"))
    raw.route("/next", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\ngood"))
    with socket.create_connection(("127.0.0.1", raw_edge.port), timeout=10) as sock:
        sock.sendall(req("/late"))
        data = b""
        while not data.endswith(b"abc"):
            data += sock.recv(65536)
        time.sleep(0.8)  # the stray bytes arrive while the origin connection is idle in the pool
        sock.sendall(req("/next", "Connection: close\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b"EVIL" not in data and data.endswith(b"good"), data
    assert len(raw.seen("/next")) == 1
    assert raw_edge.get("/next").content == b"good"


def test_more_bytes_than_content_length_in_the_same_read(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/long", RawAnswer(ok(b"abc") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"))
    raw.route("/next", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 4\r\n\r\ngood"))
    assert raw_edge.get("/long").content == b"abc"
    assert raw_edge.get("/next").content == b"good"
    assert raw_edge.get("/long").headers["x-cache"].startswith("Hit")  # the first 3 bytes are the object
    assert raw_edge.get("/long").content == b"abc"


def test_fewer_bytes_than_content_length_then_close_is_cut_and_not_stored(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/short", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 10\r\n\r\nabc",
                                  close=True))
    for _ in range(2):
        data = exchange(raw_edge, req("/short", "Connection: close\r\n"))
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Length: 10" in head and len(body) < 10  # the viewer sees a cut response
    assert len(raw.seen("/short")) == 2  # nothing was stored


def test_fewer_bytes_than_content_length_and_silence_times_out(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/stall", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 10\r\n\r\nabc",
                                  hold=30))
    data = exchange(raw_edge, req("/stall", "Connection: close\r\n"), timeout=20)  # read_timeout is 5 s
    assert len(data.partition(b"\r\n\r\n")[2]) < 10
    raw.route("/stall", RawAnswer(ok(b"0123456789")))
    assert raw_edge.get("/stall").content == b"0123456789"


# ---- Interim responses (RFC 9110 15.2) ----

EARLY = (b"HTTP/1.1 102 Processing\r\n\r\n"
         b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Hint-Only: 1\r\nConnection: x-hop\r\n"
         b"X-Hop: 1\r\n\r\n")


def test_interim_responses_reach_the_viewer_and_never_the_cache(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/early", RawAnswer(EARLY, hold=0.2, later=ok(b"final", b"ETag: \"f\"\r\n")))
    data = exchange(raw_edge, req("/early", "Connection: close\r\n"))
    processing, hints, final = data.split(b"\r\n\r\n", 2)
    assert processing.startswith(b"HTTP/1.1 102 Processing\r\n"), data
    assert hints.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert b"\r\nLink: </style.css>; rel=preload" in hints and b"\r\nX-Hint-Only: 1" in hints
    assert b"X-Hop" not in hints and b"Connection" not in hints  # hop-by-hop fields stay on their hop
    assert b"\r\nVia: 1.1 " in hints
    assert final.startswith(b"HTTP/1.1 200 OK\r\n") and final.endswith(b"final")
    assert b"Link" not in final and b"X-Hint-Only" not in final
    # The stored answer is the final one alone: a hit carries no interim response and none of its fields.
    hit = exchange(raw_edge, req("/early", "Connection: close\r\n"))
    assert hit.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Cache: Hit" in hit, hit
    assert b"Link" not in hit and b"X-Hint-Only" not in hit and b" 103 " not in hit
    assert len(raw.seen("/early")) == 1


def test_an_http10_viewer_gets_no_interim_response(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/early10", RawAnswer(EARLY + ok(b"final")))
    data = exchange(raw_edge, req("/early10", version="1.0"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"final"), data
    assert b" 102 " not in data and b" 103 " not in data


def test_a_viewer_gets_one_100_continue_when_the_origin_sends_its_own(raw: RawOrigin, raw_edge: Edge) -> None:
    raw.route("/up", RawAnswer(b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"))
    with socket.create_connection(("127.0.0.1", raw_edge.port), timeout=10) as sock:
        sock.sendall(f"PUT /up HTTP/1.1\r\nHost: {DOMAIN}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                     "Connection: close\r\n\r\n".encode())
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the edge's own, once it wants the body
        sock.sendall(b"hello")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 201 Created\r\n") and data.endswith(b"ok"), data
    assert raw.seen("/up")[0].body == b"hello"


def test_an_origins_100_continue_goes_to_a_viewer_that_got_none_from_the_edge(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(raw.port, cache_behaviors=[behavior(cache_policy=cache_policy(0, 0, 0))])))
    raw.route("/c", RawAnswer(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"body")))
    data = exchange(edge, req("/c", "Connection: close\r\n"))
    assert data.startswith(b"HTTP/1.1 100 Continue\r\nVia: ") and data.count(b" 100 Continue") == 1, data
    assert data.endswith(b"body")


# ---- A 304 updates the stored fields (RFC 9111 3.2, 4.3.4) ----


def test_a_304_replaces_the_stored_fields_it_carries_and_keeps_the_others(raw: RawOrigin, raw_edge: Edge) -> None:
    stored = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nETag: \"m\"\r\nContent-Type: text/plain\r\n"
              b"Link: <a>\r\nX-Kept: stored\r\nLink: <b>\r\nX-Changed: old\r\nContent-Length: 4\r\n\r\nbody")
    update = (b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\nETag: \"m\"\r\nLink: <c>\r\n"
              b"X-Changed: new\r\nX-Added: 1\r\nContent-Encoding: gzip\r\nContent-Length: 999\r\n\r\n")
    raw.route("/merge", RawAnswer(stored), RawAnswer(update))
    assert raw_edge.get("/merge").content == b"body"
    time.sleep(1.3)
    for expected in ("RefreshHit", "Hit"):
        data = exchange(raw_edge, req("/merge", "Connection: close\r\n"))
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert f"X-Cache: {expected}".encode() in head and body == b"body", data
        assert [line for line in lines if line.startswith(b"Link:")] == [b"Link: <c>"]  # both old lines replaced
        assert b"X-Kept: stored" in lines and b"X-Changed: new" in lines and b"X-Added: 1" in lines
        assert b"X-Changed: old" not in lines and b"Cache-Control: max-age=60" in lines
        assert b"Content-Length: 4" in lines and not any(line.startswith(b"Content-Encoding") for line in lines)
    assert raw.seen("/merge")[1].head.lower().count(b"if-none-match: \"m\"") == 1


# ---- Ranges from a small stored object ----


@pytest.mark.parametrize(("spec", "content_range", "body"), [
    ("bytes=0-1", "bytes 0-1/5", b"ab"),
    ("bytes=1-", "bytes 1-4/5", b"bcde"),
    ("bytes=-5", "bytes 0-4/5", b"abcde"),
    ("bytes=-2", "bytes 3-4/5", b"de"),
])  # fmt: skip
def test_a_tiny_stored_object_without_validators_answers_any_single_range(
        raw: RawOrigin, raw_edge: Edge, spec: str, content_range: str, body: bytes) -> None:
    raw.route("/tiny", RawAnswer(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 5\r\n\r\nabcde"))
    assert raw_edge.get("/tiny").content == b"abcde"
    ranged = raw_edge.get("/tiny", headers={"Range": spec})
    assert ranged.status_code == 206 and ranged.headers["Content-Range"] == content_range and ranged.content == body
    assert ranged.headers["X-Cache"].startswith("Hit")
    assert len(raw.seen("/tiny")) == 1
