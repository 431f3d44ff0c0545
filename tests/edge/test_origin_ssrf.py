"""Origins are no way into the operator's network: the address policy, enforced by a real edge at connect time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.edge.conftest import Answer, Edge, EdgeFactory, Origin, custom_origin, distribution, document


def wait_for_log(edge: Edge, needle: str) -> str:
    deadline = time.monotonic() + 5
    while needle not in "".join(edge.log) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "".join(edge.log)


def refusing(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "refuse_internal_origins": True}


def test_the_edge_never_proxies_to_its_own_admin_or_viewer_port(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))  # the setting is off, as in every loopback test
    version = 1
    for port in (edge.admin_port, edge.port):
        for host in ("127.0.0.1", "localhost"):
            version += 1
            origins = [custom_origin(port, domain_name=host)]
            assert edge.push(document(distribution(0, origins=origins), version=version)).status_code == 200
            response = edge.get("/metrics")
            assert response.status_code == 502
            assert b"edge_" not in response.content and b"# TYPE" not in response.content
            assert "this edge's own listener" in wait_for_log(edge, f"127.0.0.1:{port} is this edge's own listener")


@pytest.mark.parametrize("host, klass", [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),  # a name: refused after resolution, where the connection is made
    ("::ffff:127.0.0.1", "loopback"),  # an IPv4-mapped IPv6 address is judged as its IPv4 address
    ("0.0.0.0", "unspecified"),
])
def test_with_the_setting_on_loopback_and_unspecified_origins_are_refused(
        host: str, klass: str, origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/x", Answer(body=b"internal"))
    edge = make_edge(refusing(document(distribution(0, origins=[custom_origin(origin.port, domain_name=host)]))))
    response = edge.get("/x")
    assert response.status_code == 502
    assert origin.hits("/x") == 0
    assert f"is a {klass} address (refuse_internal_origins)" in wait_for_log(edge, "refuse_internal_origins")


def test_the_edge_flag_refuses_even_when_the_document_allows(origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/x", Answer(body=b"internal"))
    edge = make_edge(document(distribution(origin.port)), extra=["--refuse-internal-origins"])
    assert edge.get("/x").status_code == 502
    assert origin.hits("/x") == 0


def test_turning_the_setting_on_drops_connections_pooled_before(origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/p", Answer(body=b"pooled", headers={"Cache-Control": "no-store"}))
    doc = document(distribution(origin.port))
    edge = make_edge(doc)
    assert edge.get("/p").content == b"pooled"  # a keep-alive connection to 127.0.0.1 is now pooled
    assert edge.push(refusing(document(distribution(origin.port), version=2))).status_code == 200
    assert edge.get("/p").status_code == 502
    assert origin.hits("/p") == 1
    assert edge.push(document(distribution(origin.port), version=3)).status_code == 200
    assert edge.get("/p").content == b"pooled"


def test_a_document_with_a_bad_setting_is_refused_and_the_old_one_kept(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    response = edge.push({**document(distribution(origin.port), version=2), "refuse_internal_origins": "yes"})
    assert response.status_code == 400 and "refuse_internal_origins" in response.text
    origin.route("/k", Answer(body=b"kept"))
    assert edge.get("/k").content == b"kept"
