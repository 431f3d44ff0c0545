"""GET /api/v1/distributions/{id}/requests/: recent requests tailed from real edges on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from distributions import selectors, services
from distributions.models import EdgeNode
from tests.edge.conftest import Answer, Edge, Origin

from .conftest import minimal

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    server = Origin()
    server.start()
    server.route("/a.txt", Answer(headers={"Cache-Control": "max-age=600", "Content-Type": "text/plain"}))
    server.route("/b.txt", Answer(headers={"Cache-Control": "max-age=600", "Content-Type": "text/plain"}))
    yield server
    server.stop()


@pytest.fixture
def served(api: APIClient, origin: Origin, tmp_path: Path, django_capture_on_commit_callbacks: Any,
           ) -> Iterator[tuple[dict[str, Any], list[Edge]]]:
    """Alice's distribution, served by two real edges; a third registered edge never answers."""
    body = minimal(origins=[{"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1",
                             "http_port": origin.port, "protocol_policy": "http-only"}])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    latest = selectors.config_version_latest()
    assert latest is not None
    config = tmp_path / "config.json"
    config.write_text(json.dumps(latest.document))
    edges = []
    for name in ("edge-fra", "edge-iad"):
        node, token = services.edge_register(name=name, pop=name[-3:], url="http://127.0.0.1:1")
        edge = Edge(tmp_path / name, config, name, ["--token", token], {}).start()
        EdgeNode.objects.filter(pk=node.pk).update(url=edge.admin_url, healthy=True)
        edges.append(edge)
    dead, _ = services.edge_register(name="edge-sin", pop="sin", url="http://127.0.0.1:1")
    EdgeNode.objects.filter(pk=dead.pk).update(healthy=True)
    yield response.json(), edges
    for edge in edges:
        edge.stop()
        edge.client.close()


def wait_records(api: APIClient, distribution_id: str, count: int, query: str = "") -> dict[str, Any]:
    deadline = time.monotonic() + 10
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/v1/distributions/{distribution_id}/requests/{query}")
        assert response.status_code == 200, response.content
        answer = response.json()
        if len(answer["records"]) >= count:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"expected {count} records, got {answer}")


def test_it_merges_recent_requests_from_every_edge_and_lists_the_edge_that_did_not_answer(
        api: APIClient, served: tuple[dict[str, Any], list[Edge]]) -> None:
    distribution, (fra, iad) = served
    host = {"Host": distribution["domain_name"], "Cookie": "session=secret"}
    first = fra.get("/a.txt", headers=host).headers["x-request-id"]
    time.sleep(0.01)
    second = iad.get("/b.txt", headers=host).headers["x-request-id"]
    time.sleep(0.01)
    third = fra.get("/a.txt", headers=host).headers["x-request-id"]

    answer = wait_records(api, distribution["id"], 3)
    records = answer["records"]
    assert [(r["x-edge-request-id"], r["edge"]) for r in records] == [
        (first, "edge-fra"), (second, "edge-iad"), (third, "edge-fra")]
    assert [r["x-edge-result-type"] for r in records] == ["Miss", "Miss", "Hit"]
    assert all(r["distribution-id"] == distribution["id"] and "cs(Cookie)" not in r for r in records)
    assert answer["edges"] == ["edge-fra", "edge-iad"]
    assert [e["edge"] for e in answer["errors"]] == ["edge-sin"] and answer["errors"][0]["error"]

    newest = wait_records(api, distribution["id"], 2, "?limit=2")
    assert [r["x-edge-request-id"] for r in newest["records"]] == [second, third]


def test_it_refuses_a_bad_limit(api: APIClient, served: tuple[dict[str, Any], list[Edge]]) -> None:
    distribution, _ = served
    for limit in ("0", "1001", "many"):
        response = api.get(f"/api/v1/distributions/{distribution['id']}/requests/?limit={limit}")
        assert response.status_code == 400 and "limit" in response.json()


def test_another_user_gets_404_for_someone_elses_distribution(
        bob_api: APIClient, staff_api: APIClient, served: tuple[dict[str, Any], list[Edge]]) -> None:
    distribution, _ = served
    assert bob_api.get(f"/api/v1/distributions/{distribution['id']}/requests/").status_code == 404
    assert staff_api.get(f"/api/v1/distributions/{distribution['id']}/requests/").status_code == 200
    assert APIClient().get(f"/api/v1/distributions/{distribution['id']}/requests/").status_code in (401, 403)
