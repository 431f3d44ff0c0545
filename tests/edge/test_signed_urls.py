"""Signed URLs and signed cookies at the edge, made by botocore's CloudFrontSigner exactly as a
CloudFront user makes them: a behavior that trusts key groups serves only validly signed
requests, cached hits included; the signing parameters reach neither the origin nor the
cache key; each refusal is a 403 whose reason is in the edge log, not in the response."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edgeagent.agent import Agent
from edgeagent.cli import parse_settings
from edgeagent.server import start_server
from tests.edge.conftest import DIST_ID, DOMAIN, Answer, Edge, EdgeFactory, Origin, behavior, cache_policy, document
from tests.edge.conftest import distribution

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_ID, EC_ID, OTHER_ID = "K2JCJMDEHXQW5F", "KECDSAP256TEST", "KOTHERGROUPKEY"
GROUP = "0f6c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
OTHER_GROUP = "1f6c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
BASE = f"http://{DOMAIN}"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_signer(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1())


def ecdsa_signer(message: bytes) -> bytes:
    return EC_KEY.sign(message, ec.ECDSA(hashes.SHA256()))


SIGNERS = {
    RSA_ID: CloudFrontSigner(RSA_ID, rsa_signer(RSA_KEY)),
    EC_ID: CloudFrontSigner(EC_ID, ecdsa_signer),
    OTHER_ID: CloudFrontSigner(OTHER_ID, rsa_signer(OTHER_KEY)),
    "KUNKNOWNKEYID1": CloudFrontSigner("KUNKNOWNKEYID1", rsa_signer(RSA_KEY)),
}


def later(seconds: float = 3600) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def canned(path: str, key_id: str = RSA_ID, expires: datetime | None = None) -> str:
    """A canned-policy signed URL, as a path and query for the edge."""
    url = SIGNERS[key_id].generate_presigned_url(BASE + path, date_less_than=expires or later())
    return url[len(BASE):]


def custom_policy(resource: str, key_id: str = RSA_ID, expires: datetime | None = None,
                  starts: datetime | None = None, ip: str | None = None) -> str:
    return SIGNERS[key_id].build_policy(resource, expires or later(), date_greater_than=starts, ip_address=ip)


def custom(path: str, resource: str | None = None, key_id: str = RSA_ID, **conditions: Any) -> str:
    policy = custom_policy(resource or BASE + path, key_id, **conditions)
    return SIGNERS[key_id].generate_presigned_url(BASE + path, policy=policy)[len(BASE):]


def cookies_for(policy_url: str) -> str:
    """CloudFront's signed cookies carry the same values as a signed URL's parameters."""
    query = policy_url.partition("?")[2]
    found = dict(piece.split("=", 1) for piece in query.split("&"))
    return "; ".join(f"CloudFront-{name}={value}" for name, value in found.items()
                     if name in ("Expires", "Policy", "Signature", "Key-Pair-Id"))


def signed_document(port: int) -> dict[str, Any]:
    keyed = cache_policy(query_strings={"behavior": "all", "names": []},
                         cookies={"behavior": "all", "names": []})
    return document(distribution(
        port,
        public_keys=[{"id": RSA_ID, "encoded_key": pem(RSA_KEY)}, {"id": EC_ID, "encoded_key": pem(EC_KEY)},
                     {"id": OTHER_ID, "encoded_key": pem(OTHER_KEY)}],
        cache_behaviors=[
            behavior("/private/*", cache_policy=keyed,
                     trusted_key_groups=[{"id": GROUP, "public_key_ids": [RSA_ID, EC_ID]}]),
            behavior("/other/*", trusted_key_groups=[{"id": OTHER_GROUP, "public_key_ids": [OTHER_ID]}]),
            behavior("*"),
        ]))


@pytest.fixture
def signed_edge(origin: Origin, make_edge: EdgeFactory) -> Edge:
    for path in ("/private/a.txt", "/private/b.txt", "/private/c.txt", "/other/a.txt", "/public.txt"):
        origin.route(path, Answer(body=b"secret " + path.encode(), headers={"Cache-Control": "max-age=600"}))
    return make_edge(signed_document(origin.port))


def refused(edge: Edge, target: str, reason: str, **kwargs: Any) -> None:
    before = len(edge.log)
    answer = edge.get(target, **kwargs)
    assert answer.status_code == 403
    assert answer.text.splitlines()[0] == "403 Forbidden: access denied."
    assert reason not in answer.text
    deadline = time.monotonic() + 5
    while not any(reason in line for line in edge.log[before:]):
        assert time.monotonic() < deadline, f"no {reason!r} in the edge log: {edge.log[before:]}"
        time.sleep(0.02)
    # One line per refusal, however many times the request was checked (fast path, then slow).
    time.sleep(0.05)
    lines = [line for line in edge.log[before:] if "refused: signed request" in line]
    assert len(lines) == 1 and reason in lines[0], lines
    assert answer.headers["x-request-id"] in lines[0]


def test_a_canned_signed_url_passes_and_is_a_hit_the_second_time(signed_edge: Edge, origin: Origin) -> None:
    target = canned("/private/a.txt?color=red")
    first = signed_edge.get(target)
    assert first.status_code == 200 and first.content == b"secret /private/a.txt"
    assert first.headers["x-cache"].startswith("Miss")
    second = signed_edge.get(target)
    assert second.status_code == 200 and second.headers["x-cache"].startswith("Hit")
    # The signing parameters reach neither the origin (which got the viewer's own query) ...
    assert [seen.query for seen in origin.seen("/private/a.txt")] == ["color=red"]
    # ... nor the cache key: another signature for the same URL is a hit on the same object.
    resigned = signed_edge.get(canned("/private/a.txt?color=red", expires=later(7200)))
    assert resigned.status_code == 200 and resigned.headers["x-cache"].startswith("Hit")
    assert origin.hits("/private/a.txt") == 1


def test_a_custom_policy_with_a_wildcard_resource_and_the_clients_address_passes(signed_edge: Edge) -> None:
    target = custom("/private/b.txt", resource=BASE + "/private/*", ip="127.0.0.1", starts=later(-60))
    assert signed_edge.get(target).headers["x-cache"].startswith("Miss")
    again = signed_edge.get(target)
    assert again.status_code == 200 and again.headers["x-cache"].startswith("Hit")
    other = custom("/private/c.txt", resource=BASE + "/private/?.txt", ip="127.0.0.0/8")
    assert signed_edge.get(other).status_code == 200


def test_an_ecdsa_p256_signature_passes(signed_edge: Edge) -> None:
    assert signed_edge.get(canned("/private/a.txt", key_id=EC_ID)).status_code == 200
    hit = signed_edge.get(custom("/private/a.txt", key_id=EC_ID))
    assert hit.status_code == 200 and hit.headers["x-cache"].startswith("Hit")


def test_signed_cookies_pass_canned_and_custom(signed_edge: Edge, origin: Origin) -> None:
    policy_cookies = cookies_for(custom("/private/b.txt", resource=BASE + "/private/*"))
    first = signed_edge.get("/private/b.txt", headers={"Cookie": policy_cookies})
    assert first.status_code == 200 and first.headers["x-cache"].startswith("Miss")
    canned_cookies = cookies_for(canned("/private/b.txt"))
    second = signed_edge.get("/private/b.txt", headers={"Cookie": canned_cookies})
    assert second.status_code == 200 and second.headers["x-cache"].startswith("Hit")
    # The signing cookies are the edge's: not in the cache key, never sent to the origin.
    assert all("CloudFront-" not in seen.headers.get("cookie", "") for seen in origin.seen("/private/b.txt"))
    with_own = signed_edge.get("/private/c.txt", headers={"Cookie": "theme=dark; " + canned_cookies})
    assert with_own.status_code == 403  # the canned cookie signed /private/b.txt, not c.txt
    assert signed_edge.get("/private/c.txt", headers={"Cookie": "theme=dark; " + policy_cookies}).status_code == 200
    assert [seen.headers.get("cookie") for seen in origin.seen("/private/c.txt")] == ["theme=dark"]


def test_every_bad_signature_is_refused_with_its_reason_in_the_edge_log(signed_edge: Edge) -> None:
    refused(signed_edge, "/private/a.txt", "no signature")
    refused(signed_edge, canned("/private/a.txt", expires=later(-10)), "expired")
    refused(signed_edge, custom("/private/a.txt", starts=later(600)), "not yet valid")
    tampered_path = canned("/private/a.txt").replace("/private/a.txt", "/private/b.txt")
    refused(signed_edge, tampered_path, "signature does not match")
    target = canned("/private/a.txt")
    head, _, tail = target.partition("Signature=")
    flipped = head + "Signature=" + ("A" if tail[0] != "A" else "B") + tail[1:]
    refused(signed_edge, flipped, "signature does not match")
    refused(signed_edge, canned("/private/a.txt", key_id="KUNKNOWNKEYID1"), "unknown key id")
    refused(signed_edge, canned("/private/a.txt", key_id=OTHER_ID), "key not in this behavior's trusted key groups")
    refused(signed_edge, custom("/private/a.txt", ip="10.1.2.0/24"), "client IP not in the policy's IpAddress")
    refused(signed_edge, custom("/private/a.txt", resource=BASE + "/private/b*"), "resource does not match the URL")
    # The other behavior trusts the other group only; the public one needs nothing.
    assert signed_edge.get(canned("/other/a.txt", key_id=OTHER_ID)).status_code == 200
    refused(signed_edge, canned("/other/a.txt"), "key not in this behavior's trusted key groups")
    assert signed_edge.get("/public.txt").status_code == 200
    metrics = signed_edge.admin("GET", "/metrics").text
    assert f'edge_signed_refused_total{{distribution="{DIST_ID}"}} 10' in metrics


def test_a_cached_object_is_never_served_without_a_valid_signature(signed_edge: Edge) -> None:
    good = canned("/private/a.txt")
    assert signed_edge.get(good).status_code == 200
    assert signed_edge.get(good).headers["x-cache"].startswith("Hit")
    # The object is in memory and the fast path has a route for the URL: still checked every time.
    refused(signed_edge, "/private/a.txt", "no signature")
    refused(signed_edge, canned("/private/a.txt", expires=later(-1)), "expired")
    short = canned("/private/a.txt", expires=later(2))
    assert signed_edge.get(short).headers["x-cache"].startswith("Hit")
    time.sleep(2.2)
    refused(signed_edge, short, "expired")


def test_the_signing_key_id_is_in_the_access_log(origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/private/a.txt", Answer(headers={"Cache-Control": "max-age=600"}))
    edge = make_edge(signed_document(origin.port))
    target = canned("/private/a.txt", key_id=EC_ID)
    assert edge.get(target).status_code == 200  # a miss, through Proxy.handle
    assert edge.get(target).headers["x-cache"].startswith("Hit")  # a fast-path hit
    assert edge.get("/private/a.txt").status_code == 403
    lines = edge.admin("GET", f"/logs/tail?distribution={DIST_ID}&limit=10").text.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [(p["sc-status"], p["x-edge-response-result-type"], p.get("x-key-pair-id")) for p in parsed] == [
        (200, "Miss", EC_ID), (200, "Hit", EC_ID), (403, "Error", None)]


def test_a_signed_hit_is_answered_by_the_fast_path_and_counted_per_key(origin: Origin, tmp_path: Path) -> None:
    """In-process, to read the counters: the fast path checks and serves signed hits itself."""
    origin.route("/private/a.txt", Answer(headers={"Cache-Control": "max-age=600"}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(signed_document(origin.port)))
    settings = parse_settings(["--name", "edge-t", "--pop", "tst", "--cache-dir", str(tmp_path / "cache"),
                               "--config", str(config), "--access-log", "off"], env={})
    target = canned("/private/a.txt")

    async def main() -> None:
        agent = Agent(settings)
        agent.load_initial_config()
        server = await start_server(agent.proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        counters = agent.stats.counters(DIST_ID)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": DOMAIN}) as client:
                assert (await client.get(target)).headers["X-Cache"] == "Miss from edge-t"
                assert sum(counters.fast_hits) == 0
                for _ in range(3):
                    assert (await client.get(target)).headers["X-Cache"] == "Hit from edge-t"
                assert sum(counters.fast_hits) == 3
                refused = await client.get("/private/a.txt")
                assert refused.status_code == 403 and sum(counters.fast_hits) == 3
                report = counters.as_report()
                assert report["signed_requests"] == {RSA_ID: 4}
                assert report["requests"] == 5 and report["blocked"] == 1
        finally:
            server.close()
            await agent.proxy.drain(1)
            await agent.origins.close()
            agent.store.close()

    asyncio.run(main())
