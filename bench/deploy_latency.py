"""How long a change and an invalidation take to reach three local edges.

    python -m bench.deploy_latency             # 50 changes and 50 invalidations
    python -m bench.deploy_latency --quick     # 5 of each (smoke)

Starts the control plane, a Celery worker and beat, the demo origin and three edges as real
processes (the end-to-end test harness), on the embedded defaults or on PostgreSQL and Redis
when DATABASE_URL and CELERY_BROKER_URL say so. For a change, the clock runs from sending
the PATCH to the moment every edge's /health reports the new version (polled every 2 ms);
for an invalidation, from the POST until the API reports it Completed, that is until every
edge applied it and acknowledged it. Writes bench/results/deploy-latency.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.e2e.cluster import Cluster, wait_for

RESULTS = Path(__file__).resolve().parent / "results"
EDGES = (("edge-fra", "fra"), ("edge-iad", "iad"), ("edge-sin", "sin"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def edge_versions(cluster: Cluster, client: httpx.Client) -> list[int]:
    return [client.get(f"http://127.0.0.1:{cluster.edge_ports[name][1]}/health").json()["version"] for name, _ in EDGES]


def measure_changes(cluster: Cluster, distribution_id: str, count: int) -> list[float]:
    samples = []
    with httpx.Client(timeout=10) as client:
        for i in range(count):
            current = cluster.api("GET", f"/distributions/{distribution_id}/")
            started = time.perf_counter()
            changed = cluster.api("PATCH", f"/distributions/{distribution_id}/",
                                  json={"default_root_object": f"page-{i}.html"}, headers={"If-Match": current.headers["ETag"]})
            assert changed.status_code == 200, changed.text
            target = changed.json()["config_version"]  # published before the answer, after the commit
            deadline = time.monotonic() + 10
            while min(edge_versions(cluster, client)) < target:
                if time.monotonic() > deadline:
                    raise SystemExit(f"change {i} did not reach every edge within 10 s")
                time.sleep(0.002)
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.2)
    return samples


def measure_invalidations(cluster: Cluster, distribution_id: str, count: int) -> list[float]:
    samples = []
    with httpx.Client(timeout=10, headers={"Authorization": f"Token {cluster.token}"}) as client:
        base = f"{cluster.api_url}/distributions/{distribution_id}/invalidations/"
        for i in range(count):
            started = time.perf_counter()
            made = client.post(base, json={"paths": [f"/page-{i}.html", "/img/*"]})
            assert made.status_code == 201, made.text
            url = f"{base}{made.json()['id']}/"
            deadline = time.monotonic() + 10
            while client.get(url).json()["status"] != "Completed":
                if time.monotonic() > deadline:
                    raise SystemExit(f"invalidation {i} did not complete within 10 s")
                time.sleep(0.002)
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.2)
    return samples


def row(name: str, samples: list[float]) -> str:
    return (f"| {name} | {len(samples)} | {statistics.median(samples):.0f} | {percentile(samples, 0.95):.0f} | "
            f"{percentile(samples, 0.99):.0f} | {max(samples):.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 changes and 5 invalidations")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS / "deploy-latency.md")
    args = parser.parse_args(argv)
    count = 5 if args.quick else args.count
    with tempfile.TemporaryDirectory(prefix="deploy-latency-") as tmp:
        cluster = Cluster(Path(tmp), heartbeat_seconds=5)
        try:
            cluster.start_controlplane()
            cluster.start_origin()
            for name, pop in EDGES:
                cluster.register_edge(name, pop)
                cluster.start_edge(name)
            wait_for("three healthy edges",
                     lambda: sum(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]) == 3)
            created = cluster.api("POST", "/distributions/", json={
                "comment": "deploy latency", "enabled": True,
                "origins": [{"origin_id": "demo", "domain_name": "127.0.0.1", "http_port": cluster.origin_port,
                             "protocol_policy": "http-only"}],
                "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "demo",
                                     "cache_policy": "CachingOptimized"}]}).json()
            wait_for("the distribution to deploy",
                     lambda: cluster.api("GET", f"/distributions/{created['id']}/").json()["status"] == "Deployed")
            changes = measure_changes(cluster, created["id"], count)
            invalidations = measure_invalidations(cluster, created["id"], count)
        except BaseException:
            for name in list(cluster.processes):
                sys.stderr.write(f"---- {name} ----\n{cluster.log(name)}\n")
            raise
        finally:
            cluster.close()
    broker = "Redis" if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else "filesystem (embedded)"
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    table = "\n".join([
        f"Deploy latency to three local edges ({database}, broker {broker}), milliseconds:",
        "",
        "| what | samples | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
        row("change: PATCH sent → every edge runs the new version", changes),
        row("invalidation: POST sent → Completed (every edge applied and acknowledged)", invalidations),
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
