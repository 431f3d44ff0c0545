"""1 KiB hits on a behavior that trusts a key group (signed URLs) against the same hits unsigned.

    python -m bench.signed_hits [--runs 3] [--duration 10] [--quick] [--key rsa2048|ecdsa_p256]

Two edges, the same document but for `trusted_key_groups` on the default behavior of one of
them, in front of the demo origin; `wrk -t1 -c64` asks the signed edge for one signed URL
(botocore's CloudFrontSigner, canned policy, RSA-2048 or ECDSA P-256: `--key`) and the
unsigned edge for the plain path, runs interleaved. Reported: the edges' CPU µs per request
(user+system of the process, per request), requests/s, and the difference, which is what
the signature check costs a fast-path hit end to end. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bench import run as bench
from bench import servers as srv

KEY_ID = "KBENCHSIGNED01"
GROUP = "0f6c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
PATH = "/bench/1k"


def signed_document(origin_port: int, public_pem: str) -> dict[str, Any]:
    doc: dict[str, Any] = srv.edge_document(origin_port)
    dist = doc["distributions"][0]
    dist["public_keys"] = [{"id": KEY_ID, "encoded_key": public_pem}]
    dist["cache_behaviors"][-1]["trusted_key_groups"] = [{"id": GROUP, "public_key_ids": [KEY_ID]}]
    doc["schema_version"] = 2
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 run x 2 s")
    parser.add_argument("--key", choices=("rsa2048", "ecdsa_p256"), default="rsa2048")
    parser.add_argument("--out", type=Path, help="default: docs/perf/signed_hits_<key>.json")
    args = parser.parse_args()
    runs, duration = (1, 2.0) if args.quick else (args.runs, args.duration)
    private: Any
    if args.key == "rsa2048":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer = CloudFrontSigner(KEY_ID, lambda m: private.sign(m, padding.PKCS1v15(), hashes.SHA1()))
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        signer = CloudFrontSigner(KEY_ID, lambda m: private.sign(m, ec.ECDSA(hashes.SHA256())))
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    signed_url = signer.generate_presigned_url(f"http://{srv.BENCH_HOST}{PATH}",
                                               date_less_than=datetime.now(timezone.utc) + timedelta(days=1))
    signed_target = signed_url[len(f"http://{srv.BENCH_HOST}"):]
    with tempfile.TemporaryDirectory(prefix="cdn-bench-signed-") as tmp:
        work = Path(tmp)
        (work / "plain").mkdir()
        (work / "signed").mkdir()
        servers: list[srv.Server] = []
        try:
            origin = srv.start_origin(work)
            servers.append(origin)
            plain = srv.start_edge(work / "plain", origin.port)
            servers.append(plain)
            signed = srv.start_edge(work / "signed", origin.port, document=signed_document(origin.port, public_pem),
                                    ready_path=signed_target)
            servers.append(signed)
            edges = {"unsigned": (plain, PATH), "signed": (signed, signed_target)}
            for server, target in edges.values():
                for _ in range(2):  # the fill, then a hit
                    answer = httpx.get(server.url + target, headers={"Host": srv.BENCH_HOST}, timeout=5)
                    assert answer.status_code == 200, (server.name, answer.status_code, answer.text[:200])
                assert srv.looks_like_hit(answer.headers.get("x-cache", "")), answer.headers
            refused = httpx.get(signed.url + PATH, headers={"Host": srv.BENCH_HOST}, timeout=5)
            assert refused.status_code == 403, refused.status_code
            results: dict[str, list[dict[str, float]]] = {name: [] for name in edges}
            for _ in range(runs):
                for name, (server, target) in edges.items():
                    tree = srv.process_tree(server.proc.pid)
                    before = srv.cpu_ticks(tree)
                    output = bench.wrk(server.url + target, duration)
                    cpu = srv.cpu_seconds_between(before, srv.cpu_ticks(tree))
                    requests, seconds, p99_ms, errors, timeouts = bench.parse_wrk(output)
                    if errors or timeouts:
                        raise SystemExit(f"{name}: {errors} errors, {timeouts} timeouts")
                    results[name].append({"rps": requests / seconds, "cpu_us_per_req": cpu * 1e6 / requests,
                                          "p99_ms": p99_ms})
        finally:
            srv.stop_all(servers, work)
    summary = {name: {"cpu_us_per_req": round(statistics.median(r["cpu_us_per_req"] for r in rs), 2),
                      "rps": round(statistics.median(r["rps"] for r in rs)),
                      "runs": rs} for name, rs in results.items()}
    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": bench.machine(),
        "key": args.key,
        "load": f"wrk -t1 -c{bench.CONNECTIONS} -d{duration:g}s, {runs} run(s) per edge, interleaved, medians",
        "edges": summary,
        "signed_check_cpu_us_per_hit": round(summary["signed"]["cpu_us_per_req"]
                                             - summary["unsigned"]["cpu_us_per_req"], 2),
    }
    if not args.quick:
        out = args.out or Path(f"docs/perf/signed_hits_{args.key}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "edges"} | {
        "edges": {n: {k: v for k, v in s.items() if k != "runs"} for n, s in summary.items()}}, indent=2))


if __name__ == "__main__":
    main()
