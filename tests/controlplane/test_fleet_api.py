"""The edge-facing API, registration, health, invalidation completion and stats."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from distributions import selectors, services
from distributions.models import EdgeNode, TrafficStat

pytestmark = pytest.mark.django_db


def edge_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def fra() -> tuple[EdgeNode, str]:
    return services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:9081")


@pytest.fixture
def iad() -> tuple[EdgeNode, str]:
    return services.edge_register(name="edge-iad", pop="iad", url="http://127.0.0.1:9082")


def beat(token: str, version: int = 0, seq: int = 0) -> dict[str, Any]:
    response = edge_client(token).post("/api/v1/edge/heartbeat", {"version": version, "invalidation_seq": seq}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_edge_register_prints_a_token_once_and_stores_its_hash(db: Any) -> None:
    out = StringIO()
    call_command("edge_register", "edge-sin", "--pop", "sin", "--url", "http://127.0.0.1:9083", stdout=out)
    token = out.getvalue().strip()
    edge = EdgeNode.objects.get(name="edge-sin")
    assert len(token) >= 40 and edge.token_hash != token and edge.check_token(token)
    with pytest.raises(CommandError, match="already exists"):
        call_command("edge_register", "edge-sin", "--pop", "sin", "--url", "http://127.0.0.1:9083", stdout=StringIO())
    with pytest.raises(CommandError, match="url"):
        call_command("edge_register", "edge-x", "--pop", "x", "--url", "not a url", stdout=StringIO())


def test_only_staff_register_edges_through_the_api(api: APIClient, staff_api: APIClient) -> None:
    body = {"name": "edge-ams", "pop": "ams", "url": "http://127.0.0.1:9084"}
    assert api.post("/api/v1/edges/", body, format="json").status_code == 403
    response = staff_api.post("/api/v1/edges/", body, format="json")
    assert response.status_code == 201, response.json()
    assert EdgeNode.objects.get(name="edge-ams").check_token(response.json()["token"])
    assert "token" not in staff_api.get("/api/v1/edges/edge-ams/").json()
    assert staff_api.post("/api/v1/edges/", dict(body, name="Bad Name"), format="json").json()["name"]


def test_a_heartbeat_marks_the_edge_healthy_and_says_what_is_newest(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    edge, token = fra
    answer = beat(token, version=0)
    assert answer["version"] == selectors.latest_version_number() >= 1
    assert answer["heartbeat_interval"] == 5 and answer["name"] == "edge-fra"
    edge.refresh_from_db()
    assert edge.healthy and edge.last_seen is not None and edge.applied_version == 0


def test_a_heartbeat_records_why_the_edge_refused_a_config(fra: tuple[EdgeNode, str]) -> None:
    client = edge_client(fra[1])
    client.post("/api/v1/edge/heartbeat", {"version": 0, "error": "refused config version 3: origins: bad"}, format="json")
    assert EdgeNode.objects.get().last_error == "refused config version 3: origins: bad"
    client.post("/api/v1/edge/heartbeat", {"version": 3, "error": ""}, format="json")
    assert EdgeNode.objects.get().last_error == ""


def test_an_edge_fetches_the_newest_document(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    document = edge_client(fra[1]).get("/api/v1/edge/config").json()
    assert document["version"] == selectors.latest_version_number()
    assert document["distributions"][0]["id"] == created["id"]


def test_edge_endpoints_refuse_unknown_tokens_and_user_tokens(alice: Any) -> None:
    assert edge_client("nope").post("/api/v1/edge/heartbeat", {"version": 0}, format="json").status_code == 401
    assert APIClient().post("/api/v1/edge/heartbeat", {"version": 0}, format="json").status_code in (401, 403)
    user_token = Token.objects.create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token.key}")
    assert client.post("/api/v1/edge/heartbeat", {"version": 0}, format="json").status_code in (401, 403)


def test_an_edge_can_only_acknowledge_for_itself(fra: tuple[EdgeNode, str], iad: tuple[EdgeNode, str],
                                                 created: dict[str, Any]) -> None:
    beat(fra[1]), beat(iad[1])
    invalidation, _ = services.invalidation_create(distribution=distribution_id_obj(created), user=None, paths=["/a"], tags=[], caller_reference=None)
    edge_client(fra[1]).post("/api/v1/edge/acks", {"invalidations": [invalidation.seq]}, format="json")
    assert list(invalidation.acks.values_list("edge__name", flat=True)) == ["edge-fra"]
    invalidation.refresh_from_db()
    assert invalidation.status == "InProgress"  # edge-iad has not applied it
    assert [i["id"] for i in beat(iad[1])["invalidations"]] == [invalidation.seq]
    assert beat(fra[1])["invalidations"] == []


def distribution_id_obj(created: dict[str, Any]) -> Any:
    from distributions.models import Distribution

    return Distribution.objects.get(pk=created["id"])


def test_an_invalidation_completes_when_every_healthy_edge_acknowledged(
        fra: tuple[EdgeNode, str], iad: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    beat(fra[1]), beat(iad[1])
    invalidation, _ = services.invalidation_create(distribution=distribution_id_obj(created), user=None, paths=["/a"], tags=[], caller_reference=None)
    for _, token in (fra, iad):
        edge_client(token).post("/api/v1/edge/acks", {"invalidations": [invalidation.seq]}, format="json")
    invalidation.refresh_from_db()
    assert invalidation.status == "Completed" and invalidation.completed_at is not None


def test_an_edge_unhealthy_past_the_grace_period_does_not_hold_an_invalidation_but_gets_it_when_it_returns(
        fra: tuple[EdgeNode, str], iad: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    beat(fra[1]), beat(iad[1])
    EdgeNode.objects.filter(name="edge-iad").update(last_seen=timezone.now() - timedelta(seconds=16))
    assert services.fleet_check_health() == ["edge-iad"]
    invalidation, _ = services.invalidation_create(distribution=distribution_id_obj(created), user=None, paths=["/a"], tags=[], caller_reference=None)
    edge_client(fra[1]).post("/api/v1/edge/acks", {"invalidations": [invalidation.seq]}, format="json")
    invalidation.refresh_from_db()
    assert invalidation.status == "InProgress"  # unhealthy for less than the grace period: it still counts
    EdgeNode.objects.filter(name="edge-iad").update(unhealthy_since=timezone.now() - timedelta(seconds=61))
    services.invalidations_check_complete()
    invalidation.refresh_from_db()
    assert invalidation.status == "Completed"
    assert [i["paths"] for i in beat(iad[1])["invalidations"]] == [["/a"]]
    assert EdgeNode.objects.get(name="edge-iad").healthy


def test_an_edge_turns_unhealthy_after_three_missed_heartbeats_only(fra: tuple[EdgeNode, str]) -> None:
    beat(fra[1])
    EdgeNode.objects.update(last_seen=timezone.now() - timedelta(seconds=14))
    assert services.fleet_check_health() == []
    EdgeNode.objects.update(last_seen=timezone.now() - timedelta(seconds=16))
    assert services.fleet_check_health() == ["edge-fra"]
    beat(fra[1])
    assert EdgeNode.objects.get().healthy


def report(start: int, distribution_id: str, requests: int, hits: int) -> dict[str, Any]:
    buckets = [0] * 14
    buckets[3] = requests  # all in (5 ms, 10 ms]
    return {"interval_start": start, "interval_seconds": 10, "distributions": {distribution_id: {
        "requests": requests, "hits": hits, "misses": requests - hits, "bytes_out": 1000 * requests, "bytes_in": 10,
        "status_2xx": requests - 1, "status_4xx": 1, "latency_ms_buckets": buckets}}}


def test_stats_are_counted_once_even_when_a_report_is_retried(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    client = edge_client(fra[1])
    start = 1_764_000_000
    assert client.post("/api/v1/edge/stats", report(start, created["id"], 10, 7), format="json").json() == {"accepted": True}
    assert client.post("/api/v1/edge/stats", report(start, created["id"], 10, 7), format="json").json() == {"accepted": False}
    assert client.post("/api/v1/edge/stats", report(start + 10, created["id"], 5, 5), format="json").json()["accepted"]
    minute = TrafficStat.objects.get(resolution="minute")
    hour = TrafficStat.objects.get(resolution="hour")
    assert (minute.requests, minute.hits, hour.requests, hour.hits) == (15, 12, 15, 12)


def test_a_stats_report_with_bad_fields_is_refused_with_the_field_named(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    bad = report(1_764_000_003, created["id"], 1, 1)
    response = edge_client(fra[1]).post("/api/v1/edge/stats", bad, format="json")
    assert response.status_code == 400 and "interval_start" in response.json()
    bad = report(1_764_000_000, created["id"], 1, 1)
    bad["distributions"][created["id"]]["requests"] = -1
    assert "distributions" in edge_client(fra[1]).post("/api/v1/edge/stats", bad, format="json").json()


def test_the_stats_api_gives_series_and_totals(api: APIClient, fra: tuple[EdgeNode, str], iad: tuple[EdgeNode, str],
                                               created: dict[str, Any]) -> None:
    start = 1_764_000_000  # 16:00:00 UTC
    edge_client(fra[1]).post("/api/v1/edge/stats", report(start, created["id"], 10, 8), format="json")
    edge_client(iad[1]).post("/api/v1/edge/stats", report(start + 60, created["id"], 30, 30), format="json")
    url = f"/api/v1/distributions/{created['id']}/stats/?start={start - 60}&end={start + 600}&interval=minute"
    body = api.get(url).json()
    assert [row["requests"] for row in body["series"]] == [10, 30]
    totals = body["totals"]
    assert totals["requests"] == 40 and totals["hits"] == 38 and totals["hit_ratio"] == 0.95
    assert totals["bytes_out"] == 40000 and totals["error_rate_4xx"] == 0.05
    assert 5 < totals["latency_p50_ms"] <= 10 and 5 < totals["latency_p95_ms"] <= 10
    hourly = api.get(f"/api/v1/distributions/{created['id']}/stats/?start={start - 3600}&end={start + 3600}&interval=hour")
    assert hourly.json()["totals"]["requests"] == 40
    assert api.get("/api/v1/stats/?start=%d&end=%d" % (start - 60, start + 600)).json()["totals"]["requests"] == 40


def test_the_stats_api_refuses_bad_parameters(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/stats/"
    assert "interval" in api.get(url + "?interval=week").json()
    assert "start" in api.get(url + "?start=yesterday").json()
    assert "start" in api.get(url + "?start=200&end=100").json()


def test_another_users_stats_are_not_found(bob_api: APIClient, created: dict[str, Any]) -> None:
    assert bob_api.get(f"/api/v1/distributions/{created['id']}/stats/").status_code == 404


def test_old_rows_are_pruned(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    old = int((timezone.now() - timedelta(days=8)).timestamp()) // 10 * 10
    edge_client(fra[1]).post("/api/v1/edge/stats", report(old, created["id"], 1, 1), format="json")
    assert services.stats_prune() == 1  # the minute row; the hour row is kept for 400 days
    assert list(TrafficStat.objects.values_list("resolution", flat=True)) == ["hour"]

