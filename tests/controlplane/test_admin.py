"""The admin applies the same rules as the API, and publishes a version on save."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from distributions.models import ConfigVersion, Distribution

pytestmark = pytest.mark.django_db


def inline(prefix: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": 0,
                            f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{key}": value for key, value in row.items()})
    return data


def form(staff: User, behaviors: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {"owner": staff.pk, "comment": "from the admin", "enabled": "on",
                            "default_root_object": "index.html", "custom_error_responses": "[]"}
    data.update(inline("alias_set", [{"name": "admin.example.test"}]))
    data.update(inline("origins", [{"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1",
                                    "protocol_policy": "http-only", "http_port": 8090, "https_port": 443,
                                    "connect_timeout": 10, "read_timeout": 30, "connection_attempts": 3,
                                    "custom_headers": "[]"}]))
    data.update(inline("origin_groups", []))
    data.update(inline("cache_behaviors", behaviors))
    return data


def behavior(position: int, pattern: str, target: str = "web") -> dict[str, Any]:
    return {"position": position, "path_pattern": pattern, "target_origin_id": target,
            "viewer_protocol_policy": "allow-all", "allowed_methods": "GET_HEAD", "cached_methods": "GET_HEAD",
            "cache_policy": "658327ea-f89d-4fab-a63d-7e88639e58f6", "origin_request_policy": ""}


@pytest.fixture
def admin_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_every_model_has_an_admin_page(admin_client: Client) -> None:
    for name in ("distribution", "cachepolicy", "originrequestpolicy", "invalidation", "edgenode", "configversion"):
        assert admin_client.get(f"/admin/distributions/{name}/").status_code == 200, name
    assert admin_client.get("/admin/distributions/distribution/add/").status_code == 200


def test_it_creates_a_distribution_with_inlines_and_publishes_a_version(
        admin_client: Client, staff: User, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/distributions/distribution/add/",
                                     form(staff, [behavior(0, "/api/*"), behavior(1, "*")]))
    assert response.status_code == 302, response.content.decode()[:2000]
    distribution = Distribution.objects.get()
    assert [a.name for a in distribution.alias_set.all()] == ["admin.example.test"]
    assert ConfigVersion.objects.count() == 1
    assert ConfigVersion.objects.get().document["distributions"][0]["id"] == distribution.id


def test_it_refuses_a_behavior_targeting_an_unknown_origin_like_the_api(admin_client: Client, staff: User) -> None:
    response = admin_client.post("/admin/distributions/distribution/add/", form(staff, [behavior(0, "*", "nowhere")]))
    assert response.status_code == 200
    assert "is not an origin or origin group of this distribution" in response.content.decode()
    assert not Distribution.objects.exists()


def test_it_refuses_a_missing_default_behavior_like_the_api(admin_client: Client, staff: User) -> None:
    response = admin_client.post("/admin/distributions/distribution/add/", form(staff, [behavior(0, "/a/*")]))
    assert response.status_code == 200
    assert "a default cache behavior with path_pattern" in response.content.decode()
    assert not Distribution.objects.exists()


def test_it_refuses_a_bad_ttl_order_like_the_api(admin_client: Client) -> None:
    response = admin_client.post("/admin/distributions/cachepolicy/add/", {
        "name": "bad", "min_ttl": 10, "default_ttl": 5, "max_ttl": 100, "query_strings_behavior": "none",
        "query_strings": "[]", "headers_behavior": "none", "headers": "[]", "cookies_behavior": "none",
        "cookies": "[]"})
    assert response.status_code == 200
    assert "min_ttl must not exceed default_ttl" in response.content.decode()


def test_managed_policies_are_read_only_in_the_admin(admin_client: Client) -> None:
    url = "/admin/distributions/cachepolicy/658327ea-f89d-4fab-a63d-7e88639e58f6/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="min_ttl"' not in page  # shown, not editable
    assert admin_client.post(url.replace("change", "delete"), {"post": "yes"}).status_code == 403


def test_an_enabled_distribution_cannot_be_deleted_in_the_admin(admin_client: Client, staff: User,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/distributions/distribution/add/", form(staff, [behavior(0, "*")]))
    distribution = Distribution.objects.get()
    response = admin_client.post(f"/admin/distributions/distribution/{distribution.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Distribution.objects.filter(pk=distribution.pk).exists()
