"""Issue 11's chaos test: steady viewer load through three edges, a change every 3 s and an
invalidation every 5 s, while the pieces of the CDN are killed one at a time: the web
process, the Celery worker, beat, an edge (SIGKILL, then restarted), the origin, and an edge
frozen with SIGSTOP for 20 s. Real processes on loopback; every loop is bounded in count and
time. CI runs it once, in the PostgreSQL and Redis pass (marker `chaos`).

What it proves:
- no viewer request fails on an edge that stays up (the load, like a health-checking load
  balancer, leaves an edge alone while it is killed or frozen);
- no change and no invalidation is lost: at the end every edge runs the last change and has
  acknowledged every invalidation;
- `Deployed` and `Completed` never come before the edges have it: whenever the API says so,
  every edge that answers runs that version, and an object invalidated is a Miss;
- the frozen edge turns unhealthy while frozen and healthy again after;
- the control plane's stats equal the requests viewers got, minus at most the loss the killed
  edge reported (`lost_estimate`).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .cluster import Cluster, running_cluster, wait_for
from .test_fleet_end_to_end import distribution_body

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(480)]

EDGES = ("edge-fra", "edge-iad", "edge-sin")
HOST = "chaos.example.test"
LOADED = ("/index.html", "/img/logo.svg", "/bench/1k")
INVALIDATED = "/img/photo.jpg"  # never in the load: after Completed it must be a Miss everywhere
MAX_LOAD_REQUESTS = 20_000


@dataclass
class Fleet:
    """What the threads share: which edges the load leaves alone, and what every viewer got."""

    cluster: Cluster
    distribution_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    faulted: set[str] = field(default_factory=set)
    origin_up: threading.Lock = field(default_factory=threading.Lock)  # held by an invalidation cycle
    generation: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EDGES, 0))
    received: int = 0
    failures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    invalidations: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def viewer_url(self, edge: str, path: str) -> str:
        return f"http://127.0.0.1:{self.cluster.edge_ports[edge][0]}{path}"

    def up(self) -> list[str]:
        with self.lock:
            return [e for e in EDGES if e not in self.faulted]

    def fault(self, edge: str) -> None:
        with self.lock:
            self.faulted.add(edge)
        time.sleep(0.3)  # a request already on its way finishes first

    def recover(self, edge: str) -> None:
        with self.lock:
            self.faulted.discard(edge)
            self.generation[edge] += 1

    def got(self, edge: str, response: httpx.Response | None, error: Exception | None, what: str) -> None:
        with self.lock:
            if response is not None:
                self.received += 1
                if response.status_code != 200:
                    self.failures.append(f"{edge} {what}: {response.status_code}")
            elif edge not in self.faulted:
                self.failures.append(f"{edge} {what}: {error!r}")


def load(fleet: Fleet) -> None:
    clients: dict[str, tuple[int, httpx.Client]] = {}
    paths = itertools.cycle(LOADED)
    for _ in range(MAX_LOAD_REQUESTS // len(EDGES)):
        if fleet.stop.is_set():
            break
        for edge in fleet.up():
            generation = fleet.generation[edge]
            if edge not in clients or clients[edge][0] != generation:
                if edge in clients:
                    clients[edge][1].close()  # its keep-alive connections died with the process
                clients[edge] = (generation, httpx.Client(headers={"Host": HOST}, timeout=5))
            path = next(paths)
            try:
                fleet.got(edge, clients[edge][1].get(fleet.viewer_url(edge, path)), None, path)
            except httpx.HTTPError as exc:
                fleet.got(edge, None, exc, path)
        time.sleep(0.05)
    for _, client in clients.values():
        client.close()


def edge_version(fleet: Fleet, edge: str) -> int | None:
    try:
        return int(httpx.get(f"http://127.0.0.1:{fleet.cluster.edge_ports[edge][1]}/health", timeout=1).json()["version"])
    except httpx.HTTPError:
        return None


def changes(fleet: Fleet) -> None:
    """A change every 3 s, then a check that `Deployed` for it is true when the API says it."""
    roots = itertools.cycle(("index.html", "img/logo.svg"))
    for _ in range(200):
        if fleet.stop.wait(3):
            return
        api = fleet.cluster.api
        try:
            current = api("GET", f"/distributions/{fleet.distribution_id}/")
            changed = api("PATCH", f"/distributions/{fleet.distribution_id}/", json={"default_root_object": next(roots)},
                          headers={"If-Match": current.headers["ETag"]})
        except (httpx.HTTPError, KeyError):
            continue  # the web process is down: no change was made
        if changed.status_code == 200:
            fleet.versions.append(int(changed.json()["config_version"]))


def invalidations(fleet: Fleet) -> None:
    """Every 5 s: cache an object on every edge, invalidate it, and once the API says
    Completed, check that every edge misses it. Only this thread asks for that object, so
    nothing else can have cached it again in between. The origin's outage waits for a cycle
    to end (the Miss that proves it would be a 502)."""
    api = fleet.cluster.api
    for _ in range(120):
        if fleet.stop.wait(5):
            return
        with fleet.origin_up:
            warmed = fleet.up()
            for edge in warmed:
                try:
                    fleet.got(edge, httpx.get(fleet.viewer_url(edge, INVALIDATED), headers={"Host": HOST}, timeout=5),
                              None, f"warm {INVALIDATED}")
                except httpx.HTTPError as exc:
                    fleet.got(edge, None, exc, f"warm {INVALIDATED}")
            try:
                made = api("POST", f"/distributions/{fleet.distribution_id}/invalidations/",
                           json={"paths": [INVALIDATED]})
            except httpx.HTTPError:
                continue  # the web process is down: no invalidation was made
            if made.status_code != 201:
                continue
            inv = made.json()["id"]
            fleet.invalidations.append(inv)
            url = f"/distributions/{fleet.distribution_id}/invalidations/{inv}/"
            deadline = time.monotonic() + 40
            completed = False
            while not completed and time.monotonic() < deadline and not fleet.stop.is_set():
                try:
                    completed = api("GET", url).json()["status"] == "Completed"
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if not completed:
                    time.sleep(0.2)
            if not completed:
                continue  # an edge is frozen: the end of the test checks it completes
            for edge in [e for e in fleet.up() if e in warmed]:
                try:
                    answer = httpx.get(fleet.viewer_url(edge, INVALIDATED), headers={"Host": HOST}, timeout=5)
                except httpx.HTTPError as exc:
                    fleet.got(edge, None, exc, f"check {INVALIDATED}")
                    continue
                fleet.got(edge, answer, None, f"check {INVALIDATED}")
                if not answer.headers.get("x-cache", "").startswith("Miss"):
                    fleet.violations.append(f"invalidation {inv} Completed while {edge} still had the object: "
                                            f"{answer.headers.get('x-cache')}")


def monitor(fleet: Fleet) -> None:
    """Whenever the API says Deployed, ask every edge that answers whether it is true."""
    api = fleet.cluster.api
    checked: set[int] = set()
    for _ in range(3000):
        if fleet.stop.wait(0.3):
            return
        try:
            detail = api("GET", f"/distributions/{fleet.distribution_id}/").json()
        except (httpx.HTTPError, ValueError):
            continue  # the web process is down
        version = int(detail["config_version"])
        if detail["status"] == "Deployed" and version not in checked:
            checked.add(version)
            for edge in fleet.up():
                running = edge_version(fleet, edge)
                if running is not None and running < version:
                    fleet.violations.append(f"Deployed at {version} while {edge} ran {running}")


def healthy(fleet: Fleet, edge: str) -> bool | None:
    try:
        return bool(fleet.cluster.api("GET", f"/edges/{edge}/").json()["healthy"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # The grace period outlasts every fault: each edge always counts, so Deployed and
    # Completed must wait for it, and the checks above can hold the API to that.
    with running_cluster(tmp_path_factory.mktemp("chaos"), EDGES, unhealthy_grace_seconds=300) as cluster:
        wait_for("every edge healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
        body = distribution_body(cluster.origin_port)
        body.update(aliases=[HOST], comment="chaos")
        created = cluster.api("POST", "/distributions/", json=body)
        assert created.status_code == 201, created.text
        distribution_id = created.json()["id"]
        wait_for("Deployed", lambda: cluster.api("GET", f"/distributions/{distribution_id}/").json()["status"] == "Deployed")
        yield Fleet(cluster, distribution_id)


def test_the_fleet_under_chaos_loses_nothing_and_never_says_what_is_not_true(fleet: Fleet) -> None:
    cluster = fleet.cluster
    threads = [threading.Thread(target=work, args=(fleet,), daemon=True, name=work.__name__)
               for work in (load, changes, invalidations, monitor)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(5)  # steady state first
        for name in ("web", "worker", "beat"):
            cluster.kill(name)
            time.sleep(6)
            cluster.restart(name)
            time.sleep(5)

        fleet.fault("edge-sin")
        cluster.kill("edge-sin")
        time.sleep(3)
        cluster.restart("edge-sin")
        fleet.recover("edge-sin")
        wait_for("edge-sin healthy again", lambda: healthy(fleet, "edge-sin"), 20)
        time.sleep(3)

        with fleet.origin_up:
            cluster.kill("origin")  # the load asks for cached objects only: every one is served
            time.sleep(6)
            cluster.restart("origin")
        time.sleep(3)

        frozen = cluster.processes["edge-iad"]
        fleet.fault("edge-iad")
        os.killpg(frozen.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            # 3 missed 1 s heartbeats and a 1 s fleet tick; well inside the 20 s freeze.
            wait_for("the frozen edge to turn unhealthy", lambda: healthy(fleet, "edge-iad") is False, 15)
            time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
        wait_for("the thawed edge healthy again", lambda: healthy(fleet, "edge-iad"), 20)
        fleet.recover("edge-iad")
        time.sleep(5)
    finally:
        fleet.stop.set()
        for thread in threads:
            thread.join(30)
        if any(thread.is_alive() for thread in threads):
            print(cluster.logs())

    assert not fleet.failures, fleet.failures[:20]
    assert not fleet.violations, fleet.violations
    assert len(fleet.versions) >= 15 and len(fleet.invalidations) >= 8, (fleet.versions, fleet.invalidations)

    # Nothing lost: the last change reaches every edge, every invalidation every edge.
    last = max(fleet.versions)
    detail = wait_for("the last change Deployed", lambda: (d := cluster.api(
        "GET", f"/distributions/{fleet.distribution_id}/").json())["status"] == "Deployed" and d["config_version"] >= last
        and d, 30)
    assert all((edge_version(fleet, edge) or 0) >= detail["config_version"] for edge in EDGES)
    for inv in fleet.invalidations:
        url = f"/distributions/{fleet.distribution_id}/invalidations/{inv}/"
        done = wait_for(f"invalidation {inv} Completed", lambda: (i := cluster.api("GET", url).json())[
            "status"] == "Completed" and i, 30)
        assert done["acknowledgements"] == {"edges_total": 3, "edges_acknowledged": 3, "edges_pending": []}, done

    # Stats: what viewers got, less at most what the killed edge said it lost.
    def totals() -> dict[str, Any]:
        return cluster.api("GET", f"/distributions/{fleet.distribution_id}/stats/?start=0&interval=minute").json()[
            "totals"]

    counted = wait_for("every interval to be reported", lambda: (
        t := totals())["requests"] >= fleet.received - t["lost_estimate"] and t, 40)
    time.sleep(12)  # the last intervals close and arrive; a duplicate would show here
    counted = totals()
    assert fleet.received - counted["lost_estimate"] <= counted["requests"] <= fleet.received, (
        fleet.received, counted)
    assert counted["client_aborts"] == 0 and counted["status_5xx"] == 0, counted
    assert "stopped without saving its stats" in cluster.log("edge-sin")
