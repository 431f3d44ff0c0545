"""The heartbeat rule under faults: a hung edge, the control plane's own outages, and what
`Deployed` and `Completed` wait for. Time is moved by writing `last_seen` into the past and by
handing the health check its `now`, one second at a time, as beat would."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from distributions import services
from distributions.models import Distribution, EdgeNode, FleetState, Invalidation

pytestmark = pytest.mark.django_db

NAMES = ("edge-fra", "edge-iad", "edge-sin")


@pytest.fixture
def tokens(db: Any) -> dict[str, str]:
    return {name: services.edge_register(name=name, pop=name[-3:], url="http://127.0.0.1:1")[1] for name in NAMES}


def beat(token: str, version: int = 0) -> dict[str, Any]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/v1/edge/heartbeat", {"version": version}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def healthy() -> dict[str, bool]:
    return dict(EdgeNode.objects.values_list("name", "healthy"))


def silent_since(moment: datetime, *names: str) -> None:
    EdgeNode.objects.filter(name__in=names or NAMES).update(last_seen=moment)


def check_every_second(start: datetime, seconds: int) -> list[str]:
    """The health check as beat runs it, once a second; the names that turned unhealthy."""
    turned: list[str] = []
    for second in range(1, seconds + 1):
        turned += services.fleet_check_health(start + timedelta(seconds=second))
    return turned


def test_a_hung_edge_is_unhealthy_within_its_threshold_from_the_others_heartbeats_alone(tokens: dict[str, str]) -> None:
    for token in tokens.values():
        beat(token)
    silent_since(timezone.now() - timedelta(seconds=16), "edge-sin")
    FleetState.objects.update(checked_at=timezone.now() - timedelta(seconds=2))
    beat(tokens["edge-fra"])  # no fleet tick, no worker: the heartbeat intake runs the check
    assert healthy() == {"edge-fra": True, "edge-iad": True, "edge-sin": False}
    assert EdgeNode.objects.get(name="edge-sin").unhealthy_since is not None


def test_silence_while_the_heartbeat_intake_was_down_is_forgiven_at_the_first_heartbeat_back(
        tokens: dict[str, str]) -> None:
    for token in tokens.values():
        beat(token)
    now = timezone.now()
    silent_since(now - timedelta(seconds=60))  # the web process was down for a minute...
    FleetState.objects.update(checked_at=now - timedelta(seconds=1))
    assert sorted(services.fleet_check_health(now)) == sorted(NAMES)  # ...while beat went on judging
    beat(tokens["edge-fra"])
    assert healthy() == {name: True for name in NAMES}  # all of them, not only the one that beat
    # The others have the same threshold from the control plane's return as edge-fra from its
    # heartbeat, no more: silent from here on, all three turn unhealthy together.
    back = timezone.now()
    assert check_every_second(back, 14) == []
    assert sorted(check_every_second(back + timedelta(seconds=14), 2)) == sorted(NAMES)


def test_silence_while_the_whole_control_plane_was_down_is_not_held_against_anyone(tokens: dict[str, str]) -> None:
    for token in tokens.values():
        beat(token)
    now = timezone.now()
    silent_since(now - timedelta(seconds=60))
    FleetState.objects.update(checked_at=now - timedelta(seconds=60))  # nothing ran for a minute
    assert services.fleet_check_health(now) == []
    assert healthy() == {name: True for name in NAMES}


def test_an_edge_that_was_already_dead_before_the_outage_stays_unhealthy(tokens: dict[str, str]) -> None:
    for token in tokens.values():
        beat(token)
    now = timezone.now()
    silent_since(now - timedelta(seconds=100), "edge-sin")
    assert services.fleet_check_health(now) == ["edge-sin"]
    silent_since(now - timedelta(seconds=60), "edge-fra", "edge-iad")
    FleetState.objects.update(checked_at=now - timedelta(seconds=60))
    assert services.fleet_check_health(now + timedelta(seconds=1)) == []
    assert healthy() == {"edge-fra": True, "edge-iad": True, "edge-sin": False}


def acknowledged_by_all_but_sin(tokens: dict[str, str]) -> Invalidation:
    """Three healthy edges; an invalidation that edge-fra and edge-iad applied."""
    for token in tokens.values():
        beat(token)
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None, paths=["/a"],
                                                   tags=[], caller_reference=None)
    for name in ("edge-fra", "edge-iad"):
        services.invalidation_ack(edge=EdgeNode.objects.get(name=name), ids=[invalidation.seq])
    return invalidation


def test_an_invalidation_is_not_completed_while_a_healthy_edge_has_not_acknowledged_it(
        tokens: dict[str, str], api: APIClient, created: dict[str, Any]) -> None:
    invalidation = acknowledged_by_all_but_sin(tokens)
    url = f"/api/v1/distributions/{created['id']}/invalidations/{invalidation.id}/"
    answer = api.get(url).json()
    assert answer["status"] == "InProgress"
    assert answer["acknowledgements"] == {"edges_total": 3, "edges_acknowledged": 2, "edges_pending": ["edge-sin"]}
    services.invalidation_ack(edge=EdgeNode.objects.get(name="edge-sin"), ids=[invalidation.seq])
    answer = api.get(url).json()
    assert answer["status"] == "Completed" and answer["acknowledgements"]["edges_pending"] == []


def test_an_invalidation_with_no_edge_to_apply_it_is_not_completed(api: APIClient, created: dict[str, Any]) -> None:
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None, paths=["/a"],
                                                   tags=[], caller_reference=None)
    services.invalidations_check_complete()
    assert Invalidation.objects.get().status == "InProgress"
    answer = api.get(f"/api/v1/distributions/{created['id']}/invalidations/{invalidation.id}/").json()
    assert answer["acknowledgements"]["edges_total"] == 0 and "no edge" in answer["acknowledgements"]["detail"]


def test_draining_the_last_edge_that_has_not_acknowledged_completes_the_invalidation(
        tokens: dict[str, str], staff_api: APIClient, created: dict[str, Any]) -> None:
    acknowledged_by_all_but_sin(tokens)
    assert staff_api.patch("/api/v1/edges/edge-sin/", {"drained": True}, format="json").status_code == 200
    assert Invalidation.objects.get().status == "Completed"
