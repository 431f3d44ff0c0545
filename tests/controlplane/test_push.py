"""Pushes to a stand-in edge on loopback that checks signatures the way the edge agent does."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from distributions import edge_client, selectors, services, tasks
from distributions.models import Distribution, EdgeNode, Invalidation

pytestmark = pytest.mark.django_db


class StubEdge:
    """Runs the admin API contract: refuses bad signatures and versions older than it runs."""

    def __init__(self, token: str, refuse_with: tuple[int, str] | None = None) -> None:
        self.key = hashlib.sha256(token.encode()).digest()
        self.version = 0
        self.received: list[tuple[str, str, Any]] = []
        self.bad_signatures = 0
        self.nonces: set[str] = set()
        self.refuse_with = refuse_with
        self.hold = threading.Event()  # cleared: the edge hangs on every request, like a stopped process
        self.hold.set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                stub.hold.wait(30)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ts = self.headers.get("X-Edge-Timestamp", "")
                nonce = self.headers.get("X-Edge-Nonce", "")
                expected = hmac.new(stub.key, f"{ts}\n{nonce}\n{self.command}\n{self.path}\n".encode() + body,
                                    hashlib.sha256).hexdigest()
                if not ts or len(nonce) < 16 or nonce in stub.nonces or abs(time.time() - int(ts)) > 300 or not \
                        hmac.compare_digest(expected, self.headers.get("X-Edge-Signature", "")):
                    stub.bad_signatures += 1
                    return self._answer(401, {"error": "bad signature"})
                stub.nonces.add(nonce)
                payload = json.loads(body)
                stub.received.append((self.command, self.path, payload))
                if stub.refuse_with:
                    return self._answer(stub.refuse_with[0], {"error": stub.refuse_with[1], "version": stub.version})
                if self.path == "/config":
                    if payload["version"] < stub.version:
                        return self._answer(409, {"error": "older than running", "version": stub.version})
                    stub.version = payload["version"]
                    return self._answer(200, {"version": stub.version})
                return self._answer(200, {"id": payload["id"], "removed": 0})

            do_PUT = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def edges() -> Iterator[list[tuple[EdgeNode, StubEdge]]]:
    made = []
    for name in ("edge-fra", "edge-iad"):
        edge, token = services.edge_register(name=name, pop=name[-3:], url="http://127.0.0.1:1")
        stub = StubEdge(token)
        EdgeNode.objects.filter(pk=edge.pk).update(url=stub.url, healthy=True)
        made.append((EdgeNode.objects.get(pk=edge.pk), stub))
    yield made
    for _, stub in made:
        stub.close()


def publish(n: int) -> None:
    for i in range(n):
        services.config_version_publish(f"change {i}")
        Distribution.objects.update(default_root_object=f"v{i}.html")


def test_it_pushes_the_newest_version_to_every_healthy_edge_with_a_valid_signature(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    results = tasks.push_config()
    assert results == {"edge-fra": 200, "edge-iad": 200}
    for edge, stub in edges:
        edge.refresh_from_db()
        assert stub.bad_signatures == 0 and stub.version == edge.applied_version >= 1
        assert edge.applied_at is not None and edge.last_error == ""
    assert Distribution.objects.get().config_version <= edges[0][0].applied_version


def test_a_burst_of_versions_is_coalesced_into_one_push_of_the_newest(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    publish(4)
    newest = selectors.latest_version_number()
    for _ in range(3):  # three queued push tasks from the burst
        tasks.push_config()
    for _, stub in edges:
        assert [payload["version"] for _, _, payload in stub.received] == [newest]


def test_an_edge_running_something_newer_is_never_rolled_back(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    edge, stub = edges[0]
    stub.version = 99
    tasks.push_config()
    edge.refresh_from_db()
    assert stub.version == 99 and edge.applied_version == 99


def test_a_refused_push_records_the_edges_reason(created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    edge, stub = edges[0]
    stub.refuse_with = (400, "distributions[0].origins: must be a list")
    tasks.push_config()
    edge.refresh_from_db()
    assert edge.applied_version == 0 and edge.last_error == "distributions[0].origins: must be a list"


def test_an_unreachable_edge_is_recorded_and_does_not_hold_up_the_others(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    edges[0][1].close()
    results = tasks.push_config()
    assert results["edge-fra"] == 0 and results["edge-iad"] == 200
    assert "Connect" in EdgeNode.objects.get(name="edge-fra").last_error


def test_a_wrong_key_is_refused_by_the_edge(created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    EdgeNode.objects.filter(name="edge-fra").update(token_hash=hashlib.sha256(b"someone else").hexdigest())
    tasks.push_config()
    assert edges[0][1].bad_signatures >= 1 and edges[0][1].version == 0


def test_an_invalidation_push_is_acknowledged_and_completes(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None,
                                                   paths=["/img/*"], tags=["t1"], caller_reference=None)
    tasks.push_invalidation(invalidation.seq)
    for _, stub in edges:
        assert stub.received[-1] == ("POST", "/invalidations", {"id": invalidation.seq, "distribution_id": invalidation.distribution_id,
                                                                "paths": ["/img/*"], "tags": ["t1"]})
    invalidation.refresh_from_db()
    assert invalidation.status == "Completed"


def test_the_fleet_tick_repushes_what_an_edge_missed(created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None,
                                                   paths=["/a"], tags=[], caller_reference=None)
    for edge, _ in edges:
        EdgeNode.objects.filter(pk=edge.pk).update(last_seen=timezone.now())
    tasks.fleet_tick()
    for edge, stub in edges:
        edge.refresh_from_db()
        assert stub.version == edge.applied_version >= 1
        assert ("POST", "/invalidations") in [(m, p) for m, p, _ in stub.received]
    assert Invalidation.objects.get(pk=invalidation.pk).status == "Completed"


def test_a_hung_edge_does_not_delay_what_the_others_are_recorded_as_running(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]], monkeypatch: pytest.MonkeyPatch) -> None:
    (hung_edge, hung), (_, fast) = edges
    hung.hold.clear()
    monkeypatch.setattr(edge_client, "PUSH_DEADLINE", 0.5)
    recorded: list[tuple[str, str, bool]] = []
    applied, failed = services.edges_applied, services.edge_push_failed
    monkeypatch.setattr(services, "edges_applied", lambda **kw: (
        [recorded.append(("applied", name, hung.hold.is_set())) for name in kw["versions"]], applied(**kw)))
    monkeypatch.setattr(services, "edge_push_failed", lambda **kw: (recorded.append(("failed", kw["edge_name"], hung.hold.is_set())), failed(**kw)))
    results = tasks.push_config()
    assert recorded == [("applied", "edge-iad", False), ("failed", "edge-fra", False)]  # iad first, fra still hung
    assert results == {"edge-iad": 200, "edge-fra": 0} and fast.version >= 1
    assert "deadline" in EdgeNode.objects.get(pk=hung_edge.pk).last_error


def test_outcomes_that_arrive_together_are_recorded_together(
        created: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """While the task records one outcome, the others queue and are written as one batch:
    a fleet answering at once costs a few statements, not one per edge (bench/fleet_sim.py)."""
    stubs = []
    for i in range(6):
        edge, token = services.edge_register(name=f"edge-b{i}", pop=f"b{i:02d}", url="http://127.0.0.1:1")
        stubs.append(StubEdge(token))
        EdgeNode.objects.filter(pk=edge.pk).update(url=stubs[-1].url, healthy=True, last_seen=timezone.now())
    try:
        batches: list[list[str]] = []
        applied, acks = services.edges_applied, services.invalidation_acks

        def slow_applied(**kw: Any) -> None:
            batches.append(sorted(kw["versions"]))
            if len(batches) == 1:
                time.sleep(0.5)  # every other edge answers meanwhile
            applied(**kw)

        monkeypatch.setattr(services, "edges_applied", slow_applied)
        tasks.push_config()
        assert sorted(name for batch in batches for name in batch) == [f"edge-b{i}" for i in range(6)]
        assert len(batches) <= 2
        assert all(stub.version == selectors.latest_version_number() for stub in stubs)
        assert set(EdgeNode.objects.values_list("applied_version", flat=True)) == {selectors.latest_version_number()}

        ack_batches: list[int] = []

        def slow_acks(**kw: Any) -> int:
            ack_batches.append(len(kw["acks"]))
            if len(ack_batches) == 1:
                time.sleep(0.5)
            return acks(**kw)

        monkeypatch.setattr(services, "invalidation_acks", slow_acks)
        invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None,
                                                       paths=["/a"], tags=[], caller_reference=None)
        tasks.push_invalidation(invalidation.seq)
        assert sum(ack_batches) == 6 and len(ack_batches) <= 2
        assert Invalidation.objects.get(pk=invalidation.pk).status == "Completed"
    finally:
        for stub in stubs:
            stub.close()


def test_an_edge_whose_pushes_keep_failing_is_retried_with_backoff_and_costs_the_others_nothing(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    (failing_edge, failing), (_, fine) = edges
    failing.refuse_with = (500, "disk full")
    for edge, _ in edges:
        EdgeNode.objects.filter(pk=edge.pk).update(last_seen=timezone.now())
    tasks.push_config()
    first = EdgeNode.objects.get(pk=failing_edge.pk)
    assert first.push_failures == 1 and first.push_retry_at is not None and first.push_retry_at > timezone.now()
    # While it backs off, neither the fleet tick's retry nor a new change's push goes to it; the other edge gets both.
    sent = len(failing.received)
    tasks.fleet_tick()
    publish(1)
    tasks.push_config()
    assert len(failing.received) == sent
    assert fine.version == selectors.latest_version_number()
    # Once its retry is due, the tick retries it; another failure doubles the wait.
    EdgeNode.objects.filter(pk=failing_edge.pk).update(push_retry_at=timezone.now())
    before = timezone.now()
    tasks.fleet_tick()
    second = EdgeNode.objects.get(pk=failing_edge.pk)
    assert len(failing.received) == sent + 1 and second.push_failures == 2
    assert second.push_retry_at is not None and second.push_retry_at - before >= services.edges.push_backoff(2)
    assert services.edges.push_backoff(2) > services.edges.push_backoff(1)
    assert services.edges.push_backoff(50).total_seconds() == services.edges.PUSH_BACKOFF_CAP_SECONDS
    # It recovers: the next due retry lands, and it is pushed to as usual again.
    failing.refuse_with = None
    EdgeNode.objects.filter(pk=failing_edge.pk).update(push_retry_at=timezone.now())
    tasks.fleet_tick()
    recovered = EdgeNode.objects.get(pk=failing_edge.pk)
    assert failing.version == recovered.applied_version == selectors.latest_version_number()
    assert recovered.push_failures == 0 and recovered.push_retry_at is None


def test_a_failed_invalidation_push_backs_off_too(created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    (failing_edge, failing), (_, fine) = edges
    tasks.push_config()
    failing.refuse_with = (503, "busy")
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None,
                                                   paths=["/a"], tags=[], caller_reference=None)
    tasks.push_invalidation(invalidation.seq)
    assert EdgeNode.objects.get(pk=failing_edge.pk).push_failures == 1
    sent = len(failing.received)
    tasks.push_invalidation(invalidation.seq)  # a second push while it backs off skips it
    assert len(failing.received) == sent
    assert ("POST", "/invalidations") in [(m, p) for m, p, _ in fine.received]


def test_the_tick_resends_in_progress_invalidations_and_the_heartbeat_any_missed_one(
        created: dict[str, Any], edges: list[tuple[EdgeNode, StubEdge]]) -> None:
    (fra, _), (iad, _) = edges
    invalidation, _ = services.invalidation_create(distribution=Distribution.objects.get(), user=None,
                                                   paths=["/a"], tags=[], caller_reference=None)
    services.invalidation_ack(edge=fra, ids=[invalidation.seq])
    missing = services.in_progress_missing([fra, iad], limit=100)
    assert missing == {fra.pk: [], iad.pk: [invalidation]}
    later, _ = services.edge_register(name="edge-sin", pop="sin", url="http://127.0.0.1:1")
    assert services.in_progress_missing([later], limit=100) == {later.pk: []}  # made before it existed
    # Completed without iad (away past the grace period): the tick no longer sends it, iad's next heartbeat does.
    Invalidation.objects.filter(pk=invalidation.pk).update(status="Completed")
    assert services.in_progress_missing([fra, iad], limit=100) == {}
    answer = services.edge_heartbeat(edge=iad, version=0, invalidation_seq=0)
    assert [message["id"] for message in answer["invalidations"]] == [invalidation.seq]
