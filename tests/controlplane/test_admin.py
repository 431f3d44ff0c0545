"""The admin applies the same rules as the API, and publishes a version on save."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.forms import PasswordInput
from django.test import Client
from rest_framework.test import APIClient

from distributions import services
from distributions.models import CachePolicy, ConfigVersion, Distribution, EdgeNode, Invalidation

from .conftest import MINIMAL, minimal

pytestmark = pytest.mark.django_db

CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"


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


# ---- Invalidations ----

INVALIDATION_ADD = "/admin/distributions/invalidation/add/"


def add_invalidation(admin_client: Client, distribution_id: str, paths: str, caller_reference: str = "",
                     tags: str = "") -> Any:
    return admin_client.post(INVALIDATION_ADD, {"distribution": distribution_id, "paths": paths, "tags": tags,
                                                "caller_reference": caller_reference}, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def named_ids(response: Any) -> list[str]:
    return re.findall(r"\bI[A-Z0-9]{13}\b", " ".join(messages_of(response)))


def test_adding_an_invalidation_names_the_stored_id_the_api_answers_for(
        admin_client: Client, api: APIClient, created: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any) -> None:
    sent: list[str] = []
    monkeypatch.setattr(services.invalidations, "invalidation_created_hooks", [lambda invalidation: sent.append(invalidation.id)])
    with django_capture_on_commit_callbacks(execute=True):
        response = add_invalidation(admin_client, created["id"], "/index.html\r\n\r\n  /img/*  \r\n")
    assert response.status_code == 200
    [named] = named_ids(response)
    answer = api.get(f"/api/v1/distributions/{created['id']}/invalidations/{named}/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["paths"] == ["/index.html", "/img/*"]
    assert sent == [named]  # created by the service: its after-commit hook ran for this invalidation


def test_a_blank_caller_reference_is_generated_as_the_api_does(admin_client: Client, created: dict[str, Any]) -> None:
    add_invalidation(admin_client, created["id"], "/a")
    assert re.fullmatch(r"[0-9a-f]{32}", Invalidation.objects.get().caller_reference)


@pytest.mark.parametrize(("paths", "tags", "field", "words"), [
    ("index.html", "", "paths", "must start with '/'"),
    ("/a b", "", "paths", "contains spaces or control characters"),
    ("", "", "paths", "an invalidation needs at least one path or tag"),
    ("/a", "", "distribution", "This field is required"),
])
def test_it_refuses_a_bad_invalidation_by_the_field_like_the_api(
        admin_client: Client, created: dict[str, Any], paths: str, tags: str, field: str, words: str) -> None:
    distribution = "" if field == "distribution" else created["id"]
    response = add_invalidation(admin_client, distribution, paths, tags=tags)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field]), errors
    assert 'name="paths"' in response.content.decode()  # the form is shown again with what was typed
    assert not Invalidation.objects.exists()


def test_a_caller_reference_reused_with_other_paths_is_refused_by_the_field(
        admin_client: Client, created: dict[str, Any]) -> None:
    first = add_invalidation(admin_client, created["id"], "/a", caller_reference="deploy-7")
    [first_id] = named_ids(first)
    response = add_invalidation(admin_client, created["id"], "/b", caller_reference="deploy-7")
    errors = response.context["adminform"].form.errors
    assert f"was already used for invalidation {first_id}" in " ".join(errors.get("caller_reference", [])), errors
    assert Invalidation.objects.count() == 1


def test_a_caller_reference_reused_with_the_same_paths_names_the_earlier_invalidation(
        admin_client: Client, created: dict[str, Any]) -> None:
    [first_id] = named_ids(add_invalidation(admin_client, created["id"], "/a", caller_reference="deploy-8"))
    again = add_invalidation(admin_client, created["id"], "/a", caller_reference="deploy-8")
    assert set(named_ids(again)) == {first_id}
    assert any("was used before" in message for message in messages_of(again))
    assert Invalidation.objects.count() == 1


def test_an_invalidation_cannot_be_edited_after_creation(admin_client: Client, created: dict[str, Any]) -> None:
    add_invalidation(admin_client, created["id"], "/a")
    invalidation = Invalidation.objects.get()
    url = f"/admin/distributions/invalidation/{invalidation.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "/a" in page.content.decode() and 'name="paths"' not in page.content.decode()
    refused = admin_client.post(url, {"distribution": created["id"], "paths": "/changed", "caller_reference": "x"})
    assert refused.status_code == 403
    invalidation.refresh_from_db()
    assert invalidation.paths == ["/a"]


# ---- Edges ----

def test_the_fields_the_fleet_protocol_owns_are_read_only_on_an_edge(admin_client: Client) -> None:
    edge, _ = services.edge_register(name="fra-1", pop="fra", url="http://127.0.0.1:9081")
    url = f"/admin/distributions/edgenode/{edge.pk}/change/"
    page = admin_client.get(url).content.decode()
    owned = ("invalidation_seq", "applied_version", "applied_at", "last_seen", "last_error", "healthy", "token_hash")
    for field in owned:
        assert f'name="{field}"' not in page, field
    response = admin_client.post(url, {"name": "fra-1", "pop": "fr2", "url": "http://127.0.0.1:9081",
                                       "invalidation_seq": 999, "applied_version": 999, "healthy": "on",
                                       "token_hash": "0" * 64})
    assert response.status_code == 302
    edge.refresh_from_db()
    assert edge.pop == "fr2"  # the form was accepted...
    assert (edge.invalidation_seq, edge.applied_version, edge.healthy) == (0, 0, False)  # ...without these
    assert edge.token_hash != "0" * 64


# ---- Writes go through the services, as the API's do ----

def as_posted(page: Any) -> dict[str, Any]:
    """What a browser sends back from an admin change page when nothing is changed."""
    context = page.context
    forms = [context["adminform"].form]
    for inline_admin_formset in context["inline_admin_formsets"]:
        formset = inline_admin_formset.formset
        forms += [formset.management_form, *formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for name, field in form.fields.items():
            if isinstance(field.widget, PasswordInput) and not field.widget.render_value:
                continue  # not in the page, so not sent back
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def deployed_everywhere(created: dict[str, Any]) -> EdgeNode:
    """One healthy edge that runs the newest version, so the distribution reads Deployed."""
    edge, _ = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:1")
    EdgeNode.objects.filter(pk=edge.pk).update(healthy=True, applied_version=ConfigVersion.objects.get().version)
    return edge


@pytest.mark.parametrize("through", ["api", "admin"])
def test_a_change_publishes_a_version_and_goes_in_progress_in_the_admin_as_in_the_api(
        through: str, admin_client: Client, api: APIClient, created: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any) -> None:
    deployed_everywhere(created)
    assert api.get(f"/api/v1/distributions/{created['id']}/").json()["status"] == "Deployed"
    pushed: list[int] = []
    monkeypatch.setattr(services.publishing, "version_published_hooks", [lambda version: pushed.append(version.version)])
    with django_capture_on_commit_callbacks(execute=True):
        if through == "api":
            response = api.patch(f"/api/v1/distributions/{created['id']}/", {"default_root_object": "home.html"},
                                 format="json", HTTP_IF_MATCH=f'"{created["etag"]}"')
            assert response.status_code == 200, response.json()
        else:
            url = f"/admin/distributions/distribution/{created['id']}/change/"
            data = dict(as_posted(admin_client.get(url)), default_root_object="home.html")
            response = admin_client.post(url, data)
            assert response.status_code == 302, response.content.decode()[:3000]
    newest = ConfigVersion.objects.order_by("-version").first()
    assert newest is not None and newest.version == 2 and pushed == [2]  # the service's after-commit hook ran
    assert newest.reason == f"distribution {created['id']} updated"
    [compiled] = newest.document["distributions"]
    assert compiled["default_root_object"] == "home.html"
    after = api.get(f"/api/v1/distributions/{created['id']}/").json()
    assert after["status"] == "InProgress" and after["config_version"] == 2
    assert after["etag"] != created["etag"]
    # Everything else is as it was: the parts went through the service unchanged, the owner stays.
    for key in ("aliases", "origins", "origin_groups", "cache_behaviors", "custom_error_responses", "owner"):
        assert after[key] == created[key], key


def test_creating_in_the_admin_gives_the_distribution_to_the_owner_chosen(
        admin_client: Client, staff: User, alice: User, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        data = dict(form(staff, [behavior(0, "*")]), owner=alice.pk)
        assert admin_client.post("/admin/distributions/distribution/add/", data).status_code == 302
    distribution = Distribution.objects.get()
    assert distribution.owner == alice
    assert distribution.config_version == ConfigVersion.objects.get().version == 1


def test_an_alias_the_service_refuses_is_a_form_error_with_the_services_words(
        admin_client: Client, staff: User, created: dict[str, Any]) -> None:
    data = form(staff, [behavior(0, "*")])
    data.update(inline("alias_set", [{"name": "WWW.example.test"}]))  # created's alias, in other letters
    response = admin_client.post("/admin/distributions/distribution/add/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert f"alias 'www.example.test' is already used by distribution {created['id']}" in " ".join(errors), errors
    assert "from the admin" in response.content.decode()  # the form is shown again with what was typed
    assert Distribution.objects.count() == 1 and ConfigVersion.objects.count() == 1


def test_changing_a_policy_in_use_in_the_admin_republishes_its_distributions(
        admin_client: Client, api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    policy = api.post("/api/v1/cache-policies/", {"name": "short", "default_ttl": 60}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        body = minimal(cache_behaviors=[{"path_pattern": "*", "target_origin_id": "web", "cache_policy": "short"}])
        made = api.post("/api/v1/distributions/", body, format="json").json()
    deployed_everywhere(made)
    url = f"/admin/distributions/cachepolicy/{policy['id']}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, dict(as_posted(admin_client.get(url)), default_ttl=120))
    assert response.status_code == 302, response.content.decode()[:3000]
    newest = ConfigVersion.objects.order_by("-version").first()
    assert newest is not None and newest.version == 2 and newest.reason == "cache policy short updated"
    assert newest.document["distributions"][0]["cache_behaviors"][0]["cache_policy"]["default_ttl"] == 120
    assert api.get(f"/api/v1/distributions/{made['id']}/").json()["status"] == "InProgress"


def test_a_policy_added_in_the_admin_belongs_to_whoever_added_it(admin_client: Client, staff: User) -> None:
    response = admin_client.post("/admin/distributions/cachepolicy/add/", {
        "name": "mine", "min_ttl": 0, "default_ttl": 5, "max_ttl": 100, "query_strings_behavior": "none",
        "query_strings": "[]", "headers_behavior": "none", "headers": "[]", "cookies_behavior": "none",
        "cookies": "[]"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert CachePolicy.objects.get(name="mine").owner == staff


def test_a_cache_policy_takes_its_freshness_options_in_the_admin_by_the_apis_rules(admin_client: Client) -> None:
    fields = {"min_ttl": 0, "default_ttl": 5, "max_ttl": 100, "query_strings_behavior": "none", "query_strings": "[]",
              "headers_behavior": "none", "headers": "[]", "cookies_behavior": "none", "cookies": "[]"}
    refused = admin_client.post("/admin/distributions/cachepolicy/add/",
                                dict(fields, name="refused", cache_control_field="Cache-Control"))
    assert refused.status_code == 200 and "the edge already reads that field" in refused.content.decode()
    added = admin_client.post("/admin/distributions/cachepolicy/add/",
                              dict(fields, name="rfc", cache_control_field="Edge-Cache-Control", heuristic_freshness="on"))
    assert added.status_code == 302, added.content.decode()[:3000]
    stored = CachePolicy.objects.get(name="rfc")
    assert (stored.cache_control_field, stored.heuristic_freshness) == ("Edge-Cache-Control", True)


def test_a_managed_policy_cannot_be_changed_through_the_admin(admin_client: Client) -> None:
    url = f"/admin/distributions/cachepolicy/{CACHING_OPTIMIZED}/change/"
    response = admin_client.post(url, {"name": "CachingOptimized", "min_ttl": 0, "default_ttl": 1, "max_ttl": 1})
    assert response.status_code == 403
    assert CachePolicy.objects.get(pk=CACHING_OPTIMIZED).default_ttl == 86400


# ---- Edges are registered where their token can be handed out ----

def test_an_edge_cannot_be_added_in_the_admin_and_the_list_says_how_to_register_one(admin_client: Client) -> None:
    assert admin_client.get("/admin/distributions/edgenode/add/").status_code == 403
    refused = admin_client.post("/admin/distributions/edgenode/add/", {"name": "edge-x", "pop": "x",
                                                                       "url": "http://127.0.0.1:1"})
    assert refused.status_code == 403
    assert not EdgeNode.objects.exists()
    page = admin_client.get("/admin/distributions/edgenode/").content.decode()
    assert "/admin/distributions/edgenode/add/" not in page
    assert "manage.py edge_register" in page and "POST /api/v1/edges/" in page


def test_no_admin_page_shows_an_edges_token(admin_client: Client) -> None:
    edge, token = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:1")
    for url in ("/admin/distributions/edgenode/", f"/admin/distributions/edgenode/{edge.pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200 and "edge-fra" in page.content.decode()
        assert token not in page.content.decode()


def test_removing_an_edge_in_the_admin_releases_the_invalidations_that_waited_for_it(
        admin_client: Client, created: dict[str, Any]) -> None:
    fra, _ = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:1")
    iad, _ = services.edge_register(name="edge-iad", pop="iad", url="http://127.0.0.1:1")
    EdgeNode.objects.update(healthy=True)
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None, paths=["/a"],
                                                   tags=[], caller_reference=None)
    services.invalidation_ack(edge=fra, ids=[invalidation.seq])
    assert Invalidation.objects.get().status == "InProgress"  # iad has not acknowledged it
    response = admin_client.post(f"/admin/distributions/edgenode/{iad.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(EdgeNode.objects.values_list("name", flat=True)) == ["edge-fra"]
    assert Invalidation.objects.get().status == "Completed"


# ---- Invalidations are a history ----

def test_an_invalidation_cannot_be_deleted_in_the_admin(admin_client: Client, created: dict[str, Any]) -> None:
    add_invalidation(admin_client, created["id"], "/a")
    invalidation = Invalidation.objects.get()
    page = admin_client.get(f"/admin/distributions/invalidation/{invalidation.pk}/change/").content.decode()
    assert f"/admin/distributions/invalidation/{invalidation.pk}/delete/" not in page  # no delete button
    assert 'name="seq"' not in page  # the order the edges acknowledge is not editable either
    delete = f"/admin/distributions/invalidation/{invalidation.pk}/delete/"
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listing = admin_client.get("/admin/distributions/invalidation/").content.decode()
    assert "delete_selected" not in listing  # nor the bulk action
    bulk = admin_client.post("/admin/distributions/invalidation/", {"action": "delete_selected",
                                                                  "_selected_action": [invalidation.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert Invalidation.objects.filter(pk=invalidation.pk).exists()


# ---- S3 credentials are write-only in the admin too ----

S3_ORIGIN = {"origin_id": "bucket", "kind": "s3", "bucket": "assets", "region": "eu-west-1",
             "endpoint_url": "http://127.0.0.1:9000", "access_key_id": "AKIDEXAMPLE",
             "secret_access_key": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}


def test_an_s3_secret_is_never_rendered_and_a_blank_one_keeps_the_stored_one(
        admin_client: Client, api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        made = api.post("/api/v1/distributions/", minimal(origins=[MINIMAL["origins"][0], S3_ORIGIN]),
                        format="json").json()
    url = f"/admin/distributions/distribution/{made['id']}/change/"
    page = admin_client.get(url)
    assert S3_ORIGIN["secret_access_key"] not in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, dict(as_posted(page), comment="renamed in the admin"))
    assert response.status_code == 302, response.content.decode()[:3000]
    origin = Distribution.objects.get(pk=made["id"]).origins.get(origin_id="bucket")
    assert (origin.access_key_id, origin.secret_access_key) == (S3_ORIGIN["access_key_id"],
                                                                S3_ORIGIN["secret_access_key"])
    cleared = dict(as_posted(admin_client.get(url)))
    prefix = next(key for key, value in cleared.items() if value == "AKIDEXAMPLE").removesuffix("access_key_id")
    cleared[prefix + "access_key_id"] = ""
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url, cleared).status_code == 302
    assert not Distribution.objects.get(pk=made["id"]).origins.get(origin_id="bucket").has_credentials


# ---- Signed URLs and cookies ----


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_public_keys_and_key_groups_are_managed_in_the_admin_by_the_apis_rules(
        admin_client: Client, staff: User, django_capture_on_commit_callbacks: Any) -> None:
    from distributions.models import KeyGroup, PublicKey

    for name in ("publickey", "keygroup"):
        assert admin_client.get(f"/admin/distributions/{name}/").status_code == 200, name
    bad = admin_client.post("/admin/distributions/publickey/add/", {"name": "weak", "owner": staff.pk,
                                                                     "encoded_key": "not a key"})
    assert bad.status_code == 200 and "must be a PEM public key" in bad.content.decode()
    added = admin_client.post("/admin/distributions/publickey/add/", {"name": "signer", "owner": staff.pk,
                                                                        "encoded_key": _public_pem()})
    assert added.status_code == 302, added.content.decode()[:2000]
    key = PublicKey.objects.get()
    assert key.owner == staff and key.algorithm == "ECDSA P-256"
    grouped = admin_client.post("/admin/distributions/keygroup/add/", {"name": "signers", "owner": staff.pk,
                                                                       "public_keys": [key.pk]})
    assert grouped.status_code == 302, grouped.content.decode()[:2000]
    group = KeyGroup.objects.get()
    assert [k.pk for k in group.public_keys.all()] == [key.pk]
    # A key a group holds, and a group a behavior trusts, are not deletable.
    assert admin_client.post(f"/admin/distributions/publickey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    trusting = dict(behavior(0, "*"), trusted_key_groups=[str(group.pk)])
    with django_capture_on_commit_callbacks(execute=True):
        created = admin_client.post("/admin/distributions/distribution/add/", form(staff, [trusting]))
    assert created.status_code == 302, created.content.decode()[:3000]
    compiled = ConfigVersion.objects.order_by("-version").first()
    assert compiled is not None and compiled.document["schema_version"] == 2
    assert compiled.document["distributions"][0]["cache_behaviors"][0]["trusted_key_groups"] == [
        {"id": str(group.pk), "public_key_ids": [key.pk]}]
    assert admin_client.post(f"/admin/distributions/keygroup/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PublicKey.objects.filter(pk=key.pk).exists() and KeyGroup.objects.filter(pk=group.pk).exists()
