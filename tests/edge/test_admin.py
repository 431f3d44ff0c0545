"""The edge admin API: authentication, health, metrics, config push."""

from __future__ import annotations

import json
import time

import httpx

from tests.edge.conftest import Answer, Edge, EdgeFactory, Origin, clone, distribution, document


def test_it_reports_health_without_a_signature(edge: Edge) -> None:
    response = httpx.get(edge.admin_url + "/health")
    assert response.json() == {"status": "ok", "name": "edge-t", "pop": "tst", "version": 1}


def test_it_exposes_prometheus_metrics(origin: Origin, edge: Edge) -> None:
    origin.route("/m", Answer())
    edge.get("/m")
    edge.get("/m")
    text = httpx.get(edge.admin_url + "/metrics").text
    assert 'edge_requests_total{distribution="E2QWRUHAPOMQZL",result="hit"} 1' in text
    assert 'edge_requests_total{distribution="E2QWRUHAPOMQZL",result="miss"} 1' in text
    assert 'edge_origin_requests_total{distribution="E2QWRUHAPOMQZL"} 1' in text
    assert "edge_config_version 1" in text
    assert "# TYPE edge_cache_memory_bytes gauge" in text


def test_it_refuses_missing_wrong_old_and_replayed_signatures(edge: Edge) -> None:
    assert httpx.get(edge.admin_url + "/config").status_code == 401
    assert edge.admin("GET", "/config", token="other").status_code == 401
    assert edge.admin("GET", "/config", timestamp=int(time.time()) - 1000).status_code == 401
    ts = int(time.time())
    first = edge.admin("GET", "/config", timestamp=ts)
    assert first.status_code == 200 and first.json()["version"] == 1
    replay = httpx.get(edge.admin_url + "/config", headers={
        "X-Edge-Timestamp": first.request.headers["X-Edge-Timestamp"],
        "X-Edge-Nonce": first.request.headers["X-Edge-Nonce"],
        "X-Edge-Signature": first.request.headers["X-Edge-Signature"],
    })  # fmt: skip
    assert replay.status_code == 401 and "replay" in replay.json()["error"]
    retry = edge.admin("GET", "/config", timestamp=ts)  # same second, same body, a new nonce
    assert retry.status_code == 200


def test_it_refuses_signed_endpoints_when_started_without_a_token(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)), extra=["--token", ""])
    assert edge.admin("GET", "/config").status_code == 403


def test_it_swaps_in_a_pushed_config_and_persists_it(origin: Origin, edge: Edge) -> None:
    doc = document(distribution(origin.port, aliases=["new.example.test"]), version=2)
    response = edge.push(doc)
    assert response.status_code == 200 and response.json() == {"version": 2}
    origin.route("/n", Answer(body=b"new alias"))
    assert edge.get("/n", headers={"Host": "new.example.test"}).content == b"new alias"
    persisted = json.loads((edge.cache_dir / "edge-config.json").read_text())
    assert persisted["version"] == 2
    again = edge.admin("PUT", "/config", doc, timestamp=int(time.time()) - 1)
    assert again.json() == {"version": 2}


def test_it_refuses_a_bad_config_and_keeps_the_last_good_one(origin: Origin, edge: Edge) -> None:
    bad = document(distribution(origin.port), version=5)
    bad["distributions"][0]["cache_behaviors"][0]["path_pattern"] = "/x" * 200
    response = edge.push(bad)
    assert response.status_code == 400
    assert response.json()["version"] == 1
    assert "distributions[0].cache_behaviors[0].path_pattern" in response.json()["error"]
    origin.route("/still", Answer(body=b"serving"))
    assert edge.get("/still").content == b"serving"
    assert httpx.get(edge.admin_url + "/health").json()["version"] == 1


def test_it_refuses_an_older_config_with_409(origin: Origin, edge: Edge) -> None:
    doc = document(distribution(origin.port))
    assert edge.push(clone(doc, 3)).status_code == 200
    response = edge.push(clone(doc, 2))
    assert response.status_code == 409 and response.json()["version"] == 3
