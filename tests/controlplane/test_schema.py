from __future__ import annotations

import pytest
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
