"""Issue 11 end to end: a hung edge and an outage of the control plane's web process, with
real processes on loopback. Every assertion is about order and state, never about how long
something took; every wait is bounded."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .cluster import Cluster, running_cluster, wait_for
from .test_fleet_end_to_end import distribution_body

EDGES = ("edge-fra", "edge-iad")
HUNG = "edge-iad"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A grace period longer than any hang here: a stopped edge keeps counting throughout.
    with running_cluster(tmp_path_factory.mktemp("faults"), EDGES, unhealthy_grace_seconds=120) as made:
        wait_for("both edges healthy", lambda: all(e["healthy"] for e in made.api("GET", "/edges/").json()["results"]))
        yield made


def edge_version(cluster: Cluster, name: str) -> int:
    return int(httpx.get(f"http://127.0.0.1:{cluster.edge_ports[name][1]}/health", timeout=2).json()["version"])


def detail(cluster: Cluster, distribution_id: str) -> dict[str, Any]:
    return cluster.api("GET", f"/distributions/{distribution_id}/").json()


def change(cluster: Cluster, distribution_id: str, root: str) -> int:
    current = cluster.api("GET", f"/distributions/{distribution_id}/")
    changed = cluster.api("PATCH", f"/distributions/{distribution_id}/", json={"default_root_object": root},
                          headers={"If-Match": current.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    return int(changed.json()["config_version"])


def assert_deployed_truthfully(cluster: Cluster, distribution_id: str) -> None:
    """Wait for Deployed, then check every edge already runs the change (versions never go back)."""
    seen = wait_for("Deployed", lambda: (d := detail(cluster, distribution_id))["status"] == "Deployed" and d, 30)
    for name in EDGES:
        assert edge_version(cluster, name) >= seen["config_version"], (name, seen)


@pytest.fixture(scope="module")
def distribution(cluster: Cluster) -> dict[str, Any]:
    body = distribution_body(cluster.origin_port)
    body.update(aliases=["faults.example.test"], comment="faults")
    created = cluster.api("POST", "/distributions/", json=body)
    assert created.status_code == 201, created.text
    assert_deployed_truthfully(cluster, created.json()["id"])
    return created.json()


def test_a_hung_edge_holds_back_only_its_own_share_and_catches_up_when_it_resumes(
        cluster: Cluster, distribution: dict[str, Any]) -> None:
    hung = cluster.processes[HUNG]
    os.killpg(hung.pid, signal.SIGSTOP)
    try:
        version = change(cluster, distribution["id"], "hung.html")
        # The other edge runs the change while the hung one is stopped, and the API says who is missing.
        wait_for("edge-fra to run the change, and the API to name edge-iad as pending",
                 lambda: edge_version(cluster, "edge-fra") >= version
                 and detail(cluster, distribution["id"])["deployment"]["edges_pending"] == [HUNG], 10)
        current = detail(cluster, distribution["id"])
        assert current["status"] == "InProgress"
        assert current["deployment"] == {"edges_total": 2, "edges_current": 1, "edges_pending": [HUNG]}
        wait_for("the hung edge to turn unhealthy",
                 lambda: not cluster.api("GET", f"/edges/{HUNG}/").json()["healthy"], 10)
        made = cluster.api("POST", f"/distributions/{distribution['id']}/invalidations/", json={"paths": ["/*"]})
        assert made.status_code == 201, made.text
        url = f"/distributions/{distribution['id']}/invalidations/{made.json()['id']}/"
        waiting = wait_for("edge-fra's acknowledgement",
                           lambda: (i := cluster.api("GET", url).json())["acknowledgements"]["edges_acknowledged"] == 1 and i,
                           10)
        assert waiting["status"] == "InProgress" and waiting["acknowledgements"]["edges_pending"] == [HUNG]
        assert detail(cluster, distribution["id"])["status"] == "InProgress"  # still: edge-iad is stopped
    finally:
        os.killpg(hung.pid, signal.SIGCONT)
    assert_deployed_truthfully(cluster, distribution["id"])
    done = wait_for("the invalidation to complete", lambda: (i := cluster.api("GET", url).json())["status"] == "Completed" and i, 30)
    assert done["acknowledgements"] == {"edges_total": 2, "edges_acknowledged": 2, "edges_pending": []}
    wait_for("the resumed edge to be healthy", lambda: cluster.api("GET", f"/edges/{HUNG}/").json()["healthy"], 15)


def test_an_outage_of_the_web_process_is_not_held_against_the_edges(
        cluster: Cluster, distribution: dict[str, Any]) -> None:
    cluster.stop("web")
    time.sleep(8)  # the outage: longer than the 3 s heartbeat threshold (1 s heartbeats here)
    cluster.start_web()
    version = change(cluster, distribution["id"], "after-outage.html")
    assert_deployed_truthfully(cluster, distribution["id"])
    assert all(edge_version(cluster, name) >= version for name in EDGES)
    assert "that silence is not held against the edges" in (cluster.state / "web.log").read_text(errors="replace")
    edges = wait_for("both edges healthy again",
                     lambda: (e := cluster.api("GET", "/edges/").json()["results"]) and all(x["healthy"] for x in e) and e, 15)
    assert all(edge["unhealthy_since"] is None for edge in edges)
