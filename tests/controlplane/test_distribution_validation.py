"""Every rule a distribution is held to; each bad input names its field."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from .conftest import minimal

pytestmark = pytest.mark.django_db


def post(api: APIClient, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/distributions/", body, format="json")


def origin(**fields: Any) -> dict[str, Any]:
    return {"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1", **fields}


def first_error(body: dict[str, Any], *path: Any) -> str:
    node: Any = body
    for key in path:
        node = node[str(key)] if isinstance(node, dict) else node[key]
    return node[0] if isinstance(node, list) else node


@pytest.mark.parametrize("alias", ["bad_host", "-a.example.test", "a..example.test", "*.com", "www.*.example.test",
                                   "x" * 64 + ".example.test", "foo.cdn.localhost"])
def test_it_refuses_an_invalid_alias(api: APIClient, alias: str) -> None:
    response = post(api, minimal(aliases=[alias]))
    assert response.status_code == 400
    assert "aliases" in response.json()


def test_it_accepts_a_wildcard_alias_and_lowercases_it(api: APIClient) -> None:
    response = post(api, minimal(aliases=["*.Example.TEST"]))
    assert response.status_code == 201, response.json()
    assert response.json()["aliases"] == ["*.example.test"]


def test_it_refuses_overlapping_aliases_with_a_conflict_naming_the_owner(api: APIClient, created: dict[str, Any]) -> None:
    response = post(api, minimal(aliases=["WWW.example.test"]))
    assert response.status_code == 409
    assert response.json()["alias"] == "www.example.test"
    assert created["id"] in response.json()["detail"]


def test_it_does_not_reveal_another_users_distribution_in_an_alias_conflict(bob_api: APIClient, created: dict[str, Any]) -> None:
    response = post(bob_api, minimal())
    assert response.status_code == 409
    assert created["id"] not in response.content.decode()


def test_it_refuses_an_alias_listed_twice(api: APIClient) -> None:
    response = post(api, minimal(aliases=["a.example.test", "A.example.test"]))
    assert response.status_code == 400
    assert "twice" in first_error(response.json(), "aliases")


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"http_port": 0}, "http_port", "greater than or equal to 1"),
    ({"https_port": 70000}, "https_port", "less than or equal to 65535"),
    ({"connect_timeout": 11}, "connect_timeout", "10"),
    ({"read_timeout": 61}, "read_timeout", "60"),
    ({"connection_attempts": 4}, "connection_attempts", "3"),
    ({"protocol_policy": "ftp"}, "protocol_policy", "not a valid choice"),
    ({"kind": "gopher"}, "kind", "not a valid choice"),
    ({"origin_path": "prefix/"}, "origin_path", "must start with '/'"),
    ({"domain_name": ""}, "domain_name", "needs a domain_name"),
    ({"domain_name": "bad host"}, "domain_name", "not a valid host name"),
    ({"origin_id": "has space"}, "origin_id", "letters, digits"),
    ({"custom_headers": [{"name": "Connection", "value": "close"}]}, "custom_headers", "reserved"),
    ({"custom_headers": [{"name": "Host", "value": "x"}]}, "custom_headers", "reserved"),
    ({"custom_headers": [{"name": "X-Ok", "value": "a\r\nb"}]}, "custom_headers", "line breaks"),
    ({"custom_headers": [{"name": "X-Ok"}]}, "custom_headers", "exactly 'name' and 'value'"),
    ({"bucket": "b"}, "bucket", "only for s3"),
])
def test_it_refuses_a_bad_origin_field_and_names_it(api: APIClient, fields: dict[str, Any], field: str, words: str) -> None:
    response = post(api, minimal(origins=[origin(**fields)]))
    assert response.status_code == 400
    assert words in first_error(response.json(), "origins", 0, field)


def test_it_requires_a_bucket_for_an_s3_origin(api: APIClient) -> None:
    response = post(api, minimal(origins=[{"origin_id": "web", "kind": "s3"}]))
    assert response.status_code == 400
    assert "bucket" in first_error(response.json(), "origins", 0, "bucket")


def test_it_requires_at_least_one_origin(api: APIClient) -> None:
    response = post(api, minimal(origins=[]))
    assert response.status_code == 400
    assert "at least one origin" in first_error(response.json(), "origins")


def test_it_refuses_duplicate_origin_ids(api: APIClient) -> None:
    response = post(api, minimal(origins=[origin(), origin()]))
    assert response.status_code == 400
    assert "used twice" in first_error(response.json(), "origins", 1, "origin_id")


def test_it_requires_the_default_behavior(api: APIClient) -> None:
    body = minimal(cache_behaviors=[{"path_pattern": "/a/*", "target_origin_id": "web", "cache_policy": "CachingOptimized"}])
    response = post(api, body)
    assert response.status_code == 400
    assert "'*'" in first_error(response.json(), "cache_behaviors")


def test_it_requires_the_default_behavior_to_be_last(api: APIClient) -> None:
    body = minimal(cache_behaviors=list(reversed(minimal()["cache_behaviors"])))
    response = post(api, body)
    assert response.status_code == 400
    assert "must be the last" in first_error(response.json(), "cache_behaviors", 0, "path_pattern")


def test_it_refuses_duplicate_path_patterns(api: APIClient) -> None:
    behaviors = [{"path_pattern": p, "target_origin_id": "web", "cache_policy": "CachingOptimized"}
                 for p in ("/a/*", "a/*", "*")]
    response = post(api, minimal(cache_behaviors=behaviors))
    assert response.status_code == 400
    assert "used twice" in first_error(response.json(), "cache_behaviors", 1, "path_pattern")


def test_it_refuses_a_path_pattern_over_255_characters(api: APIClient) -> None:
    behaviors = [{"path_pattern": "/" + "a" * 255, "target_origin_id": "web", "cache_policy": "CachingOptimized"},
                 minimal()["cache_behaviors"][-1]]
    response = post(api, minimal(cache_behaviors=behaviors))
    assert response.status_code == 400
    assert "255" in first_error(response.json(), "cache_behaviors", 0, "path_pattern")


def test_it_refuses_a_target_that_is_not_in_the_distribution(api: APIClient) -> None:
    behaviors = [{"path_pattern": "*", "target_origin_id": "elsewhere", "cache_policy": "CachingOptimized"}]
    response = post(api, minimal(cache_behaviors=behaviors))
    assert response.status_code == 400
    assert "not an origin or origin group" in first_error(response.json(), "cache_behaviors", 0, "target_origin_id")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("viewer_protocol_policy", "sometimes", "not a valid choice"),
    ("allowed_methods", "GET", "not a valid choice"),
    ("cached_methods", "ALL", "not a valid choice"),
    ("cache_policy", "NoSuchPolicy", "no cache policy"),
    ("origin_request_policy", "NoSuchPolicy", "no origin request policy"),
])
def test_it_refuses_a_bad_behavior_field_and_names_it(api: APIClient, field: str, value: str, words: str) -> None:
    behavior = dict(minimal()["cache_behaviors"][-1], **{field: value})
    response = post(api, minimal(cache_behaviors=[behavior]))
    assert response.status_code == 400
    assert words in first_error(response.json(), "cache_behaviors", 0, field)


def test_it_refuses_caching_options_when_options_is_not_allowed(api: APIClient) -> None:
    behavior = dict(minimal()["cache_behaviors"][-1], cached_methods="GET_HEAD_OPTIONS", allowed_methods="GET_HEAD")
    response = post(api, minimal(cache_behaviors=[behavior]))
    assert response.status_code == 400
    assert "OPTIONS" in first_error(response.json(), "cache_behaviors", 0, "cached_methods")


def test_it_refuses_another_users_cache_policy(api: APIClient, bob_api: APIClient) -> None:
    policy = bob_api.post("/api/v1/cache-policies/", {"name": "bobs", "min_ttl": 0, "default_ttl": 1, "max_ttl": 2},
                          format="json").json()
    behavior = dict(minimal()["cache_behaviors"][-1], cache_policy=policy["id"])
    response = post(api, minimal(cache_behaviors=[behavior]))
    assert response.status_code == 400
    assert "no cache policy" in first_error(response.json(), "cache_behaviors", 0, "cache_policy")


@pytest.mark.parametrize(("group", "field", "words"), [
    ({"primary_origin_id": "nope"}, "primary_origin_id", "not an origin"),
    ({"secondary_origin_id": "a"}, "secondary_origin_id", "must differ"),
    ({"failover_status_codes": [200]}, "failover_status_codes", "not a failover status code"),
    ({"failover_status_codes": []}, "failover_status_codes", "empty"),
    ({"group_id": "a"}, "group_id", "already an origin id"),
])
def test_it_refuses_a_bad_origin_group(api: APIClient, group: dict[str, Any], field: str, words: str) -> None:
    spec = {"group_id": "ab", "primary_origin_id": "a", "secondary_origin_id": "b", "failover_status_codes": [502], **group}
    body = minimal(origins=[origin(origin_id="a"), origin(origin_id="b")], origin_groups=[spec],
                   cache_behaviors=[{"path_pattern": "*", "target_origin_id": "a", "cache_policy": "CachingOptimized"}])
    response = post(api, body)
    assert response.status_code == 400
    assert words in first_error(response.json(), "origin_groups", 0, field).lower()


@pytest.mark.parametrize(("responses", "words"), [
    ([{"error_code": 200}], "error_code"),
    ([{"error_code": 404}, {"error_code": 404}], "twice"),
    ([{"error_code": 404, "response_page_path": "errors/404.html"}], "starting with '/'"),
    ([{"error_code": 404, "response_code": 200}], "needs a response_page_path"),
    ([{"error_code": 404, "error_caching_min_ttl": -1}], "error_caching_min_ttl"),
    ([{"error_code": 404, "colour": "red"}], "unknown"),
])
def test_it_refuses_bad_custom_error_responses(api: APIClient, responses: list[dict[str, Any]], words: str) -> None:
    response = post(api, minimal(custom_error_responses=responses))
    assert response.status_code == 400
    assert words in first_error(response.json(), "custom_error_responses")


def test_it_fills_custom_error_response_defaults(api: APIClient) -> None:
    response = post(api, minimal(custom_error_responses=[{"error_code": 503}, {"error_code": 404,
                                 "response_page_path": "/404.html", "response_code": 404}]))
    assert response.status_code == 201, response.json()
    assert response.json()["custom_error_responses"] == [
        {"error_code": 404, "response_page_path": "/404.html", "response_code": 404, "error_caching_min_ttl": 10},
        {"error_code": 503, "response_page_path": "", "response_code": None, "error_caching_min_ttl": 10},
    ]


def test_it_refuses_a_default_root_object_with_a_leading_slash(api: APIClient) -> None:
    response = post(api, minimal(default_root_object="/index.html"))
    assert response.status_code == 400
    assert "no leading '/'" in first_error(response.json(), "default_root_object")
