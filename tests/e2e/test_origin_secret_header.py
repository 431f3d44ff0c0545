"""The secret origin header end to end: written once through the API, never read back, sealed for
each edge on its way, and sent by every edge to the origin (real processes on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Cluster, running_cluster, wait_for

EDGES = ("edge-fra", "edge-iad")
SECRET = "e2e-origin-secret-7f3a9c1d"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), EDGES) as made:
        yield made


def test_every_edge_sends_the_secret_header_that_the_api_never_returns(cluster: Cluster) -> None:
    wait_for("both edges healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    body = {
        "comment": "secret header", "enabled": True, "aliases": ["secret.example.test"],
        "origins": [{"origin_id": "demo", "domain_name": "127.0.0.1", "http_port": cluster.origin_port,
                     "protocol_policy": "http-only", "secret_header_name": "X-Origin-Verify",
                     "secret_header_value": SECRET}],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "demo", "cache_policy": "CachingDisabled",
                             "allowed_methods": "ALL"}],
    }
    created = cluster.api("POST", "/distributions/", json=body)
    assert created.status_code == 201, created.text
    assert SECRET not in created.text
    distribution_id = created.json()["id"]
    wait_for("Deployed", lambda: cluster.api("GET", f"/distributions/{distribution_id}/").json()["status"] == "Deployed")
    read = cluster.api("GET", f"/distributions/{distribution_id}/")
    assert SECRET not in read.text and read.json()["origins"][0]["has_secret_header_value"] is True
    for edge in EDGES:
        echoed = cluster.viewer(edge, "secret.example.test", "/api/echo", headers={"X-Origin-Verify": "guess"})
        assert echoed.status_code == 200, echoed.text
        sent = [value for name, value in echoed.json()["headers"] if name.lower() == "x-origin-verify"]
        assert sent == [SECRET], edge
        assert SECRET not in cluster.log(edge)
        for path in Path(cluster.state / edge).rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
