"""An S3 origin's access control in the document: parsed into `S3Settings`, credentials
opened with this edge's key, and never shown in a refusal or a repr."""

from __future__ import annotations

from typing import Any

import pytest

from cdncontract import sealing
from cdncontract.signing import signing_key
from edgeagent.config import ConfigError, parse_document
from tests.edge.test_unit_config import distribution, document, origin

KEY = signing_key("this-edge-token")
OTHER_KEY = signing_key("another-edge-token")
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
CREDENTIALS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET, "session_token": TOKEN}


def s3_document(credentials: dict[str, str] | None = CREDENTIALS, key: bytes = KEY, **s3: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"bucket": "private-assets", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000",
                             "addressing_style": "path", "signing_behavior": "always", "signing_protocol": "sigv4",
                             "credentials": sealing.seal(credentials, sealing.edge_fernet(key)) if credentials else None}
    block.update(s3)
    return document(distribution(origins=[origin(kind="s3", s3=block)]))


def refusal(doc: dict[str, Any], key: bytes | None = KEY) -> str:
    with pytest.raises(ConfigError) as info:
        parse_document(doc, edge_key=key)
    message = str(info.value)
    assert SECRET not in message and TOKEN not in message and "AKIDEXAMPLE" not in message
    return message


def test_it_opens_the_credentials_sealed_for_this_edge() -> None:
    s3 = parse_document(s3_document(), edge_key=KEY).distributions["E2QWRUHAPOMQZL"].origins["web"].s3
    assert s3 is not None and s3.credentials is not None
    assert (s3.signing_behavior, s3.signing_protocol, s3.addressing_style) == ("always", "sigv4", "path")
    assert (s3.credentials.access_key_id, s3.credentials.secret_access_key, s3.credentials.session_token) == (
        "AKIDEXAMPLE", SECRET, TOKEN)


def test_credentials_never_show_in_a_repr() -> None:
    config = parse_document(s3_document(), edge_key=KEY)
    shown = repr(config.distributions["E2QWRUHAPOMQZL"].origins["web"])
    assert "S3Credentials()" in shown
    assert SECRET not in shown and TOKEN not in shown and "AKIDEXAMPLE" not in shown


def test_it_refuses_credentials_sealed_for_another_edge_without_showing_them() -> None:
    assert refusal(s3_document(key=OTHER_KEY)) == (
        "distributions[0].origins[0].s3.credentials: cannot be opened with this edge's token (sealed for another "
        "edge?)")


def test_it_refuses_sealed_credentials_when_started_without_a_token() -> None:
    assert "started without one" in refusal(s3_document(), key=None)


def test_it_refuses_credentials_in_clear() -> None:
    doc = s3_document()
    doc["distributions"][0]["origins"][0]["s3"]["credentials"] = dict(CREDENTIALS)
    assert refusal(doc).endswith('s3.credentials: must be null or {"sealed": <token>}')


@pytest.mark.parametrize(("credentials", "field"), [
    (dict(CREDENTIALS, secret_access_key=SECRET + " with a space"), "secret_access_key"),
    (dict(CREDENTIALS, access_key_id="AKID/EXAMPLE"), "access_key_id"),
    (dict(CREDENTIALS, session_token=TOKEN + "\n"), "session_token"),
])
def test_it_refuses_bad_credentials_naming_the_field_and_not_the_value(credentials: dict[str, str],
                                                                      field: str) -> None:
    message = refusal(s3_document(credentials))
    assert message.startswith(f"distributions[0].origins[0].s3.credentials.{field}: {field} must be")
    assert credentials[field] not in message


@pytest.mark.parametrize(("s3", "expected"), [
    ({"signing_behavior": "sometimes"}, "s3.signing_behavior: must be one of always, never, no-override"),
    ({"signing_protocol": "sigv2"}, "s3.signing_protocol: must be one of sigv4"),
    ({"addressing_style": "dns"}, "s3.addressing_style: must be one of path, virtual"),
    ({"addressing_style": "virtual"}, "s3.addressing_style: addressing_style 'virtual' needs an endpoint_url"),
    ({"signing_behavior": "never"}, "s3.credentials: must be null when signing_behavior is never"),
])
def test_it_refuses_bad_access_control_settings(s3: dict[str, Any], expected: str) -> None:
    assert expected in refusal(s3_document(**s3))


@pytest.mark.parametrize("behavior", ["always", "no-override"])
def test_signing_needs_credentials(behavior: str) -> None:
    assert f"s3.signing_behavior: signing_behavior {behavior!r} needs credentials" in refusal(
        s3_document(None, signing_behavior=behavior))


def test_a_public_bucket_needs_no_key() -> None:
    config = parse_document(s3_document(None, signing_behavior="never"))
    s3 = config.distributions["E2QWRUHAPOMQZL"].origins["web"].s3
    assert s3 is not None and s3.credentials is None and s3.signing_behavior == "never"


def test_a_document_from_before_access_control_is_path_style_and_unsigned() -> None:
    doc = document(distribution(origins=[origin(kind="s3", s3={
        "bucket": "assets", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000"})]))
    web = parse_document(doc).distributions["E2QWRUHAPOMQZL"].origins["web"]
    assert web.s3 is not None
    assert (web.s3.addressing_style, web.s3.signing_behavior, web.s3.credentials) == ("path", "never", None)
    assert web.base_url("http") == "http://127.0.0.1:9000/assets"


def test_virtual_hosted_style_puts_the_bucket_in_the_host() -> None:
    doc = s3_document(endpoint_url="https://s3.eu-west-1.amazonaws.com", addressing_style="virtual")
    doc["distributions"][0]["origins"][0]["origin_path"] = "/site"
    web = parse_document(doc, edge_key=KEY).distributions["E2QWRUHAPOMQZL"].origins["web"]
    assert web.base_url("http") == "https://private-assets.s3.eu-west-1.amazonaws.com/site"
