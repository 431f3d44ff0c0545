"""One admission decision for hits and misses alike (edgeagent/proxy/admission.py).

The first test runs an edge process as operators do. The others run a real edge in this
process (its viewer listener on a loopback port, the test origin behind it) so they can
wrap the one admission function and count who calls it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeagent.agent import Agent
from edgeagent.cli import parse_settings
from edgeagent.config import Behavior, Distribution
from edgeagent.proxy import admission
from edgeagent.server import start_server
from tests.edge.conftest import DIST_ID, DOMAIN, Answer, EdgeFactory, Origin, behavior, distribution, document


def test_a_viewer_protocol_verdict_applies_to_a_request_that_would_be_a_fresh_memory_hit(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    doc = document(distribution(origin.port, cache_behaviors=[
        behavior("/secure/*", viewer_protocol_policy="https-only"),
        behavior("*", viewer_protocol_policy="redirect-to-https"),
    ]))  # fmt: skip
    edge = make_edge(doc, extra=["--trust-forwarded-proto"])
    edge.client.follow_redirects = False
    origin.route("/page", Answer(body=b"page", headers={"Cache-Control": "max-age=600"}))
    origin.route("/secure/a", Answer(body=b"secret", headers={"Cache-Control": "max-age=600"}))
    https = {"X-Forwarded-Proto": "https"}
    assert edge.get("/page", headers=https).headers["X-Cache"] == "Miss from edge-t"
    assert edge.get("/secure/a", headers=https).headers["X-Cache"] == "Miss from edge-t"
    hit = edge.get("/page", headers=https)
    secure_hit = edge.get("/secure/a", headers=https)
    redirect = edge.get("/page")
    refused = edge.get("/secure/a")
    assert hit.headers["X-Cache"] == "Hit from edge-t" and hit.content == b"page"
    assert secure_hit.headers["X-Cache"] == "Hit from edge-t" and secure_hit.content == b"secret"
    assert redirect.status_code == 301 and redirect.headers["Location"].endswith("/page")
    assert refused.status_code == 403 and b"secret" not in refused.content
    assert origin.hits("/page") == 1 and origin.hits("/secure/a") == 1


# ---- in-process edge ----


Calls = list[tuple[str, str, str, int]]


def _run(tmp_path: Path, origin: Origin, scenario: Callable[[httpx.AsyncClient, Agent], Awaitable[None]],
         extra: list[str] | None = None) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document(distribution(origin.port))))
    settings = parse_settings(
        ["--name", "edge-t", "--pop", "tst", "--cache-dir", str(tmp_path / "cache"), "--config", str(config),
         "--access-log", "off", *(extra or [])],
        env={},
    )  # fmt: skip

    async def main() -> None:
        agent = Agent(settings)
        agent.load_initial_config()
        server = await start_server(agent.proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"Host": DOMAIN}, timeout=10
            ) as client:
                await asyncio.wait_for(scenario(client, agent), 60)
        finally:
            server.close()
            await agent.proxy.drain(1)
            await agent.origins.close()
            agent.store.close()

    asyncio.run(main())


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every call of admission.admit_route, the part of `admit` the request line decides (both
    paths take it: the slow path through `admit`, the fast path's memo directly):
    (scheme, method, target, verdict kind)."""
    seen: Calls = []
    real = admission.admit_route

    def counted(config: Any, scheme: str, method: str, host: str | None, target: str) -> admission.Admission:
        verdict = real(config, scheme, method, host, target)
        seen.append((scheme, method, target, verdict.kind))
        return verdict

    monkeypatch.setattr(admission, "admit_route", counted)
    return seen


def test_a_hit_and_a_miss_go_through_the_same_admission_function(
    origin: Origin, tmp_path: Path, calls: Calls
) -> None:
    origin.route("/obj", Answer(body=b"object", headers={"Cache-Control": "max-age=600"}))

    async def scenario(client: httpx.AsyncClient, agent: Agent) -> None:
        miss = await client.get("/obj")
        assert miss.headers["X-Cache"] == "Miss from edge-t"
        assert ("http", "GET", "/obj", admission.ADMIT) in calls
        before = len(calls)
        fast_before = sum(agent.stats.counters(DIST_ID).fast_hits)
        hit = await client.head("/obj")
        assert hit.headers["X-Cache"] == "Hit from edge-t"
        # Answered by the fast path (a memory hit inside the parser callback)...
        assert sum(agent.stats.counters(DIST_ID).fast_hits) == fast_before + 1
        # ...whose verdict came from the same function as the miss's.
        assert calls[before:] == [("http", "HEAD", "/obj", admission.ADMIT)]

    _run(tmp_path, origin, scenario)
    assert origin.hits("/obj") == 1


def test_a_rule_in_the_admission_decision_refuses_a_fresh_memory_hit_and_a_miss_alike(
    origin: Origin, tmp_path: Path, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access check put where the module says checks go applies to cached hits too."""

    def refuse_blocked(
        dist: Distribution, behavior: Behavior, scheme: str, method: str, path: str, target: str
    ) -> admission.Admission | None:
        if "blocked=1" in target:
            return admission.Admission(admission.FORBIDDEN, dist, behavior, path, scheme, status=403,
                                       text="403 Forbidden: refused by a test rule.")  # fmt: skip
        return None

    origin.route("/obj", Answer(body=b"object", headers={"Cache-Control": "max-age=600"}))
    origin.route("/new", Answer(body=b"new", headers={"Cache-Control": "max-age=600"}))

    async def scenario(client: httpx.AsyncClient, agent: Agent) -> None:
        assert (await client.get("/obj")).headers["X-Cache"] == "Miss from edge-t"
        # The cache policy leaves the query out of the key: /obj?x=1 is a fresh memory hit.
        assert (await client.get("/obj?x=1")).headers["X-Cache"] == "Hit from edge-t"
        monkeypatch.setattr(admission, "_access_checks", refuse_blocked)
        hit_refused = await client.get("/obj?blocked=1")
        miss_refused = await client.get("/new?blocked=1")
        still_served = await client.get("/obj?x=2")
        assert hit_refused.status_code == 403 and hit_refused.content.startswith(b"403 Forbidden: refused")
        assert miss_refused.status_code == 403
        assert still_served.headers["X-Cache"] == "Hit from edge-t" and still_served.content == b"object"
        assert ("http", "GET", "/obj?blocked=1", admission.FORBIDDEN) in calls
        assert ("http", "GET", "/new?blocked=1", admission.FORBIDDEN) in calls

    _run(tmp_path, origin, scenario)
    assert origin.hits("/obj") == 1 and origin.hits("/new") == 0


def test_the_viewer_scheme_comes_from_the_listener_or_a_trusted_forwarded_proto(
    origin: Origin, tmp_path: Path, calls: Calls
) -> None:
    origin.route("/obj", Answer(body=b"object", headers={"Cache-Control": "max-age=600"}))

    async def scenario(client: httpx.AsyncClient, agent: Agent) -> None:
        await client.get("/obj")
        await client.get("/obj", headers={"X-Forwarded-Proto": "https"})
        assert {c[0] for c in calls} == {"http", "https"}
        assert origin.seen("/obj")[0].headers["X-Forwarded-Proto"] == "http"

    _run(tmp_path, origin, scenario, extra=["--trust-forwarded-proto"])
    assert admission.viewer_scheme("https", {}, False) == "https"
    assert admission.viewer_scheme("http", {"x-forwarded-proto": "HTTPS"}, False) == "http"
    assert admission.viewer_scheme("http", {"x-forwarded-proto": "HTTPS"}, True) == "https"
