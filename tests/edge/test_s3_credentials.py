"""A running edge takes S3 credentials sealed for its token, keeps them in a persisted config
only its user can read, and refuses other ones without ever showing them."""

from __future__ import annotations

import stat
from typing import Any

from cdncontract import sealing
from cdncontract.signing import signing_key
from tests.edge.conftest import TOKEN, Answer, EdgeFactory, Origin, custom_origin, distribution, document

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
CREDENTIALS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET, "session_token": SESSION}


def s3_doc(port: int, version: int, token: str = TOKEN, credentials: dict[str, str] = CREDENTIALS) -> dict[str, Any]:
    bucket = custom_origin(port, kind="s3", s3={
        "bucket": "private-assets", "region": "eu-west-1", "endpoint_url": f"http://127.0.0.1:{port}",
        "addressing_style": "path", "signing_behavior": "always", "signing_protocol": "sigv4",
        "credentials": sealing.seal(credentials, sealing.edge_fernet(signing_key(token)))})
    return document(distribution(port, origins=[bucket]), version=version)


def test_it_persists_sealed_credentials_readable_by_its_user_alone(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    assert edge.push(s3_doc(origin.port, version=2)).status_code == 200
    persisted = edge.cache_dir / "edge-config.json"
    assert stat.S_IMODE(persisted.stat().st_mode) == 0o600
    text = persisted.read_text()
    assert '"sealed"' in text and SECRET not in text and SESSION not in text
    origin.route("/private-assets/logo.svg", Answer(body=b"<svg/>"))
    assert edge.get("/logo.svg").content == b"<svg/>"
    assert origin.seen("/private-assets/logo.svg")[0].headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")  # signed with the opened credentials
    edge.restart()  # and it opens them again from the persisted file
    assert edge.admin("GET", "/health").json()["version"] == 2


def test_it_refuses_credentials_sealed_for_another_edge_and_never_shows_them(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    for doc in (s3_doc(origin.port, version=2, token="another-edge-token"),
                s3_doc(origin.port, version=3, credentials=dict(CREDENTIALS, secret_access_key=SECRET + " x"))):
        refused = edge.push(doc)
        assert refused.status_code == 400
        assert "s3.credentials" in refused.json()["error"]
        assert SECRET not in refused.text and SESSION not in refused.text
    assert edge.admin("GET", "/health").json()["version"] == 1


def test_a_persisted_config_it_cannot_open_is_logged_without_the_credentials(
        origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    assert edge.push(s3_doc(origin.port, version=2)).status_code == 200
    edge.stop()
    edge.extra = ["--token", "a-new-token-for-this-edge"]  # given a new token, the sealed copy is unreadable
    edge.start()
    assert edge.admin("GET", "/health", token="a-new-token-for-this-edge").json()["version"] == 1  # --config's
    edge.stop()
    log = "".join(edge.log)
    assert "ignoring persisted config" in log and "s3.credentials: cannot be opened with this edge's token" in log
    assert SECRET not in log and SESSION not in log and "AKIDEXAMPLE" not in log
