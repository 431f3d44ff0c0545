"""Public keys and key groups for signed URLs and cookies, and cache behaviors that trust them.

Keys are checked at upload (PEM, RSA of 2048 bits or more, or EC P-256) with errors naming
the field; users see only their own keys and groups (staff all); a key in a group and a group
a behavior trusts cannot be deleted; what a behavior trusts reaches the edge document, which
the edge parses, and then the document is schema 2.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from rest_framework.test import APIClient

from distributions.models import ConfigVersion, KeyGroup, PublicKey
from edgeagent.config import parse_document

from .conftest import minimal

pytestmark = pytest.mark.django_db


def pem(private: Any) -> str:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_PEM = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PEM = pem(ec.generate_private_key(ec.SECP256R1()))


def upload(api: APIClient, name: str = "signer", key: str = RSA_PEM) -> dict[str, Any]:
    response = api.post("/api/v1/public-keys/", {"name": name, "encoded_key": key, "comment": "c"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def group(api: APIClient, *key_ids: str, name: str = "signers") -> dict[str, Any]:
    response = api.post("/api/v1/key-groups/", {"name": name, "public_keys": list(key_ids)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def private_distribution(api: APIClient, group_id: str, capture: Any) -> dict[str, Any]:
    body = minimal()
    body["cache_behaviors"].insert(0, {"path_pattern": "/private/*", "target_origin_id": "web",
                                       "cache_policy": "CachingOptimized", "trusted_key_groups": [group_id]})
    with capture(execute=True):
        response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_uploads_rsa_and_ecdsa_public_keys(api: APIClient) -> None:
    rsa_key = upload(api)
    assert rsa_key["id"].startswith("K") and len(rsa_key["id"]) == 14
    assert rsa_key["algorithm"] == "RSA" and rsa_key["owner"] == "alice" and rsa_key["key_groups"] == []
    assert rsa_key["encoded_key"] == RSA_PEM
    assert upload(api, "p256", EC_PEM)["algorithm"] == "ECDSA P-256"


@pytest.mark.parametrize(("key", "words"), [
    (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048 are required"),
    (pem(ec.generate_private_key(ec.SECP384R1())), "only P-256"),
    ("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "must be a PEM public key"),
    (rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
     "is a private key"),
])
def test_it_refuses_a_bad_public_key_and_names_the_field(api: APIClient, key: str, words: str) -> None:
    response = api.post("/api/v1/public-keys/", {"name": "bad", "encoded_key": key}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["encoded_key"]
    assert words in response.json()["encoded_key"][0]


def test_a_public_key_keeps_its_key_but_not_its_name(api: APIClient) -> None:
    key = upload(api)
    renamed = api.patch(f"/api/v1/public-keys/{key['id']}/", {"name": "renamed"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    changed = api.patch(f"/api/v1/public-keys/{key['id']}/", {"encoded_key": EC_PEM}, format="json")
    assert changed.status_code == 409
    assert "cannot be changed" in changed.json()["detail"]
    assert api.post("/api/v1/public-keys/", {"name": "renamed", "encoded_key": EC_PEM},
                    format="json").status_code == 409


def test_a_key_group_holds_one_to_five_of_the_users_own_keys(api: APIClient, bob_api: APIClient) -> None:
    keys = [upload(api, f"k{i}")["id"] for i in range(6)]
    assert api.post("/api/v1/key-groups/", {"name": "none", "public_keys": []},
                    format="json").json()["public_keys"]
    too_many = api.post("/api/v1/key-groups/", {"name": "six", "public_keys": keys}, format="json")
    assert too_many.status_code == 400 and "public_keys" in too_many.json()
    created = group(api, *keys[:2])
    assert created["public_keys"] == sorted(keys[:2]) and created["owner"] == "alice"
    bobs = bob_api.post("/api/v1/key-groups/", {"name": "stolen", "public_keys": [keys[0]]}, format="json")
    assert bobs.status_code == 400
    assert "no public key" in str(bobs.json()["public_keys"])


def test_users_see_only_their_own_keys_and_groups_and_staff_see_all(api: APIClient, bob_api: APIClient,
                                                                    staff_api: APIClient) -> None:
    key = upload(api)
    made = group(api, key["id"])
    assert bob_api.get("/api/v1/public-keys/").json()["results"] == []
    assert bob_api.get("/api/v1/key-groups/").json()["results"] == []
    assert bob_api.get(f"/api/v1/public-keys/{key['id']}/").status_code == 404
    assert bob_api.delete(f"/api/v1/key-groups/{made['id']}/").status_code == 404
    assert [k["id"] for k in staff_api.get("/api/v1/public-keys/").json()["results"]] == [key["id"]]
    assert [g["id"] for g in staff_api.get("/api/v1/key-groups/").json()["results"]] == [made["id"]]


def test_a_behavior_trusting_a_group_reaches_the_edge_document(api: APIClient,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    rsa_key, ec_key = upload(api), upload(api, "p256", EC_PEM)
    made = group(api, rsa_key["id"], ec_key["id"])
    dist = private_distribution(api, made["id"], django_capture_on_commit_callbacks)
    assert dist["cache_behaviors"][0]["trusted_key_groups"] == [made["id"]]
    assert dist["cache_behaviors"][-1]["trusted_key_groups"] == []
    document = ConfigVersion.objects.order_by("-version").first()
    assert document is not None
    compiled = document.document
    assert compiled["schema_version"] == 2
    [served] = compiled["distributions"]
    assert [k["id"] for k in served["public_keys"]] == sorted([rsa_key["id"], ec_key["id"]])
    assert served["cache_behaviors"][0]["trusted_key_groups"] == [
        {"id": made["id"], "public_key_ids": sorted([rsa_key["id"], ec_key["id"]])}]
    assert "trusted_key_groups" not in served["cache_behaviors"][-1]
    edge = parse_document(compiled)
    signing = edge.distributions[dist["id"]].behaviors[0].signing
    assert signing is not None and set(signing.trusted) == {rsa_key["id"], ec_key["id"]}
    assert edge.distributions[dist["id"]].behaviors[-1].signing is None


def test_a_document_without_private_content_stays_schema_1(created: dict[str, Any]) -> None:
    document = ConfigVersion.objects.order_by("-version").first()
    assert document is not None and document.document["schema_version"] == 1
    assert "public_keys" not in document.document["distributions"][0]


def test_a_change_to_a_trusted_group_republishes_its_distributions(api: APIClient,
                                                                   django_capture_on_commit_callbacks: Any) -> None:
    first, second = upload(api), upload(api, "p256", EC_PEM)
    made = group(api, first["id"])
    private_distribution(api, made["id"], django_capture_on_commit_callbacks)
    before = ConfigVersion.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        changed = api.patch(f"/api/v1/key-groups/{made['id']}/", {"public_keys": [first["id"], second["id"]]},
                            format="json")
    assert changed.status_code == 200, changed.json()
    assert ConfigVersion.objects.count() == before + 1
    latest = ConfigVersion.objects.order_by("-version").first()
    assert latest is not None
    assert latest.document["distributions"][0]["cache_behaviors"][0]["trusted_key_groups"][0]["public_key_ids"] == \
        sorted([first["id"], second["id"]])


def test_a_key_in_a_group_and_a_group_in_use_cannot_be_deleted(api: APIClient,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    key = upload(api)
    made = group(api, key["id"])
    refused_key = api.delete(f"/api/v1/public-keys/{key['id']}/")
    assert refused_key.status_code == 409
    assert refused_key.json()["detail"] == (f"public key {key['id']} is in key group(s) signers: remove it from "
                                            "them before deleting it")
    dist = private_distribution(api, made["id"], django_capture_on_commit_callbacks)
    refused_group = api.delete(f"/api/v1/key-groups/{made['id']}/")
    assert refused_group.status_code == 409
    assert f"trusted by distribution(s) {dist['id']}" in refused_group.json()["detail"]
    assert KeyGroup.objects.filter(pk=made["id"]).exists() and PublicKey.objects.filter(pk=key["id"]).exists()


def test_a_behavior_may_trust_only_the_users_own_groups(api: APIClient, bob_api: APIClient) -> None:
    made = group(api, upload(api)["id"])
    body = minimal()
    body["cache_behaviors"][1]["trusted_key_groups"] = [made["id"]]
    response = bob_api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 400
    assert "no key group" in str(response.json()["cache_behaviors"])
    body["cache_behaviors"][1]["trusted_key_groups"] = ["not-a-uuid"]
    assert api.post("/api/v1/distributions/", body, format="json").status_code == 400


def test_per_key_request_counts_from_the_edges_reach_the_stats(api: APIClient, created: dict[str, Any]) -> None:
    from datetime import datetime, timezone

    from distributions import services

    from .test_fleet_api import edge_client, report

    _, token = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:9081")
    client = edge_client(token)
    start = int(datetime.now(timezone.utc).timestamp()) // 60 * 60 - 120
    for offset in (0, 10):
        signed = report(start + offset, created["id"], 3, 1)
        signed["distributions"][created["id"]]["signed_requests"] = {"K2JCJMDEHXQW5F": 2}
        assert client.post("/api/v1/edge/stats", signed, format="json").json() == {"accepted": True}
    stats = api.get(f"/api/v1/distributions/{created['id']}/stats/").json()
    assert stats["totals"]["requests"] == 6
    assert stats["totals"]["signed_requests"] == {"K2JCJMDEHXQW5F": 4}
    assert stats["series"][0]["signed_requests"] == {"K2JCJMDEHXQW5F": 4}
    bad = report(start + 20, created["id"], 3, 1)
    bad["distributions"][created["id"]]["signed_requests"] = {"not-a-key": 1}
    refused = client.post("/api/v1/edge/stats", bad, format="json")
    assert refused.status_code == 400
    assert "not a public key id" in str(refused.json())
