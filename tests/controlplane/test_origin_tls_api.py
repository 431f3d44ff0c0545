"""HTTPS to origins and the secret origin header in the API and the admin, and CDN_REFUSE_INTERNAL_ORIGINS.

The client key and the secret header's value are write-only: never returned, encrypted at
rest and in stored config versions, sealed for each edge like the S3 credentials.
"""

from __future__ import annotations

from typing import Any

import pytest
import trustme
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from cdncontract import sealing
from cdncontract.errors import ContractError
from cdncontract.signing import signing_key
from distributions import crypto, selectors
from distributions.models import ConfigVersion, Origin
from edgeagent.config import parse_document

from .conftest import minimal

pytestmark = pytest.mark.django_db

HEADER_SECRET = "only-the-cdn-knows-this-0xC0FFEE"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_pems(ca: trustme.CA) -> tuple[str, str]:
    leaf = ca.issue_cert("edge-client.example")
    return "".join(b.bytes().decode() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes().decode()


def with_origin(**fields: Any) -> dict[str, Any]:
    origin = {"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1", "http_port": 8090,
              "protocol_policy": "https-only", **fields}
    return minimal(origins=[origin])


def post(api: APIClient, capture: Any, body: dict[str, Any]) -> Any:
    with capture(execute=True):
        return api.post("/api/v1/distributions/", body, format="json")


def key_line(key: str) -> str:
    return key.splitlines()[1]  # a line of the key's base64 body


def assert_no_secret(text: str, key: str) -> None:
    assert HEADER_SECRET not in text and key_line(key) not in text


def stored_columns(origin_pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_key, secret_header_value FROM distributions_origin WHERE id = %s", [origin_pk])
        row = cursor.fetchone()
    return row[0], row[1]


# ---- TLS settings ----

def test_an_origin_has_tls_settings_that_reach_the_document(
        api: APIClient, django_capture_on_commit_callbacks: Any, ca: trustme.CA) -> None:
    bundle = ca.cert_pem.bytes().decode()
    made = post(api, django_capture_on_commit_callbacks, with_origin(ssl_protocols=["TLSv1.3"], ca_bundle=bundle))
    assert made.status_code == 201, made.json()
    origin = made.json()["origins"][0]
    assert origin["ssl_protocols"] == ["TLSv1.3"] and origin["ca_bundle"] == bundle
    assert origin["has_client_key"] is False and origin["has_secret_header_value"] is False
    doc_origin = selectors.config_version_latest().document["distributions"][0]["origins"][0]
    assert doc_origin["ssl_protocols"] == ["TLSv1.3"] and doc_origin["ca_bundle"] == bundle
    assert doc_origin["secrets"] is None


@pytest.mark.parametrize("fields, field", [
    ({"ssl_protocols": ["SSLv3"]}, "ssl_protocols"),
    ({"ssl_protocols": []}, "ssl_protocols"),
    ({"ca_bundle": "not a certificate"}, "ca_bundle"),
    ({"client_certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
      "client_key": "x"}, "client_certificate"),
    ({"secret_header_name": "X-Origin-Verify"}, "secret_header_value"),
    ({"secret_header_name": "Host", "secret_header_value": HEADER_SECRET}, "secret_header_name"),
])
def test_bad_tls_or_secret_header_input_is_a_field_error(
        fields: dict[str, Any], field: str, api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    response = post(api, django_capture_on_commit_callbacks, with_origin(**fields))
    assert response.status_code == 400
    errors = response.json()
    assert field in str(errors), errors
    assert HEADER_SECRET not in str(errors)


def test_a_client_key_that_does_not_match_its_certificate_is_refused_without_echoing_it(
        api: APIClient, django_capture_on_commit_callbacks: Any, ca: trustme.CA, client_pems: tuple[str, str]) -> None:
    other_key = ca.issue_cert("other.example").private_key_pem.bytes().decode()
    response = post(api, django_capture_on_commit_callbacks,
                    with_origin(client_certificate=client_pems[0], client_key=other_key))
    assert response.status_code == 400
    assert "does not belong to the client certificate" in str(response.json())
    assert key_line(other_key) not in response.content.decode()


# ---- Write-only secrets ----

def test_the_client_key_and_secret_header_value_never_come_back_and_are_encrypted(
        api: APIClient, staff_api: APIClient, django_capture_on_commit_callbacks: Any,
        client_pems: tuple[str, str]) -> None:
    chain, key = client_pems
    made = post(api, django_capture_on_commit_callbacks, with_origin(
        client_certificate=chain, client_key=key,
        secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET))
    assert made.status_code == 201, made.json()
    assert_no_secret(made.content.decode(), key)
    origin = made.json()["origins"][0]
    assert origin["has_client_key"] is True and origin["has_secret_header_value"] is True
    assert origin["secret_header_name"] == "X-Origin-Verify"
    assert not {"client_key", "secret_header_value"} & set(origin)
    version = selectors.latest_version_number()
    for reader, url in ((api, f"/api/v1/distributions/{made.json()['id']}/"), (api, "/api/v1/distributions/"),
                        (staff_api, "/api/v1/config-versions/"), (staff_api, f"/api/v1/config-versions/{version}/")):
        response = reader.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response.content.decode(), key)
    row = Origin.objects.get(distribution_id=made.json()["id"])
    assert (row.client_key, row.secret_header_value) == (key, HEADER_SECRET)
    at_rest = stored_columns(row.pk)
    assert_no_secret(" ".join(at_rest), key)
    assert crypto.decrypt(at_rest[1]) == HEADER_SECRET
    stored = ConfigVersion.objects.latest("version").document
    assert_no_secret(str(stored), key)
    opened = crypto.open_document(stored)["distributions"][0]["origins"][0]
    assert opened["secrets"] == {"client_key": key, "secret_header_value": HEADER_SECRET}


def test_each_edge_receives_the_secrets_sealed_for_it(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    post(api, django_capture_on_commit_callbacks, with_origin(
        secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET))
    stored = ConfigVersion.objects.latest("version").document
    key = signing_key("an-edge-token")
    for_edge = crypto.document_for_edge(stored, key.hex())
    sealed = for_edge["distributions"][0]["origins"][0]["secrets"]
    assert HEADER_SECRET not in str(for_edge)
    assert sealing.unseal(sealed, sealing.edge_fernet(key), sealing.ORIGIN_SECRET_FIELDS)["secret_header_value"] \
        == HEADER_SECRET
    with pytest.raises(ContractError):
        sealing.unseal(sealed, sealing.edge_fernet(signing_key("another-edge")), sealing.ORIGIN_SECRET_FIELDS)
    parsed = parse_document(for_edge, edge_key=key)  # what the edge makes of it
    origin = next(iter(parsed.distributions.values())).origins["web"]
    assert origin.custom_headers[-1] == ("X-Origin-Verify", HEADER_SECRET)
    assert HEADER_SECRET not in repr(origin)


def test_a_write_without_the_secrets_keeps_them_and_an_empty_one_removes_it(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = post(api, django_capture_on_commit_callbacks, with_origin(
        secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET)).json()
    url = f"/api/v1/distributions/{made['id']}/"
    read = api.get(url)
    before = selectors.latest_version_number()
    with django_capture_on_commit_callbacks(execute=True):
        same = api.put(url, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert same.status_code == 200, same.json()
    assert Origin.objects.get(distribution_id=made["id"]).secret_header_value == HEADER_SECRET
    assert selectors.latest_version_number() == before  # the same secret: the same document
    origin = dict(same.json()["origins"][0], secret_header_name="", secret_header_value="")
    with django_capture_on_commit_callbacks(execute=True):
        cleared = api.patch(url, {"origins": [origin]}, format="json", HTTP_IF_MATCH=same["ETag"])
    assert cleared.status_code == 200, cleared.json()
    stored = Origin.objects.get(distribution_id=made["id"])
    assert (stored.secret_header_name, stored.secret_header_value) == ("", "")
    assert selectors.latest_version_number() == before + 1


def test_the_admin_never_renders_the_secrets_and_keeps_them_when_left_blank(
        staff_api: APIClient, django_capture_on_commit_callbacks: Any, staff: Any,
        client_pems: tuple[str, str]) -> None:
    from tests.controlplane.test_admin import as_posted

    chain, key = client_pems
    made = post(staff_api, django_capture_on_commit_callbacks, with_origin(
        client_certificate=chain, client_key=key,
        secret_header_name="X-Origin-Verify", secret_header_value=HEADER_SECRET)).json()
    admin = Client()
    admin.force_login(staff)
    url = f"/admin/distributions/distribution/{made['id']}/change/"
    page = admin.get(url)
    assert "secret_header_name" in page.content.decode()
    assert_no_secret(page.content.decode(), key)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(url, dict(as_posted(page), comment="renamed in the admin"))
    assert response.status_code == 302, response.content.decode()[:3000]
    origin = Origin.objects.get(distribution_id=made["id"])
    assert (origin.client_key, origin.secret_header_value) == (key, HEADER_SECRET)


# ---- Origins in the operator's network ----

@pytest.mark.parametrize("host, klass", [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),
    ("169.254.169.254", "link-local"),
    ("10.1.2.3", "private"),
    ("192.168.0.10", "private"),
    ("0.0.0.0", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("fd12::1", "private"),
    ("fe80::1", "link-local"),
])
def test_with_the_setting_on_an_internal_origin_is_a_field_error(
        host: str, klass: str, api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    settings.CDN_REFUSE_INTERNAL_ORIGINS = True
    response = post(api, django_capture_on_commit_callbacks, with_origin(domain_name=host))
    assert response.status_code == 400
    errors = response.json()
    assert "domain_name" in str(errors) and f"is a {klass} address" in str(errors), errors


def test_with_the_setting_on_a_public_origin_is_saved_and_the_edges_are_told(
        api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    settings.CDN_REFUSE_INTERNAL_ORIGINS = True
    response = post(api, django_capture_on_commit_callbacks, with_origin(domain_name="93.184.215.14"))
    assert response.status_code == 201, response.json()
    assert selectors.config_version_latest().document["refuse_internal_origins"] is True


def test_with_the_setting_on_an_s3_endpoint_in_the_network_is_a_field_error(
        api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    settings.CDN_REFUSE_INTERNAL_ORIGINS = True
    body = minimal(origins=[{"origin_id": "web", "kind": "s3", "bucket": "assets",
                             "endpoint_url": "http://169.254.169.254:9000"}])
    response = post(api, django_capture_on_commit_callbacks, body)
    assert response.status_code == 400
    assert "endpoint_url" in str(response.json()) and "link-local" in str(response.json())


def test_with_the_setting_off_loopback_origins_are_saved(
        api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    settings.CDN_REFUSE_INTERNAL_ORIGINS = False
    response = post(api, django_capture_on_commit_callbacks, with_origin(domain_name="127.0.0.1"))
    assert response.status_code == 201
    assert selectors.config_version_latest().document["refuse_internal_origins"] is False
