"""Issue 4 end to end: control plane, Celery worker and beat, two edges and an origin, all real
processes on loopback, driven through the public API only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cluster import Cluster, running_cluster, wait_for

EDGES = ("edge-fra", "edge-iad")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), EDGES) as made:
        yield made


def distribution_body(origin_port: int) -> dict[str, Any]:
    return {
        "comment": "e2e", "enabled": True, "aliases": ["e2e.example.test"], "default_root_object": "index.html",
        "origins": [{"origin_id": "demo", "domain_name": "127.0.0.1", "http_port": origin_port,
                     "protocol_policy": "http-only"}],
        "cache_behaviors": [
            {"path_pattern": "/api/*", "target_origin_id": "demo", "cache_policy": "CachingDisabled",
             "origin_request_policy": "AllViewer", "allowed_methods": "ALL"},
            {"path_pattern": "*", "target_origin_id": "demo", "cache_policy": "CachingOptimized"},
        ],
    }


def wait_deployed(cluster: Cluster, distribution_id: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(f"{distribution_id} Deployed",
                    lambda: (d := cluster.api("GET", f"/distributions/{distribution_id}/").json())["status"] == "Deployed" and d,
                    timeout)


def x_cache(response: Any) -> str:
    return response.headers.get("x-cache", "").split(" from ")[0]


@pytest.fixture(scope="module")
def distribution(cluster: Cluster) -> dict[str, Any]:
    wait_for("both edges healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    response = cluster.api("POST", "/distributions/", json=distribution_body(cluster.origin_port))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "InProgress"
    return wait_deployed(cluster, created["id"])


def test_a_new_distribution_is_served_by_every_edge_miss_then_hit(cluster: Cluster, distribution: dict[str, Any]) -> None:
    for edge in EDGES:
        first = cluster.viewer(edge, distribution["domain_name"], "/index.html")
        second = cluster.viewer(edge, "e2e.example.test", "/index.html")
        assert first.status_code == 200 and x_cache(first) == "Miss", first.headers
        assert second.status_code == 200 and x_cache(second) == "Hit", second.headers
        assert second.headers["x-cache"] == f"Hit from {edge}"
    edges = {e["name"]: e for e in cluster.api("GET", "/edges/").json()["results"]}
    assert all(e["applied_version"] >= distribution["config_version"] for e in edges.values())


def test_a_behavior_change_takes_effect_on_every_edge(cluster: Cluster, distribution: dict[str, Any]) -> None:
    for edge in EDGES:  # cacheable for an hour under the default behavior
        cluster.viewer(edge, "e2e.example.test", "/bench/1k")
        assert x_cache(cluster.viewer(edge, "e2e.example.test", "/bench/1k")) == "Hit"
    current = cluster.api("GET", f"/distributions/{distribution['id']}/")
    behaviors = current.json()["cache_behaviors"]
    behaviors.insert(0, {"path_pattern": "/bench/*", "target_origin_id": "demo", "cache_policy": "CachingDisabled"})
    changed = cluster.api("PATCH", f"/distributions/{distribution['id']}/", json={"cache_behaviors": behaviors},
                          headers={"If-Match": current.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    wait_deployed(cluster, distribution["id"])
    for edge in EDGES:
        for _ in range(2):
            response = cluster.viewer(edge, "e2e.example.test", "/bench/1k")
            assert response.status_code == 200 and x_cache(response) == "Miss"


def test_a_rollback_makes_every_edge_serve_the_old_setting_again(cluster: Cluster) -> None:
    """Issue 13: a change, then a rollback to the version before it, as a newer version."""
    wait_for("both edges healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    body = dict(distribution_body(cluster.origin_port), aliases=["rollback.example.test"])
    made = cluster.api("POST", "/distributions/", json=body)
    assert made.status_code == 201, made.text
    original = wait_deployed(cluster, made.json()["id"])
    url = f"/distributions/{original['id']}/"
    current = cluster.api("GET", url)
    behaviors = current.json()["cache_behaviors"]
    behaviors.insert(0, {"path_pattern": "/bench/*", "target_origin_id": "demo", "cache_policy": "CachingDisabled"})
    changed = cluster.api("PATCH", url, json={"cache_behaviors": behaviors}, headers={"If-Match": current.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    changed_version = wait_deployed(cluster, original["id"])["config_version"]
    for edge in EDGES:
        assert [x_cache(cluster.viewer(edge, "rollback.example.test", "/bench/1k")) for _ in range(2)] == ["Miss", "Miss"]

    rolled = cluster.api("POST", f"{url}rollback/", json={"version": original["config_version"]},
                         headers={"If-Match": cluster.api("GET", url).headers["ETag"]})

    assert rolled.status_code == 200, rolled.text
    deployed = wait_deployed(cluster, original["id"])
    assert deployed["config_version"] > changed_version
    assert [b["path_pattern"] for b in deployed["cache_behaviors"]] == ["/api/*", "*"]
    for edge in EDGES:  # cacheable again under the default behavior
        assert [x_cache(cluster.viewer(edge, "rollback.example.test", "/bench/1k")) for _ in range(2)] == ["Miss", "Hit"]
    history = cluster.api("GET", f"{url}versions/").json()["results"]
    assert [e["version"] for e in history][:2] == [deployed["config_version"], changed_version]
    assert history[0]["deployed"] is True


def invalidate_and_wait(cluster: Cluster, distribution_id: str, body: dict[str, Any]) -> dict[str, Any]:
    made = cluster.api("POST", f"/distributions/{distribution_id}/invalidations/", json=body)
    assert made.status_code == 201, made.text
    url = f"/distributions/{distribution_id}/invalidations/{made.json()['id']}/"
    return wait_for("the invalidation to complete",
                    lambda: (i := cluster.api("GET", url).json())["status"] == "Completed" and i, 15)


def test_an_invalidation_by_path_completes_and_the_next_request_misses(cluster: Cluster, distribution: dict[str, Any]) -> None:
    for edge in EDGES:
        cluster.viewer(edge, "e2e.example.test", "/index.html")
        assert x_cache(cluster.viewer(edge, "e2e.example.test", "/index.html")) == "Hit"
    done = invalidate_and_wait(cluster, distribution["id"], {"paths": ["/index.html"]})
    assert done["completed_at"]
    for edge in EDGES:
        assert x_cache(cluster.viewer(edge, "e2e.example.test", "/index.html")) == "Miss"


def test_an_invalidation_by_tag_completes_and_the_next_request_misses(cluster: Cluster, distribution: dict[str, Any]) -> None:
    path = "/img/photo.jpg"  # the demo origin tags images with Surrogate-Key: images
    for edge in EDGES:
        cluster.viewer(edge, "e2e.example.test", path)
        assert x_cache(cluster.viewer(edge, "e2e.example.test", path)) == "Hit"
    invalidate_and_wait(cluster, distribution["id"], {"tags": ["images"]})
    for edge in EDGES:
        assert x_cache(cluster.viewer(edge, "e2e.example.test", path)) == "Miss"


def test_a_stopped_edge_catches_up_when_it_returns(cluster: Cluster, distribution: dict[str, Any]) -> None:
    cluster.stop("edge-iad")
    wait_for("edge-iad to turn unhealthy",
             lambda: not cluster.api("GET", "/edges/edge-iad/").json()["healthy"], 15)
    current = cluster.api("GET", f"/distributions/{distribution['id']}/")
    changed = cluster.api("PATCH", f"/distributions/{distribution['id']}/", json={"default_root_object": "img/logo.svg"},
                          headers={"If-Match": current.headers["ETag"]})
    assert changed.status_code == 200
    wait_deployed(cluster, distribution["id"])  # the unhealthy edge does not hold it up
    invalidation = invalidate_and_wait(cluster, distribution["id"], {"paths": ["/*"]})
    cluster.start_edge("edge-iad")
    latest = cluster.api("GET", "/config-versions/latest/").json()["version"]
    wait_for("edge-iad to run the latest version",
             lambda: cluster.api("GET", "/edges/edge-iad/").json()["applied_version"] == latest, 15)
    edge = cluster.api("GET", "/edges/edge-iad/").json()
    assert edge["healthy"] and edge["invalidation_seq"] >= 1
    assert invalidation["status"] == "Completed"
    root = cluster.viewer("edge-iad", "e2e.example.test", "/")
    assert root.status_code == 200 and "<svg" in root.text
    assert x_cache(cluster.viewer("edge-iad", "e2e.example.test", "/index.html")) == "Miss"  # invalidated while away


def total_requests(cluster: Cluster, distribution_id: str) -> dict[str, Any]:
    return cluster.api("GET", f"/distributions/{distribution_id}/stats/?start=0&interval=minute").json()["totals"]


def test_stats_are_exact_across_a_control_plane_outage(cluster: Cluster, tmp_path: Path) -> None:
    body = distribution_body(cluster.origin_port)
    body.update(aliases=["stats.example.test"], comment="stats")
    created = cluster.api("POST", "/distributions/", json=body).json()
    wait_deployed(cluster, created["id"])
    sent = {"hits": 0, "misses": 0}

    def burst(paths: list[str]) -> None:
        for edge in EDGES:
            for path in paths:
                response = cluster.viewer(edge, "stats.example.test", path)
                assert response.status_code == 200
                sent["hits" if x_cache(response) == "Hit" else "misses"] += 1

    burst(["/index.html", "/index.html", "/img/logo.svg"])
    cluster.stop("web")
    burst(["/index.html", "/img/logo.svg", "/img/logo.svg", "/api/time"])
    time.sleep(11)  # at least one stats interval closes while the control plane is down
    cluster.start_web()
    burst(["/index.html"])
    expected = sent["hits"] + sent["misses"]
    totals = wait_for("every request to be counted",
                      lambda: (t := total_requests(cluster, created["id"]))["requests"] == expected and t, 40)
    assert (totals["hits"], totals["misses"]) == (sent["hits"], sent["misses"])
    time.sleep(3)  # any duplicate delivery would show up here
    assert total_requests(cluster, created["id"])["requests"] == expected


def test_a_sigkilled_edge_keeps_its_saved_counts_and_an_abandoned_response_is_a_client_abort(
        cluster: Cluster) -> None:
    body = distribution_body(cluster.origin_port)
    body.update(aliases=["kill.example.test"], comment="kill")
    created = cluster.api("POST", "/distributions/", json=body).json()
    wait_deployed(cluster, created["id"])
    # Start just after a 10 s boundary, so that the kill falls inside the interval the
    # requests were counted in: only the per-second checkpoints can have saved them.
    wait_for("the start of a stats interval", lambda: time.time() % 10 < 1, 12, 0.05)
    for path in ("/index.html", "/index.html", "/img/logo.svg", "/index.html"):
        assert cluster.viewer("edge-fra", "kill.example.test", path).status_code == 200
    # Checkpoints save the four (in one second, or two if they straddle one), and a later one
    # finds nothing new: the second before the kill counted nothing, so the marker it leaves
    # estimates no loss.
    marker = cluster.state / "edge-fra" / "stats-buffer" / "running"

    def last_saved_second() -> int:
        return int(json.loads(marker.read_bytes())["last_second"].get(created["id"], 0))

    wait_for("a checkpoint of the requests", lambda: last_saved_second() > 0, 5, 0.02)
    wait_for("a checkpoint with nothing new", lambda: last_saved_second() == 0, 5, 0.05)
    cluster.kill("edge-fra")
    assert time.time() % 10 < 9.5, "the test took too long to be sure the interval had not closed"
    cluster.start_edge("edge-fra")
    viewer_port = cluster.edge_ports["edge-fra"][0]
    with httpx.stream("GET", f"http://127.0.0.1:{viewer_port}/large.bin", headers={"Host": "kill.example.test"},
                      timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # a first piece of the 20 MB, then the viewer walks away
    totals = wait_for("the counts of both runs", lambda: (t := total_requests(cluster, created["id"]))[
        "requests"] == 5 and t, 40)
    assert (totals["status_2xx"], totals["client_aborts"]) == (4, 1), totals
    assert totals["lost_estimate"] == 0, totals  # nothing was counted after the last checkpoint
    assert "stopped without saving its stats" in cluster.log("edge-fra")
