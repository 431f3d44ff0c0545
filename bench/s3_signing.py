"""What SigV4 signing adds to a miss to an S3 origin, in-process (no network, no moto).

    python -m bench.s3_signing [--requests 20000] [--rounds 5] [--out docs/perf/s3_signing.json]

Each request is what `PassThrough._fetch` does for an S3 origin: the object URL in S3's
encoding (`object_path`, `object_query`) and `sign` over the headers the origin request
policy chose, against the same URL building for an unsigned origin. The result is CPU µs
per request (process time, median of the rounds), written as JSON for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from edgeagent.config import S3Credentials, S3Settings
from edgeagent.s3sign import object_path, object_query, sign

S3 = S3Settings("private-assets", "eu-west-1", "https://s3.eu-west-1.amazonaws.com", "path", "always", "sigv4",
                S3Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""))
BASE = "https://s3.eu-west-1.amazonaws.com/private-assets"
PATH = "/images/2026/caf%C3%A9 logo+1.svg".replace(" ", "%20")
# What a miss forwards after the origin request policy: the edge's own headers and a conditional.
HEADERS = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"), ("Via", "1.1 edge-1 (cdn)"),
           ("If-None-Match", '"9b2cf535f27731c974343645a3985328"')]


def unsigned_once() -> None:
    BASE + object_path(PATH) + "?" + object_query("v=3")


def signed_once() -> None:
    url = BASE + object_path(PATH) + "?" + object_query("v=3")
    sign(S3, "GET", url, HEADERS, False)


def per_request_us(fn: object, requests: int) -> float:
    assert callable(fn)
    start = time.process_time()
    for _ in range(requests):
        fn()
    return (time.process_time() - start) * 1e6 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/perf/s3_signing.json"))
    args = parser.parse_args()
    per_request_us(signed_once, 1000)  # warm-up
    signed, unsigned = [], []
    for _ in range(args.rounds):
        unsigned.append(per_request_us(unsigned_once, args.requests))
        signed.append(per_request_us(signed_once, args.requests))
    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "unsigned_url_us": round(statistics.median(unsigned), 2),
        "signed_url_and_headers_us": round(statistics.median(signed), 2),
        "signing_cost_us": round(statistics.median(signed) - statistics.median(unsigned), 2),
        "signed_rounds_us": [round(v, 2) for v in signed],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
