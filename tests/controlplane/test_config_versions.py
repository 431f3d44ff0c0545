"""The compiler and the versions it publishes: one per change, after commit, immutable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from cdncontract import signing
from distributions import crypto, selectors, services
from distributions.compiler import canonical_json, compile_document
from distributions.models import ConfigVersion, Distribution

from .conftest import minimal

pytestmark = pytest.mark.django_db

RICH = {
    "comment": "rich",
    "enabled": True,
    "aliases": ["www.rich.test", "*.rich.test", "assets.rich.test"],
    "default_root_object": "index.html",
    "origins": [
        {"origin_id": "web", "kind": "custom", "domain_name": "Web.Rich.Test", "origin_path": "/prod",
         "http_port": 8080, "https_port": 8443, "protocol_policy": "match-viewer", "connect_timeout": 5,
         "read_timeout": 20, "connection_attempts": 2,
         "custom_headers": [{"name": "X-From-Cdn", "value": "yes"}, {"name": "X-Shared", "value": "s3cr3t"}]},
        {"origin_id": "backup", "kind": "custom", "domain_name": "127.0.0.1", "http_port": 8091,
         "protocol_policy": "http-only"},
        {"origin_id": "bucket", "kind": "s3", "bucket": "rich-assets", "region": "eu-west-1",
         "endpoint_url": "http://127.0.0.1:5000/", "access_key_id": "AKID", "secret_access_key": "SECRET"},
    ],
    "origin_groups": [{"group_id": "site", "primary_origin_id": "web", "secondary_origin_id": "backup",
                       "failover_status_codes": [504, 500, 502, 503]}],
    "cache_behaviors": [
        {"path_pattern": "/static/*", "target_origin_id": "bucket", "cache_policy": "CachingOptimized",
         "viewer_protocol_policy": "redirect-to-https", "compress": True},
        {"path_pattern": "/api/*", "target_origin_id": "web", "cache_policy": "CachingDisabled",
         "origin_request_policy": "AllViewer", "allowed_methods": "ALL", "viewer_protocol_policy": "https-only"},
        {"path_pattern": "*.js?", "target_origin_id": "site", "cache_policy": "CachingOptimized",
         "allowed_methods": "GET_HEAD_OPTIONS", "cached_methods": "GET_HEAD_OPTIONS"},
        {"path_pattern": "*", "target_origin_id": "site", "cache_policy": "CachingOptimized",
         "origin_request_policy": "CORS-S3Origin", "compress": True},
    ],
    "custom_error_responses": [{"error_code": 503, "error_caching_min_ttl": 0},
                               {"error_code": 404, "response_page_path": "/404.html", "response_code": 404}],
}

OPTIMIZED = {"id": "658327ea-f89d-4fab-a63d-7e88639e58f6", "name": "CachingOptimized", "min_ttl": 1,
             "default_ttl": 86400, "max_ttl": 31536000, "query_strings": {"behavior": "none", "names": []},
             "headers": {"behavior": "none", "names": []}, "cookies": {"behavior": "none", "names": []},
             "enable_gzip": True, "enable_brotli": True, "cache_control_field": "", "heuristic_freshness": False}
DISABLED = dict(OPTIMIZED, id="4135ea2d-6df8-44a3-9df3-4b5a84be39ad", name="CachingDisabled", min_ttl=0, default_ttl=0,
                max_ttl=0, enable_gzip=False, enable_brotli=False)
ALL_VIEWER = {"id": "216adef6-5c7f-47e4-b989-5492eafa07d3", "name": "AllViewer",
              "query_strings": {"behavior": "all", "names": []}, "headers": {"behavior": "all", "names": []},
              "cookies": {"behavior": "all", "names": []}}
CORS = {"id": "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf", "name": "CORS-S3Origin",
        "query_strings": {"behavior": "none", "names": []},
        "headers": {"behavior": "allowlist",
                    "names": ["access-control-request-headers", "access-control-request-method", "origin"]},
        "cookies": {"behavior": "none", "names": []}}
GET_HEAD = ["GET", "HEAD"]
GET_HEAD_OPTIONS = ["GET", "HEAD", "OPTIONS"]
ALL = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]


class _Sealed:
    """Equal to any sealed credentials object: its token is new on every seal."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and set(other) == {"sealed"} and isinstance(other["sealed"], str)

    def __repr__(self) -> str:
        return '{"sealed": <any token>}'


SEALED = _Sealed()


# An origin without TLS settings or secrets (docs/edge-config.md).
NO_TLS = {"ssl_protocols": ["TLSv1.2", "TLSv1.3"], "ca_bundle": "", "client_certificate": "",
          "secret_header_name": "", "secrets": None}


def expected_rich(distribution_id: str, version: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "version": version,
        "refuse_internal_origins": False,
        "distributions": [{
            "id": distribution_id,
            "domain_name": f"{distribution_id.lower()}.cdn.localhost",
            "aliases": ["*.rich.test", "assets.rich.test", "www.rich.test"],
            "default_root_object": "index.html",
            "origins": [
                {"id": "backup", "kind": "custom", "domain_name": "127.0.0.1", "origin_path": "", "http_port": 8091,
                 "https_port": 443, "protocol_policy": "http-only", "connect_timeout": 10, "read_timeout": 30,
                 "connection_attempts": 3, "custom_headers": [], "s3": None, **NO_TLS},
                {"id": "bucket", "kind": "s3", "domain_name": "rich-assets.s3.eu-west-1.amazonaws.com",
                 "origin_path": "", "http_port": 80, "https_port": 443, "protocol_policy": "match-viewer",
                 "connect_timeout": 10, "read_timeout": 30, "connection_attempts": 3, "custom_headers": [],
                 "s3": {"bucket": "rich-assets", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000",
                        "addressing_style": "path", "signing_behavior": "always", "signing_protocol": "sigv4",
                        "credentials": SEALED}, **NO_TLS},
                {"id": "web", "kind": "custom", "domain_name": "web.rich.test", "origin_path": "/prod",
                 "http_port": 8080, "https_port": 8443, "protocol_policy": "match-viewer", "connect_timeout": 5,
                 "read_timeout": 20, "connection_attempts": 2,
                 "custom_headers": [{"name": "X-From-Cdn", "value": "yes"}, {"name": "X-Shared", "value": "s3cr3t"}],
                 "s3": None, **NO_TLS},
            ],
            "origin_groups": [{"id": "site", "primary": "web", "secondary": "backup",
                               "failover_status_codes": [500, 502, 503, 504]}],
            "cache_behaviors": [
                {"path_pattern": "/static/*", "target": "bucket", "viewer_protocol_policy": "redirect-to-https",
                 "allowed_methods": GET_HEAD, "cached_methods": GET_HEAD, "compress": True,
                 "cache_policy": OPTIMIZED, "origin_request_policy": None},
                {"path_pattern": "/api/*", "target": "web", "viewer_protocol_policy": "https-only",
                 "allowed_methods": ALL, "cached_methods": GET_HEAD, "compress": False,
                 "cache_policy": DISABLED, "origin_request_policy": ALL_VIEWER},
                {"path_pattern": "*.js?", "target": "site", "viewer_protocol_policy": "allow-all",
                 "allowed_methods": GET_HEAD_OPTIONS, "cached_methods": GET_HEAD_OPTIONS, "compress": False,
                 "cache_policy": OPTIMIZED, "origin_request_policy": None},
                {"path_pattern": "*", "target": "site", "viewer_protocol_policy": "allow-all",
                 "allowed_methods": GET_HEAD, "cached_methods": GET_HEAD, "compress": True,
                 "cache_policy": OPTIMIZED, "origin_request_policy": CORS},
            ],
            "custom_error_responses": [
                {"error_code": 404, "response_page_path": "/404.html", "response_code": 404, "error_caching_min_ttl": 10},
                {"error_code": 503, "response_page_path": "", "response_code": None, "error_caching_min_ttl": 0},
            ],
        }],
    }


def create(api: APIClient, capture: Any, body: dict[str, Any]) -> dict[str, Any]:
    with capture(execute=True):
        response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_the_compiler_output_for_a_rich_distribution(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = create(api, django_capture_on_commit_callbacks, RICH)
    latest = ConfigVersion.objects.get()
    assert latest.document == expected_rich(made["id"], latest.version)
    assert "SECRET" not in json.dumps(latest.document) and "AKID" not in json.dumps(latest.document)


def test_the_compiler_is_deterministic(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    create(api, django_capture_on_commit_callbacks, RICH)
    create(api, django_capture_on_commit_callbacks, minimal())
    first = canonical_json(compile_document(selectors.distributions_for_compile(), 9))
    second = canonical_json(compile_document(list(reversed(list(selectors.distributions_for_compile()))), 9))
    assert first == second


def test_disabled_distributions_are_left_out_of_the_document(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = create(api, django_capture_on_commit_callbacks, minimal())
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/v1/distributions/{made['id']}/", {"enabled": False}, format="json", HTTP_IF_MATCH=made["etag"])
    latest = ConfigVersion.objects.order_by("-version").first()
    assert latest is not None and latest.document["distributions"] == []


def test_a_change_publishes_exactly_one_version_after_commit(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post("/api/v1/distributions/", minimal(), format="json")
        assert response.status_code == 201
        assert ConfigVersion.objects.count() == 0  # nothing before the commit
    for callback in callbacks:
        callback()
    assert ConfigVersion.objects.count() == 1
    version = ConfigVersion.objects.get()
    assert Distribution.objects.get(pk=response.json()["id"]).config_version == version.version


def test_several_changes_in_one_transaction_publish_one_version(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = create(api, django_capture_on_commit_callbacks, minimal())
    with django_capture_on_commit_callbacks(execute=True):
        services.config_changed("first", [made["id"]])
        services.config_changed("second", [made["id"]])
        Distribution.objects.filter(pk=made["id"]).update(default_root_object="home.html")
    assert ConfigVersion.objects.count() == 2


def test_a_change_the_edges_cannot_see_publishes_no_version(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = create(api, django_capture_on_commit_callbacks, minimal())
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/v1/distributions/{made['id']}/", {"comment": "only a comment"}, format="json",
                  HTTP_IF_MATCH=made["etag"])
    assert ConfigVersion.objects.count() == 1


def test_versions_increase_and_are_immutable(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = create(api, django_capture_on_commit_callbacks, minimal())
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/v1/distributions/{made['id']}/", {"default_root_object": "home.html"}, format="json",
                  HTTP_IF_MATCH=made["etag"])
    versions = list(ConfigVersion.objects.order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].document["version"] == 1 and versions[1].document["version"] == 2
    with pytest.raises(ValueError):
        versions[0].save()
    with pytest.raises(ValueError):
        versions[0].delete()


@override_settings(CDN_DOMAIN_SUFFIX="edge.example.net")
def test_generated_domains_use_the_configured_suffix(api: APIClient) -> None:
    made = api.post("/api/v1/distributions/", minimal(), format="json").json()
    assert made["domain_name"] == f"{made['id'].lower()}.edge.example.net"


def test_config_versions_are_staff_only(api: APIClient, staff_api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    create(api, django_capture_on_commit_callbacks, minimal())
    assert api.get("/api/v1/config-versions/").status_code == 403
    listed = staff_api.get("/api/v1/config-versions/").json()
    assert listed["count"] == 1 and listed["results"][0]["version"] == 1
    one = staff_api.get("/api/v1/config-versions/1/").json()
    assert one["reason"].startswith("distribution") and one["created_by"] == "alice"
    latest = staff_api.get("/api/v1/config-versions/latest/").json()
    assert latest["document"] == one["document"] and latest["document"]["version"] == 1


def test_latest_is_404_before_any_version(staff_api: APIClient) -> None:
    assert staff_api.get("/api/v1/config-versions/latest/").status_code == 404


def test_the_edge_agent_accepts_every_published_document_as_it_receives_it(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    """As pushed and pulled: the stored document with its credentials sealed for that edge."""
    from edgeagent.config import parse_document

    key = signing.signing_key("an edge token")
    create(api, django_capture_on_commit_callbacks, RICH)
    create(api, django_capture_on_commit_callbacks, minimal())
    for version in ConfigVersion.objects.all():
        received = json.loads(json.dumps(crypto.document_for_edge(version.document, key.hex())))
        parsed = parse_document(received, edge_key=key)
        assert parsed.version == version.version
    latest = ConfigVersion.objects.order_by("-version").first()
    assert latest is not None
    rich = parse_document(crypto.document_for_edge(latest.document, key.hex()), edge_key=key).find_distribution(
        "www.rich.test")
    assert rich is not None and rich.match_behavior("/app.js1").path_pattern == "*.js?"
    s3 = rich.origins["bucket"].s3
    assert s3 is not None and s3.credentials is not None
    assert (s3.credentials.access_key_id, s3.credentials.secret_access_key) == ("AKID", "SECRET")
