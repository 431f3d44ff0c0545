from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from .conftest import minimal

pytestmark = pytest.mark.django_db

SITE = {"name": "site", "min_ttl": 0, "default_ttl": 3600, "max_ttl": 86400,
        "query_strings": {"behavior": "allowlist", "names": ["v", "lang", "v"]},
        "headers": {"behavior": "allowlist", "names": ["Accept-Language"]},
        "cookies": {"behavior": "none", "names": []}, "enable_gzip": True, "enable_brotli": True}


def test_it_seeds_the_managed_policies(api: APIClient) -> None:
    policies = {p["name"]: p for p in api.get("/api/v1/cache-policies/").json()["results"]}
    assert policies["CachingOptimized"]["managed"] is True
    assert (policies["CachingOptimized"]["min_ttl"], policies["CachingOptimized"]["default_ttl"],
            policies["CachingOptimized"]["max_ttl"]) == (1, 86400, 31536000)
    assert policies["CachingOptimized"]["enable_gzip"] and policies["CachingOptimized"]["enable_brotli"]
    assert (policies["CachingDisabled"]["min_ttl"], policies["CachingDisabled"]["default_ttl"],
            policies["CachingDisabled"]["max_ttl"]) == (0, 0, 0)
    names = {p["name"] for p in api.get("/api/v1/origin-request-policies/").json()["results"]}
    assert {"AllViewer", "CORS-S3Origin"} <= names


def test_it_creates_a_cache_policy_with_normalised_names(api: APIClient) -> None:
    response = api.post("/api/v1/cache-policies/", SITE, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["query_strings"] == {"behavior": "allowlist", "names": ["lang", "v"]}
    assert body["headers"] == {"behavior": "allowlist", "names": ["accept-language"]}
    assert body["owner"] == "alice" and body["managed"] is False


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"min_ttl": 7200}, "min_ttl", "min_ttl must not exceed default_ttl"),
    ({"max_ttl": 60}, "default_ttl", "default_ttl must not exceed max_ttl"),
    ({"min_ttl": -1}, "min_ttl", "greater than or equal to 0"),
    ({"query_strings": {"behavior": "allowlist", "names": []}}, "query_strings", "needs at least one name"),
    ({"query_strings": {"behavior": "all", "names": ["a"]}}, "query_strings", "takes no names"),
    ({"query_strings": {"behavior": "some"}}, "query_strings", "behavior must be one of"),
    ({"headers": {"behavior": "all", "names": []}}, "headers", "not allowed here"),
    ({"headers": {"behavior": "allowlist", "names": ["bad header"]}}, "headers", "not a valid header name"),
    ({"cookies": "none"}, "cookies", "expected an object"),
    ({"name": "CachingOptimized"}, "name", "managed policy"),
    ({"name": ""}, "name", "blank"),
])
def test_it_refuses_a_bad_cache_policy_and_names_the_field(api: APIClient, change: dict[str, Any], field: str,
                                                           words: str) -> None:
    response = api.post("/api/v1/cache-policies/", dict(SITE, **change), format="json")
    assert response.status_code == 400
    assert words in response.json()[field][0]


def test_origin_request_policies_accept_all_headers(api: APIClient) -> None:
    body = {"name": "everything", "query_strings": {"behavior": "all"}, "headers": {"behavior": "all"},
            "cookies": {"behavior": "denylist", "names": ["session"]}}
    response = api.post("/api/v1/origin-request-policies/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["cookies"] == {"behavior": "denylist", "names": ["session"]}


def test_managed_policies_are_read_only(api: APIClient, staff_api: APIClient) -> None:
    managed = "658327ea-f89d-4fab-a63d-7e88639e58f6"
    for client in (api, staff_api):
        assert client.patch(f"/api/v1/cache-policies/{managed}/", {"min_ttl": 0}, format="json").status_code == 403
        assert client.delete(f"/api/v1/cache-policies/{managed}/").status_code == 403


def test_a_policy_in_use_cannot_be_deleted(api: APIClient) -> None:
    policy = api.post("/api/v1/cache-policies/", SITE, format="json").json()
    behavior = {"path_pattern": "*", "target_origin_id": "web", "cache_policy": policy["id"]}
    distribution = api.post("/api/v1/distributions/", minimal(cache_behaviors=[behavior]), format="json").json()
    response = api.delete(f"/api/v1/cache-policies/{policy['id']}/")
    assert response.status_code == 409
    assert response.json()["distributions"] == [distribution["id"]]


def test_an_unused_policy_can_be_deleted(api: APIClient) -> None:
    policy = api.post("/api/v1/cache-policies/", SITE, format="json").json()
    assert api.delete(f"/api/v1/cache-policies/{policy['id']}/").status_code == 204


def test_a_user_cannot_see_another_users_policy(api: APIClient, bob_api: APIClient) -> None:
    policy = api.post("/api/v1/cache-policies/", SITE, format="json").json()
    assert bob_api.get(f"/api/v1/cache-policies/{policy['id']}/").status_code == 404
    assert policy["id"] not in {p["id"] for p in bob_api.get("/api/v1/cache-policies/").json()["results"]}


def test_a_duplicate_policy_name_is_a_conflict(api: APIClient) -> None:
    assert api.post("/api/v1/cache-policies/", SITE, format="json").status_code == 201
    response = api.post("/api/v1/cache-policies/", SITE, format="json")
    assert response.status_code == 409
    assert response.json()["name"] == "site"


def test_a_policy_update_publishes_a_new_version_for_its_distributions(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    from distributions.models import ConfigVersion

    with django_capture_on_commit_callbacks(execute=True):
        policy = api.post("/api/v1/cache-policies/", SITE, format="json").json()
        behavior = {"path_pattern": "*", "target_origin_id": "web", "cache_policy": policy["id"]}
        api.post("/api/v1/distributions/", minimal(cache_behaviors=[behavior]), format="json")
    before = ConfigVersion.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/v1/cache-policies/{policy['id']}/", {"default_ttl": 60}, format="json")
    assert response.status_code == 200, response.json()
    assert ConfigVersion.objects.count() == before + 1
    latest = ConfigVersion.objects.order_by("-version").first()
    assert latest is not None
    assert latest.document["distributions"][0]["cache_behaviors"][0]["cache_policy"]["default_ttl"] == 60


def test_a_policy_given_by_name_comes_back_with_its_name_and_its_id(api: APIClient) -> None:
    behaviors = [{"path_pattern": "/api/*", "target_origin_id": "web", "cache_policy": "CachingDisabled",
                  "origin_request_policy": "AllViewer"},
                 {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized"}]
    created = api.post("/api/v1/distributions/", minimal(cache_behaviors=behaviors), format="json")
    assert created.status_code == 201, created.json()
    read = api.get(f"/api/v1/distributions/{created.json()['id']}/")
    managed = {p["name"]: p["id"] for p in api.get("/api/v1/cache-policies/").json()["results"]}
    all_viewer = next(p["id"] for p in api.get("/api/v1/origin-request-policies/").json()["results"]
                      if p["name"] == "AllViewer")
    for answer in (created, read):
        api_behavior, default = answer.json()["cache_behaviors"]
        assert (api_behavior["cache_policy_name"], api_behavior["cache_policy"]) == ("CachingDisabled",
                                                                                     managed["CachingDisabled"])
        assert (api_behavior["origin_request_policy_name"], api_behavior["origin_request_policy"]) == ("AllViewer",
                                                                                                       all_viewer)
        assert (default["cache_policy_name"], default["cache_policy"]) == ("CachingOptimized",
                                                                           managed["CachingOptimized"])
        assert (default["origin_request_policy_name"], default["origin_request_policy"]) == (None, None)


def test_an_own_policy_given_by_id_comes_back_with_its_name(api: APIClient) -> None:
    policy = api.post("/api/v1/cache-policies/", SITE, format="json").json()
    behavior = {"path_pattern": "*", "target_origin_id": "web", "cache_policy": policy["id"]}
    distribution = api.post("/api/v1/distributions/", minimal(cache_behaviors=[behavior]), format="json").json()
    assert distribution["cache_behaviors"][0]["cache_policy_name"] == "site"


def test_a_distribution_read_with_policy_names_can_be_written_back_unchanged(api: APIClient) -> None:
    distribution = api.post("/api/v1/distributions/", minimal(), format="json").json()
    read = api.get(f"/api/v1/distributions/{distribution['id']}/")
    response = api.put(f"/api/v1/distributions/{distribution['id']}/", read.json(), format="json",
                       HTTP_IF_MATCH=read["ETag"])
    assert response.status_code == 200, response.json()
    assert response.json()["cache_behaviors"] == read.json()["cache_behaviors"]


def test_the_schema_shows_the_policy_names_as_read_only(api: APIClient) -> None:
    schemas = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]
    assert schemas["CacheBehavior"]["properties"]["cache_policy_name"]["readOnly"] is True
    assert "cache_policy_name" not in schemas["CacheBehaviorRequest"]["properties"]


# ---- Targeted cache control and heuristic freshness ----


def test_managed_policies_have_no_targeted_field_and_no_heuristics(api: APIClient) -> None:
    for policy in api.get("/api/v1/cache-policies/").json()["results"]:
        assert policy["cache_control_field"] == "" and policy["heuristic_freshness"] is False


def test_a_cache_policy_names_its_own_cache_control_field_and_asks_for_heuristics(api: APIClient) -> None:
    body = dict(SITE, cache_control_field="Edge-Cache-Control", heuristic_freshness=True)
    policy = api.post("/api/v1/cache-policies/", body, format="json").json()
    assert (policy["cache_control_field"], policy["heuristic_freshness"]) == ("Edge-Cache-Control", True)
    behavior = {"path_pattern": "*", "target_origin_id": "web", "cache_policy": policy["id"]}
    assert api.post("/api/v1/distributions/", minimal(cache_behaviors=[behavior]), format="json").status_code == 201

    from distributions import selectors
    from distributions.compiler import compile_document
    from edgeagent.config import parse_document

    document = compile_document(selectors.distributions_for_compile(), 1)
    compiled = document["distributions"][0]["cache_behaviors"][0]["cache_policy"]
    assert (compiled["cache_control_field"], compiled["heuristic_freshness"]) == ("edge-cache-control", True)
    edge_config = parse_document(json.loads(json.dumps(document)))
    parsed = next(iter(edge_config.distributions.values())).behaviors[0].cache_policy
    assert (parsed.cache_control_field, parsed.heuristic_freshness) == ("edge-cache-control", True)


@pytest.mark.parametrize("name", ["Cache-Control", "cdn-cache-control", "Age", "bad header", "x" * 65, "Edge:CC"])
def test_it_refuses_a_cache_control_field_the_edge_cannot_own_and_names_the_field(api: APIClient, name: str) -> None:
    response = api.post("/api/v1/cache-policies/", dict(SITE, cache_control_field=name), format="json")
    assert response.status_code == 400
    assert "cache_control_field" in response.json()
