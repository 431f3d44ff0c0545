"""Ranges: answered from the cache (206, multipart, 416); big objects pass the range on."""

from __future__ import annotations

from tests.edge.conftest import Answer, Edge, EdgeFactory, Origin, distribution, document, pattern_bytes

BODY = pattern_bytes(10_000)


def warm(origin: Origin, edge: Edge) -> None:
    origin.route("/r.bin", Answer(body=BODY, headers={"Content-Type": "application/octet-stream", "ETag": '"v1"'}))
    assert edge.get("/r.bin").status_code == 200


def test_it_answers_a_single_range_from_the_cache(origin: Origin, edge: Edge) -> None:
    warm(origin, edge)
    response = edge.get("/r.bin", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == BODY[100:200]
    assert response.headers["Content-Range"] == "bytes 100-199/10000"
    assert response.headers["X-Cache"] == "Hit from edge-t"
    suffix = edge.get("/r.bin", headers={"Range": "bytes=-10"})
    assert suffix.content == BODY[-10:]
    assert origin.hits("/r.bin") == 1


def test_it_answers_multiple_ranges_as_multipart_byteranges(origin: Origin, edge: Edge) -> None:
    warm(origin, edge)
    response = edge.get("/r.bin", headers={"Range": "bytes=0-9,500-509"})
    assert response.status_code == 206
    assert response.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    boundary = response.headers["Content-Type"].split("boundary=")[1]
    assert response.content.count(f"--{boundary}".encode()) == 3
    assert b"Content-Range: bytes 0-9/10000\r\n\r\n" + BODY[0:10] in response.content
    assert b"Content-Range: bytes 500-509/10000\r\n\r\n" + BODY[500:510] in response.content
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_it_answers_416_to_an_unsatisfiable_range(origin: Origin, edge: Edge) -> None:
    warm(origin, edge)
    response = edge.get("/r.bin", headers={"Range": "bytes=20000-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */10000"


def test_it_ignores_a_range_whose_if_range_no_longer_matches(origin: Origin, edge: Edge) -> None:
    warm(origin, edge)
    response = edge.get("/r.bin", headers={"Range": "bytes=0-9", "If-Range": '"v0"'})
    assert response.status_code == 200 and response.content == BODY


def test_it_fetches_the_whole_object_once_on_a_range_miss(origin: Origin, edge: Edge) -> None:
    origin.route("/miss.bin", Answer(body=BODY))
    response = edge.get("/miss.bin", headers={"Range": "bytes=5-14"})
    assert response.status_code == 206 and response.content == BODY[5:15]
    assert "Range" not in origin.seen("/miss.bin")[0].headers
    assert edge.get("/miss.bin").headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/miss.bin") == 1


def test_it_passes_ranges_of_big_objects_to_the_origin_uncached(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)), extra=["--range-passthrough-size", "4K"])
    origin.route("/big.bin", Answer(body=BODY))
    first = edge.get("/big.bin", headers={"Range": "bytes=0-99"})
    assert first.status_code in (200, 206)
    second = edge.get("/big.bin", headers={"Range": "bytes=100-199"})
    assert origin.seen("/big.bin")[-1].headers.get("Range") == "bytes=100-199"
    assert second.headers["X-Cache"] == "Miss from edge-t"
