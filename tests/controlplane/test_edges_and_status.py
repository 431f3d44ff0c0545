from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from distributions import selectors
from distributions.models import Distribution, EdgeNode

pytestmark = pytest.mark.django_db


def edge(name: str, applied: int, healthy: bool = True) -> EdgeNode:
    node = EdgeNode(name=name, pop=name[-3:], url=f"http://127.0.0.1:90{len(name)}", applied_version=applied,
                    healthy=healthy)
    node.set_token(f"token-{name}")
    node.save()
    return node


def test_a_distribution_is_in_progress_until_every_healthy_edge_runs_its_version(db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-iad", 4)
    assert selectors.distribution_status(distribution, selectors.deployed_version_floor()) == "InProgress"
    EdgeNode.objects.filter(name="edge-iad").update(applied_version=6)
    assert selectors.distribution_status(distribution, selectors.deployed_version_floor()) == "Deployed"


def test_an_unhealthy_edge_does_not_hold_a_distribution_in_progress(db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-sin", 1, healthy=False)
    assert selectors.distribution_status(distribution, selectors.deployed_version_floor()) == "Deployed"


def test_the_api_shows_the_derived_status(api: APIClient, created: dict[str, Any]) -> None:
    edge("edge-fra", 0)
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["status"] == "InProgress"
    version = Distribution.objects.get(pk=created["id"]).config_version
    assert version >= 1
    EdgeNode.objects.update(applied_version=version)
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["status"] == "Deployed"


def test_it_lists_edges_without_their_tokens(api: APIClient) -> None:
    node = edge("edge-fra", 3)
    listed = api.get("/api/v1/edges/").json()
    assert [e["name"] for e in listed["results"]] == ["edge-fra"]
    assert listed["results"][0]["applied_version"] == 3
    assert "token" not in str(listed) and node.token_hash not in str(listed)
    assert api.get("/api/v1/edges/edge-fra/").json()["pop"] == "fra"


def test_an_edge_token_is_stored_hashed(db: Any) -> None:
    node = edge("edge-fra", 0)
    assert node.token_hash != "token-edge-fra" and len(node.token_hash) == 64
    assert node.check_token("token-edge-fra") and not node.check_token("token-other")
