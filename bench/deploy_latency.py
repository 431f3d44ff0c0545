"""How long a change and an invalidation take to reach three local edges.

    python -m bench.deploy_latency                  # 50 changes and 50 invalidations
    python -m bench.deploy_latency --quick          # 5 of each (smoke)
    python -m bench.deploy_latency --broker sqla    # the same on another broker candidate

Starts the control plane, a Celery worker and beat, the demo origin and three edges as real
processes (the end-to-end test harness), on the embedded defaults or on PostgreSQL and Redis
when DATABASE_URL and CELERY_BROKER_URL say so; `--broker` names a broker candidate instead
(see BROKERS). For a change, the clock runs from sending the PATCH to the moment every
edge's /health reports the new version (polled every 2 ms); for an invalidation, from the
POST until the API reports it Completed, that is until every edge applied it and
acknowledged it. Then the cluster is left idle (edges still heartbeat, beat still ticks) and
the CPU time of web, worker and beat is read from /proc. Writes bench/results/deploy-latency.md.
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
# Broker candidates by name; `{var}` is the cluster's state folder. Redis uses a db of its own,
# not the end-to-end tests' one, so a benchmark never flushes a running test's queue.
BROKERS = {
    "atomicfs": "atomicfs://",
    "sqla": "sqla+sqlite:///{var}/broker.sqlite3",
    "redis": "redis://127.0.0.1:6379/12",
}
CONTROL_PLANE = ("web", "worker", "beat")


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


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads included (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle_cpu(cluster: Cluster, seconds: float) -> dict[str, float]:
    """CPU used by each control-plane process while nothing is asked of it, in percent of one core."""
    time.sleep(2)  # let the last invalidation's acknowledgements settle
    pids = {name: cluster.processes[name].pid for name in CONTROL_PLANE}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (cpu_seconds(pid) - before[name]) / elapsed * 100 for name, pid in pids.items()}


def log_problems(cluster: Cluster) -> int:
    """Lines in the control plane's logs that say the broker failed someone: a benchmark that hides them lies."""
    words = ("Traceback", "database is locked", "Unrecoverable error", "cannot be decoded")
    text = "".join((cluster.state / f"{name}.log").read_text(errors="replace") for name in CONTROL_PLANE)
    return sum(any(word in line for word in words) for line in text.splitlines())


def broker_label(url: str) -> str:
    scheme = url.split("://", 1)[0]
    if scheme.startswith("redis"):
        return "Redis"
    if scheme.startswith("sqla+"):
        return f"SQLAlchemy transport on {scheme.removeprefix('sqla+')}"
    return "atomic filesystem (embedded)"


def row(name: str, samples: list[float]) -> str:
    return (f"| {name} | {len(samples)} | {statistics.median(samples):.0f} | {percentile(samples, 0.95):.0f} | "
            f"{percentile(samples, 0.99):.0f} | {max(samples):.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 changes and 5 invalidations")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--broker", choices=sorted(BROKERS), help="a broker candidate instead of CELERY_BROKER_URL")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="how long to measure the idle cluster's CPU")
    parser.add_argument("--output", type=Path, default=RESULTS / "deploy-latency.md")
    args = parser.parse_args(argv)
    count = 5 if args.quick else args.count
    idle_seconds = 5.0 if args.quick else args.idle_seconds
    with tempfile.TemporaryDirectory(prefix="deploy-latency-") as tmp:
        cluster = Cluster(Path(tmp), heartbeat_seconds=5, broker_url=BROKERS[args.broker] if args.broker else None)
        broker = broker_label(cluster.env.get("CELERY_BROKER_URL", BROKERS["atomicfs"]))
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
            idle = measure_idle_cpu(cluster, idle_seconds)
            problems = log_problems(cluster)
        except BaseException:
            sys.stderr.write(cluster.logs())
            raise
        finally:
            cluster.close()
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    table = "\n".join([
        f"Deploy latency to three local edges ({database}, broker {broker}), milliseconds:",
        "",
        "| what | samples | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
        row("change: PATCH sent → every edge runs the new version", changes),
        row("invalidation: POST sent → Completed (every edge applied and acknowledged)", invalidations),
        "",
        f"CPU of the idle cluster over {idle_seconds:.0f} s, percent of one core: "
        + ", ".join(f"{name} {percent:.1f}" for name, percent in idle.items())
        + f", total {sum(idle.values()):.1f}",
        "",
        f"Log lines of web, worker and beat naming a traceback, a locked database or a bad message: {problems}",
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
