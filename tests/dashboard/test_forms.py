"""The distribution form: the API's serializer decides, its messages show by the field, and a
refused save keeps every input."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from distributions.models import CachePolicy, Distribution

from .conftest import logged_in

pytestmark = pytest.mark.django_db


def form(**overrides: str) -> dict[str, str]:
    optimized = str(CachePolicy.objects.get(name="CachingOptimized", managed=True).pk)
    body = {"comment": "from the form", "enabled": "on", "aliases": "form.example.test", "default_root_object": "index.html",
            "o-rows": "2", "o-0-original": "", "o-0-origin_id": "web", "o-0-domain_name": "127.0.0.1",
            "o-0-protocol_policy": "http-only", "o-0-http_port": "8090", "o-0-https_port": "443", "o-0-origin_path": "",
            "o-1-original": "", "o-1-origin_id": "", "o-1-domain_name": "", "o-1-protocol_policy": "http-only",
            "o-1-http_port": "80", "o-1-https_port": "443", "o-1-origin_path": "",
            "b-rows": "2", "b-0-original": "", "b-0-path_pattern": "*", "b-0-target_origin_id": "web",
            "b-0-cache_policy": optimized, "b-0-origin_request_policy": "", "b-0-viewer_protocol_policy": "allow-all",
            "b-0-allowed_methods": "GET_HEAD", "b-1-original": "", "b-1-path_pattern": "", "b-1-target_origin_id": "",
            "b-1-cache_policy": "", "b-1-origin_request_policy": "", "b-1-viewer_protocol_policy": "allow-all",
            "b-1-allowed_methods": "GET_HEAD"}
    body.update(overrides)
    return body


def test_a_distribution_is_created_through_the_form(alice: User, django_capture_on_commit_callbacks: Any) -> None:
    client = logged_in(alice)
    page = client.get("/dashboard/distributions/new/")
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post("/dashboard/distributions/new/", form())
    assert made.status_code == 302, made.content.decode()[:2000]
    distribution = Distribution.objects.get()
    assert made["Location"] == f"/dashboard/distributions/{distribution.pk}/"
    assert distribution.owner == alice and distribution.comment == "from the form" and distribution.config_version > 0
    assert [a.name for a in distribution.alias_set.all()] == ["form.example.test"]
    assert distribution.origins.get().http_port == 8090
    assert distribution.cache_behaviors.get().cache_policy.name == "CachingOptimized"


def test_a_refused_save_shows_the_apis_message_by_the_field_and_keeps_every_input(alice: User) -> None:
    client = logged_in(alice)
    refused = client.post("/dashboard/distributions/new/", form(**{"o-0-http_port": "70000", "b-0-target_origin_id": "nowhere",
                                                                  "comment": "kept comment"}))
    assert refused.status_code == 400
    body = refused.content.decode()
    assert not Distribution.objects.exists()
    # The serializer's own messages (what the API answers), right after the input they are about.
    port_input = body.index('id="o-0-http_port"')
    assert "less than or equal to 65535" in body[port_input:port_input + 600]
    assert 'value="kept comment"' in body and 'value="70000"' in body and 'value="nowhere"' in body
    assert 'value="form.example.test"' in body or ">form.example.test</textarea>" in body
    api = APIClient()
    api.force_authenticate(alice)
    same = api.post("/api/v1/distributions/", {"origins": [{"origin_id": "web", "domain_name": "127.0.0.1", "http_port": 70000}],
                                               "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "web",
                                                                    "cache_policy": "CachingOptimized"}]}, format="json")
    assert same.json()["origins"]["0"]["http_port"][0] in body  # the same message
    # The distribution's own rules (a behavior's target must be an origin of it) come next, by the field too.
    structure = client.post("/dashboard/distributions/new/", form(**{"b-0-target_origin_id": "nowhere"})).content.decode()
    target_input = structure.index('id="b-0-target_origin_id"')
    assert "nowhere" in structure[target_input:target_input + 400]
    assert 'class="errors"' in structure[target_input:target_input + 400]


def test_an_edit_keeps_what_the_form_does_not_show_and_the_secrets(
        alice: User, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    client = logged_in(alice)
    page = client.get(f"/dashboard/distributions/{created['id']}/edit/")
    assert page.status_code == 200 and "s3cr3t-never-shown" not in page.content.decode()
    distribution = Distribution.objects.get(pk=created["id"])
    behaviors = list(distribution.cache_behaviors.order_by("position"))
    post = form(**{"etag": distribution.etag, "comment": "edited", "o-0-original": "web", "b-rows": "3",
                   "b-0-original": "0", "b-0-path_pattern": "/api/*", "b-0-cache_policy": str(behaviors[0].cache_policy_id),
                   "b-0-allowed_methods": "ALL",
                   "b-1-original": "1", "b-1-path_pattern": "*", "b-1-target_origin_id": "web",
                   "b-1-cache_policy": str(behaviors[1].cache_policy_id), "b-1-compress": "on",
                   "b-2-original": "", "b-2-path_pattern": "", "b-2-target_origin_id": ""})
    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post(f"/dashboard/distributions/{created['id']}/edit/", post)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    distribution.refresh_from_db()
    origin = distribution.origins.get()
    assert distribution.comment == "edited" and origin.http_port == 8090
    assert origin.secret_header_name == "X-Origin-Verify" and origin.secret_header_value == "s3cr3t-never-shown"
    assert [b.path_pattern for b in distribution.cache_behaviors.order_by("position")] == ["/api/*", "*"]
    stale = client.post(f"/dashboard/distributions/{created['id']}/edit/", post)
    assert stale.status_code == 409 and "changed since this form was shown" in stale.content.decode()


def test_another_users_distribution_cannot_be_edited(bob: User, created: dict[str, Any]) -> None:
    client = logged_in(bob)
    assert client.get(f"/dashboard/distributions/{created['id']}/edit/").status_code == 404
    assert client.post(f"/dashboard/distributions/{created['id']}/edit/", form()).status_code == 404
    assert Distribution.objects.get(pk=created["id"]).comment == "static site"


def test_every_form_control_has_a_label(alice: User) -> None:
    import re

    body = logged_in(alice).get("/dashboard/distributions/new/").content.decode()
    body += logged_in(alice).get("/dashboard/policies/cache/new/").content.decode()
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", body):
        if 'type="hidden"' in control:
            continue
        ident = re.search(r'id="([^"]+)"', control)
        assert ident and f'for="{ident.group(1)}"' in body, control


def policy_form(**overrides: str) -> dict[str, str]:
    body = {"name": "short", "comment": "five minutes", "min_ttl": "0", "default_ttl": "300", "max_ttl": "3600",
            "enable_gzip": "on", "query_strings_behavior": "allowlist", "query_strings_names": "page, lang",
            "headers_behavior": "none", "headers_names": "", "cookies_behavior": "none", "cookies_names": ""}
    body.update(overrides)
    return body


def test_a_cache_policy_with_a_bad_ttl_is_refused_by_the_field_with_every_input_kept(alice: User) -> None:
    client = logged_in(alice)
    refused = client.post("/dashboard/policies/cache/new/", policy_form(min_ttl="7200"))
    assert refused.status_code == 400
    body = refused.content.decode()
    api = APIClient()
    api.force_authenticate(alice)
    same = api.post("/api/v1/cache-policies/", {"name": "short", "min_ttl": 7200, "default_ttl": 300, "max_ttl": 3600},
                    format="json").json()
    field, messages = next(iter(same.items()))
    after = body[body.index(f'id="p-{field}"'):][:500]
    assert messages[0] in after  # the API's message, by the field it is about
    assert 'value="7200"' in body and 'value="five minutes"' in body and 'value="page, lang"' in body
    assert '<option value="allowlist" selected>' in body
    assert not CachePolicy.objects.filter(name="short").exists()


def test_a_cache_policy_is_created_through_the_form(alice: User) -> None:
    made = logged_in(alice).post("/dashboard/policies/cache/new/", policy_form())
    assert made.status_code == 302 and made["Location"] == "/dashboard/policies/"
    policy = CachePolicy.objects.get(name="short")
    assert policy.owner == alice and (policy.min_ttl, policy.default_ttl, policy.max_ttl) == (0, 300, 3600)
    assert policy.query_strings == ["lang", "page"] and policy.enable_gzip and not policy.enable_brotli
    again = logged_in(alice).post("/dashboard/policies/cache/new/", policy_form())
    assert again.status_code == 409 and "short" in again.content.decode()


def test_behaviors_move_up_and_down_and_the_default_stays_last(alice: User, django_capture_on_commit_callbacks: Any) -> None:
    client = logged_in(alice)
    rows = form(**{"b-rows": "3", "b-0-path_pattern": "*", "b-1-path_pattern": "/a/*", "b-1-target_origin_id": "web",
                   "b-1-cache_policy": form()["b-0-cache_policy"], "b-1-viewer_protocol_policy": "allow-all",
                   "b-1-allowed_methods": "GET_HEAD", "b-1-original": "",
                   "b-2-original": "", "b-2-path_pattern": "/b/*", "b-2-target_origin_id": "web",
                   "b-2-cache_policy": form()["b-0-cache_policy"], "b-2-origin_request_policy": "",
                   "b-2-viewer_protocol_policy": "allow-all", "b-2-allowed_methods": "GET_HEAD"})
    moved = client.post("/dashboard/distributions/new/", {**rows, "move": "b-2-up"})
    assert moved.status_code == 200 and not Distribution.objects.exists()  # a move saves nothing
    body = moved.content.decode()
    assert body.index('value="/b/*"') < body.index('value="/a/*"') and body.index('value="*"') < body.index('value="/b/*"')
    unmoved = client.post("/dashboard/distributions/new/", {**rows, "move": "b-1-up"}).content.decode()
    assert unmoved.index('value="*"') < unmoved.index('value="/a/*"') < unmoved.index('value="/b/*"')  # not past "*"
    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post("/dashboard/distributions/new/", rows)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    behaviors = Distribution.objects.get().cache_behaviors.order_by("position")
    assert [b.path_pattern for b in behaviors] == ["/a/*", "/b/*", "*"]  # "*" pinned last


def test_an_origin_group_is_made_through_the_form_and_its_errors_shown_by_the_field(
        alice: User, django_capture_on_commit_callbacks: Any) -> None:
    client = logged_in(alice)
    with_group = form(**{"o-rows": "2", "o-1-origin_id": "backup", "o-1-domain_name": "127.0.0.2",
                         "g-rows": "1", "g-0-original": "", "g-0-group_id": "failover", "g-0-primary_origin_id": "web",
                         "g-0-secondary_origin_id": "backup", "g-0-failover_status_codes": "500, 503",
                         "b-0-target_origin_id": "failover"})
    refused = client.post("/dashboard/distributions/new/", {**with_group, "g-0-secondary_origin_id": "nowhere"})
    assert refused.status_code == 400
    body = refused.content.decode()
    after = body[body.index('id="g-0-secondary_origin_id"'):][:400]
    assert 'class="errors"' in after and 'value="nowhere"' in body and 'value="500, 503"' in body
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post("/dashboard/distributions/new/", with_group)
    assert made.status_code == 302, made.content.decode()[:2000]
    group = Distribution.objects.get().origin_groups.get()
    assert (group.group_id, group.primary_origin_id, group.secondary_origin_id) == ("failover", "web", "backup")
    assert group.failover_status_codes == [500, 503]
    assert Distribution.objects.get().cache_behaviors.get().target_origin_id == "failover"
