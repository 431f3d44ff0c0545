"""The control plane driving many edges: a fleet simulator.

    python -m bench.fleet_sim --edges 100               # 100 fake edges, 1 % of them hung
    python -m bench.fleet_sim --edges 1000 --hung 0.01
    python -m bench.fleet_sim --quick                   # 20 edges, 3 changes, 3 invalidations (smoke)

Starts the control plane (web, Celery worker, beat) as real processes with the end-to-end
harness, on the embedded defaults or on PostgreSQL and Redis when DATABASE_URL and
CELERY_BROKER_URL say so, then runs every fake edge in this one process. Each fake edge is a
real HTTP admin endpoint on loopback speaking the edge protocol (docs/edge-config.md): it
checks signed pushes (PUT /config, POST /invalidations) with the real verifier, answers
GET /health, heartbeats every interval the control plane names, pulls the config and
acknowledges invalidations it is told about, and reports stats every 10 s. A hung edge (a
fraction, `--hung`) stops heartbeating and holds every admin request open, as a SIGSTOPped
process does; a slow edge (`--slow`) answers pushes after `--slow-seconds`.

The hung edges are hung first and the run waits until they are past the unhealthy grace
period, so `Deployed` and `Completed` no longer wait for them; then it measures, from the API
call to the API's answer, change → `Deployed` and invalidation → `Completed` (polled every
20 ms, every N/10,000 s above 200 edges), the time until every live fake edge runs the
change, heartbeat and stats latency as the edges saw it, and the CPU and memory of web and
worker. Writes
bench/results/fleet-<edges>.md. A benchmark, not a test: CI runs only --quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from bench.deploy_latency import percentile
from bench.servers import cpu_seconds_between, cpu_ticks, process_tree
from cdncontract.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier
from cdncontract.stats import LATENCY_BUCKETS
from tests.e2e.cluster import Cluster

RESULTS = Path(__file__).resolve().parent / "results"
STATS_INTERVAL = 10


@dataclass
class FakeEdge:
    name: str
    token: str = ""
    port: int = 0
    hung: bool = False
    slow: float = 0.0
    version: int = 0
    applied: set[int] = field(default_factory=set)
    verifier: Verifier | None = None
    runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_put("/config", self.put_config)
        app.router.add_post("/invalidations", self.post_invalidation)
        return app

    async def _hang_or_wait(self) -> None:
        if self.hung:
            await asyncio.Event().wait()  # never answers, like a stopped process
        if self.slow:
            await asyncio.sleep(self.slow)

    async def _checked(self, request: web.Request) -> Any:
        await self._hang_or_wait()
        body = await request.read()
        assert self.verifier is not None
        problem = self.verifier.check(request.headers.get(TIMESTAMP_HEADER), request.headers.get(NONCE_HEADER),
                                      request.headers.get(SIGNATURE_HEADER), request.method, request.path_qs, body)
        if problem:
            raise web.HTTPUnauthorized(text=json.dumps({"error": problem}), content_type="application/json")
        return json.loads(body)

    async def health(self, request: web.Request) -> web.Response:
        await self._hang_or_wait()
        return web.json_response({"status": "ok", "name": self.name, "pop": "sim", "version": self.version})

    async def put_config(self, request: web.Request) -> web.Response:
        document = await self._checked(request)
        if document["version"] < self.version:
            return web.json_response({"error": "older than running", "version": self.version}, status=409)
        self.version = document["version"]
        return web.json_response({"version": self.version})

    async def post_invalidation(self, request: web.Request) -> web.Response:
        message = await self._checked(request)
        self.applied.add(int(message["id"]))
        return web.json_response({"id": message["id"], "removed": 0})


@dataclass
class Latencies:
    heartbeat: list[float] = field(default_factory=list)
    stats: list[float] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)


async def _call(session: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str],
                body: Any = None) -> tuple[int, Any]:
    async with session.request(method, path, headers=headers, json=body) as answer:
        return answer.status, await answer.json(content_type=None)


async def edge_link(edge: FakeEdge, session: aiohttp.ClientSession, distribution_id: list[str], seen: Latencies,
                    stop: asyncio.Event) -> None:
    """Heartbeat, pull, ack and report as edgeagent/link.py does, until stopped or hung.

    aiohttp, as the edge's own client: a thousand fake edges on httpx cost this process more
    CPU than the control plane it measures."""
    headers = {"Authorization": f"Bearer {edge.token}"}
    interval = 5.0
    next_stats = (time.time() // STATS_INTERVAL + 1) * STATS_INTERVAL + random.uniform(0, 2)
    await asyncio.sleep(random.uniform(0, interval))
    while not stop.is_set() and not edge.hung:
        try:
            started = time.perf_counter()
            _, body = await _call(session, "POST", "/api/v1/edge/heartbeat", headers,
                                  {"version": edge.version, "invalidation_seq": max(edge.applied, default=0)})
            seen.heartbeat.append(time.perf_counter() - started)
            interval = float(body.get("heartbeat_interval", interval))
            if body["version"] > edge.version:
                _, document = await _call(session, "GET", "/api/v1/edge/config", headers)
                edge.version = max(edge.version, int(document["version"]))
            ids = [int(i["id"]) for i in body.get("invalidations", [])]
            if ids:
                edge.applied.update(ids)
                await _call(session, "POST", "/api/v1/edge/acks", headers, {"invalidations": ids})
            if time.time() >= next_stats and distribution_id:
                start = int(next_stats // STATS_INTERVAL * STATS_INTERVAL) - STATS_INTERVAL
                buckets = [0] * LATENCY_BUCKETS
                buckets[3] = 10
                report = {"interval_start": start, "interval_seconds": STATS_INTERVAL, "distributions": {
                    distribution_id[0]: {"requests": 10, "hits": 9, "misses": 1, "bytes_out": 10_000,
                                         "status_2xx": 10, "latency_ms_buckets": buckets}}}
                started = time.perf_counter()
                status, answer = await _call(session, "POST", "/api/v1/edge/stats", headers, report)
                seen.stats.append(time.perf_counter() - started)
                if status != 200:
                    seen.failures += 1
                    seen.errors.append(f"stats {status}: {str(answer)[:200]}")
                next_stats += STATS_INTERVAL
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, AttributeError) as exc:
            seen.failures += 1
            seen.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))


class Simulator:
    def __init__(self, cluster: Cluster, count: int, hung: float, slow: float, slow_seconds: float) -> None:
        self.cluster = cluster
        self.edges = [FakeEdge(f"sim-{i:04d}") for i in range(count)]
        n_hung = max(1, round(count * hung)) if hung > 0 else 0
        for edge in self.edges[:n_hung]:
            edge.hung = True
        for edge in self.edges[n_hung:n_hung + round(count * slow)]:
            edge.slow = slow_seconds
        self.seen = Latencies()
        self.stop = asyncio.Event()
        self.distribution_id: list[str] = []

    @property
    def live(self) -> list[FakeEdge]:
        return [edge for edge in self.edges if not edge.hung]

    async def start(self, client: httpx.AsyncClient, session: aiohttp.ClientSession) -> list[asyncio.Task[None]]:
        api = {"Authorization": f"Token {self.cluster.token}"}
        for edge in self.edges:
            edge.runner = web.AppRunner(edge.app(), access_log=None)
            await edge.runner.setup()
            site = web.TCPSite(edge.runner, "127.0.0.1", 0, backlog=64)
            await site.start()
            edge.port = int(edge.runner.addresses[-1][1])
            answer = await client.post("/api/v1/edges/", headers=api,
                                       json={"name": edge.name, "pop": "sim", "url": f"http://127.0.0.1:{edge.port}"})
            answer.raise_for_status()
            edge.token = answer.json()["token"]
            edge.verifier = Verifier(edge.token)
        return [asyncio.create_task(edge_link(edge, session, self.distribution_id, self.seen, self.stop))
                for edge in self.edges]

    async def close(self, tasks: list[asyncio.Task[None]]) -> None:
        self.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for edge in self.edges:
            if edge.runner is not None:
                await edge.runner.cleanup()


async def api_json(client: httpx.AsyncClient, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Token {token}", **kwargs.pop("headers", {})}
    return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


async def poll(what: str, probe: Any, timeout: float, every: float = 0.02) -> float:
    """Seconds until `probe()` is true; bounded."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await probe():
            return time.perf_counter() - started
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def run(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    # Kept alive for less than gunicorn's 2 s, so the operator's client never reuses a
    # connection the web has just closed (httpx does not retry a read on one).
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=1.0)
    base = f"http://127.0.0.1:{cluster.web_port}"
    # How often the API is asked for a status: every 20 ms up to 200 edges, then less often
    # (0.1 s at 1,000), because a GET of a distribution reads every edge, and asking 50 times
    # a second would be load of the benchmark's own, not the fleet's.
    api_poll = max(0.02, args.edges / 10_000)
    # A connection per request, as an edge heartbeating every few seconds past gunicorn's 2 s keep-alive.
    connector = aiohttp.TCPConnector(limit=200, force_close=True)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client, aiohttp.ClientSession(
            base_url=base, timeout=aiohttp.ClientTimeout(total=30), connector=connector) as session:
        sim = Simulator(cluster, args.edges, args.hung, args.slow, args.slow_seconds)
        tasks = await sim.start(client, session)
        try:
            body = {"comment": "fleet sim", "enabled": True,
                    "origins": [{"origin_id": "o", "domain_name": "127.0.0.1", "http_port": 9, "protocol_policy": "http-only"}],
                    "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "o", "cache_policy": "CachingOptimized"}]}
            created = (await api_json(client, cluster.token, "POST", "/distributions/", json=body)).json()
            sim.distribution_id.append(created["id"])
            url = f"/distributions/{created['id']}/"

            async def status() -> dict[str, Any]:
                return (await api_json(client, cluster.token, "GET", url)).json()

            async def settled() -> bool:
                deployment = (await status())["deployment"]
                return deployment["edges_total"] == len(sim.live) and not deployment["edges_pending"]

            # Hung edges stop at once; wait until they are past the grace period and no longer counted.
            await poll("the hung edges to stop counting and the rest to run the distribution", settled,
                       args.grace + 60, every=0.5)
            changes, live_runs, invalidations = [], [], []
            for i in range(args.changes):
                current = await api_json(client, cluster.token, "GET", url)
                started = time.perf_counter()
                changed = await api_json(client, cluster.token, "PATCH", url, json={"default_root_object": f"p{i}.html"},
                                         headers={"If-Match": current.headers["ETag"]})
                version = changed.json()["config_version"]

                async def deployed() -> bool:
                    return (await status())["status"] == "Deployed"

                async def live_run() -> bool:
                    return all(edge.version >= version for edge in sim.live)

                await poll("every live edge to run the change", live_run, 60, every=0.005)
                live_runs.append(time.perf_counter() - started)
                await poll("Deployed", deployed, 60, api_poll)
                changes.append(time.perf_counter() - started)
            for i in range(args.invalidations):
                started = time.perf_counter()
                made = (await api_json(client, cluster.token, "POST", f"{url}invalidations/",
                                       json={"paths": [f"/p{i}.html"]})).json()

                async def completed() -> bool:
                    answer = await api_json(client, cluster.token, "GET", f"{url}invalidations/{made['id']}/")
                    return answer.json()["status"] == "Completed"

                await poll("Completed", completed, 60, api_poll)
                invalidations.append(time.perf_counter() - started)
            trees = {name: process_tree(cluster.processes[name].pid) for name in ("web", "worker")}
            before = {name: cpu_ticks(tree) for name, tree in trees.items()}
            await asyncio.sleep(args.idle_seconds)
            cpu = {name: 100 * cpu_seconds_between(before[name], cpu_ticks(tree)) / args.idle_seconds
                   for name, tree in trees.items()}
        finally:
            await sim.close(tasks)
    return {"changes": changes, "live": live_runs, "invalidations": invalidations, "cpu": cpu,
            "rss": {name: rss_mib(cluster.processes[name].pid) for name in ("web", "worker")},
            "heartbeat": sim.seen.heartbeat, "stats": sim.seen.stats, "failures": sim.seen.failures,
            "errors": sorted(set(sim.seen.errors))[:5],
            "hung": len(sim.edges) - len(sim.live)}


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children, MiB (gunicorn or runserver, Celery's pool)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(status.parent.name) == pid or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def ms_row(name: str, samples: list[float]) -> str:
    if not samples:
        return f"| {name} | 0 | - | - | - |"
    ms = [s * 1000 for s in samples]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.0f} | {percentile(ms, 0.99):.0f} | {max(ms):.0f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=100)
    parser.add_argument("--hung", type=float, default=0.01, help="fraction of edges that hang (at least one if > 0)")
    parser.add_argument("--slow", type=float, default=0.0, help="fraction of edges that answer pushes slowly")
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--invalidations", type=int, default=20)
    parser.add_argument("--grace", type=int, default=20, help="CDN_UNHEALTHY_GRACE_SECONDS for the run")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--heartbeat-seconds", type=int, default=5, help="CDN_HEARTBEAT_SECONDS for the run")
    parser.add_argument("--web-workers", type=int, default=2,
                        help="gunicorn workers (4 threads each) for the web process; 0 runs Django's runserver")
    parser.add_argument("--quick", action="store_true", help="20 edges, 3 changes, 3 invalidations, 5 s idle")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.edges, args.changes, args.invalidations, args.idle_seconds = 20, 3, 3, 5.0
    output = args.output or RESULTS / f"fleet-{args.edges}.md"
    with tempfile.TemporaryDirectory(prefix="fleet-sim-") as tmp:
        # A Redis broker is used as named (its own db number), not moved to the e2e tests' db.
        broker = os.environ.get("CELERY_BROKER_URL", "")
        cluster = Cluster(Path(tmp), heartbeat_seconds=args.heartbeat_seconds, unhealthy_grace_seconds=args.grace,
                          broker_url=broker if broker.startswith("redis://") else None, web_workers=args.web_workers)
        try:
            cluster.start_controlplane()
            result = asyncio.run(run(args, cluster))
        except BaseException:
            sys.stderr.write(cluster.logs())
            raise
        finally:
            cluster.close()
    seconds = max(1.0, args.idle_seconds)
    table = "\n".join([
        f"{args.edges} simulated edges ({result['hung']} hung), web: "
        + (f"gunicorn, {args.web_workers} workers x 4 threads" if args.web_workers else "runserver")
        + f", heartbeats every {args.heartbeat_seconds} s, milliseconds:",
        "",
        "| what | samples | p50 | p99 | max |",
        "|---|---|---|---|---|",
        ms_row("change: PATCH sent → API says Deployed", result["changes"]),
        ms_row("change: PATCH sent → every live edge runs it", result["live"]),
        ms_row("invalidation: POST sent → API says Completed", result["invalidations"]),
        ms_row("heartbeat, as the edges saw it", result["heartbeat"]),
        ms_row("stats report, as the edges saw it", result["stats"]),
        "",
        f"Edge-side request failures: {result['failures']}. Stats reports answered over the run: "
        f"{len(result['stats'])}." + (" Failures seen: " + "; ".join(result["errors"]) if result["errors"] else ""),
        f"CPU over {seconds:.0f} s idle, percent of one core: "
        + ", ".join(f"{name} {value:.1f}" for name, value in result["cpu"].items())
        + "; memory (RSS, MiB): " + ", ".join(f"{name} {value:.0f}" for name, value in result["rss"].items()),
    ])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
