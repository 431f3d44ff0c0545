from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from distributions.models import Distribution

from .conftest import minimal

pytestmark = pytest.mark.django_db


def test_it_creates_a_whole_distribution_in_one_post_with_every_default_filled(created: dict[str, Any]) -> None:
    assert re.fullmatch(r"E[A-Z0-9]{13}", created["id"])
    assert created["domain_name"] == f"{created['id'].lower()}.cdn.localhost"
    assert created["status"] == "InProgress" and created["deployment"]["edges_total"] == 0  # no edge has it
    assert created["aliases"] == ["www.example.test"]
    origin = created["origins"][0]
    assert origin["https_port"] == 443
    assert origin["connect_timeout"] == 10 and origin["read_timeout"] == 30 and origin["connection_attempts"] == 3
    assert origin["custom_headers"] == []
    default = created["cache_behaviors"][-1]
    assert default["path_pattern"] == "*"
    assert default["cache_policy"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"
    assert default["allowed_methods"] == "GET_HEAD" and default["cached_methods"] == "GET_HEAD"
    assert created["cache_behaviors"][0]["allowed_methods"] == "ALL"
    assert created["etag"]


def test_it_answers_every_read_with_an_etag(api: APIClient, created: dict[str, Any]) -> None:
    response = api.get(f"/api/v1/distributions/{created['id']}/")
    assert response.status_code == 200
    assert response["ETag"] == f'"{created["etag"]}"'


def test_it_lists_only_the_users_own_distributions_with_pagination(api: APIClient, bob_api: APIClient,
                                                                   created: dict[str, Any]) -> None:
    mine = api.get("/api/v1/distributions/").json()
    assert mine["count"] == 1 and mine["results"][0]["id"] == created["id"]
    assert bob_api.get("/api/v1/distributions/").json()["count"] == 0


def test_another_users_distribution_is_not_found(bob_api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    assert bob_api.get(url).status_code == 404
    assert bob_api.patch(url, {"comment": "x"}, format="json", HTTP_IF_MATCH=created["etag"]).status_code == 404
    assert bob_api.delete(url, HTTP_IF_MATCH=created["etag"]).status_code == 404


def test_staff_see_every_distribution(staff_api: APIClient, created: dict[str, Any]) -> None:
    assert staff_api.get(f"/api/v1/distributions/{created['id']}/").status_code == 200


def test_every_endpoint_requires_authentication(created: dict[str, Any]) -> None:
    anonymous = APIClient()
    for url in ("/api/v1/distributions/", f"/api/v1/distributions/{created['id']}/", "/api/v1/cache-policies/",
                "/api/v1/origin-request-policies/", "/api/v1/edges/", "/api/v1/config-versions/",
                f"/api/v1/distributions/{created['id']}/invalidations/", "/api/v1/schema/"):
        assert anonymous.get(url).status_code in (401, 403), url


def test_it_requires_if_match_to_change_or_delete(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    assert api.patch(url, {"comment": "new"}, format="json").status_code == 428
    assert api.put(url, minimal(), format="json").status_code == 428
    assert api.delete(url).status_code == 428


def test_it_refuses_a_stale_etag(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    first = api.patch(url, {"comment": "one"}, format="json", HTTP_IF_MATCH=f'"{created["etag"]}"')
    assert first.status_code == 200
    assert first["ETag"] != f'"{created["etag"]}"'
    stale = api.patch(url, {"comment": "two"}, format="json", HTTP_IF_MATCH=f'"{created["etag"]}"')
    assert stale.status_code == 412
    assert Distribution.objects.get(pk=created["id"]).comment == "one"


def test_patch_changes_only_what_it_names(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    response = api.patch(url, {"enabled": False}, format="json", HTTP_IF_MATCH=created["etag"])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["enabled"] is False
    assert body["aliases"] == created["aliases"] and body["origins"] == created["origins"]
    assert body["cache_behaviors"] == created["cache_behaviors"]


def test_put_replaces_the_inline_lists(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    body = minimal(aliases=[], cache_behaviors=[{"path_pattern": "*", "target_origin_id": "web",
                                                 "cache_policy": "CachingDisabled"}])
    response = api.put(url, body, format="json", HTTP_IF_MATCH=created["etag"])
    assert response.status_code == 200, response.json()
    assert response.json()["aliases"] == []
    assert [b["path_pattern"] for b in response.json()["cache_behaviors"]] == ["*"]


def test_it_refuses_to_delete_an_enabled_distribution(api: APIClient, created: dict[str, Any]) -> None:
    response = api.delete(f"/api/v1/distributions/{created['id']}/", HTTP_IF_MATCH=created["etag"])
    assert response.status_code == 409
    assert "disable" in response.json()["detail"]
    assert Distribution.objects.filter(pk=created["id"]).exists()


def test_it_deletes_a_disabled_distribution(api: APIClient, created: dict[str, Any]) -> None:
    url = f"/api/v1/distributions/{created['id']}/"
    disabled = api.patch(url, {"enabled": False}, format="json", HTTP_IF_MATCH=created["etag"])
    assert api.delete(url, HTTP_IF_MATCH=disabled["ETag"]).status_code == 204
    assert not Distribution.objects.filter(pk=created["id"]).exists()


def test_it_keeps_s3_credentials_write_only_and_keeps_them_across_a_put(api: APIClient) -> None:
    body = minimal(origins=[{"origin_id": "bucket", "kind": "s3", "bucket": "my-assets", "region": "eu-central-1",
                             "endpoint_url": "http://127.0.0.1:5000", "access_key_id": "AKIDEXAMPLE",
                             "secret_access_key": "wJalrXUtnFEMI/K7MDENG"}],
                   cache_behaviors=[{"path_pattern": "*", "target_origin_id": "bucket",
                                     "cache_policy": "CachingOptimized"}])
    response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    text = response.content.decode()
    assert "AKIDEXAMPLE" not in text and "wJalrXUtnFEMI" not in text
    origin = response.json()["origins"][0]
    assert origin["has_credentials"] is True
    assert origin["domain_name"] == "my-assets.s3.eu-central-1.amazonaws.com"
    read = api.get(f"/api/v1/distributions/{response.json()['id']}/")
    assert "wJalrXUtnFEMI" not in read.content.decode()
    again = api.put(f"/api/v1/distributions/{response.json()['id']}/",
                    dict(read.json(), origins=[{k: v for k, v in origin.items() if k != "has_credentials"}]),
                    format="json", HTTP_IF_MATCH=read["ETag"])
    assert again.status_code == 200, again.json()
    assert again.json()["origins"][0]["has_credentials"] is True


def test_it_accepts_origin_groups_as_behavior_targets(api: APIClient) -> None:
    body = minimal(
        origins=[{"origin_id": "a", "domain_name": "a.example.test"}, {"origin_id": "b", "domain_name": "b.example.test"}],
        origin_groups=[{"group_id": "ab", "primary_origin_id": "a", "secondary_origin_id": "b",
                        "failover_status_codes": [503, 500, 502]}],
        cache_behaviors=[{"path_pattern": "*", "target_origin_id": "ab", "cache_policy": "CachingOptimized"}],
    )
    response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["origin_groups"][0]["failover_status_codes"] == [500, 502, 503]


def test_it_returns_behaviors_in_order_with_the_default_last(api: APIClient) -> None:
    behaviors = [{"path_pattern": p, "target_origin_id": "web", "cache_policy": "CachingOptimized"}
                 for p in ("/b/*", "/a/*", "*.jpg", "*")]
    response = api.post("/api/v1/distributions/", minimal(aliases=[], cache_behaviors=behaviors), format="json")
    assert response.status_code == 201, response.json()
    assert [b["path_pattern"] for b in response.json()["cache_behaviors"]] == ["/b/*", "/a/*", "*.jpg", "*"]
