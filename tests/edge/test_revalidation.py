"""Revalidation: stale objects are revalidated with the origin's validators (RefreshHit)."""

from __future__ import annotations

import time

from tests.edge.conftest import Answer, Edge, EdgeFactory, Origin, behavior, cache_policy, with_behaviors


def short_lived(origin: Origin, make_edge: EdgeFactory) -> Edge:
    return make_edge(with_behaviors(origin.port, behavior(cache_policy=cache_policy(0, 1, 100))))


def test_it_revalidates_a_stale_object_with_if_none_match_and_answers_refresh_hit(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = short_lived(origin, make_edge)
    origin.route("/etag", Answer(body=b"v1", headers={"ETag": '"abc"', "Cache-Control": "max-age=1"}))
    edge.get("/etag")
    time.sleep(1.2)
    refreshed = edge.get("/etag")
    assert refreshed.headers["X-Cache"] == "RefreshHit from edge-t"
    assert refreshed.content == b"v1"
    assert origin.seen("/etag")[1].headers["If-None-Match"] == '"abc"'
    assert edge.get("/etag").headers["X-Cache"] == "Hit from edge-t"


def test_it_revalidates_with_if_modified_since(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = short_lived(origin, make_edge)
    stamp = "Tue, 01 Sep 2026 10:00:00 GMT"
    origin.route(
        "/lm",
        Answer(body=b"dated", headers={"Last-Modified": stamp, "Cache-Control": "max-age=1"}),
        Answer(status=304, body=b"", headers={"Cache-Control": "max-age=1"}),
    )
    edge.get("/lm")
    time.sleep(1.2)
    refreshed = edge.get("/lm")
    assert refreshed.headers["X-Cache"] == "RefreshHit from edge-t"
    assert refreshed.content == b"dated"
    assert origin.seen("/lm")[1].headers["If-Modified-Since"] == stamp


def test_it_replaces_the_object_when_the_origin_sends_a_new_one(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = short_lived(origin, make_edge)
    origin.route(
        "/new",
        Answer(body=b"old", headers={"ETag": '"1"', "Cache-Control": "max-age=1"}),
        Answer(body=b"new", headers={"ETag": '"2"', "Cache-Control": "max-age=60"}),
    )
    edge.get("/new")
    time.sleep(1.2)
    assert edge.get("/new").content == b"new"
    assert edge.get("/new").headers["X-Cache"] == "Hit from edge-t"


def test_it_answers_viewer_conditionals_with_304_from_the_cache(origin: Origin, edge: Edge) -> None:
    stamp = "Tue, 01 Sep 2026 10:00:00 GMT"
    origin.route("/c", Answer(body=b"cond", headers={"ETag": 'W/"x"', "Last-Modified": stamp}))
    edge.get("/c")
    by_etag = edge.get("/c", headers={"If-None-Match": '"x"'})
    assert by_etag.status_code == 304 and by_etag.content == b""
    assert by_etag.headers["ETag"] == 'W/"x"'
    by_date = edge.get("/c", headers={"If-Modified-Since": stamp})
    assert by_date.status_code == 304
    changed = edge.get("/c", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.content == b"cond"
    assert origin.hits("/c") == 1


def test_it_answers_a_viewer_conditional_on_a_miss_with_304(origin: Origin, edge: Edge) -> None:
    origin.route("/cm", Answer(body=b"cond", headers={"ETag": '"x"'}, honour_conditionals=False))
    response = edge.get("/cm", headers={"If-None-Match": '"x"'})
    assert response.status_code == 304
    assert "If-None-Match" not in origin.seen("/cm")[0].headers
