"""The control-plane link against a fake control plane on loopback that answers per the contract.

The fake (aiohttp.web on an ephemeral port) records every request; the agent is the real
`edgeagent.agent.Agent`, in the same event loop, so configs are really validated and
persisted and invalidations really applied.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from edgeagent.agent import Agent
from edgeagent.cli import parse_settings
from edgeagent.link import ControlPlaneLink
from edgeagent.stats import HIT, MISS, RUNNING_MARKER, StatsBuffer, StatsCollector
from tests.edge.conftest import DIST_ID, TOKEN, Answer, EdgeFactory, Origin, clone, distribution, document

T0 = 1_764_000_000
UNUSED_ORIGIN_PORT = 9  # configs here are never served, only validated and swapped


# ---- Fake control plane ----


class FakeControlPlane:
    """Answers the edge API of docs/edge-config.md and records what it was sent."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.invalidations: list[dict[str, Any]] = []
        self.acked: list[int] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.config_fetches = 0
        self.stats_posts: list[dict[str, Any]] = []
        self.counted: dict[int, dict[str, Any]] = {}
        self.duplicates = 0
        # Scripted stats failures, consumed in order: "before" answers 500 without counting,
        # "after" counts the report and then answers 500 (the answer got lost).
        self.stats_failures: list[str] = []
        self.heartbeat_interval: float = 0.05
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/edge/heartbeat", self._heartbeat)
        app.router.add_get("/api/v1/edge/config", self._config)
        app.router.add_post("/api/v1/edge/acks", self._acks)
        app.router.add_post("/api/v1/edge/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the listener: the port refuses connections until `start` again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def _heartbeat(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"detail": "unknown edge token"}, status=401)
        self.heartbeats.append(await request.json())
        pending = [i for i in self.invalidations if i["id"] not in self.acked]
        return web.json_response({
            "name": "edge-t", "pop": "tst",
            "version": self.documents[-1]["version"] if self.documents else 0,
            "heartbeat_interval": self.heartbeat_interval,
            "invalidations": pending,
        })  # fmt: skip

    async def _config(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"detail": "unknown edge token"}, status=401)
        self.config_fetches += 1
        if not self.documents:
            return web.json_response({"detail": "no config version"}, status=404)
        return web.json_response(self.documents[-1])

    async def _acks(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"detail": "unknown edge token"}, status=401)
        ids = (await request.json())["invalidations"]
        known = [i for i in ids if any(inv["id"] == i for inv in self.invalidations)]
        self.acked.extend(i for i in known if i not in self.acked)
        return web.json_response({"acknowledged": len(known)})

    async def _stats(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"detail": "unknown edge token"}, status=401)
        report = await request.json()
        self.stats_posts.append(report)
        failure = self.stats_failures.pop(0) if self.stats_failures else ""
        if failure == "before":
            return web.json_response({"detail": "database unavailable"}, status=500)
        start = report["interval_start"]
        accepted = start not in self.counted
        if accepted:
            self.counted[start] = report
        else:
            self.duplicates += 1
        if failure == "after":
            return web.json_response({"detail": "lost answer"}, status=500)
        return web.json_response({"accepted": accepted})

    def total(self, field: str) -> int:
        return sum(r["distributions"][DIST_ID][field] for r in self.counted.values())


# ---- Harness ----


def make_agent(tmp_path: Path, version: int = 1) -> Agent:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document(distribution(UNUSED_ORIGIN_PORT), version=version)))
    settings = parse_settings(
        ["--name", "edge-t", "--pop", "tst", "--cache-dir", str(tmp_path / "cache"), "--config", str(config)], env={}
    )
    agent = Agent(settings)
    agent.load_initial_config()
    return agent


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition, bounded; the assertion after it says what was expected."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.02)


def run(scenario: Callable[[FakeControlPlane], Awaitable[None]]) -> None:
    async def main() -> None:
        cp = FakeControlPlane()
        await cp.start()
        try:
            await scenario(cp)
        finally:
            await cp.stop()

    asyncio.run(main())


def link_for(
    agent: Agent, cp: FakeControlPlane, stats: StatsCollector | None = None, **kwargs: Any
) -> ControlPlaneLink:
    options: dict[str, Any] = {"heartbeat_interval": 0.05, "start_timeout": 2.0, "max_backoff": 0.2}
    options.update(kwargs)
    return ControlPlaneLink(agent, cp.url, TOKEN, stats, **options)


def traffic(collector: StatsCollector, hits: int, misses: int) -> None:
    for _ in range(hits):
        collector.record(DIST_ID, 200, HIT, 1000, 0.0005)
    for _ in range(misses):
        collector.record(DIST_ID, 200, MISS, 1000, 0.02)
        collector.count_origin_bytes(DIST_ID, 900)


# ---- Config and invalidations ----


def test_it_catches_up_the_config_at_start_when_behind_and_reports_the_new_version_at_once(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, version=1)

    async def scenario(cp: FakeControlPlane) -> None:
        cp.documents.append(document(distribution(UNUSED_ORIGIN_PORT, aliases=["new.example.test"]), version=3))
        link = link_for(agent, cp)
        try:
            assert await link.start() is True
        finally:
            await link.stop()
        assert agent.version == 3
        assert agent.config is not None and agent.config.find_distribution("new.example.test") is not None
        assert [h["version"] for h in cp.heartbeats[:2]] == [1, 3]
        assert cp.config_fetches == 1

    run(scenario)
    persisted = json.loads((tmp_path / "cache" / "edge-config.json").read_text())
    assert persisted["version"] == 3
    agent.store.close()


def test_it_fetches_a_newer_config_published_while_running_and_never_one_it_already_runs(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, version=2)

    async def scenario(cp: FakeControlPlane) -> None:
        base = document(distribution(UNUSED_ORIGIN_PORT), version=2)
        cp.documents.append(clone(base, 1))
        link = link_for(agent, cp)
        try:
            await link.start()
            await wait_until(lambda: len(cp.heartbeats) >= 4)
            assert cp.config_fetches == 0 and agent.version == 2
            cp.documents.append(clone(base, 5))
            await wait_until(lambda: agent.version == 5)
            assert agent.version == 5
            await wait_until(lambda: cp.heartbeats[-1]["version"] == 5)
        finally:
            await link.stop()
        assert cp.config_fetches == 1
        assert cp.heartbeats[-1]["version"] == 5

    run(scenario)
    agent.store.close()


def test_it_refuses_an_invalid_config_once_and_keeps_serving_the_last_good_one(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, version=1)

    async def scenario(cp: FakeControlPlane) -> None:
        bad = document(distribution(UNUSED_ORIGIN_PORT), version=2)
        bad["distributions"][0]["cache_behaviors"] = []
        cp.documents.append(bad)
        link = link_for(agent, cp)
        try:
            await link.start()
            await wait_until(lambda: len(cp.heartbeats) >= 5)
        finally:
            await link.stop()
        assert agent.version == 1
        assert cp.config_fetches == 1
        assert len(cp.heartbeats) >= 5 and all(h["version"] == 1 for h in cp.heartbeats)
        assert cp.heartbeats[0]["error"] == ""
        assert cp.heartbeats[-1]["error"].startswith("refused config version 2: distributions[0].cache_behaviors")
        assert link.connected

    run(scenario)
    agent.store.close()


def test_it_applies_listed_invalidations_then_acknowledges_them_and_reports_the_highest_id(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)

    async def scenario(cp: FakeControlPlane) -> None:
        cp.documents.append(document(distribution(UNUSED_ORIGIN_PORT), version=1))
        cp.invalidations += [
            {"id": 7, "distribution_id": DIST_ID, "paths": ["/a.css", "/img/*"], "tags": []},
            {"id": 9, "distribution_id": DIST_ID, "paths": [], "tags": ["product-42"]},
        ]
        link = link_for(agent, cp)
        try:
            assert await link.start() is True
            assert set(agent.applied_invalidations) == {7, 9}
            assert cp.acked == [7, 9]
            cp.invalidations.append({"id": 12, "distribution_id": DIST_ID, "paths": ["/*"], "tags": []})
            await wait_until(lambda: 12 in cp.acked)
            await wait_until(lambda: cp.heartbeats[-1]["invalidation_seq"] == 12)
        finally:
            await link.stop()
        assert cp.acked == [7, 9, 12]
        assert cp.heartbeats[0]["invalidation_seq"] == 0
        assert cp.heartbeats[-1]["invalidation_seq"] == 12
        assert agent.metrics.invalidations_applied == 3

    run(scenario)
    agent.store.close()


def test_an_invalidation_applied_but_not_acknowledged_is_acknowledged_again_without_reapplying(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.apply_invalidation(4, DIST_ID, ["/x"], [])

    async def scenario(cp: FakeControlPlane) -> None:
        cp.invalidations.append({"id": 4, "distribution_id": DIST_ID, "paths": ["/x"], "tags": []})
        link = link_for(agent, cp)
        try:
            assert await link.start() is True
        finally:
            await link.stop()
        assert cp.acked == [4]
        assert cp.heartbeats[0]["invalidation_seq"] == 4

    run(scenario)
    assert agent.metrics.invalidations_applied == 1
    agent.store.close()


# ---- Failures never stop the edge ----


def test_start_gives_up_quickly_when_the_control_plane_accepts_but_never_answers(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, version=1)

    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)
            await reader.read()

        server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = ControlPlaneLink(agent, f"http://127.0.0.1:{port}", TOKEN, start_timeout=0.3, request_timeout=30)
        try:
            assert await link.start() is False
            assert not link.connected and link.failures == 1
            assert agent.version == 1
        finally:
            await link.stop()
            for writer in held:
                writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    agent.store.close()


def test_it_keeps_retrying_with_a_wrong_token_without_crashing(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)

    async def scenario(cp: FakeControlPlane) -> None:
        link = ControlPlaneLink(agent, cp.url, "not-the-token", heartbeat_interval=0.05, max_backoff=0.1)
        try:
            assert await link.start() is False
            await wait_until(lambda: link.heartbeat_failures >= 3)
            assert link.heartbeat_failures >= 3
            assert link.running
        finally:
            await link.stop()
        assert cp.heartbeats == []

    run(scenario)
    agent.store.close()


# ---- Stats ----


def test_it_sends_each_interval_exactly_once_even_when_a_post_fails_or_its_answer_is_lost(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    clock = Clock(T0 + 1)
    collector = StatsCollector(StatsBuffer(tmp_path / "stats-buffer", 100), clock=clock)
    traffic(collector, hits=5, misses=2)
    collector.rotate(T0 + 10)
    traffic(collector, hits=3, misses=1)
    collector.rotate(T0 + 20)
    traffic(collector, hits=100, misses=100)

    async def scenario(cp: FakeControlPlane) -> None:
        cp.stats_failures = ["before", "", "after"]
        link = link_for(agent, cp, collector)
        try:
            await link.start()
            await wait_until(lambda: collector.buffer is not None and len(collector.buffer) == 0)
        finally:
            await link.stop()
        assert [r["interval_start"] for r in cp.stats_posts] == [T0, T0, T0 + 10, T0 + 10]
        assert sorted(cp.counted) == [T0, T0 + 10]
        assert cp.duplicates == 1
        assert cp.total("requests") == 11
        assert cp.total("hits") == 8 and cp.total("misses") == 3
        assert cp.total("bytes_in") == 2700
        assert link.reports_sent == 2 and link.reports_duplicate == 1
        assert link.connected and link.heartbeat_failures == 0

    run(scenario)
    assert collector.current_start == T0 + 20
    agent.store.close()


def test_it_buffers_stats_on_disk_through_an_outage_and_a_restart_and_sends_them_when_it_returns(
    tmp_path: Path,
) -> None:
    clock = Clock(T0 + 1)
    buffer_dir = tmp_path / "stats-buffer"

    def buffer_dir_entries() -> list[Path]:
        return [p for p in buffer_dir.iterdir() if p.name != RUNNING_MARKER]

    async def scenario(cp: FakeControlPlane) -> None:
        agent = make_agent(tmp_path)
        collector = StatsCollector(StatsBuffer(buffer_dir, 100), clock=clock)
        link = link_for(agent, cp, collector)
        assert await link.start() is True
        await cp.stop()
        for i in range(3):
            traffic(collector, hits=i + 1, misses=1)
            clock.now += 10
            collector.rotate()
        await wait_until(lambda: link.failures >= 2)
        assert link.failures >= 2 and not link.connected
        assert sorted(p.name for p in buffer_dir_entries()) == [f"{T0 + 10 * i}.json" for i in range(3)]
        # The edge restarts while the control plane is still down, midway through an interval.
        traffic(collector, hits=10, misses=0)
        collector.flush()
        await link.stop()
        agent.store.close()

        agent = make_agent(tmp_path)
        collector = StatsCollector(StatsBuffer(buffer_dir, 100), clock=clock)
        traffic(collector, hits=20, misses=0)
        link = link_for(agent, cp, collector)
        assert await link.start() is False
        await cp.start()
        try:
            await wait_until(lambda: len(cp.counted) == 3)
            assert sorted(cp.counted) == [T0, T0 + 10, T0 + 20]
            clock.now += 10
            collector.rotate()
            await wait_until(lambda: len(cp.counted) == 4 and len(buffer_dir_entries()) == 0)
        finally:
            await link.stop()
            agent.store.close()
        assert sorted(cp.counted) == [T0, T0 + 10, T0 + 20, T0 + 30]
        assert cp.counted[T0 + 30]["distributions"][DIST_ID]["requests"] == 30
        assert cp.total("hits") == 1 + 2 + 3 + 30
        assert cp.total("misses") == 3
        assert cp.duplicates == 0
        assert buffer_dir_entries() == []

    run(scenario)


# ---- A real edge process linked to the control plane ----


class ThreadedControlPlane:
    """The fake control plane on its own loop thread, for an edge running as a subprocess."""

    def __init__(self) -> None:
        self.cp = FakeControlPlane()
        self.cp.heartbeat_interval = 0.2
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeControlPlane:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.cp.start(), self._loop).result(10)
        return self.cp

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.cp.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll a condition from a test thread, bounded; the assertion after it says what was expected."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_edge_serves_its_config_when_the_control_plane_refuses_connections_at_start(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
    try:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        edge = make_edge(document(distribution(origin.port)), extra=["--control-plane", url])
        origin.route("/up", Answer(body=b"still serving"))
        response = edge.get("/up")
        assert response.status_code == 200 and response.content == b"still serving"
        assert "edge_control_plane_connected 0" in httpx.get(edge.admin_url + "/metrics").text
    finally:
        closed.close()


def test_an_edge_catches_up_before_serving_and_reports_exact_stats_across_a_restart(
    origin: Origin, make_edge: EdgeFactory, tmp_path: Path
) -> None:
    with ThreadedControlPlane() as cp:
        cp.documents.append(document(distribution(origin.port, aliases=["new.example.test"]), version=2))
        cp.invalidations.append({"id": 3, "distribution_id": DIST_ID, "paths": ["/*"], "tags": []})
        edge = make_edge(document(distribution(origin.port)), extra=["--control-plane", cp.url])
        assert 3 in cp.acked
        origin.route("/s", Answer(body=b"x" * 1000))
        first = edge.get("/s", headers={"Host": "new.example.test"})
        assert first.status_code == 200 and first.headers["X-Cache"] == "Miss from edge-t"
        assert edge.get("/s").headers["X-Cache"] == "Hit from edge-t"
        assert edge.get("/s").headers["X-Cache"] == "Hit from edge-t"
        assert edge.get("/missing").status_code == 404
        assert edge.request("DELETE", "/s").status_code == 403
        assert edge.stop() == 0
        buffered = list((edge.cache_dir / "stats-buffer").glob("*.json"))
        assert len(buffered) == 1
        assert json.loads(buffered[0].read_text())["distributions"][DIST_ID]["requests"] == 5
        edge.start()
        assert edge.get("/s").headers["X-Cache"] == "Hit from edge-t"
        wait_for(lambda: sum(r["distributions"].get(DIST_ID, {}).get("requests", 0) for r in cp.counted.values()) >= 6)
        counted = [r["distributions"][DIST_ID] for r in cp.counted.values() if DIST_ID in r["distributions"]]
        assert sum(c["requests"] for c in counted) == 6
        assert sum(c["hits"] for c in counted) == 3
        assert sum(c["misses"] for c in counted) == 2
        assert sum(c["blocked"] for c in counted) == 1
        assert sum(c["status_2xx"] for c in counted) == 4 and sum(c["status_4xx"] for c in counted) == 2
        assert sum(c["bytes_out"] for c in counted) >= 4000
        assert sum(c["bytes_in"] for c in counted) >= 1000
        assert sum(sum(c["latency_ms_buckets"]) for c in counted) == 6
        assert cp.duplicates == 0
        assert cp.heartbeats[-1]["version"] == 2 and cp.heartbeats[-1]["invalidation_seq"] == 3
        metrics = httpx.get(edge.admin_url + "/metrics").text
        assert "edge_control_plane_connected 1" in metrics
        assert "edge_stats_buffer_reports " in metrics and "edge_stats_dropped_reports_total 0" in metrics


def test_a_failing_link_never_waits_longer_than_one_heartbeat_interval_and_resets_on_success(tmp_path: Path) -> None:
    """Edges must be back within one interval of the control plane's return, inside the
    three missed heartbeats that make an edge unhealthy, however long the outage was."""
    agent = make_agent(tmp_path)
    link = ControlPlaneLink(agent, "http://127.0.0.1:9", TOKEN, heartbeat_interval=5.0)
    try:
        for failures in (1, 2, 5, 50):
            link.failures = failures
            assert all(0 < link.next_delay() <= 5.0 for _ in range(20))
        link.failures = 0
        assert link.next_delay() == 5.0
    finally:
        asyncio.run(link.client.aclose())
        agent.store.close()
