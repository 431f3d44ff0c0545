from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def url(created: dict[str, Any]) -> str:
    return f"/api/v1/distributions/{created['id']}/invalidations/"


def test_it_creates_an_invalidation_in_progress(api: APIClient, created: dict[str, Any]) -> None:
    response = api.post(url(created), {"paths": ["/index.html", "/img/*"], "caller_reference": "deploy-1"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("I") and len(body["id"]) == 14
    assert body["status"] == "InProgress" and body["completed_at"] is None
    assert body["paths"] == ["/index.html", "/img/*"] and body["tags"] == []
    assert body["distribution_id"] == created["id"]


def test_the_same_caller_reference_returns_the_same_invalidation(api: APIClient, created: dict[str, Any]) -> None:
    first = api.post(url(created), {"paths": ["/a"], "caller_reference": "ref"}, format="json")
    again = api.post(url(created), {"paths": ["/a"], "caller_reference": "ref"}, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert api.get(url(created)).json()["count"] == 1


def test_reusing_a_caller_reference_for_other_paths_is_a_conflict(api: APIClient, created: dict[str, Any]) -> None:
    first = api.post(url(created), {"paths": ["/a"], "caller_reference": "ref"}, format="json").json()
    response = api.post(url(created), {"paths": ["/b"], "caller_reference": "ref"}, format="json")
    assert response.status_code == 409
    assert response.json()["invalidation"] == first["id"]


def test_it_accepts_tags(api: APIClient, created: dict[str, Any]) -> None:
    response = api.post(url(created), {"tags": ["product-42", "images"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tags"] == ["product-42", "images"]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"paths": ["index.html"]}, "paths", "must start with '/'"),
    ({"paths": []}, "paths", "at least one path or tag"),
    ({}, "paths", "at least one path or tag"),
    ({"paths": ["/a b"]}, "paths", "spaces"),
    ({"tags": ["two words"]}, "tags", "without spaces"),
    ({"paths": "/a"}, "paths", "list"),
    ({"paths": ["/a/../../x"]}, "paths", "climbs above the root"),
    ({"paths": ["/a%2Fb"]}, "paths", "%2F"),
    ({"paths": ["/%zz"]}, "paths", "percent-encoding"),
])
def test_it_refuses_bad_paths_and_tags(api: APIClient, created: dict[str, Any], body: dict[str, Any], field: str,
                                       words: str) -> None:
    response = api.post(url(created), body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field])


def test_it_keeps_paths_as_entered_that_the_edge_matches_normalised(
        api: APIClient, created: dict[str, Any]) -> None:
    response = api.post(url(created), {"paths": ["/a/../x", "/%78"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["paths"] == ["/a/../x", "/%78"]


def test_it_lists_and_retrieves_invalidations(api: APIClient, created: dict[str, Any]) -> None:
    made = api.post(url(created), {"paths": ["/x"]}, format="json").json()
    listed = api.get(url(created)).json()
    assert [item["id"] for item in listed["results"]] == [made["id"]]
    assert api.get(f"{url(created)}{made['id']}/").json()["paths"] == ["/x"]


def test_another_users_invalidations_are_not_found(bob_api: APIClient, api: APIClient, created: dict[str, Any]) -> None:
    made = api.post(url(created), {"paths": ["/x"]}, format="json").json()
    assert bob_api.get(url(created)).status_code == 404
    assert bob_api.post(url(created), {"paths": ["/x"]}, format="json").status_code == 404
    assert bob_api.get(f"{url(created)}{made['id']}/").status_code == 404
