"""A distribution's config history: the versions that changed it, a diff between two, a rollback."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from distributions import crypto, history
from distributions.models import ConfigVersion, ConfigVersionChange, Distribution, Origin

from .conftest import minimal
from .test_fleet_api import beat, edge_client

pytestmark = pytest.mark.django_db

HEADER_SECRET = "header-secret-one-1234567890"
ROTATED_SECRET = "header-secret-two-0987654321"
S3_SECRET = "s3-secret-access-key-abcdefghijklmnop"


def url(distribution: dict[str, Any], tail: str = "") -> str:
    return f"/api/v1/distributions/{distribution['id']}/{tail}"


def patch(api: APIClient, capture: Any, distribution: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    current = api.get(url(distribution))
    with capture(execute=True):
        response = api.patch(url(distribution), body, format="json", HTTP_IF_MATCH=current["ETag"])
    assert response.status_code == 200, response.json()
    return api.get(url(distribution)).json()  # the answer was read before the version was published on commit


def rollback(api: APIClient, capture: Any, distribution: dict[str, Any], version: Any,
             etag: str | None = None) -> Any:
    etag = etag or api.get(url(distribution))["ETag"]
    with capture(execute=True):
        return api.post(url(distribution, "rollback/"), {"version": version}, format="json", HTTP_IF_MATCH=etag)


def snapshot(number: int, distribution_id: str) -> dict[str, Any] | None:
    document = crypto.open_document(ConfigVersion.objects.get(version=number).document)
    return history.distribution_snapshot(document, distribution_id)


def with_origin_port(distribution: dict[str, Any], port: int) -> dict[str, Any]:
    origins = [dict(o, http_port=port) for o in distribution["origins"]]
    return {"origins": [{k: v for k, v in o.items() if not k.startswith("has_")} for o in origins]}


# ---- Rollback ----

def test_a_rollback_restores_a_changed_setting_as_a_new_version(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    assert api.get(url(created)).json()["config_version"] == 1
    changed = patch(api, django_capture_on_commit_callbacks, created,
                    {"default_root_object": "home.html", **with_origin_port(created, 8091)})
    assert changed["config_version"] == 2 and changed["origins"][0]["http_port"] == 8091

    response = rollback(api, django_capture_on_commit_callbacks, created, 1)

    assert response.status_code == 200, response.json()
    body = api.get(url(created)).json()
    assert body["config_version"] == 3  # the number only grows
    assert body["default_root_object"] == "index.html"
    assert body["origins"][0]["http_port"] == 8090
    assert body["status"] == "InProgress"
    assert response["ETag"] == f'"{body["etag"]}"' and body["etag"] != changed["etag"]
    assert body["comment"] == "static site"  # in no version: left as it is
    version = ConfigVersion.objects.get(version=3)
    assert version.reason == f"distribution {created['id']} rolled back to version 1"
    assert version.created_by.username == "alice"


def test_the_config_the_edges_get_after_a_rollback_is_the_old_one_and_it_deploys(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    from distributions import services

    _, token = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:9")
    patch(api, django_capture_on_commit_callbacks, created,
          {"aliases": ["www.example.test", "new.example.test"], "cache_behaviors": [
              {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingDisabled"}]})
    assert rollback(api, django_capture_on_commit_callbacks, created, 1).status_code == 200

    pulled = edge_client(token).get("/api/v1/edge/config").json()
    assert pulled["version"] == 3
    assert history.distribution_snapshot(pulled, created["id"]) == snapshot(1, created["id"])
    assert snapshot(2, created["id"]) != snapshot(1, created["id"])

    beat(token, version=3)
    assert api.get(url(created)).json()["status"] == "Deployed"
    entries = api.get(url(created, "versions/")).json()["results"]
    assert [(e["version"], e["deployed"]) for e in entries] == [(3, True), (2, True), (1, True)]


def test_a_rollback_needs_a_current_if_match(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})
    stale = rollback(api, django_capture_on_commit_callbacks, created, 1, etag=f'"{created["etag"]}"')
    assert stale.status_code == 412, stale.json()
    missing = api.post(url(created, "rollback/"), {"version": 1}, format="json")
    assert missing.status_code == 428
    assert Distribution.objects.get(pk=created["id"]).default_root_object == "home.html"
    assert ConfigVersion.objects.count() == 2


def test_another_users_distribution_is_not_found_for_any_history_call(
        api: APIClient, bob_api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    etag = api.get(url(created))["ETag"]
    assert rollback(bob_api, django_capture_on_commit_callbacks, created, 1, etag=etag).status_code == 404
    assert bob_api.get(url(created, "versions/")).status_code == 404
    assert bob_api.get(url(created, "diff/")).status_code == 404


def test_staff_can_roll_back_any_distribution(
        api: APIClient, staff_api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})
    response = rollback(staff_api, django_capture_on_commit_callbacks, created, 1)
    assert response.status_code == 200, response.json()
    assert response.json()["default_root_object"] == "index.html"
    assert response.json()["owner"] == "alice"


@pytest.mark.parametrize("version", [99, 0, -1, "one", None])
def test_an_unknown_version_is_a_field_error_naming_version(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any, version: Any) -> None:
    response = rollback(api, django_capture_on_commit_callbacks, created, version)
    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["version"]
    if version == 99:
        assert response.json()["version"] == ["there is no config version 99"]
    assert ConfigVersion.objects.count() == 1


def test_a_version_that_did_not_hold_the_distribution_is_refused(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post("/api/v1/distributions/", minimal(aliases=["two.example.test"]), format="json").json()
    assert api.get(url(second)).json()["config_version"] == 2
    response = rollback(api, django_capture_on_commit_callbacks, second, 1)
    assert response.status_code == 400
    assert response.json()["version"] == [f"config version 1 does not hold distribution {second['id']}: it was "
                                          "not created yet, or was disabled then"]


def test_a_version_made_by_another_users_change_still_restores_only_ones_own_settings(
        api: APIClient, bob_api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bobs = bob_api.post("/api/v1/distributions/", minimal(aliases=["bob.example.test"]), format="json").json()
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})
    response = rollback(api, django_capture_on_commit_callbacks, created, 2)
    assert response.status_code == 200, response.json()
    assert response.json()["default_root_object"] == "index.html"
    assert response.json()["aliases"] == ["www.example.test"]
    assert Distribution.objects.get(pk=bobs["id"]).owner.username == "bob"
    assert "bob.example.test" not in response.content.decode()


def test_a_rollback_to_settings_that_are_no_longer_valid_names_the_problem(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    policy = api.post("/api/v1/cache-policies/", {"name": "short", "min_ttl": 0, "default_ttl": 60,
                                                   "max_ttl": 600}, format="json").json()
    body = minimal()
    body["cache_behaviors"][1]["cache_policy"] = "short"
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", body, format="json").json()
    patch(api, django_capture_on_commit_callbacks, created, {"cache_behaviors": [
        {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized"}]})
    assert api.delete(f"/api/v1/cache-policies/{policy['id']}/").status_code == 204

    response = rollback(api, django_capture_on_commit_callbacks, created, 1)

    assert response.status_code == 409, response.json()
    answer = response.json()
    assert answer["version"] == 1
    assert answer["detail"].startswith("the settings of config version 1 for this distribution are no longer valid: "
                                       "cache_behaviors[*].cache_policy: there is no cache policy with id or name "
                                       f"'{policy['id']}'")
    assert "cache_policy" in answer["errors"]["cache_behaviors"]["1"]
    assert ConfigVersion.objects.count() == 2


def test_a_rollback_keeps_todays_secrets_and_restores_an_origins_only_if_it_has_none(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    body = minimal()
    body["origins"][0].update(secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET)
    body["origins"].append({"origin_id": "bucket", "kind": "s3", "bucket": "assets", "region": "eu-west-1",
                            "endpoint_url": "http://127.0.0.1:5000", "access_key_id": "AKIAEXAMPLE12345",
                            "secret_access_key": S3_SECRET})
    body["cache_behaviors"].insert(0, {"path_pattern": "/static/*", "target_origin_id": "bucket",
                                       "cache_policy": "CachingOptimized"})
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", body, format="json").json()
    assert ConfigVersion.objects.count() == 1, created
    web = {k: v for k, v in created["origins"][1].items() if not k.startswith("has_")}
    # Version 2: the header's value rotated, the bucket origin gone; version 3 rolls back to 1.
    patch(api, django_capture_on_commit_callbacks, created, {
        "origins": [dict(web, http_port=8091, secret_header_value=ROTATED_SECRET)],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized"}]})

    response = rollback(api, django_capture_on_commit_callbacks, created, 1)

    assert response.status_code == 200, response.json()
    assert HEADER_SECRET not in response.content.decode() and S3_SECRET not in response.content.decode()
    origins = {o.origin_id: o for o in Origin.objects.filter(distribution_id=created["id"])}
    assert origins["web"].http_port == 8090
    assert origins["web"].secret_header_value == ROTATED_SECRET  # today's, not the leaked one
    assert origins["bucket"].secret_access_key == S3_SECRET  # it had none today: the old version's
    assert [b["path_pattern"] for b in response.json()["cache_behaviors"]] == ["/static/*", "/api/*", "*"]


def test_a_rollback_of_a_disabled_distribution_restores_its_settings_for_when_it_is_enabled(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})
    patch(api, django_capture_on_commit_callbacks, created, {"enabled": False})
    assert ConfigVersion.objects.count() == 3
    response = rollback(api, django_capture_on_commit_callbacks, created, 1)
    assert response.status_code == 200, response.json()
    assert response.json()["enabled"] is False and response.json()["default_root_object"] == "index.html"
    assert ConfigVersion.objects.count() == 3  # nothing the edges serve changed


# ---- History ----

def test_the_history_lists_the_versions_that_changed_the_distribution_newest_first(
        api: APIClient, bob_api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bob_api.post("/api/v1/distributions/", minimal(aliases=["bob.example.test"]), format="json")  # version 2
    patch(api, django_capture_on_commit_callbacks, created, {"comment": "only the comment"})  # no version
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})  # 3
    patch(api, django_capture_on_commit_callbacks, created, {"enabled": False})  # 4
    patch(api, django_capture_on_commit_callbacks, created, {"enabled": True})  # 5
    rollback(api, django_capture_on_commit_callbacks, created, 1)  # 6

    response = api.get(url(created, "versions/"))

    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 5
    assert [(e["version"], e["change"], e["current"]) for e in page["results"]] == [
        (6, "changed", True), (5, "added", False), (4, "removed", False), (3, "changed", False), (1, "added", False)]
    newest = page["results"][0]
    assert newest["created_by"] == "alice" and newest["reason"].endswith("rolled back to version 1")
    assert newest["deployed"] is False  # no edge runs it
    assert set(newest) == {"version", "change", "created_at", "created_by", "reason", "deployed", "current"}


def test_a_policy_change_is_in_the_history_of_the_distributions_using_it(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    policy = api.post("/api/v1/cache-policies/", {"name": "short", "min_ttl": 0, "default_ttl": 60,
                                                   "max_ttl": 600}, format="json").json()
    body = minimal()
    body["cache_behaviors"][1]["cache_policy"] = "short"
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", body, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        other = api.post("/api/v1/distributions/", minimal(aliases=["other.example.test"]), format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.patch(f"/api/v1/cache-policies/{policy['id']}/", {"default_ttl": 120},
                         format="json").status_code == 200
    assert [e["version"] for e in api.get(url(created, "versions/")).json()["results"]] == [3, 1]
    assert [e["version"] for e in api.get(url(other, "versions/")).json()["results"]] == [2]
    diff = api.get(url(created, "diff/")).json()
    assert (diff["from"], diff["to"]) == (1, 3)
    assert diff["changes"] == [{"path": "cache_behaviors[*].cache_policy.default_ttl", "old": 60, "new": 120}]


def test_the_migration_fills_the_history_of_versions_published_before_it(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    patch(api, django_capture_on_commit_callbacks, created, {"default_root_object": "home.html"})
    patch(api, django_capture_on_commit_callbacks, created, {"comment": "no version"})
    recorded = list(ConfigVersionChange.objects.order_by("version").values_list("version", "distribution_id", "change"))
    ConfigVersionChange.objects.all().delete()
    migration = importlib.import_module("distributions.migrations.0011_config_version_changes")
    migration.fill(apps, None)
    assert list(ConfigVersionChange.objects.order_by("version").values_list(
        "version", "distribution_id", "change")) == recorded == [(1, created["id"], "added"), (2, created["id"], "changed")]


# ---- Diff ----

def test_the_diff_shows_the_changed_fields_and_never_a_secret(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    body = minimal()
    body["origins"][0].update(secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", body, format="json").json()
    web = {k: v for k, v in created["origins"][0].items() if not k.startswith("has_")}
    patch(api, django_capture_on_commit_callbacks, created, {
        "origins": [dict(web, http_port=8091, secret_header_value=ROTATED_SECRET)],
        "cache_behaviors": [
            {"path_pattern": "/api/*", "target_origin_id": "web", "cache_policy": "CachingDisabled",
             "allowed_methods": "ALL", "compress": True},
            {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized", "compress": True}]})

    response = api.get(url(created, "diff/"), {"from": 1, "to": 2})

    assert response.status_code == 200, response.json()
    text = response.content.decode()
    assert HEADER_SECRET not in text and ROTATED_SECRET not in text
    answer = response.json()
    assert (answer["from"], answer["to"], answer["from_served"], answer["to_served"]) == (1, 2, True, True)
    assert answer["changes"] == [
        {"path": "cache_behaviors[/api/*].compress", "old": False, "new": True},
        {"path": "origins[web].http_port", "old": 8090, "new": 8091},
        {"path": "origins[web].secrets", "old": "<secret>", "new": "<secret>"},
    ]
    backwards = api.get(url(created, "diff/"), {"from": 2, "to": 1}).json()["changes"]
    assert {"path": "origins[web].http_port", "old": 8091, "new": 8090} in backwards
    assert api.get(url(created, "diff/")).json()["changes"] == answer["changes"]  # default: what the last change did


def test_the_diff_lists_a_new_behavior_whole_and_a_changed_order(
        api: APIClient, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    img = {"path_pattern": "/img/*", "target_origin_id": "web", "cache_policy": "CachingOptimized"}
    api_behavior = {"path_pattern": "/api/*", "target_origin_id": "web", "cache_policy": "CachingDisabled",
                    "allowed_methods": "ALL"}
    default = {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized", "compress": True}
    patch(api, django_capture_on_commit_callbacks, created, {"cache_behaviors": [img, api_behavior, default]})
    patch(api, django_capture_on_commit_callbacks, created, {"cache_behaviors": [api_behavior, img, default]})
    added = api.get(url(created, "diff/"), {"from": 1, "to": 2}).json()["changes"]
    assert len(added) == 1 and added[0]["path"] == "cache_behaviors[/img/*]"
    assert added[0]["old"] is None and added[0]["new"]["target"] == "web"
    assert api.get(url(created, "diff/"), {"from": 2, "to": 3}).json()["changes"] == [
        {"path": "cache_behaviors (order)", "old": ["/img/*", "/api/*", "*"], "new": ["/api/*", "/img/*", "*"]}]


@pytest.mark.parametrize("query, field", [({"from": 99}, "from"), ({"to": "x"}, "to"), ({"from": 0}, "from")])
def test_the_diff_names_a_bad_version(api: APIClient, created: dict[str, Any], query: dict[str, Any],
                                      field: str) -> None:
    response = api.get(url(created, "diff/"), query)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_the_diff_against_a_version_without_the_distribution_shows_it_whole(
        api: APIClient, bob_api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bob_api.post("/api/v1/distributions/", minimal(aliases=["bob.example.test"]), format="json")
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", minimal(), format="json").json()
    answer = api.get(url(created, "diff/"), {"from": 1, "to": 2}).json()
    assert answer["from_served"] is False and answer["to_served"] is True
    paths = {c["path"]: c for c in answer["changes"]}
    assert paths["default_root_object"] == {"path": "default_root_object", "old": None, "new": "index.html"}
    assert "bob.example.test" not in str(answer)
    # with only one version in its history, the default diff is empty
    assert api.get(url(created, "diff/")).json()["changes"] == []


def test_the_history_endpoints_are_in_the_schema(api: APIClient) -> None:
    paths = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {"get"} <= set(paths["/api/v1/distributions/{id}/versions/"])
    assert {"get"} <= set(paths["/api/v1/distributions/{id}/diff/"])
    rollback_op = paths["/api/v1/distributions/{id}/rollback/"]["post"]
    assert {"200", "400", "404", "409", "412", "428"} <= set(rollback_op["responses"])


def test_a_rollback_round_trips_everything_a_version_holds(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    """Groups, S3 (credentials, a region, an endpoint, signing), headers, error pages, method lists."""
    from .test_config_versions import RICH

    body = copy.deepcopy(RICH)
    body["origins"].append({"origin_id": "public", "kind": "s3", "bucket": "public-assets",
                            "signing_behavior": "never"})
    body["cache_behaviors"].insert(0, {"path_pattern": "/pub/*", "target_origin_id": "public",
                                       "cache_policy": "CachingOptimized"})
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/distributions/", body, format="json").json()
    assert "id" in created, created
    patch(api, django_capture_on_commit_callbacks, created, {
        "aliases": ["www.rich.test"], "custom_error_responses": [], "origin_groups": [],
        "origins": [{"origin_id": "web", "kind": "custom", "domain_name": "web.rich.test"}],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingDisabled"}]})
    assert snapshot(2, created["id"]) != snapshot(1, created["id"])

    response = rollback(api, django_capture_on_commit_callbacks, created, 1)

    assert response.status_code == 200, response.json()
    assert snapshot(3, created["id"]) == snapshot(1, created["id"])
    assert api.get(url(created, "diff/"), {"from": 1, "to": 3}).json()["changes"] == []
