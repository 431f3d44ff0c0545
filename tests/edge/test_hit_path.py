"""The synchronous hit fast path: Age, request ids and freshness, which it memoises per object."""

from __future__ import annotations

import time

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, cache_policy, with_behaviors


def edge_for(origin: Origin, make_edge: EdgeFactory) -> object:
    return make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(min_ttl=0))))


def test_a_hits_age_counts_the_origins_age_and_grows_with_each_second_in_the_cache(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/aged", Answer(body=b"x", headers={"Cache-Control": "max-age=60", "Age": "5"}))
    edge.get("/aged")  # type: ignore[attr-defined]
    first = edge.get("/aged")  # type: ignore[attr-defined]
    again = edge.get("/aged")  # type: ignore[attr-defined]
    time.sleep(1.1)
    later = edge.get("/aged")  # type: ignore[attr-defined]
    assert first.headers["X-Cache"] == "Hit from edge-t"
    assert int(first.headers["Age"]) >= 5
    assert int(first.headers["Age"]) <= int(again.headers["Age"]) <= int(first.headers["Age"]) + 1
    assert int(again.headers["Age"]) + 1 <= int(later.headers["Age"]) <= int(again.headers["Age"]) + 2
    assert origin.hits("/aged") == 1


def test_a_hit_with_an_origin_age_expires_when_age_reaches_the_ttl(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/old", Answer(body=b"x", headers={"Cache-Control": "max-age=2", "Age": "1"}))
    edge.get("/old")  # type: ignore[attr-defined]
    hit = edge.get("/old")  # type: ignore[attr-defined]
    time.sleep(1.2)
    expired = edge.get("/old")  # type: ignore[attr-defined]
    assert hit.headers["X-Cache"] == "Hit from edge-t" and hit.headers["Age"] == "1"
    assert expired.headers["X-Cache"] == "Miss from edge-t"
    assert origin.hits("/old") == 2


def test_each_hit_carries_its_own_request_id_and_echoes_a_valid_incoming_one(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = edge_for(origin, make_edge)
    origin.route("/id", Answer(body=b"x", headers={"Cache-Control": "max-age=60"}))
    edge.get("/id")  # type: ignore[attr-defined]
    generated = [edge.get("/id").headers["X-Request-Id"] for _ in range(3)]  # type: ignore[attr-defined]
    echoed = edge.get("/id", headers={"X-Request-Id": "trace-42"})  # type: ignore[attr-defined]
    refused = edge.get("/id", headers={"X-Request-Id": "not a token"})  # type: ignore[attr-defined]
    assert len(set(generated)) == 3
    assert all(rid.count("-") == 1 for rid in generated)
    assert echoed.headers["X-Cache"] == "Hit from edge-t" and echoed.headers["X-Request-Id"] == "trace-42"
    assert refused.headers["X-Request-Id"] not in ("not a token", *generated)
    assert refused.content == b"x"
