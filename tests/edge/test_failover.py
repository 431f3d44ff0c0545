"""Origin groups fail over on connection errors, timeouts and configured statuses."""

from __future__ import annotations

from typing import Any

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, custom_origin, distribution, document
from tests.edge.test_stale import dead_port


def group_doc(primary: dict[str, Any], secondary: dict[str, Any], codes: list[int]) -> dict[str, Any]:
    return document(distribution(
        0,
        origins=sorted([primary, secondary], key=lambda o: o["id"]),
        origin_groups=[{"id": "group", "primary": primary["id"], "secondary": secondary["id"],
                        "failover_status_codes": codes}],
        cache_behaviors=[behavior(target="group")],
    ))  # fmt: skip


def test_it_fails_over_when_the_primary_refuses_connections(origin: Origin, make_edge: EdgeFactory) -> None:
    # 503 never comes here: the failover seen is the connection's (a group lists at least one code).
    edge = make_edge(group_doc(custom_origin(dead_port(), "a-primary"), custom_origin(origin.port, "b-secondary"),
                               [503]))
    origin.route("/f", Answer(body=b"from secondary"))
    assert edge.get("/f").content == b"from secondary"


def test_it_fails_over_on_a_configured_status(origin: Origin, make_edge: EdgeFactory) -> None:
    primary = custom_origin(origin.port, "a-primary", origin_path="/primary")
    secondary = custom_origin(origin.port, "b-secondary", origin_path="/secondary")
    edge = make_edge(group_doc(primary, secondary, [503]))
    origin.route("/primary/s", Answer(status=503, body=b"busy"))
    origin.route("/secondary/s", Answer(body=b"ok"))
    origin.route("/primary/n", Answer(status=404, body=b"missing"))
    assert edge.get("/s").content == b"ok"
    assert edge.get("/n").status_code == 404
    assert origin.hits("/secondary/n") == 0


def test_it_fails_over_when_the_primary_times_out(origin: Origin, make_edge: EdgeFactory) -> None:
    primary = custom_origin(origin.port, "a-primary", origin_path="/slow", read_timeout=1)
    secondary = custom_origin(origin.port, "b-secondary", origin_path="/fast")
    edge = make_edge(group_doc(primary, secondary, [503]))  # the failover seen is the timeout's
    origin.route("/slow/t", Answer(delay=3, body=b"late"))
    origin.route("/fast/t", Answer(body=b"quick"))
    assert edge.get("/t").content == b"quick"
