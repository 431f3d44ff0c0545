"""The viewer protocol: malformed input, pipelining, keep-alive, disconnects."""

from __future__ import annotations

import socket

from tests.edge.conftest import DOMAIN, Answer, Edge, Origin


def exchange(edge: Edge, payload: bytes) -> bytes:
    """Everything the edge sends until it closes (the last request must ask it to)."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_it_answers_400_to_a_malformed_request_and_keeps_serving(origin: Origin, edge: Edge) -> None:
    assert exchange(edge, b"THIS IS NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(edge, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(edge, b"GET /x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    assert exchange(edge, huge).startswith(b"HTTP/1.1 400 ")
    origin.route("/ok", Answer(body=b"fine"))
    assert edge.get("/ok").content == b"fine"


def test_it_answers_pipelined_requests_in_order(origin: Origin, edge: Edge) -> None:
    origin.route("/one", Answer(body=b"first-body", delay=0.2))
    origin.route("/two", Answer(body=b"second-body"))
    edge.get("/two")
    request = "GET {} HTTP/1.1\r\nHost: " + DOMAIN + "\r\n{}\r\n"
    payload = (request.format("/one", "") + request.format("/two", "") + request.format("/one", "Connection: close\r\n"))
    data = exchange(edge, payload.encode())
    assert data.count(b"HTTP/1.1 200 OK") == 3
    first, second, third = data.index(b"first-body"), data.index(b"second-body"), data.rindex(b"first-body")
    assert first < second < third


def test_it_keeps_connections_alive_and_closes_on_request(origin: Origin, edge: Edge) -> None:
    origin.route("/ka", Answer(body=b"alive"))
    request = f"GET /ka HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
    closing = f"GET /ka HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(request)
            data = b""
            while not data.endswith(b"alive"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 OK") and data.count(b"HTTP/1.1") == 1
        sock.sendall(closing)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert b"Connection: close" in data and data.endswith(b"alive")


def test_it_survives_viewers_that_disconnect_mid_response(origin: Origin, edge: Edge) -> None:
    origin.route("/big", Answer(size=20 * 1024 * 1024))
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
            sock.sendall(f"GET /big HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
    assert len(edge.get("/big").content) == 20 * 1024 * 1024
    assert origin.hits("/big") <= 3


def test_it_answers_http_1_0_without_chunked_framing(origin: Origin, edge: Edge) -> None:
    origin.route("/old", Answer(body=b"legacy"))
    data = exchange(edge, f"GET /old HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
    assert b"Connection: close" in data
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"legacy")
    assert b"Transfer-Encoding" not in data
