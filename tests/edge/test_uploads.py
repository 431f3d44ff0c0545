"""Writes: forwarded with the body streamed both ways, never cached, evicting the path."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

from tests.edge.conftest import (
    ALL_METHODS,
    DOMAIN,
    Answer,
    Edge,
    EdgeFactory,
    Origin,
    behavior,
    distribution,
    document,
    pattern_bytes,
)

UPLOAD_SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024


def writable_edge(origin: Origin, make_edge: EdgeFactory) -> Edge:
    return make_edge(document(distribution(origin.port, cache_behaviors=[behavior(allowed_methods=ALL_METHODS)])))


def upload_chunks(count: int) -> Iterator[bytes]:
    block = pattern_bytes(CHUNK)
    for _ in range(count):
        yield block


def test_it_streams_a_200_mb_put_to_the_origin_with_bounded_memory(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    baseline_kb = edge.rss_high_water_kb()
    response = edge.request("PUT", "/upload.bin", content=upload_chunks(UPLOAD_SIZE // CHUNK),
                            headers={"Content-Length": str(UPLOAD_SIZE)})
    assert response.status_code == 200
    expected = hashlib.sha256()
    for chunk in upload_chunks(UPLOAD_SIZE // CHUNK):
        expected.update(chunk)
    assert response.json() == {"method": "PUT", "size": UPLOAD_SIZE, "sha256": expected.hexdigest()}
    assert origin.seen("/upload.bin")[0].headers["Content-Length"] == str(UPLOAD_SIZE)
    assert edge.rss_high_water_kb() - baseline_kb < 60 * 1024


def test_it_forwards_chunked_uploads(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    response = edge.request("POST", "/form", content=upload_chunks(3))
    assert response.json()["size"] == 3 * CHUNK


def test_it_forwards_every_write_method_and_never_caches_them(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for _ in range(2):
            response = edge.request(method, "/w", content=b"payload")
            assert response.status_code == 200 and response.json()["method"] == method
            assert response.headers["X-Cache"] == "Miss from edge-t"
    assert origin.hits("/w") == 8


def test_it_evicts_the_cached_path_after_a_successful_write(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    origin.route("/doc", Answer(body=b"v1"))
    edge.get("/doc")
    assert edge.get("/doc").headers["X-Cache"] == "Hit from edge-t"
    origin.routes.pop("/doc")
    assert edge.request("PUT", "/doc", content=b"v2").status_code == 200
    origin.route("/doc", Answer(body=b"v2"))
    assert edge.get("/doc").content == b"v2"


def test_it_survives_a_client_that_disconnects_mid_body(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    with socket.create_connection(("127.0.0.1", edge.port)) as sock:
        sock.sendall(f"PUT /cut HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 10000000\r\n\r\n".encode())
        sock.sendall(b"x" * 100_000)
    origin.route("/after", Answer(body=b"still here"))
    assert edge.get("/after").content == b"still here"


def test_it_answers_100_continue_before_reading_an_upload(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = writable_edge(origin, make_edge)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(f"PUT /expect HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b'"size": 5' in data
