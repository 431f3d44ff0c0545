from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from distributions import selectors
from distributions.models import Distribution, EdgeNode

pytestmark = pytest.mark.django_db


def edge(name: str, applied: int, healthy: bool = True, unhealthy_for: float = 0.0) -> EdgeNode:
    node = EdgeNode(name=name, pop=name[-3:], url=f"http://127.0.0.1:90{len(name)}", applied_version=applied,
                    healthy=healthy, unhealthy_since=None if healthy else timezone.now() - timedelta(seconds=unhealthy_for))
    node.set_token(f"token-{name}")
    node.save()
    return node


def status(distribution: Distribution) -> str:
    return selectors.distribution_status(distribution, selectors.edges_serving())


def test_a_distribution_is_in_progress_until_every_healthy_edge_runs_its_version(db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-iad", 4)
    assert status(distribution) == "InProgress"
    EdgeNode.objects.filter(name="edge-iad").update(applied_version=6)
    assert status(distribution) == "Deployed"


def test_an_edge_unhealthy_past_the_grace_period_does_not_hold_a_distribution_in_progress(db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-sin", 1, healthy=False, unhealthy_for=61)
    assert status(distribution) == "Deployed"


def test_an_edge_unhealthy_within_the_grace_period_still_holds_it(db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-sin", 1, healthy=False, unhealthy_for=30)
    assert status(distribution) == "InProgress"
    assert selectors.distribution_deployment(distribution, selectors.edges_serving()) == {
        "edges_total": 2, "edges_current": 1, "edges_pending": ["edge-sin"]}


def test_a_drained_edge_does_not_hold_it(staff_api: APIClient, db: Any) -> None:
    distribution = Distribution(config_version=5)
    edge("edge-fra", 5)
    edge("edge-sin", 1)
    assert status(distribution) == "InProgress"
    answer = staff_api.patch("/api/v1/edges/edge-sin/", {"drained": True}, format="json")
    assert answer.status_code == 200 and answer.json()["drained"] is True
    assert status(distribution) == "Deployed"


def test_only_staff_drain_an_edge_and_a_bad_value_names_the_field(api: APIClient, staff_api: APIClient, db: Any) -> None:
    edge("edge-sin", 1)
    assert api.patch("/api/v1/edges/edge-sin/", {"drained": True}, format="json").status_code == 403
    refused = staff_api.patch("/api/v1/edges/edge-sin/", {"drained": "perhaps"}, format="json")
    assert refused.status_code == 400 and "drained" in refused.json()
    assert EdgeNode.objects.get().drained is False


def test_a_fleet_with_no_edge_is_never_deployed(api: APIClient, created: dict[str, Any]) -> None:
    answer = api.get(f"/api/v1/distributions/{created['id']}/").json()
    assert answer["status"] == "InProgress"
    assert answer["deployment"]["edges_total"] == 0 and "no edge" in answer["deployment"]["detail"]
    edge("edge-fra", 99).__class__.objects.update(drained=True)  # only a drained edge: still none to count
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["status"] == "InProgress"


def test_the_api_shows_the_derived_status(api: APIClient, created: dict[str, Any]) -> None:
    edge("edge-fra", 0)
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["status"] == "InProgress"
    version = Distribution.objects.get(pk=created["id"]).config_version
    assert version >= 1
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["deployment"] == {
        "edges_total": 1, "edges_current": 0, "edges_pending": ["edge-fra"]}
    EdgeNode.objects.update(applied_version=version)
    answer = api.get(f"/api/v1/distributions/{created['id']}/").json()
    assert answer["status"] == "Deployed" and answer["deployment"]["edges_pending"] == []


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
