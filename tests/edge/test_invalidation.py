"""Invalidation through the signed admin API: by path, wildcard and tag."""

from __future__ import annotations

import time

from tests.edge.conftest import Answer, Edge, Origin


def cache(edge: Edge, origin: Origin, *paths: str, tags: str = "") -> None:
    for path in paths:
        origin.route(path.split("?")[0], Answer(body=path.encode(), headers={"Surrogate-Key": tags} if tags else {}))
        edge.get(path)
        assert edge.get(path).headers["X-Cache"] == "Hit from edge-t"


def is_hit(edge: Edge, path: str) -> bool:
    return edge.get(path).headers["X-Cache"] == "Hit from edge-t"


def test_it_invalidates_an_exact_path(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/a.css", "/b.css")
    response = edge.invalidate(1, paths=["/a.css"])
    assert response.status_code == 200 and response.json() == {"id": 1, "removed": 1}
    assert not is_hit(edge, "/a.css")
    assert is_hit(edge, "/b.css")


def test_it_invalidates_by_wildcard_including_every_variant(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/img/1.png", "/img/sub/2.png", "/keep.png")
    cache(edge, origin, "/img/1.png", "/img/1.png?v=2")
    assert edge.invalidate(2, paths=["/img/*"]).json()["removed"] >= 2
    assert not is_hit(edge, "/img/1.png")
    assert not is_hit(edge, "/img/sub/2.png")
    assert is_hit(edge, "/keep.png")


def test_it_invalidates_everything_with_slash_star(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/x", "/y/z")
    assert edge.invalidate(3, paths=["/*"]).json()["removed"] == 2
    assert not is_hit(edge, "/x") and not is_hit(edge, "/y/z")


def test_it_invalidates_by_surrogate_key_tag(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/p1", "/p2", tags="product-7 catalog")
    cache(edge, origin, "/other", tags="catalog")
    assert edge.invalidate(4, tags=["product-7"]).json()["removed"] == 2
    assert not is_hit(edge, "/p1") and not is_hit(edge, "/p2")
    assert is_hit(edge, "/other")


def test_it_applies_the_same_invalidation_id_only_once(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/once")
    assert edge.invalidate(5, paths=["/once"]).json()["removed"] == 1
    edge.get("/once")
    retry = edge.admin("POST", "/invalidations", {"id": 5, "distribution_id": "E2QWRUHAPOMQZL",
                                                  "paths": ["/once"], "tags": []}, timestamp=int(time.time()) - 1)
    assert retry.json() == {"id": 5, "removed": 0}
    assert is_hit(edge, "/once")


def test_it_refuses_an_unsigned_invalidation(origin: Origin, edge: Edge) -> None:
    cache(edge, origin, "/safe")
    response = edge.admin("POST", "/invalidations", {"id": 6, "distribution_id": "E2QWRUHAPOMQZL",
                                                     "paths": ["/*"], "tags": []}, token="wrong-token")
    assert response.status_code == 401
    assert is_hit(edge, "/safe")
