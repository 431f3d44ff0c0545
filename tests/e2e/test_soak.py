"""The soak: the whole `make run` cluster on its embedded defaults for SOAK_SECONDS (180 in
CI, 1800 with `make soak`) under bounded light viewer traffic through all three edges, with
a config change every few seconds and an invalidation every few more. Nothing may exit,
every change must reach Deployed and every invalidation Completed within a bound, and the
control plane's stats must count exactly the viewer requests sent."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .cluster import wait_for
from .makerun import MakeRun, alive

SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "180"))
VIEWER_RATE = 20.0  # requests per second, across the three edges
CHANGE_EVERY = 3.0
INVALIDATE_EVERY = 5.0
SETTLE_BOUND = 30.0  # for a change to be Deployed, an invalidation to be Completed
STATS_BOUND = 60.0  # 10 s intervals, sent with the next heartbeat (5 s by default)
PATHS = ("/index.html", "/", "/img/logo.svg", "/img/photo.jpg", "/bench/1k")

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SOAK_SECONDS + 480)]


@dataclass
class Api:
    base: str
    token: str
    distribution_id: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base, headers={"Authorization": f"Token {self.token}"}, timeout=30)

    def distribution(self) -> httpx.Response:
        answer = self.client.get(f"/distributions/{self.distribution_id}/")
        assert answer.status_code == 200, answer.text
        return answer


@dataclass
class Tally:
    """What one background loop did: how long each step took to settle, and what went wrong."""

    settle_times: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.settle_times)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def every(period: float, until: float, stop: threading.Event, step: Callable[[int], None], tally: Tally) -> None:
    """Call `step(n)` at most once per `period` until `until` (monotonic); a slow step delays the next."""
    n = 0
    next_at = time.monotonic()
    while not stop.is_set() and time.monotonic() < until:
        try:
            step(n)
        except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
            tally.problems.append(f"step {n}: {type(exc).__name__}: {exc}")
        n += 1
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def settle(probe: Callable[[], bool]) -> float | None:
    """Seconds until `probe` holds, or None after SETTLE_BOUND."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_BOUND:
        if probe():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def change_config(api: Api, tally: Tally, n: int) -> None:
    """A harmless change that still makes a new config version: a second alias, renamed each time."""
    current = api.distribution()
    started = time.monotonic()
    answer = api.client.patch(f"/distributions/{api.distribution_id}/", headers={"If-Match": current.headers["ETag"]},
                              json={"aliases": ["demo.localhost", f"soak-{n}.localhost"]})
    if answer.status_code != 200:
        tally.problems.append(f"change {n}: {answer.status_code} {answer.text[:200]}")
        return
    version = answer.json()["config_version"]

    def deployed() -> bool:
        body = api.distribution().json()
        return bool(body["status"] == "Deployed" and body["config_version"] >= version)

    waited = settle(deployed)
    if waited is None:
        tally.problems.append(f"change {n} (version {version}) not Deployed within {SETTLE_BOUND:.0f}s")
    else:
        tally.settle_times.append(time.monotonic() - started)


def invalidate(api: Api, tally: Tally, n: int) -> None:
    started = time.monotonic()
    made = api.client.post(f"/distributions/{api.distribution_id}/invalidations/",
                           json={"paths": [PATHS[n % len(PATHS)]], "caller_reference": f"soak-{n}"})
    if made.status_code != 201:
        tally.problems.append(f"invalidation {n}: {made.status_code} {made.text[:200]}")
        return
    url = f"/distributions/{api.distribution_id}/invalidations/{made.json()['id']}/"
    waited = settle(lambda: bool(api.client.get(url).json()["status"] == "Completed"))
    if waited is None:
        tally.problems.append(f"invalidation {n} ({made.json()['id']}) not Completed within {SETTLE_BOUND:.0f}s")
    else:
        tally.settle_times.append(time.monotonic() - started)


def view(ports: list[int], domain: str, sent: list[int], problems: list[str], until: float,
         stop: threading.Event) -> None:
    """Paced viewer requests, at most VIEWER_RATE * SOAK_SECONDS of them; `sent[0]` counts them."""
    limit = int(VIEWER_RATE * SOAK_SECONDS)
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i in range(limit):
            if stop.is_set() or time.monotonic() >= until:
                return
            stop.wait(max(0.0, started + i / VIEWER_RATE - time.monotonic()))
            port, path = ports[i % len(ports)], PATHS[i % len(PATHS)]
            try:
                answer = client.get(f"http://127.0.0.1:{port}{path}", headers={"Host": domain})
                if answer.status_code != 200:
                    problems.append(f"{path} on :{port}: {answer.status_code}")
            except httpx.HTTPError as exc:
                problems.append(f"{path} on :{port}: {type(exc).__name__}: {exc}")
            sent[0] += 1


def test_the_cluster_stays_up_deploys_every_change_and_counts_every_request(
        run_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="httpx")  # a line per request would bury `make soak`'s summary
    env = dict(run_env)
    for name in ("CDN_HEARTBEAT_SECONDS", "CDN_FLEET_TICK_SECONDS"):
        env.pop(name, None)  # make run's own defaults, not the fast ones of the other end-to-end tests
    run = MakeRun(Path(env["CDN_VAR_DIR"]), env)
    try:
        text = run.wait_ready()
        soak_start = time.time()
        pids = run.pids()
        token = json.loads((Path(env["CDN_VAR_DIR"]) / "credentials.json").read_text())["token"]
        api = Api(f"http://127.0.0.1:{env['CDN_WEB_PORT']}/api/v1", token, _after(text, "Demo distribution "))
        domain = api.distribution().json()["domain_name"]
        ports = [int(env["CDN_EDGE_PORT"]) + i for i in range(3)]

        stop = threading.Event()
        until = time.monotonic() + SOAK_SECONDS
        sent, viewer_problems = [0], []
        changes, invalidations = Tally(), Tally()
        changer, invalidator = (Api(api.base, api.token, api.distribution_id) for _ in range(2))  # a client each
        loops = [
            threading.Thread(target=view, args=(ports, domain, sent, viewer_problems, until, stop)),
            threading.Thread(target=every, args=(CHANGE_EVERY, until, stop,
                                                 lambda n: change_config(changer, changes, n), changes)),
            threading.Thread(target=every, args=(INVALIDATE_EVERY, until, stop,
                                                 lambda n: invalidate(invalidator, invalidations, n), invalidations)),
        ]
        for loop in loops:
            loop.start()
        try:
            for loop in loops:
                loop.join(SOAK_SECONDS + 2 * SETTLE_BOUND + 30)
        finally:
            stop.set()
        assert not any(loop.is_alive() for loop in loops), "a soak loop did not finish"

        counted: dict[str, int] = {}

        def stats_caught_up() -> bool:
            answer = api.client.get(f"/distributions/{api.distribution_id}/stats/", params={
                "interval": "minute", "start": int(soak_start) - 120, "end": int(time.time()) + 120})
            counted["requests"] = int(answer.json()["totals"]["requests"])
            return counted["requests"] >= sent[0]

        try:
            wait_for("the last stats interval to reach the control plane", stats_caught_up, STATS_BOUND, 1.0)
        except AssertionError:
            pass  # the equality below says by how much
        summary = (
            f"soak: {SOAK_SECONDS}s, {sent[0]} viewer requests ({len(viewer_problems)} failed), stats counted "
            f"{counted.get('requests')}; {len(changes.settle_times)} config changes Deployed "
            f"(p50 {changes.percentile(50):.2f}s, p99 {changes.percentile(99):.2f}s); "
            f"{len(invalidations.settle_times)} invalidations Completed (p50 {invalidations.percentile(50):.2f}s, "
            f"p99 {invalidations.percentile(99):.2f}s); {len(run.restarts())} restarts"
        )
        print(f"\n{summary}")
        assert not run.restarts(), (summary, run.restarts())
        assert run.pids() == pids and all(alive(pid) for pid in pids.values()), (summary, pids, run.pids())
        assert not viewer_problems, (summary, viewer_problems[:10])
        assert not changes.problems, (summary, changes.problems[:10])
        assert not invalidations.problems, (summary, invalidations.problems[:10])
        assert len(changes.settle_times) >= SOAK_SECONDS / CHANGE_EVERY / 2, summary
        assert len(invalidations.settle_times) >= SOAK_SECONDS / INVALIDATE_EVERY / 2, summary
        assert sent[0] >= VIEWER_RATE * SOAK_SECONDS * 0.9, summary
        assert counted.get("requests") == sent[0], summary
    finally:
        run.interrupt()
        run.kill()


def _after(text: str, label: str) -> str:
    """The word the banner prints after `label`."""
    return text.split(label, 1)[1].split()[0]
