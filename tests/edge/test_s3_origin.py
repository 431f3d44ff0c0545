"""A private S3 bucket behind the edge: every origin request signed with SigV4 (CloudFront's
origin access control), uploads streamed into the bucket, and S3's refusals told to the
viewer without the secret. The bucket is moto's server mode with IAM authentication
enforced (demo/s3.py): only the setup calls run unsigned.

Virtual-hosted addressing cannot go through the edge here (`<bucket>.localhost` does not
resolve on this machine), so it is checked by sending the edge's signed request to moto
with the virtual-hosted Host header, and by the URL the parsed config builds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdncontract import sealing
from cdncontract.signing import signing_key
from edgeagent.config import S3Credentials, S3Settings, parse_document
from edgeagent.s3sign import S3Refused, object_path, object_query, sign
from demo import s3 as moto_s3  # moto[server] and boto3 are pinned in requirements-controlplane.txt
from tests.edge.conftest import (
    ALL_METHODS,
    TOKEN,
    Edge,
    EdgeFactory,
    behavior,
    cache_policy,
    custom_origin,
    distribution,
    document,
    pattern_bytes,
)

BUCKET = "private-assets"
OTHER_BUCKET = "someone-elses"
BIG = 50 * 1024 * 1024
UPLOAD_SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024
# Key -> how a viewer asks for it (the path as sent on the wire).
ODD_KEYS = {
    "with space.txt": "/with%20space.txt",
    "café/ünïcode.txt": "/caf%C3%A9/%C3%BCn%C3%AFcode.txt",
    "a+b.txt": "/a+b.txt",
    "100%.txt": "/100%25.txt",
}


@dataclass
class Bucket:
    endpoint: str
    admin: moto_s3.Keys
    edge: moto_s3.Keys
    s3: Any  # the admin's boto3 client

    def put(self, key: str, body: bytes, **extra: Any) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)

    def sha256(self, key: str) -> tuple[int, str]:
        obj = self.s3.get_object(Bucket=BUCKET, Key=key)
        digest = hashlib.sha256()
        for chunk in obj["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
        return obj["ContentLength"], digest.hexdigest()


@pytest.fixture(scope="module")
def bucket() -> Iterator[Bucket]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = moto_s3.start_moto("127.0.0.1", port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        admin = moto_s3.admin_keys(endpoint)
        s3 = moto_s3.client("s3", endpoint, admin)
        for name in (BUCKET, OTHER_BUCKET):
            s3.create_bucket(Bucket=name)
        edge_keys = moto_s3.bucket_user(endpoint, admin, BUCKET)
        found = Bucket(endpoint, admin, edge_keys, s3)
        found.put("logo.svg", b"<svg/>", ContentType="image/svg+xml")
        found.put("big.bin", pattern_bytes(BIG))
        for key in ODD_KEYS:
            found.put(key, f"the object {key}".encode())
        s3.put_object(Bucket=OTHER_BUCKET, Key="secret.txt", Body=b"not yours")
        yield found
    finally:
        process.terminate()
        process.wait(10)


def s3_origin(bucket: Bucket, keys: moto_s3.Keys | None = None, name: str = BUCKET,
              signing: str = "always", session_token: str = "") -> dict[str, Any]:
    keys = keys or bucket.edge
    credentials = None if signing == "never" else sealing.seal(
        {"access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key,
         "session_token": session_token}, sealing.edge_fernet(signing_key(TOKEN)))
    port = int(bucket.endpoint.rsplit(":", 1)[1])
    return custom_origin(port, kind="s3", s3={
        "bucket": name, "region": moto_s3.REGION, "endpoint_url": bucket.endpoint, "addressing_style": "path",
        "signing_behavior": signing, "signing_protocol": "sigv4", "credentials": credentials})


def s3_edge(make_edge: EdgeFactory, bucket: Bucket, *behaviors: dict[str, Any], **origin: Any) -> Edge:
    dist = distribution(0, origins=[s3_origin(bucket, **origin)], cache_behaviors=list(behaviors) or [behavior()],
                        custom_error_responses=[{"error_code": 404, "response_page_path": "", "response_code": None,
                                                 "error_caching_min_ttl": 30}])
    return make_edge(document(dist))


def upload_chunks(count: int) -> Iterator[bytes]:
    block = pattern_bytes(CHUNK)
    for _ in range(count):
        yield block


def everything_the_edge_wrote(edge: Edge) -> str:
    edge.stop()  # flushes the access log
    logs = Path(edge.cache_dir) / "logs"
    return "".join(edge.log) + "".join(p.read_text(errors="replace") for p in sorted(logs.glob("access.log*")))


# ---- reads ----


def test_an_unsigned_get_straight_to_the_bucket_is_refused(bucket: Bucket) -> None:
    assert httpx.get(f"{bucket.endpoint}/{BUCKET}/logo.svg").status_code == 403


def test_the_same_object_through_the_edge_is_a_miss_then_a_hit(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket)
    first = edge.get("/logo.svg")
    assert (first.status_code, first.content, first.headers["X-Cache"]) == (200, b"<svg/>", "Miss from edge-t")
    assert first.headers["Content-Type"] == "image/svg+xml"
    again = edge.get("/logo.svg")
    assert (again.content, again.headers["X-Cache"]) == (b"<svg/>", "Hit from edge-t")
    head = edge.request("HEAD", "/big.bin")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(BIG)


def test_a_50_mib_object_arrives_whole(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket)
    response = edge.get("/big.bin")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(pattern_bytes(BIG)).hexdigest()


@pytest.mark.parametrize("key", list(ODD_KEYS))
def test_keys_with_spaces_unicode_plus_and_percent_are_found(bucket: Bucket, make_edge: EdgeFactory,
                                                             key: str) -> None:
    edge = s3_edge(make_edge, bucket)
    response = edge.get(ODD_KEYS[key])
    assert (response.status_code, response.content) == (200, f"the object {key}".encode())


def test_the_forwarded_query_string_is_signed(bucket: Bucket, make_edge: EdgeFactory) -> None:
    forwarding = behavior(cache_policy=cache_policy(query_strings={"behavior": "all", "names": []}))
    edge = s3_edge(make_edge, bucket, forwarding)
    response = edge.get("/logo.svg?response-content-type=text%2Fplain&x-id=GetObject")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain"


def test_ranges_are_passed_through_signed(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, behavior(cache_policy=cache_policy(default_ttl=0, max_ttl=0)))
    small = edge.get("/logo.svg", headers={"Range": "bytes=1-3"})
    assert (small.status_code, small.content) == (206, b"svg")
    first, last = 30 * 1024 * 1024, 30 * 1024 * 1024 + 99
    ranged = edge.get("/big.bin", headers={"Range": f"bytes={first}-{last}"})
    assert ranged.status_code == 206 and ranged.content == pattern_bytes(BIG)[first:last + 1]
    assert ranged.headers["Content-Range"] == f"bytes {first}-{last}/{BIG}"


def test_a_stale_object_is_revalidated_with_a_signed_conditional_request(bucket: Bucket,
                                                                         make_edge: EdgeFactory) -> None:
    bucket.put("reval.txt", b"version 1", CacheControl="max-age=1")
    edge = s3_edge(make_edge, bucket, behavior(cache_policy=cache_policy(default_ttl=1, max_ttl=1)))
    assert edge.get("/reval.txt").headers["X-Cache"] == "Miss from edge-t"
    tag = edge.get("/reval.txt").headers["ETag"]
    for _ in range(40):  # bounded: at most 4 s for the one-second TTL to run out
        time.sleep(0.1)
        refreshed = edge.get("/reval.txt")
        if refreshed.headers["X-Cache"] != "Hit from edge-t":
            break
    assert refreshed.headers["X-Cache"] == "RefreshHit from edge-t"
    assert (refreshed.content, refreshed.headers["ETag"]) == (b"version 1", tag)
    viewer_conditional = edge.get("/reval.txt", headers={"If-None-Match": tag})
    assert viewer_conditional.status_code == 304


# ---- signing behaviours ----


def test_signing_never_reaches_a_private_bucket_unsigned_and_is_refused(bucket: Bucket,
                                                                       make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, signing="never")
    refused = edge.get("/logo.svg")
    assert refused.status_code == 403 and "S3 origin denied access" in refused.text


VIEWER_SIGNING_HEADERS = ["authorization", "x-amz-date", "x-amz-content-sha256"]


def forwarding_authorization() -> dict[str, Any]:
    return behavior(cache_policy=cache_policy(default_ttl=0, max_ttl=0,
                                              headers={"behavior": "allowlist", "names": VIEWER_SIGNING_HEADERS}))


def viewer_signature(bucket: Bucket, keys: moto_s3.Keys) -> dict[str, str]:
    """A viewer's own SigV4 for the origin request the edge will send (its host and path)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    request = AWSRequest(method="GET", url=f"{bucket.endpoint}/{BUCKET}/logo.svg")
    S3SigV4Auth(ReadOnlyCredentials(keys.access_key_id, keys.secret_access_key, None), "s3",
                moto_s3.REGION).add_auth(request)
    return {name: request.headers[name] for name in VIEWER_SIGNING_HEADERS}


def test_no_override_forwards_the_viewers_own_authorization_unsigned(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, forwarding_authorization(), signing="no-override")
    assert edge.get("/logo.svg").status_code == 200  # no Authorization from the viewer: the edge signs
    own = edge.get("/logo.svg", headers=viewer_signature(bucket, bucket.admin))
    assert (own.status_code, own.content) == (200, b"<svg/>")
    forged = viewer_signature(bucket, moto_s3.Keys(bucket.admin.access_key_id, "not-the-admins-secret"))
    refused = edge.get("/logo.svg", headers=forged)
    assert refused.status_code == 502 and "SignatureDoesNotMatch" in refused.text


def test_always_replaces_the_viewers_authorization_with_the_edges_signature(bucket: Bucket,
                                                                           make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, forwarding_authorization(), signing="always")
    forged = viewer_signature(bucket, moto_s3.Keys(bucket.admin.access_key_id, "not-the-admins-secret"))
    response = edge.get("/logo.svg", headers=forged)
    assert (response.status_code, response.content) == (200, b"<svg/>")


def test_virtual_hosted_requests_are_signed_for_the_bucket_host(bucket: Bucket) -> None:
    port = bucket.endpoint.rsplit(":", 1)[1]
    origin = s3_origin(bucket)
    origin["s3"]["addressing_style"] = "virtual"
    origin["s3"]["endpoint_url"] = f"http://localhost:{port}"
    config = parse_document(document(distribution(0, origins=[origin])), edge_key=signing_key(TOKEN))
    parsed = next(iter(config.distributions.values())).origins["web"]
    assert parsed.base_url("http") == f"http://{BUCKET}.localhost:{port}"
    assert parsed.s3 is not None
    url = parsed.base_url("http") + object_path("/with%20space.txt")
    headers = sign(parsed.s3, "GET", url, [("Via", "1.1 edge-t")], False)
    # <bucket>.localhost does not resolve here: connect to moto directly, naming the bucket's host.
    response = httpx.get(f"{bucket.endpoint}/with%20space.txt",
                         headers=[*headers, ("Host", f"{BUCKET}.localhost:{port}")])
    assert (response.status_code, response.content) == (200, b"the object with space.txt")


def test_keys_and_queries_are_encoded_once_as_s3_expects() -> None:
    assert object_path("/a+b c/%C3%A9%2B%20x~y") == "/a%2Bb%20c/%C3%A9%2B%20x~y"
    assert object_path("/100%2525") == "/100%2525"  # a key that holds "%25" stays that
    assert object_query("b=2&a=x+y&flag&c=%2F") == "b=2&a=x%2By&flag&c=%2F"


def test_the_signature_covers_only_what_s3_reads() -> None:
    s3 = S3Settings(BUCKET, "eu-west-1", "http://127.0.0.1:9000", "path", "always", "sigv4",
                    S3Credentials("AKIDEXAMPLE", "wJalrXUtnFEMIEXAMPLEKEY", "SESSIONTOKEN"))
    headers = dict(sign(s3, "PUT", "http://127.0.0.1:9000/private-assets/up.bin",
                        [("Via", "1.1 edge-t"), ("X-Forwarded-For", "10.0.0.1"), ("content-type", "text/plain"),
                         ("Authorization", "Bearer viewer"), ("x-amz-meta-owner", "me"), ("Content-Length", "5")],
                        streamed=True))
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers["X-Amz-Security-Token"] == "SESSIONTOKEN"
    assert headers["Via"] == "1.1 edge-t" and headers["Content-Length"] == "5"
    signed = headers["Authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0]
    assert signed == "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-owner;x-amz-security-token"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "wJalrXUtnFEMIEXAMPLEKEY" not in json.dumps(headers)


def test_the_signature_is_the_one_stock_botocore_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge's shortcuts in the signer (headers built once, SignedHeaders once, the key kept)
    give byte for byte the Authorization botocore's own S3SigV4Auth gives the same request."""
    import datetime

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.datetime(2026, 12, 4, 9, 30, 5))
    keys = ("AKIDEXAMPLE", "wJalrXUtnFEMIEXAMPLEKEY", "SESSIONTOKEN")
    s3 = S3Settings(BUCKET, "eu-west-1", "http://127.0.0.1:9000", "path", "always", "sigv4", S3Credentials(*keys))
    url = "http://127.0.0.1:9000/private-assets/caf%C3%A9%20logo%2B1.svg?v=3&a=%2F"
    signed_kinds = [("Range", "bytes=0-99"), ("If-None-Match", '"etag-1"'), ("x-amz-meta-note", "  two   spaces ")]
    ours = dict(sign(s3, "GET", url, [("Via", "1.1 edge-t"), *signed_kinds], streamed=False))
    stock = AWSRequest(method="GET", url=url, headers=dict(signed_kinds))
    botocore.auth.S3SigV4Auth(Credentials(*keys), "s3", "eu-west-1").add_auth(stock)
    assert ours["Authorization"] == stock.headers["Authorization"]
    assert ours["X-Amz-Date"] == stock.headers["X-Amz-Date"] == "20261204T093005Z"


# ---- refusals ----


def test_a_wrong_secret_is_a_502_that_shows_neither_the_secret_nor_the_signature(bucket: Bucket,
                                                                                  make_edge: EdgeFactory) -> None:
    wrong = moto_s3.Keys(bucket.edge.access_key_id, "WrongSecretKeyThatMustNeverLeak0123456789")
    edge = s3_edge(make_edge, bucket, keys=wrong)
    refused = edge.get("/logo.svg")
    assert refused.status_code == 502
    assert "SignatureDoesNotMatch" in refused.text and "S3 request id " in refused.text
    assert refused.headers["X-Cache"].startswith("Error")
    shown = refused.text + json.dumps(dict(refused.headers))
    assert wrong.secret_access_key not in shown and "Signature=" not in shown and "StringToSign" not in shown
    assert edge.request("HEAD", "/logo.svg").status_code == 502
    written = everything_the_edge_wrote(edge)
    assert "SignatureDoesNotMatch" in written  # the edge log names the reason
    assert wrong.secret_access_key not in written and "Signature=" not in written


def test_an_unknown_access_key_is_a_502(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, keys=moto_s3.Keys("AKIAUNKNOWNKEY000000", "whatever-secret"))
    refused = edge.get("/logo.svg")
    assert refused.status_code == 502 and "InvalidAccessKeyId" in refused.text


def assumed_role_credentials(bucket: Bucket) -> dict[str, str]:
    """Temporary credentials (STS AssumeRole) for a role that may read the bucket."""
    iam = moto_s3.client("iam", bucket.endpoint, bucket.admin)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": "*"}}]}
    try:
        iam.create_role(RoleName="cdn-reader", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="cdn-reader", PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                    "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    role = iam.get_role(RoleName="cdn-reader")["Role"]["Arn"]
    sts = moto_s3.client("sts", bucket.endpoint, bucket.admin)
    found = sts.assume_role(RoleArn=role, RoleSessionName="edge")["Credentials"]
    return {"access_key_id": found["AccessKeyId"], "secret_access_key": found["SecretAccessKey"],
            "session_token": found["SessionToken"]}


def test_temporary_credentials_sign_with_their_session_token(bucket: Bucket, make_edge: EdgeFactory) -> None:
    temporary = assumed_role_credentials(bucket)
    keys = moto_s3.Keys(temporary["access_key_id"], temporary["secret_access_key"])
    edge = s3_edge(make_edge, bucket, keys=keys, session_token=temporary["session_token"])
    assert (edge.get("/logo.svg").status_code, edge.get("/with%20space.txt").status_code) == (200, 200)


def test_a_session_token_s3_no_longer_takes_is_a_502(bucket: Bucket, make_edge: EdgeFactory) -> None:
    """moto never expires a token, so a token that is not the session's stands for an expired one."""
    temporary = assumed_role_credentials(bucket)
    keys = moto_s3.Keys(temporary["access_key_id"], temporary["secret_access_key"])
    stale = "FwoGZXIvYXdzEXPIREDSESSIONTOKEN0123456789"
    edge = s3_edge(make_edge, bucket, keys=keys, session_token=stale)
    refused = edge.get("/logo.svg")
    assert refused.status_code == 502 and "InvalidToken" in refused.text and "S3 request id" in refused.text
    shown = refused.text + json.dumps(dict(refused.headers)) + everything_the_edge_wrote(edge)
    assert stale not in shown and temporary["secret_access_key"] not in shown


def test_a_bucket_the_edge_may_not_read_is_a_403_with_the_request_id(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, name=OTHER_BUCKET)
    refused = edge.get("/secret.txt")
    assert refused.status_code == 403 and "AccessDenied" in refused.text and "S3 request id " in refused.text
    assert b"not yours" not in refused.content


def test_no_such_bucket_is_a_502(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, keys=bucket.admin, name="no-such-bucket-here")
    refused = edge.get("/logo.svg")
    assert refused.status_code == 502 and "NoSuchBucket" in refused.text


def test_no_such_key_is_a_404_cached_by_the_error_caching_rules(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket)
    missing = edge.get("/not-yet.txt")
    assert missing.status_code == 404 and b"NoSuchKey" in missing.content
    bucket.put("not-yet.txt", b"here now")
    cached = edge.get("/not-yet.txt")  # error_caching_min_ttl 30: the 404 is kept
    assert (cached.status_code, cached.headers["X-Cache"]) == (404, "Hit from edge-t")


def test_the_refusal_mapping_for_s3_error_codes() -> None:
    assert S3Refused("b", 403, "AccessDenied", "r").status == 403
    assert S3Refused("b", 403, "", "").status == 403  # a HEAD refusal has no body
    for code in ("ExpiredToken", "InvalidToken", "SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket"):
        refused = S3Refused("b", 400 if code.endswith("Token") else 403, code, "RID1")
        assert refused.status == 502 and refused.viewer_text().endswith(f"({code}); S3 request id RID1.")


# ---- writes ----


def writable(**overrides: Any) -> dict[str, Any]:
    return behavior(allowed_methods=ALL_METHODS, **overrides)


def test_a_200_mib_upload_lands_in_the_bucket_byte_for_byte(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, writable())
    baseline_kb = edge.rss_high_water_kb()
    response = edge.request("PUT", "/uploads/video.bin", content=upload_chunks(UPLOAD_SIZE // CHUNK),
                            headers={"Content-Length": str(UPLOAD_SIZE), "Content-Type": "video/mp4"})
    assert response.status_code == 200, response.text
    expected = hashlib.sha256()
    for chunk in upload_chunks(UPLOAD_SIZE // CHUNK):
        expected.update(chunk)
    assert bucket.sha256("uploads/video.bin") == (UPLOAD_SIZE, expected.hexdigest())
    head = bucket.s3.head_object(Bucket=BUCKET, Key="uploads/video.bin")
    assert head["ContentType"] == "video/mp4"
    assert edge.rss_high_water_kb() - baseline_kb < 60 * 1024


def test_a_put_evicts_the_cached_object_and_a_delete_removes_it(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, writable())
    bucket.put("doc with space.txt", b"v1")
    path = "/doc%20with%20space.txt"
    edge.get(path)
    assert edge.get(path).headers["X-Cache"] == "Hit from edge-t"
    assert edge.request("PUT", path, content=b"v2").status_code == 200
    fresh = edge.get(path)
    assert (fresh.content, fresh.headers["X-Cache"]) == (b"v2", "Miss from edge-t")
    assert edge.request("DELETE", path).status_code == 204
    assert bucket.s3.list_objects_v2(Bucket=BUCKET, Prefix="doc with")["KeyCount"] == 0
    assert edge.get(path).status_code == 404


def test_a_post_is_signed_too(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket, writable(cache_policy=cache_policy(
        default_ttl=0, max_ttl=0, query_strings={"behavior": "all", "names": []})))
    started = edge.request("POST", "/multi.bin?uploads")
    assert started.status_code == 200 and b"<UploadId>" in started.content


def test_a_delete_is_refused_when_the_behavior_does_not_allow_it(bucket: Bucket, make_edge: EdgeFactory) -> None:
    edge = s3_edge(make_edge, bucket)
    assert edge.request("DELETE", "/logo.svg").status_code == 403
    assert bucket.s3.head_object(Bucket=BUCKET, Key="logo.svg")["ContentLength"] == 6


# ---- origin groups ----


@pytest.mark.parametrize(("codes", "status", "shown"), [([403], 200, b"<svg/>"),
                                                        ([500], 502, b"SignatureDoesNotMatch")])
def test_a_refused_bucket_fails_over_only_on_a_listed_status(bucket: Bucket, make_edge: EdgeFactory,
                                                             codes: list[int], status: int, shown: bytes) -> None:
    primary = s3_origin(bucket, keys=moto_s3.Keys(bucket.edge.access_key_id, "a-rotated-away-secret"))
    primary["id"] = "a-primary"
    secondary = s3_origin(bucket)
    secondary["id"] = "b-secondary"
    edge = make_edge(document(distribution(
        0, origins=[primary, secondary],
        origin_groups=[{"id": "group", "primary": "a-primary", "secondary": "b-secondary",
                        "failover_status_codes": codes}],
        cache_behaviors=[behavior(target="group")])))
    response = edge.get("/logo.svg")  # S3 answers the primary 403 SignatureDoesNotMatch
    assert response.status_code == status and shown in response.content
