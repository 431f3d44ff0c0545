"""An origin request policy cannot forward what the edge never forwards or forwards only
in the cache key (cdncontract/headers.py; CloudFront answers 400 for Authorization)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def policy(*names: str) -> dict[str, object]:
    return {"name": "p", "query_strings": {"behavior": "none"}, "cookies": {"behavior": "none"},
            "headers": {"behavior": "allowlist", "names": list(names)}}


@pytest.mark.parametrize(("name", "words"), [
    ("Authorization", "only when the cache policy puts it in the cache key"),
    ("X-Forwarded-Host", "only when the cache policy puts it in the cache key"),
    ("X-HTTP-Method-Override", "never forwarded"),
    ("Connection", "never forwarded"),
    ("X-Edge-Secret", "never forwarded"),
])
def test_an_allowlist_naming_a_header_the_edge_will_not_forward_is_a_field_error(
        api: APIClient, name: str, words: str) -> None:
    response = api.post("/api/v1/origin-request-policies/", policy("origin", name), format="json")
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["headers"])
    assert name.lower() in " ".join(response.json()["headers"])


def test_an_allowlist_of_ordinary_headers_is_accepted(api: APIClient) -> None:
    response = api.post("/api/v1/origin-request-policies/", policy("Origin", "X-Device"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["headers"]["names"] == ["origin", "x-device"]


def test_a_denylist_may_name_them_since_they_are_not_forwarded_through_it_anyway(api: APIClient) -> None:
    body = dict(policy(), headers={"behavior": "denylist", "names": ["authorization", "x-forwarded-host"]})
    assert api.post("/api/v1/origin-request-policies/", body, format="json").status_code == 201
