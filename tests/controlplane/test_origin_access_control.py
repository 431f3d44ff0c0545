"""S3 origin access control: the settings, and credentials that are write-only, encrypted at
rest (columns and stored versions), re-encryptable, and delivered sealed for each edge."""

from __future__ import annotations

import io
import json
import logging
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from cdncontract import sealing
from cdncontract.signing import signing_key
from distributions import crypto, selectors, services
from distributions.checks import secret_keys_present
from distributions.models import ConfigVersion, Distribution, Origin

from .conftest import minimal

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue"
KEY_ID = "AKIDEXAMPLE"
BUCKET = {"origin_id": "bucket", "kind": "s3", "bucket": "private-assets", "region": "eu-west-1",
          "endpoint_url": "http://127.0.0.1:9000", "access_key_id": KEY_ID, "secret_access_key": SECRET,
          "session_token": SESSION}


def with_bucket(**origin: Any) -> dict[str, Any]:
    return minimal(origins=[dict(BUCKET, **origin)],
                   cache_behaviors=[{"path_pattern": "*", "target_origin_id": "bucket",
                                     "cache_policy": "CachingOptimized"}])


def post(api: APIClient, capture: Any, body: dict[str, Any]) -> Any:
    with capture(execute=True):
        return api.post("/api/v1/distributions/", body, format="json")


def assert_no_secret(text: str) -> None:
    assert SECRET not in text and SESSION not in text


def raw(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


# ---- The settings ----

def test_an_s3_origin_has_origin_access_control_settings(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = post(api, django_capture_on_commit_callbacks, with_bucket(signing_behavior="no-override",
                                                                     addressing_style="virtual",
                                                                     endpoint_url="https://s3.example.test"))
    assert made.status_code == 201, made.json()
    origin = made.json()["origins"][0]
    assert (origin["signing_behavior"], origin["signing_protocol"], origin["addressing_style"]) == (
        "no-override", "sigv4", "virtual")
    assert origin["has_credentials"] is True
    assert not {"access_key_id", "secret_access_key", "session_token"} & set(origin)
    s3 = crypto.open_document(selectors.config_version_latest().document)["distributions"][0]["origins"][0]["s3"]
    assert s3 == {"bucket": "private-assets", "region": "eu-west-1", "endpoint_url": "https://s3.example.test",
                  "addressing_style": "virtual", "signing_behavior": "no-override", "signing_protocol": "sigv4",
                  "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET, "session_token": SESSION}}


def test_signing_follows_the_credentials_unless_it_is_set(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    signed = post(api, django_capture_on_commit_callbacks, with_bucket())
    public = post(api, django_capture_on_commit_callbacks,
                  with_bucket(access_key_id="", secret_access_key="", session_token="", bucket="public-assets")
                  | {"aliases": ["public.example.test"]})
    assert signed.status_code == 201 and public.status_code == 201, public.json()
    document = crypto.open_document(selectors.config_version_latest().document)
    by_bucket = {d["origins"][0]["s3"]["bucket"]: d["origins"][0]["s3"] for d in document["distributions"]}
    assert by_bucket["private-assets"]["signing_behavior"] == "always"
    assert by_bucket["public-assets"]["signing_behavior"] == "never"
    assert by_bucket["public-assets"]["credentials"] is None


@pytest.mark.parametrize(("origin", "field", "words"), [
    ({"signing_behavior": "always", "access_key_id": "", "secret_access_key": "", "session_token": ""},
     "signing_behavior", "needs credentials"),
    ({"signing_behavior": "sometimes"}, "signing_behavior", "is not a valid choice"),
    ({"signing_protocol": "sigv2"}, "signing_protocol", "is not a valid choice"),
    ({"addressing_style": "virtual"}, "addressing_style", "not an IP address"),
    ({"addressing_style": "virtual", "endpoint_url": "https://s3.example.test", "bucket": "with.dots"},
     "addressing_style", "without '.'"),
    ({"access_key_id": "AKID/EXAMPLE"}, "access_key_id", "letters, digits"),
    ({"secret_access_key": SECRET + " with a space"}, "secret_access_key", "without spaces"),
    ({"session_token": SESSION + "\t"}, "session_token", "without spaces"),
    ({"access_key_id": ""}, "secret_access_key", "go together"),
])
def test_bad_access_control_is_a_field_error_that_never_repeats_a_secret(
        api: APIClient, origin: dict[str, Any], field: str, words: str) -> None:
    response = api.post("/api/v1/distributions/", with_bucket(**origin), format="json")
    assert response.status_code == 400
    errors = response.json()["origins"]["0"]
    assert field in errors and words in " ".join(errors[field]), errors
    assert_no_secret(response.content.decode())


def test_a_custom_origin_takes_no_signing_behavior(api: APIClient) -> None:
    body = minimal(origins=[dict(minimal()["origins"][0], signing_behavior="always")])
    response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 400
    assert response.json()["origins"]["0"]["signing_behavior"] == ["signing_behavior is only for s3 origins"]


# ---- Write-only, never logged ----

def test_credentials_are_never_in_an_answer_or_a_log_even_when_another_field_is_refused(
        api: APIClient, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refused = api.post("/api/v1/distributions/", with_bucket(origin_path="no-leading-slash"), format="json")
    assert refused.status_code == 400 and "origin_path" in refused.json()["origins"]["0"]
    refused_behaviors = api.post("/api/v1/distributions/", dict(with_bucket(), cache_behaviors=[]), format="json")
    assert refused_behaviors.status_code == 400
    made = post(api, django_capture_on_commit_callbacks, with_bucket())
    url = f"/api/v1/distributions/{made.json()['id']}/"
    read = api.get(url)
    stale = api.put(url, read.json(), format="json", HTTP_IF_MATCH='"stale"')
    assert stale.status_code == 412
    for answer in (refused, refused_behaviors, made, read, stale, api.get("/api/v1/distributions/")):
        assert_no_secret(answer.content.decode())
    assert caplog.records, "the publication is logged"
    assert_no_secret(caplog.text)


def test_the_admin_never_renders_a_secret_and_keeps_it_when_left_blank(
        staff_api: APIClient, django_capture_on_commit_callbacks: Any, staff: Any) -> None:
    from tests.controlplane.test_admin import as_posted

    made = post(staff_api, django_capture_on_commit_callbacks, with_bucket()).json()
    admin = Client()
    admin.force_login(staff)
    url = f"/admin/distributions/distribution/{made['id']}/change/"
    page = admin.get(url)
    assert_no_secret(page.content.decode())
    assert "signing_behavior" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(url, dict(as_posted(page), comment="renamed in the admin"))
    assert response.status_code == 302, response.content.decode()[:3000]
    origin = Origin.objects.get(distribution_id=made["id"])
    assert (origin.access_key_id, origin.secret_access_key, origin.session_token) == (KEY_ID, SECRET, SESSION)


def test_a_credential_change_publishes_a_version_and_a_round_trip_does_not(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = post(api, django_capture_on_commit_callbacks, with_bucket()).json()
    url = f"/api/v1/distributions/{made['id']}/"
    read = api.get(url)
    before = selectors.latest_version_number()
    with django_capture_on_commit_callbacks(execute=True):
        same = api.put(url, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert same.status_code == 200, same.json()
    assert selectors.latest_version_number() == before  # the same credentials: the same document
    origin = dict(same.json()["origins"][0], secret_access_key="a-rotated-secret-key", access_key_id=KEY_ID)
    origin.pop("has_credentials")
    with django_capture_on_commit_callbacks(execute=True):
        rotated = api.put(url, dict(same.json(), origins=[origin]), format="json", HTTP_IF_MATCH=same["ETag"])
    assert rotated.status_code == 200, rotated.json()
    assert selectors.latest_version_number() == before + 1
    s3 = crypto.open_document(selectors.config_version_latest().document)["distributions"][0]["origins"][0]["s3"]
    assert s3["credentials"] == {"access_key_id": KEY_ID, "secret_access_key": "a-rotated-secret-key",
                                 "session_token": ""}


# ---- Encrypted at rest ----

def test_credentials_are_encrypted_in_their_columns_and_in_stored_versions(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    made = post(api, django_capture_on_commit_callbacks, with_bucket()).json()
    [(secret_column, token_column)] = raw(
        "SELECT secret_access_key, session_token FROM distributions_origin WHERE distribution_id = %s", made["id"])
    assert SECRET not in secret_column and SESSION not in token_column
    assert crypto.decrypt(secret_column) == SECRET and crypto.decrypt(token_column) == SESSION
    [(document,)] = raw("SELECT document FROM distributions_configversion")
    text = document if isinstance(document, str) else json.dumps(document)
    assert '"sealed"' in text
    assert_no_secret(text)
    assert KEY_ID not in text


def test_reencrypt_secrets_moves_every_secret_to_the_first_key(
        api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    old = settings.CDN_SECRET_KEYS[0]
    made = post(api, django_capture_on_commit_callbacks, with_bucket()).json()
    new = Fernet.generate_key().decode()
    settings.CDN_SECRET_KEYS = [new, old]
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert "1 origin(s) and 1 config version(s)" in out.getvalue()
    only_new = MultiFernet([Fernet(new)])
    [(secret_column, token_column)] = raw(
        "SELECT secret_access_key, session_token FROM distributions_origin WHERE distribution_id = %s", made["id"])
    assert only_new.decrypt(secret_column.encode()).decode() == SECRET
    assert only_new.decrypt(token_column.encode()).decode() == SESSION
    settings.CDN_SECRET_KEYS = [new]  # the old key dropped: everything still reads
    assert Origin.objects.get(distribution_id=made["id"]).secret_access_key == SECRET
    opened = crypto.open_document(ConfigVersion.objects.get().document)
    assert opened["distributions"][0]["origins"][0]["s3"]["credentials"]["secret_access_key"] == SECRET


def test_a_control_plane_without_keys_refuses_to_store_a_secret_or_run_with_stored_ones(
        api: APIClient, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    assert secret_keys_present(databases=["default"]) == []
    post(api, django_capture_on_commit_callbacks, with_bucket())
    settings.CDN_SECRET_KEYS = []
    [error] = secret_keys_present(databases=["default"])
    assert error.id == "distributions.E001" and "CDN_SECRET_KEYS" in error.hint
    refused = api.post("/api/v1/distributions/", with_bucket(bucket="other-assets"), format="json")
    assert refused.status_code == 400
    assert "CDN_SECRET_KEYS" in refused.json()["origins"]["0"]["secret_access_key"][0]
    assert_no_secret(refused.content.decode())


# ---- Delivered sealed for each edge ----

def test_an_edge_pulls_the_credentials_sealed_for_itself_alone(
        api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    post(api, django_capture_on_commit_callbacks, with_bucket())
    _, token = services.edge_register(name="edge-fra", pop="fra", url="http://127.0.0.1:9081")
    pulled = APIClient().get("/api/v1/edge/config", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert pulled.status_code == 200
    assert_no_secret(pulled.content.decode())
    sealed = pulled.json()["distributions"][0]["origins"][0]["s3"]["credentials"]
    assert sealing.unseal(sealed, sealing.edge_fernet(signing_key(token))) == {
        "access_key_id": KEY_ID, "secret_access_key": SECRET, "session_token": SESSION}
    with pytest.raises(sealing.ContractError):
        sealing.unseal(sealed, sealing.edge_fernet(signing_key("another edge's token")))
    received, stored = pulled.json(), selectors.config_version_latest().document
    for document in (received, stored):
        document["distributions"][0]["origins"][0]["s3"].pop("credentials")
    assert received == stored  # the rest is the published document, the same for every edge


def test_a_distribution_without_credentials_is_delivered_as_stored(created: dict[str, Any]) -> None:
    stored = selectors.config_version_latest().document
    assert crypto.document_for_edge(stored, "00" * 32) is stored
    assert Distribution.objects.get(pk=created["id"]).origins.get().effective_signing_behavior == "never"


@override_settings(CDN_SECRET_KEYS=[])
def test_documents_without_credentials_need_no_key(created: dict[str, Any]) -> None:
    assert crypto.open_document(selectors.config_version_latest().document)["version"] == 1


def test_a_push_seals_the_credentials_for_each_edge(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    from distributions import tasks
    from distributions.models import EdgeNode
    from tests.controlplane.test_push import StubEdge

    post(api, django_capture_on_commit_callbacks, with_bucket())
    stubs: dict[str, tuple[StubEdge, str]] = {}
    try:
        for name in ("edge-fra", "edge-iad"):
            edge, token = services.edge_register(name=name, pop=name[-3:], url="http://127.0.0.1:1")
            stub = StubEdge(token)
            EdgeNode.objects.filter(pk=edge.pk).update(url=stub.url, healthy=True)
            stubs[name] = (stub, token)
        assert tasks.push_config() == {"edge-fra": 200, "edge-iad": 200}
        sealed = {}
        for name, (stub, token) in stubs.items():
            [(method, path, payload)] = stub.received
            assert (method, path) == ("PUT", "/config")
            assert_no_secret(json.dumps(payload))
            sealed[name] = payload["distributions"][0]["origins"][0]["s3"]["credentials"]
            assert sealing.unseal(sealed[name], sealing.edge_fernet(signing_key(token)))["secret_access_key"] == SECRET
        with pytest.raises(sealing.ContractError):
            sealing.unseal(sealed["edge-fra"], sealing.edge_fernet(signing_key(stubs["edge-iad"][1])))
    finally:
        for stub, _ in stubs.values():
            stub.close()


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_secrets_of_existing_rows_and_keeps_them_working(alice: Any) -> None:
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("distributions", "0004_plain_url_fields")], [("distributions", "0005_origin_access_control")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    distribution = old.get_model("distributions", "Distribution").objects.create(id="EOLDROW0000001", owner_id=alice.pk)
    Old = old.get_model("distributions", "Origin")
    Old.objects.create(distribution_id=distribution.pk, origin_id="bucket", kind="s3", bucket="old-assets",
                       region="eu-west-1", access_key_id=KEY_ID, secret_access_key=SECRET)
    Old.objects.create(distribution_id=distribution.pk, origin_id="public", kind="s3", bucket="public-assets",
                       region="eu-west-1")
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
    [(column,)] = raw("SELECT secret_access_key FROM distributions_origin WHERE origin_id = 'bucket'")
    assert SECRET not in column and crypto.decrypt(column) == SECRET
    origins = {o.origin_id: o for o in Origin.objects.filter(distribution_id="EOLDROW0000001")}
    assert origins["bucket"].secret_access_key == SECRET
    assert origins["bucket"].effective_signing_behavior == "always"
    assert origins["public"].effective_signing_behavior == "never" and origins["public"].addressing_style == "path"


# ---- Where the keys come from ----

def _settings_in_a_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = ("import django,os;os.environ['DJANGO_SETTINGS_MODULE']='controlplane.settings';"
            "from django.conf import settings;print(','.join(settings.CDN_SECRET_KEYS))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "CDN_VAR_DIR": str(tmp_path), **env})


def test_debug_generates_a_key_under_var_readable_by_its_user_alone(tmp_path: Path) -> None:
    first = _settings_in_a_process(tmp_path, DEBUG="true")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.stdout.strip() == key_file.read_text().strip()
    assert _settings_in_a_process(tmp_path, DEBUG="true").stdout == first.stdout  # kept for the next run
    Fernet(first.stdout.strip())


def test_production_takes_keys_from_the_environment_and_refuses_a_bad_one_without_showing_it(tmp_path: Path) -> None:
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    good = _settings_in_a_process(tmp_path, SECRET_KEY="x" * 50, CDN_SECRET_KEYS=" , ".join(keys))
    assert good.stdout.strip() == ",".join(keys), good.stderr
    assert not (tmp_path / "secret_keys").exists()
    bad = _settings_in_a_process(tmp_path, SECRET_KEY="x" * 50, CDN_SECRET_KEYS=f"{keys[0]},not-a-key-at-all")
    assert bad.returncode != 0
    assert "CDN_SECRET_KEYS: key 2 is not a Fernet key" in bad.stderr and "not-a-key-at-all" not in bad.stderr
    none = _settings_in_a_process(tmp_path, SECRET_KEY="x" * 50)
    assert none.returncode == 0 and none.stdout.strip() == ""  # no key until a secret is stored (E001)
