"""What checking a signed URL or signed cookie costs a request, in-process (no sockets).

    python -m bench.signed_urls [--requests 20000] [--rounds 5] [--out docs/perf/signed_urls.json]

Each check is what the hit fast path adds for a behavior that trusts key groups:
`admission.check_signed` on the memoised route verdict (split the signing parameters off
the query or read the cookies, rebuild the resource URL, look the key up, verify or find the
verified signature, test the time and address conditions), for URLs and cookies made by
botocore's CloudFrontSigner. Measured for RSA-2048 (SHA-1) and ECDSA P-256 (SHA-256), canned
and custom policies:

- `hit`: the same signed URL again (the verified signature is remembered): what a cached
  hit for a URL viewers repeat costs;
- `new_signature`: a signature the edge has not verified yet (every check signs a fresh
  URL beforehand, outside the timing): the public-key operation included.

CPU µs per check (process time, median of the rounds), written as JSON for
docs/performance.md. The unsigned fast path does none of this (`Route.serve`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edgeagent import signedurls
from edgeagent.config import parse_document
from edgeagent.proxy import admission

HOST = "e2qwruhapomqzl.cdn.localhost"
BASE = f"http://{HOST}"
PATH = "/private/videos/2026/intro.mp4"


def _pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNERS = {
    "rsa2048": CloudFrontSigner("KRSA2048BENCH1", lambda m: RSA_KEY.sign(m, padding.PKCS1v15(), hashes.SHA1())),
    "ecdsa_p256": CloudFrontSigner("KECDSAP256BNCH", lambda m: EC_KEY.sign(m, ec.ECDSA(hashes.SHA256()))),
}


def _route() -> admission.Admission:
    policy = {"id": "658327ea-f89d-4fab-a63d-7e88639e58f6", "name": "b", "min_ttl": 0, "default_ttl": 60,
              "max_ttl": 600, "query_strings": {"behavior": "none", "names": []},
              "headers": {"behavior": "none", "names": []}, "cookies": {"behavior": "none", "names": []},
              "enable_gzip": False, "enable_brotli": False}
    behavior = {"path_pattern": "*", "target": "web", "viewer_protocol_policy": "allow-all",
                "allowed_methods": ["GET", "HEAD"], "cached_methods": ["GET", "HEAD"], "compress": False,
                "cache_policy": policy, "origin_request_policy": None,
                "trusted_key_groups": [{"id": "0f6c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5",
                                        "public_key_ids": ["KRSA2048BENCH1", "KECDSAP256BNCH"]}]}
    doc = {"schema_version": 2, "version": 1, "distributions": [{
        "id": "E2QWRUHAPOMQZL", "domain_name": HOST, "aliases": [], "default_root_object": "",
        "origins": [{"id": "web", "kind": "custom", "domain_name": "127.0.0.1", "origin_path": "", "http_port": 80,
                     "https_port": 443, "protocol_policy": "http-only", "connect_timeout": 2, "read_timeout": 5,
                     "connection_attempts": 1, "custom_headers": [], "s3": None}],
        "origin_groups": [], "cache_behaviors": [behavior], "custom_error_responses": [],
        "public_keys": [{"id": "KRSA2048BENCH1", "encoded_key": _pem(RSA_KEY)},
                        {"id": "KECDSAP256BNCH", "encoded_key": _pem(EC_KEY)}]}]}
    verdict = admission.admit_route(parse_document(doc), "http", "GET", HOST, PATH)
    assert verdict.signed
    return verdict


ROUTE = _route()


def signed_target(kind: str, policy: str, seconds: int) -> str:
    signer = SIGNERS[kind]
    expires = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    if policy == "canned":
        url = signer.generate_presigned_url(BASE + PATH + "?v=3", date_less_than=expires)
    else:
        resource = signer.build_policy(BASE + "/private/*", expires, ip_address="203.0.113.0/24")
        url = signer.generate_presigned_url(BASE + PATH + "?v=3", policy=resource)
    return url[len(BASE):]


def check_once(target: str) -> None:
    verdict = admission.check_signed(ROUTE, HOST, target, None, "203.0.113.7", time.time())
    assert verdict.kind == admission.ADMIT


def repeated_us(target: str, requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        check_once(target)
    return (time.process_time() - start) * 1e6 / requests


def fresh_us(kind: str, policy: str, requests: int) -> float:
    """Each check a signature not seen before: targets are made first, outside the timing."""
    targets = [signed_target(kind, policy, 3600 + i) for i in range(requests)]
    # A round repeats the last one's URLs within the same second: forget what was verified.
    signedurls._TICKETS.clear()
    signedurls._VERIFIED.clear()
    start = time.process_time()
    for target in targets:
        check_once(target)
    return (time.process_time() - start) * 1e6 / requests


def median(runs: Callable[[], float], rounds: int) -> tuple[float, list[float]]:
    values = [runs() for _ in range(rounds)]
    return round(statistics.median(values), 2), [round(v, 2) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--fresh", type=int, default=1000, help="checks of never-seen signatures per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/perf/signed_urls.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for kind in SIGNERS:
        for policy in ("canned", "custom"):
            target = signed_target(kind, policy, 3600)
            repeated_us(target, 1000)  # warm-up, and the signature is verified once
            hit, hit_rounds = median(lambda: repeated_us(target, args.requests), args.rounds)
            fresh, fresh_rounds = median(lambda: fresh_us(kind, policy, args.fresh), args.rounds)
            results[f"{kind}_{policy}"] = {"hit_us": hit, "hit_rounds_us": hit_rounds,
                                           "new_signature_us": fresh, "new_signature_rounds_us": fresh_rounds}
    # The same checks with the signature in cookies rather than the query.
    cookie_target = signed_target("rsa2048", "custom", 3600)
    cookie = "; ".join("CloudFront-" + piece for piece in cookie_target.partition("?")[2].split("&")
                       if not piece.startswith("v="))

    def cookie_once() -> None:
        verdict = admission.check_signed(ROUTE, HOST, PATH + "?v=3", cookie, "203.0.113.7", time.time())
        assert verdict.kind == admission.ADMIT

    def cookies_us() -> float:
        start = time.process_time()
        for _ in range(args.requests):
            cookie_once()
        return (time.process_time() - start) * 1e6 / args.requests

    cookie_once()
    hit, hit_rounds = median(cookies_us, args.rounds)
    results["rsa2048_custom_cookies"] = {"hit_us": hit, "hit_rounds_us": hit_rounds}
    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "requests_per_round": args.requests,
        "new_signatures_per_round": args.fresh,
        "rounds": args.rounds,
        "memo_limit": signedurls._MEMO_LIMIT,
        "checks": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
