"""Hostile input to the API and the edge-facing endpoints is a 400 naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from distributions import services
from distributions.models import EdgeNode, TrafficStat
from cdncontract.limits import MAX_JSON_DEPTH

from .conftest import minimal
from .test_fleet_api import edge_client, report

pytestmark = pytest.mark.django_db

DEEP = b"[" * 100_000 + b"]" * 100_000
JUST_TOO_DEEP = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)


@pytest.fixture
def fra(db: Any) -> tuple[EdgeNode, str]:
    return services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:9081")


@pytest.mark.parametrize("body", [DEEP, JUST_TOO_DEEP], ids=["100000-deep", "one-past-the-limit"])
def test_deeply_nested_json_is_a_400_on_the_login_call(body: bytes) -> None:
    response = APIClient().post("/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400 and "nested deeper" in response.json()["detail"]


def test_deeply_nested_json_is_a_400_for_users_and_edges(api: APIClient, fra: tuple[EdgeNode, str]) -> None:
    response = api.post("/api/v1/distributions/", DEEP, content_type="application/json")
    assert response.status_code == 400
    for path in ("/api/v1/edge/stats", "/api/v1/edge/heartbeat", "/api/v1/edge/acks"):
        response = edge_client(fra[1]).post(path, DEEP, content_type="application/json")
        assert response.status_code == 400, path


@pytest.mark.parametrize(("parameter", "value"), [
    ("end", "³"), ("start", "99999999999999"), ("end", "1e20"), ("start", "2026-02-30T10:00:00"),
])
def test_stats_query_parameters_no_clock_holds_are_a_400_naming_the_parameter(
        api: APIClient, created: dict[str, Any], parameter: str, value: str) -> None:
    for url in (f"/api/v1/distributions/{created['id']}/stats/", "/api/v1/stats/"):
        response = api.get(url, {parameter: value})
        assert response.status_code == 400 and parameter in response.json(), (url, response.content)


@pytest.mark.parametrize("value", [2**63, 10**30])
@pytest.mark.parametrize("field", ["version", "invalidation_seq"])
def test_huge_integers_in_a_heartbeat_are_a_400_naming_the_field(fra: tuple[EdgeNode, str], field: str,
                                                                 value: int) -> None:
    body = {"version": 0, "invalidation_seq": 0, field: value}
    response = edge_client(fra[1]).post("/api/v1/edge/heartbeat", body, format="json")
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("value", [2**63, 10**30])
def test_huge_integers_in_acks_are_a_400_naming_the_field(fra: tuple[EdgeNode, str], value: int) -> None:
    response = edge_client(fra[1]).post("/api/v1/edge/acks", {"invalidations": [value]}, format="json")
    assert response.status_code == 400 and "invalidations" in response.json()


@pytest.mark.parametrize("counter", ["requests", "bytes_out", "status_2xx"])
def test_huge_stats_counters_are_a_400_naming_the_distributions(fra: tuple[EdgeNode, str], created: dict[str, Any],
                                                                 counter: str) -> None:
    bad = report(1_764_000_000, created["id"], 10, 5)
    bad["distributions"][created["id"]][counter] = 10**30
    response = edge_client(fra[1]).post("/api/v1/edge/stats", bad, format="json")
    assert response.status_code == 400 and "distributions" in response.json()


def test_an_interval_start_in_the_future_is_a_400(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    response = edge_client(fra[1]).post("/api/v1/edge/stats", report(10**13, created["id"], 1, 1), format="json")
    assert response.status_code == 400 and "interval_start" in response.json()


def test_one_window_resent_as_shorter_reports_is_refused_and_not_counted_again(
        fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    client = edge_client(fra[1])
    start = 1_764_000_000
    assert client.post("/api/v1/edge/stats", report(start, created["id"], 10, 7), format="json").status_code == 200
    for offset in range(1, 10):
        short = dict(report(start + offset, created["id"], 10, 7), interval_seconds=1)
        response = client.post("/api/v1/edge/stats", short, format="json")
        assert response.status_code == 400 and "interval_seconds" in response.json()
    assert TrafficStat.objects.get(resolution="minute").requests == 10


def test_more_hits_and_misses_than_requests_is_a_400(fra: tuple[EdgeNode, str], created: dict[str, Any]) -> None:
    bad = report(1_764_000_000, created["id"], 10, 5)
    bad["distributions"][created["id"]]["misses"] = 9
    response = edge_client(fra[1]).post("/api/v1/edge/stats", bad, format="json")
    assert response.status_code == 400 and "distributions" in response.json()


def test_a_quoted_star_in_if_match_is_an_entity_tag_not_the_wildcard(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    assert api.patch(url, {"comment": "x"}, format="json", HTTP_IF_MATCH='"*"').status_code == 412
    assert api.patch(url, {"comment": "y"}, format="json", HTTP_IF_MATCH="*").status_code == 200


def test_only_staff_see_an_edges_admin_url_and_last_error(api: APIClient, staff_api: APIClient,
                                                          fra: tuple[EdgeNode, str]) -> None:
    EdgeNode.objects.filter(name="edge-fra").update(last_error="refused: bad document")
    [seen] = api.get("/api/v1/edges/").json()["results"]
    assert "url" not in seen and "last_error" not in seen and seen["name"] == "edge-fra"
    [shown] = staff_api.get("/api/v1/edges/").json()["results"]
    assert shown["url"] == "http://127.0.0.1:9081" and shown["last_error"] == "refused: bad document"


def test_a_url_that_matches_no_api_route_is_a_json_404(api: APIClient) -> None:
    """Found by schemathesis: a config version that is not a number matched no route and got Django's HTML page."""
    response = api.get("/api/v1/config-versions/%C2%84/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert APIClient().get("/no-such-page/").status_code == 404  # outside the API, still Django's own page


@pytest.mark.parametrize("path", [
    "/api/v1/edges/%00/",
    "/api/v1/distributions/%00/invalidations/",
    "/api/v1/distributions/%00/requests/",
    "/api/v1/distributions/{id}/invalidations/%00/",
])
def test_a_nul_byte_in_a_path_parameter_is_a_404(staff_api: APIClient, created: dict[str, Any], path: str) -> None:
    """Found by schemathesis on PostgreSQL, which cannot compare a text column with a NUL: it was a 500."""
    response = staff_api.get(path.format(id=created["id"]))
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_a_nul_byte_in_a_policy_reference_is_a_400_naming_the_behavior(api: APIClient) -> None:
    """Found by schemathesis on PostgreSQL: the name lookup of `cache_policy` reached the database and was a 500."""
    body = minimal()
    body["cache_behaviors"][1]["cache_policy"] = "Caching\x00Optimized"
    response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 400
    assert response.json()["cache_behaviors"]["1"]["cache_policy"] == ["Null characters are not allowed."]
