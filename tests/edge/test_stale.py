"""stale-while-revalidate, stale-if-error, and stale objects when the origin is down."""

from __future__ import annotations

import socket
import time

from tests.edge.conftest import (
    Answer,
    EdgeFactory,
    Origin,
    behavior,
    cache_policy,
    clone,
    custom_origin,
    distribution,
    document,
    with_behaviors,
)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_it_serves_stale_while_one_background_refresh_runs(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))
    origin.route(
        "/swr",
        Answer(body=b"old", headers={"Cache-Control": "max-age=1, stale-while-revalidate=60"}),
        Answer(body=b"new", delay=0.5, headers={"Cache-Control": "max-age=60"}),
    )
    edge.get("/swr")
    time.sleep(1.2)
    stale = [edge.get("/swr") for _ in range(5)]
    assert all(r.content == b"old" for r in stale)
    deadline = time.monotonic() + 5
    while edge.get("/swr").content != b"new" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert edge.get("/swr").content == b"new"
    assert origin.hits("/swr") == 2


def test_it_serves_stale_if_error_when_the_origin_answers_5xx(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))
    origin.route(
        "/sie",
        Answer(body=b"good", headers={"Cache-Control": "max-age=1, stale-if-error=60"}),
        Answer(status=503, body=b"down"),
    )
    edge.get("/sie")
    time.sleep(1.2)
    response = edge.get("/sie")
    assert response.status_code == 200 and response.content == b"good"
    assert origin.hits("/sie") == 2


def test_it_passes_a_5xx_through_without_stale_if_error(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))
    origin.route("/nosie", Answer(body=b"good", headers={"Cache-Control": "max-age=1"}), Answer(status=503, body=b"down"))
    edge.get("/nosie")
    time.sleep(1.2)
    assert edge.get("/nosie").status_code == 503


def test_it_serves_any_stale_object_when_the_origin_is_unreachable(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = document(distribution(origin.port, cache_behaviors=[behavior(cache_policy=cache_policy(0, 1, 100))]))
    edge = make_edge(doc)
    origin.route("/down", Answer(body=b"kept", headers={"Cache-Control": "max-age=1"}))
    edge.get("/down")
    moved = clone(doc, 2)
    moved["distributions"][0]["origins"] = [custom_origin(dead_port())]
    assert edge.push(moved).status_code == 200
    time.sleep(1.2)
    response = edge.get("/down")
    assert response.status_code == 200 and response.content == b"kept"
    assert edge.get("/never-cached").status_code == 502
