"""The signed-URL rules as pure functions (edgeagent/signedurls.py), without sockets."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cdncontract import signed_urls as rules
from cdncontract.errors import ContractError
from edgeagent import signedurls
from edgeagent.stats import Counters, merge_reports

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "K2JCJMDEHXQW5F"
NOW = 1_800_000_000.0
URL = "https://d111111abcdef8.cdn.localhost/image.jpg?color=red"


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


SIGNING = signedurls.Signing(trusted={KEY_ID: signedurls.trusted_key(KEY_ID, public_pem(RSA_KEY))},
                             known=frozenset({KEY_ID, "KKNOWNELSEWHER"}))


def sign_sha1(message: bytes) -> bytes:
    return RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA1())


def params_of(url: str) -> tuple[str, dict[str, str]]:
    base, _, query = url.partition("?")
    found, rest = signedurls.split_query(query)
    return base + (f"?{rest}" if rest else ""), found


def test_the_canned_policy_is_the_one_botocore_signs() -> None:
    signer = CloudFrontSigner(KEY_ID, sign_sha1)
    expires = datetime.fromtimestamp(NOW + 60, tz=timezone.utc)
    assert signedurls.canned_policy(URL, str(int(NOW + 60))) == signer.build_policy(URL, expires).encode()


def test_split_query_takes_out_the_signing_parameters_and_keeps_the_rest_in_order() -> None:
    found, rest = signedurls.split_query("b=2&Expires=1&a=1&Signature=x~y_&Key-Pair-Id=K&Hash-Algorithm=SHA256&c")
    assert rest == "b=2&a=1&c"
    assert found == {"Expires": "1", "Signature": "x~y_", "Key-Pair-Id": "K", "Hash-Algorithm": "SHA256"}
    assert signedurls.split_query("size=large") == ({}, "size=large")


def test_signing_cookies_are_read_and_stripped_by_name() -> None:
    header = 'theme=dark; CloudFront-Policy=abc; CloudFront-Signature="s~"; CloudFront-Key-Pair-Id=K; x=1'
    assert signedurls.cookie_parameters(header) == {"Policy": "abc", "Signature": "s~", "Key-Pair-Id": "K"}
    assert signedurls.without_signing_cookies(header) == "theme=dark; x=1"
    assert signedurls.without_signing_cookies("a=1") == "a=1"


@pytest.mark.parametrize(("resource", "url", "matches"), [
    ("https://d.test/a/*", "https://d.test/a/b/c.jpg?x=1", True),
    ("https://d.test/a/*", "https://d.test/b/c.jpg", False),
    ("https://d.test/a?.jpg", "https://d.test/ab.jpg", True),
    ("https://d.test/a?.jpg", "https://d.test/abc.jpg", False),
    ("*", "http://anything/at/all", True),
    ("https://d.test/a.jpg", "https://d.test/a.jpg", True),
    ("https://d.test/a.jpg", "https://d.test/a.jpgx", False),
    ("https://d.test/a.(jpg)", "https://d.test/a.(jpg)", True),
])
def test_resources_match_with_cloudfronts_wildcards(resource: str, url: str, matches: bool) -> None:
    assert signedurls.resource_matcher(resource)(url) is matches


def test_a_canned_url_passes_until_it_expires() -> None:
    signed = CloudFrontSigner(KEY_ID, sign_sha1).generate_presigned_url(
        URL, date_less_than=datetime.fromtimestamp(NOW + 60, tz=timezone.utc))
    url, params = params_of(signed)
    assert url == URL
    verdict = signedurls.check(SIGNING, url, params, "192.0.2.1", NOW)
    assert verdict.ok and verdict.key_id == KEY_ID
    assert signedurls.check(SIGNING, url, params, "192.0.2.1", NOW + 60).reason == "expired"
    assert signedurls.check(SIGNING, url + "&more=1", params, "192.0.2.1", NOW).reason == "signature does not match"


def test_a_custom_policy_checks_its_window_and_the_clients_network() -> None:
    signer = CloudFrontSigner(KEY_ID, sign_sha1)
    policy = signer.build_policy("https://d111111abcdef8.cdn.localhost/*",
                                 datetime.fromtimestamp(NOW + 60, tz=timezone.utc),
                                 date_greater_than=datetime.fromtimestamp(NOW - 60, tz=timezone.utc),
                                 ip_address="192.0.2.0/24")
    url, params = params_of(signer.generate_presigned_url(URL, policy=policy))
    assert signedurls.check(SIGNING, url, params, "192.0.2.77", NOW).ok
    assert signedurls.check(SIGNING, url, params, "::ffff:192.0.2.77", NOW).ok
    assert signedurls.check(SIGNING, url, params, "198.51.100.1", NOW).reason == "client IP not in the policy's IpAddress"
    assert signedurls.check(SIGNING, url, params, "2001:db8::1", NOW).reason == "client IP not in the policy's IpAddress"
    assert signedurls.check(SIGNING, url, params, "192.0.2.77", NOW - 61).reason == "not yet valid"
    other = "https://elsewhere.test/image.jpg"
    assert signedurls.check(SIGNING, other, params, "192.0.2.77", NOW).reason == "resource does not match the URL"


def test_rsa_with_sha256_needs_hash_algorithm() -> None:
    def sign_sha256(message: bytes) -> bytes:
        return RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())

    signed = CloudFrontSigner(KEY_ID, sign_sha256).generate_presigned_url(
        URL, date_less_than=datetime.fromtimestamp(NOW + 60, tz=timezone.utc))
    url, params = params_of(signed)
    assert signedurls.check(SIGNING, url, params, "", NOW).reason == "signature does not match"
    assert signedurls.check(SIGNING, url, {**params, "Hash-Algorithm": "SHA256"}, "", NOW).ok
    assert signedurls.check(SIGNING, url, {**params, "Hash-Algorithm": "MD5"}, "", NOW).reason == \
        "unsupported Hash-Algorithm"


@pytest.mark.parametrize(("params", "reason"), [
    ({}, "no signature"),
    ({"Signature": "abc"}, "incomplete signature"),
    ({"Signature": "abc", "Key-Pair-Id": "KNOSUCHKEY0000"}, "unknown key id"),
    ({"Signature": "abc", "Key-Pair-Id": "KKNOWNELSEWHER"}, "key not in this behavior's trusted key groups"),
    ({"Signature": "a!", "Key-Pair-Id": KEY_ID, "Expires": "1"}, "malformed signature"),
    ({"Signature": "abcd", "Key-Pair-Id": KEY_ID}, "neither Expires nor Policy"),
    ({"Signature": "abcd", "Key-Pair-Id": KEY_ID, "Expires": "-1"}, "malformed Expires"),
    ({"Signature": "abcd", "Key-Pair-Id": KEY_ID, "Policy": rules.b64encode(b"{}")}, "malformed policy"),
    ({"Signature": "abcd", "Key-Pair-Id": KEY_ID,
      "Policy": rules.b64encode(b'{"Statement":[{"Resource":"*","Condition":{}}]}')}, "policy has no DateLessThan"),
])
def test_malformed_signing_parameters_are_refused_with_a_reason(params: dict[str, str], reason: str) -> None:
    verdict = signedurls.check(SIGNING, URL, params, "", NOW)
    assert not verdict.ok and reason in verdict.reason


def test_public_keys_are_checked_as_cloudfront_accepts_them() -> None:
    assert rules.check_public_key(public_pem(RSA_KEY)) == rules.KIND_RSA
    assert rules.check_public_key(public_pem(ec.generate_private_key(ec.SECP256R1()))) == rules.KIND_ECDSA
    for pem, problem in [
        (public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),
        (public_pem(ec.generate_private_key(ec.SECP384R1())), "only P-256"),
        ("not a key", "PEM public key"),
        (RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode(), "private key"),
    ]:
        with pytest.raises(ContractError, match=problem):
            rules.check_public_key(pem)


def test_the_url_safe_base64_is_cloudfronts() -> None:
    data = bytes(range(256))
    encoded = rules.b64encode(data)
    assert not set("+=/") & set(encoded)
    assert rules.b64decode(encoded) == data
    assert rules.b64decode(encoded.replace("~", "%7E")) == data
    for bad in ("a!b_", "abc", "é"):
        with pytest.raises(ValueError):
            rules.b64decode(bad)


def test_requests_per_signing_key_are_reported_and_merged() -> None:
    counters = Counters()
    counters.count(200, 2, 10, 0.001)
    counters.signed(KEY_ID)
    counters.fast_hit(200, 10, 0.0001)
    counters.signed(KEY_ID)
    report = counters.as_report()
    assert report["requests"] == 2 and report["signed_requests"] == {KEY_ID: 2}
    plain = Counters()
    plain.count(200, 2, 10, 0.001)
    assert "signed_requests" not in plain.as_report()
    merged = merge_reports({"distributions": {"E1": report}}, {"distributions": {"E1": report}})
    assert merged["distributions"]["E1"]["signed_requests"] == {KEY_ID: 4}
    counters.reset()
    assert counters.signed_requests == {}
