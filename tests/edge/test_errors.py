"""Edge errors (502, 504, 403, 301) and custom error responses."""

from __future__ import annotations

from tests.edge.conftest import Answer, EdgeFactory, Origin, behavior, custom_origin, distribution, document
from tests.edge.test_stale import dead_port


def test_it_answers_502_naming_the_request_id_when_the_origin_is_unreachable(make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(0, origins=[custom_origin(dead_port())])))
    response = edge.get("/x", headers={"X-Request-Id": "req-502"})
    assert response.status_code == 502
    assert "req-502" in response.text
    assert response.headers["X-Cache"] == "Error from edge-t"


def test_it_answers_504_when_the_origin_is_too_slow(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port, origins=[custom_origin(origin.port, read_timeout=1)])))
    origin.route("/slow", Answer(delay=3))
    response = edge.get("/slow")
    assert response.status_code == 504
    assert response.headers["X-Request-Id"] in response.text


def test_it_answers_403_to_a_method_the_behavior_does_not_allow(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    response = edge.request("POST", "/form", content=b"a=1")
    assert response.status_code == 403
    assert "POST" in response.text
    assert origin.requests == []


def test_it_redirects_or_refuses_plain_http_per_viewer_protocol_policy(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = document(distribution(origin.port, cache_behaviors=[
        behavior("/secure/*", viewer_protocol_policy="https-only"),
        behavior("*", viewer_protocol_policy="redirect-to-https"),
    ]))  # fmt: skip
    edge = make_edge(doc, extra=["--trust-forwarded-proto"])
    edge.client.follow_redirects = False
    redirect = edge.get("/page?x=1")
    assert redirect.status_code == 301
    assert redirect.headers["Location"].startswith("https://") and redirect.headers["Location"].endswith("/page?x=1")
    assert edge.get("/secure/a").status_code == 403
    origin.route("/page", Answer(body=b"secure page"))
    assert edge.get("/page", headers={"X-Forwarded-Proto": "https"}).content == b"secure page"


def test_it_serves_the_custom_error_page_with_the_configured_code(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = document(distribution(origin.port, custom_error_responses=[
        {"error_code": 404, "response_page_path": "/errors/404.html", "response_code": 200,
         "error_caching_min_ttl": 10},
        {"error_code": 502, "response_page_path": "", "response_code": None, "error_caching_min_ttl": 10},
    ]))  # fmt: skip
    edge = make_edge(doc)
    origin.route("/errors/404.html", Answer(body=b"<h1>lost?</h1>", headers={"Content-Type": "text/html"}))
    origin.route("/missing", Answer(status=404, body=b"origin 404"))
    first = edge.get("/missing")
    assert first.status_code == 200 and first.content == b"<h1>lost?</h1>"
    assert edge.get("/missing").content == b"<h1>lost?</h1>"
    assert origin.hits("/missing") == 1
    assert origin.hits("/errors/404.html") == 1


def test_a_custom_error_page_path_is_fetched_in_its_normal_form(origin: Origin, make_edge: EdgeFactory) -> None:
    doc = document(distribution(origin.port, custom_error_responses=[
        {"error_code": 404, "response_page_path": "/errors/not found é.html", "response_code": 404,
         "error_caching_min_ttl": 10},
    ]))  # fmt: skip
    edge = make_edge(doc)
    origin.route("/errors/not found é.html", Answer(body=b"<h1>lost?</h1>", headers={"Content-Type": "text/html"}))
    origin.route("/missing", Answer(status=404, body=b"origin 404"))
    assert edge.get("/missing").content == b"<h1>lost?</h1>"
    assert [s.raw_path for s in origin.seen("/errors/not found é.html")] == ["/errors/not%20found%20%C3%A9.html"]
    # The page is the entry a viewer asking for it gets.
    assert edge.get("/errors/not%20found%20%c3%a9.html").headers["X-Cache"] == "Hit from edge-t"


def test_it_cuts_the_viewer_connection_when_the_origin_dies_mid_body(origin: Origin, make_edge: EdgeFactory) -> None:
    import httpx
    import pytest

    edge = make_edge(document(distribution(origin.port)))
    origin.route("/torn", Answer(size=4 * 1024 * 1024, cut_after=512 * 1024))
    with pytest.raises(httpx.RemoteProtocolError):
        edge.get("/torn")
    origin.route("/torn", Answer(size=1000))
    response = edge.get("/torn")
    assert response.status_code == 200 and len(response.content) == 1000
    assert response.headers["X-Cache"] == "Miss from edge-t"
