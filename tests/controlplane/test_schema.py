"""The OpenAPI schema and the interactive docs page, for logged-in and logged-out visitors."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_describes_every_endpoint(api: APIClient) -> None:
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in ("/api/v1/distributions/", "/api/v1/distributions/{id}/", "/api/v1/cache-policies/",
                 "/api/v1/origin-request-policies/", "/api/v1/distributions/{distribution_id}/invalidations/",
                 "/api/v1/edges/", "/api/v1/config-versions/", "/api/v1/config-versions/latest/"):
        assert path in paths, path
    distribution = schema["components"]["schemas"]["Distribution"]["properties"]
    assert {"origins", "cache_behaviors", "aliases", "etag", "status"} <= set(distribution)


def test_the_interactive_docs_page_is_served_without_external_assets(api: APIClient) -> None:
    response = api.get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "cdn.jsdelivr" not in page


def schema_of(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_marks_the_token_endpoint_as_needing_no_credentials(api: APIClient) -> None:
    operation = schema_of(api)["paths"]["/api/v1/auth/token/"]["post"]
    assert operation.get("security", [{}]) == [{}], operation.get("security")


def test_the_schema_still_marks_the_other_endpoints_as_needing_a_token(api: APIClient) -> None:
    operation = schema_of(api)["paths"]["/api/v1/distributions/"]["post"]
    assert {"tokenAuth": []} in operation["security"] and {} not in operation["security"]


def test_the_token_endpoint_ignores_a_stale_token_header(alice: User) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token revoked-long-ago")
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}, format="json")
    assert response.status_code == 200 and response.json()["token"]


def test_the_docs_page_sends_a_logged_out_visitor_to_log_in_and_back(alice: User) -> None:
    browser = Client()
    response = browser.get("/api/v1/docs/", HTTP_ACCEPT="text/html")
    assert response.status_code == 302
    login = urlsplit(response["Location"])
    assert login.path == resolve_url(settings.LOGIN_URL)
    assert parse_qs(login.query)["next"] == ["/api/v1/docs/"]
    assert browser.get(response["Location"]).status_code == 200  # the login page exists
    back = browser.post(response["Location"], {"username": "alice", "password": "alice-password-1",
                                               "next": "/api/v1/docs/"})
    assert back.status_code == 302 and back["Location"] == "/api/v1/docs/"
    page = browser.get("/api/v1/docs/")
    assert page.status_code == 200 and "swagger-ui" in page.content.decode()


def test_the_login_page_admits_a_user_who_is_not_staff(alice: User) -> None:
    browser = Client()
    browser.post(resolve_url(settings.LOGIN_URL), {"username": "alice", "password": "alice-password-1"})
    assert browser.get("/api/v1/distributions/").status_code == 200


def test_try_it_out_works_with_the_session_and_the_pages_csrf_token(alice: User, created: dict[str, Any]) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    page = browser.get("/api/v1/docs/").content.decode()
    token = re.search(r'request\.headers\["X-CSRFTOKEN"\] = "([^"]+)"', page)
    assert token is not None, "the docs page does not send a CSRF token with its requests"
    url = f"/api/v1/distributions/{created['id']}/invalidations/"
    body = json.dumps({"paths": ["/index.html"]})
    refused = browser.post(url, body, content_type="application/json")
    assert refused.status_code == 403  # the session alone is not enough: CSRF is enforced...
    accepted = browser.post(url, body, content_type="application/json", headers={"X-CSRFToken": token.group(1)})
    assert accepted.status_code == 201, accepted.content  # ...and the page's token is what makes it work


def test_the_schema_answers_a_logged_out_client_with_a_readable_401(db: Any) -> None:
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


def test_the_schema_documents_the_errors_each_operation_can_answer(api: APIClient) -> None:
    paths = schema_of(api)["paths"]
    responses = {(path, method): sorted(operation["responses"]) for path, operations in paths.items()
                 for method, operation in operations.items()}
    assert responses[("/api/v1/auth/token/", "post")] == ["200", "400", "415", "429"]  # no credentials to refuse
    assert responses[("/api/v1/distributions/{id}/", "patch")] == ["200", "400", "401", "403", "404", "409", "412",
                                                                  "415", "428"]
    assert responses[("/api/v1/distributions/{id}/", "get")] == ["200", "401", "404"]
    assert responses[("/api/v1/distributions/", "get")] == ["200", "401", "404"]  # ?page= past the end
    assert responses[("/api/v1/stats/", "get")] == ["200", "400", "401"]
    assert responses[("/api/v1/config-versions/latest/", "get")] == ["200", "401", "403", "404"]
    assert responses[("/api/v1/edges/{name}/", "delete")] == ["204", "401", "403", "404", "409"]
    error = paths["/api/v1/distributions/{id}/"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


def test_request_bodies_are_documented_as_json_only(api: APIClient) -> None:
    """A form cannot carry a distribution's nested origins and behaviors, so the schema offers JSON alone."""
    bodies = [operation["requestBody"] for operations in schema_of(api)["paths"].values()
              for operation in operations.values() if "requestBody" in operation]
    assert bodies and all(list(body["content"]) == ["application/json"] for body in bodies)


def test_a_config_version_before_any_is_published_is_a_documented_404(staff_api: APIClient) -> None:
    response = staff_api.get("/api/v1/config-versions/latest/")
    assert response.status_code == 404 and "detail" in response.json()
