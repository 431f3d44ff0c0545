"""Freshness and age end to end (RFC 9111 4.2, 5.1, 5.3; RFC 9213): an origin that sends
exactly the header lines a test names, byte for byte, and a real edge in front of it.

The scripted origin here writes raw HTTP/1.1 so that a test can send what aiohttp's server
would not: a field twice, no Date, a malformed Expires.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.edge.conftest import Edge, EdgeFactory, behavior, cache_policy, clone, custom_origin, with_behaviors

Header = tuple[str, str]


class RawOrigin:
    """Answers each path with scripted (status, header lines, body) in order, the last one
    repeating; records every request's header lines. Each answer closes its connection."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, list[Header], bytes]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        origin = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65536).decode("latin-1")
                if not line:
                    return
                path = line.split(" ")[1]
                headers: dict[str, str] = {}
                for _ in range(200):
                    raw = self.rfile.readline(65536).decode("latin-1").rstrip("\r\n")
                    if not raw:
                        break
                    name, _, value = raw.partition(":")
                    headers[name.strip().lower()] = value.strip()
                origin.requests.append((path, headers))
                answers = origin.routes.get(path) or [(404, [], b"not scripted")]
                status, lines, body = answers[min(origin.hits(path) - 1, len(answers) - 1)]
                head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{n}: {v}\r\n" for n, v in lines)
                head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                self.wfile.write(head.encode("latin-1") + (b"" if status == 304 else body))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, path: str, *answers: tuple[int, list[Header], bytes]) -> None:
        self.routes[path] = list(answers)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def seen(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


@pytest.fixture
def raw() -> Iterator[RawOrigin]:
    origin = RawOrigin()
    origin.thread.start()
    yield origin
    origin.server.shutdown()
    origin.server.server_close()


def ok(*lines: Header, body: bytes = b"body") -> tuple[int, list[Header], bytes]:
    return (200, list(lines), body)


def not_modified(*lines: Header) -> tuple[int, list[Header], bytes]:
    return (304, list(lines), b"")


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


def edge_for(raw: RawOrigin, make_edge: EdgeFactory, **policy: object) -> Edge:
    limits = {"min_ttl": 0, "default_ttl": 86400, "max_ttl": 31536000, **policy}
    return make_edge(with_behaviors(raw.port, behavior(cache_policy=cache_policy(**limits))))


def x_cache(response: object) -> str:
    return str(response.headers["X-Cache"]).split(" ")[0]  # type: ignore[attr-defined]


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- Age (RFC 9111 4.2.3, 5.1) ----


def test_an_origin_age_above_the_lifetime_is_stale_on_arrival_and_viewers_see_it(
    raw: RawOrigin, make_edge: EdgeFactory
) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/aged", ok(("Cache-Control", "max-age=3600"), ("Age", "7200"), ("ETag", '"a"')),
              not_modified(("Age", "0")))
    first = edge.get("/aged")
    assert x_cache(first) == "Miss" and int(first.headers["Age"]) >= 7200
    second = edge.get("/aged")
    assert x_cache(second) == "RefreshHit"
    assert raw.seen("/aged")[1]["if-none-match"] == '"a"'
    third = edge.get("/aged")
    assert x_cache(third) == "Hit" and int(third.headers["Age"]) < 3600


def test_an_origin_age_below_the_lifetime_is_fresh_and_counted_in_every_age(
    raw: RawOrigin, make_edge: EdgeFactory
) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/young", ok(("Cache-Control", "max-age=3600"), ("Age", "100")))
    assert int(edge.get("/young").headers["Age"]) >= 100
    hit = edge.get("/young")
    assert x_cache(hit) == "Hit" and 100 <= int(hit.headers["Age"]) < 110
    assert raw.hits("/young") == 1


def test_the_apparent_age_from_date_counts_without_an_age_field(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/dated", ok(("Cache-Control", "max-age=3600"), ("Date", http_date(time.time() - 7200))))
    assert int(edge.get("/dated").headers["Age"]) >= 7199
    assert x_cache(edge.get("/dated")) == "Miss"
    assert raw.hits("/dated") == 2


def test_the_stored_age_survives_a_restart(raw: RawOrigin, make_edge: EdgeFactory, tmp_path: Path) -> None:
    cache_dir = tmp_path / "kept"
    edge = make_edge(with_behaviors(raw.port, behavior(cache_policy=cache_policy(0, 86400, 31536000))),
                     cache_dir=cache_dir)
    raw.route("/kept", ok(("Cache-Control", "max-age=3600"), ("Age", "500")))
    edge.get("/kept")
    deadline = time.monotonic() + 10
    while not list(cache_dir.glob("objects/*/*.meta")) and time.monotonic() < deadline:
        time.sleep(0.05)
    edge.restart()
    after = edge.get("/kept")
    assert x_cache(after) == "Hit" and int(after.headers["Age"]) >= 500
    assert raw.hits("/kept") == 1


@pytest.mark.parametrize("lines", [
    [("Age", "old, 0")],
    [("Age", "7200.0")],
    [("Age", "-7200")],
    [("Age", "abc")],
    [("Age", "7200"), ("Age", "0")],
    [("Age", "7200, 0")],
])  # fmt: skip
def test_an_invalid_or_old_first_age_makes_the_response_stale(
    raw: RawOrigin, make_edge: EdgeFactory, lines: list[Header]
) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/age", ok(("Cache-Control", "max-age=3600"), ("ETag", '"e"'), *lines), not_modified())
    edge.get("/age")
    assert x_cache(edge.get("/age")) == "RefreshHit"
    assert raw.hits("/age") == 2


@pytest.mark.parametrize("lines", [[("Age", "0"), ("Age", "7200")], [("Age", "0, 7200")], [("Age", "10")]])
def test_the_first_age_member_wins_when_it_is_valid(raw: RawOrigin, make_edge: EdgeFactory, lines: list[Header]) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/first", ok(("Cache-Control", "max-age=3600"), *lines))
    edge.get("/first")
    assert x_cache(edge.get("/first")) == "Hit"
    assert raw.hits("/first") == 1


# ---- Expires (RFC 9111 5.3, RFC 9110 5.6.7) ----


@pytest.mark.parametrize("lines", [
    [("Expires", "Thu, 18 Aug 2050 02:01:18 UTC")],
    [("Expires", "Thu, 18 Aug 2050 02:01:18 AEST")],
    [("Expires", "Thu, 18 Aug 50 02:01:18 GMT")],
    [("Expires", "Thu 18 Aug 2050 02:01:18 GMT")],
    [("Expires", "Thu, 18  Aug  2050 02:01:18 GMT")],
    [("Expires", "Thu, 18-Aug-2050 02:01:18 GMT")],
    [("Expires", "Thu, 18 Aug 2050 02.01.18 GMT")],
    [("Expires", "Thu, 18 Aug 2050 2:01:18 GMT")],
    [("Expires", "Thu, 18 Aug 2050 02:01:18 GMT"), ("Expires", "Thu, 18 Aug 2050 02:01:19 GMT")],
])  # fmt: skip
def test_an_expires_that_is_not_an_http_date_means_already_expired(
    raw: RawOrigin, make_edge: EdgeFactory, lines: list[Header]
) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/exp", ok(("Date", http_date(time.time())), *lines))
    edge.get("/exp")
    assert x_cache(edge.get("/exp")) == "Miss"
    assert raw.hits("/exp") == 2


@pytest.mark.parametrize("expires", ["Thu, 18 Aug 2050 02:01:18 GMT", "Thursday, 18-Aug-50 02:01:18 GMT",
                                     "Thu Aug 18 02:01:18 2050", "THU, 18 AUG 2050 02:01:18 gmt"])
def test_each_http_date_format_is_a_valid_expires(raw: RawOrigin, make_edge: EdgeFactory, expires: str) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/valid", ok(("Date", http_date(time.time())), ("Expires", expires)))
    edge.get("/valid")
    assert x_cache(edge.get("/valid")) == "Hit"


def test_the_lifetime_from_expires_is_measured_on_the_origin_clock(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    # The origin's clock runs an hour ahead: Expires is one second after its own Date, so
    # the response is fresh for one second, not for the hour the edge's clock would give.
    edge = edge_for(raw, make_edge)
    ahead = time.time() + 3600
    raw.route("/skew", ok(("Date", http_date(ahead)), ("Expires", http_date(ahead + 1))))
    edge.get("/skew")
    assert x_cache(edge.get("/skew")) == "Hit"
    time.sleep(1.3)
    assert x_cache(edge.get("/skew")) == "Miss"


# ---- Responses that must not be served stale (RFC 9111 4.2.4, 5.2.2) ----


@pytest.mark.parametrize("directives", ["max-age=1, must-revalidate", "max-age=1, proxy-revalidate",
                                        "s-maxage=1", "max-age=1, must-revalidate, stale-if-error=600"])
def test_a_stale_response_that_must_be_revalidated_is_a_504_when_the_origin_is_unreachable(
    raw: RawOrigin, make_edge: EdgeFactory, directives: str
) -> None:
    doc = with_behaviors(raw.port, behavior(cache_policy=cache_policy(0, 1, 100)))
    edge = make_edge(doc)
    raw.route("/strict", ok(("Cache-Control", directives), ("ETag", '"s"'), body=b"kept"))
    raw.route("/lenient", ok(("Cache-Control", "max-age=1"), ("ETag", '"l"'), body=b"kept"))
    assert edge.get("/strict").content == edge.get("/lenient").content == b"kept"
    moved = clone(doc, 2)
    moved["distributions"][0]["origins"] = [custom_origin(dead_port())]
    assert edge.push(moved).status_code == 200
    time.sleep(1.2)
    assert edge.get("/strict").status_code == 504
    lenient = edge.get("/lenient")
    assert lenient.status_code == 200 and lenient.content == b"kept"


def test_immutable_does_not_exempt_a_stale_response_from_revalidation(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/imm", ok(("Cache-Control", "max-age=1, immutable"), ("ETag", '"i"')), not_modified())
    edge.get("/imm")
    time.sleep(1.2)
    assert x_cache(edge.get("/imm")) == "RefreshHit"
    assert raw.seen("/imm")[1]["if-none-match"] == '"i"'


def test_no_cache_is_stored_and_revalidated_on_every_use(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/nc", ok(("Cache-Control", "no-cache"), ("ETag", '"n"'), body=b"validated"),
              not_modified(("Cache-Control", "no-cache")))
    assert x_cache(edge.get("/nc")) == "Miss"
    for _ in range(2):
        again = edge.get("/nc")
        assert x_cache(again) == "RefreshHit" and again.content == b"validated"
    assert [h.get("if-none-match") for h in raw.seen("/nc")] == [None, '"n"', '"n"']


def test_no_cache_under_a_minimum_ttl_is_kept_for_it_like_cloudfront(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge, min_ttl=60, default_ttl=60)
    raw.route("/ncmin", ok(("Cache-Control", "no-cache"), ("ETag", '"n"')))
    edge.get("/ncmin")
    assert x_cache(edge.get("/ncmin")) == "Hit"


# ---- Targeted cache control (RFC 9213) ----


def test_cdn_cache_control_decides_for_the_edge_and_is_not_passed_on(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/cdn", ok(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")))
    first = edge.get("/cdn")
    hit = edge.get("/cdn")
    assert x_cache(hit) == "Hit" and raw.hits("/cdn") == 1
    for response in (first, hit):
        assert response.headers["Cache-Control"] == "no-store"
        assert "CDN-Cache-Control" not in response.headers


def test_cdn_cache_control_no_store_wins_over_a_long_cache_control(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/cdnns", ok(("Cache-Control", "max-age=3600"), ("CDN-Cache-Control", "no-store")))
    edge.get("/cdnns")
    second = edge.get("/cdnns")
    assert x_cache(second) == "Miss" and second.headers["Cache-Control"] == "max-age=3600"
    assert raw.hits("/cdnns") == 2


def test_a_targeted_field_replaces_expires_too(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/cdnexp", ok(("Date", http_date(time.time())), ("Expires", http_date(time.time() + 3600)),
                            ("CDN-Cache-Control", "no-cache"), ("ETag", '"t"')), not_modified())
    edge.get("/cdnexp")
    assert x_cache(edge.get("/cdnexp")) == "RefreshHit"


def test_an_invalid_cdn_cache_control_is_ignored(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/cdnbad", ok(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", 'no-store, max-age="1')))
    edge.get("/cdnbad")
    assert x_cache(edge.get("/cdnbad")) == "Hit"


def test_the_policys_own_field_comes_first_and_the_policy_bounds_still_apply(
    raw: RawOrigin, make_edge: EdgeFactory
) -> None:
    policy = cache_policy(0, 1, 1, cache_control_field="edge-cache-control")
    edge = make_edge(with_behaviors(raw.port, behavior(cache_policy=policy)))
    raw.route("/own", ok(("Cache-Control", "no-store"), ("CDN-Cache-Control", "no-store"),
                         ("Edge-Cache-Control", "max-age=3600")))
    first = edge.get("/own")
    assert x_cache(edge.get("/own")) == "Hit"
    assert "Edge-Cache-Control" not in first.headers and "CDN-Cache-Control" not in first.headers
    time.sleep(1.2)
    assert x_cache(edge.get("/own")) == "Miss"


def test_an_edge_without_the_policy_field_ignores_it(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/other", ok(("Cache-Control", "no-store"), ("Edge-Cache-Control", "max-age=3600")))
    first = edge.get("/other")
    assert x_cache(edge.get("/other")) == "Miss"
    assert first.headers["Edge-Cache-Control"] == "max-age=3600"


@pytest.mark.parametrize("lines", [
    [("Cache-Control", "max-age=2147483648")],
    [("Cache-Control", "max-age=99999999999999999999999")],
    [("CDN-Cache-Control", "max-age=2147483648")],
    [("CDN-Cache-Control", "max-age=999999999999999")],
])  # fmt: skip
def test_the_largest_max_age_values_are_very_long(raw: RawOrigin, make_edge: EdgeFactory, lines: list[Header]) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/long", ok(*lines))
    assert edge.get("/long").status_code == 200
    hit = edge.get("/long")
    assert hit.status_code == 200 and x_cache(hit) == "Hit" and int(hit.headers["Age"]) >= 0
    assert raw.hits("/long") == 1


# ---- Heuristic freshness (RFC 9111 4.2.2), a cache policy option ----


def test_heuristic_freshness_is_a_tenth_of_the_age_since_last_modified_when_the_policy_asks(
    raw: RawOrigin, make_edge: EdgeFactory
) -> None:
    heuristic = cache_policy(0, 86400, 31536000, heuristic_freshness=True)
    edge = make_edge(with_behaviors(
        raw.port, behavior("/rfc/*", cache_policy=heuristic), behavior(cache_policy=cache_policy(0, 86400, 31536000))))
    # Fifty seconds since Last-Modified: five seconds of heuristic freshness, wide enough that a
    # slow machine still finds the first answers fresh (Date is whole seconds, up to 1 s early).
    now = time.time()
    modified = http_date(now - 50)
    for path in ("/rfc/page", "/plain/page"):
        raw.route(path, ok(("Date", http_date(now)), ("Last-Modified", modified)), not_modified())
    raw.route("/rfc/missing", (404, [("Date", http_date(now)), ("Last-Modified", modified)], b"gone"))
    raw.route("/rfc/down", (503, [("Date", http_date(now)), ("Last-Modified", modified)], b"down"))
    for path in ("/rfc/page", "/plain/page", "/rfc/missing", "/rfc/down"):
        edge.get(path)
        assert x_cache(edge.get(path)) == "Hit", path
    time.sleep(max(0.0, now + 5.5 - time.time()))
    refreshed = edge.get("/rfc/page")
    assert x_cache(refreshed) == "RefreshHit"
    assert raw.seen("/rfc/page")[1]["if-modified-since"] == modified
    assert x_cache(edge.get("/rfc/missing")) == "Miss"
    # The default TTL without heuristics; CloudFront's 10 s for a 503, never heuristics.
    assert x_cache(edge.get("/plain/page")) == "Hit"
    assert x_cache(edge.get("/rfc/down")) == "Hit"


def test_a_response_passed_through_uncached_keeps_the_origins_age(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge, min_ttl=0, default_ttl=0, max_ttl=0)
    raw.route("/passed", ok(("Cache-Control", "max-age=3600"), ("Age", "50"), ("CDN-Cache-Control", "max-age=9")))
    passed = edge.get("/passed")
    assert passed.headers["Age"] == "50" and passed.headers["Cache-Control"] == "max-age=3600"
    assert "CDN-Cache-Control" not in passed.headers


def test_a_304_without_the_targeted_field_is_judged_by_the_stored_one(raw: RawOrigin, make_edge: EdgeFactory) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/t304", ok(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=1"), ("ETag", '"t"')),
              not_modified(("Cache-Control", "no-store")))
    edge.get("/t304")
    time.sleep(1.2)
    refreshed = edge.get("/t304")
    assert x_cache(refreshed) == "RefreshHit" and "CDN-Cache-Control" not in refreshed.headers
    assert x_cache(edge.get("/t304")) == "Hit"
    assert raw.hits("/t304") == 2


@pytest.mark.parametrize("answer", [
    ok(("Cache-Control", "no-store"), ("Age", "40")),
    (302, [("Location", "/elsewhere"), ("Age", "40")], b""),
])  # fmt: skip
def test_a_miss_the_edge_does_not_store_still_carries_the_upstream_age(
    raw: RawOrigin, make_edge: EdgeFactory, answer: tuple[int, list[Header], bytes]
) -> None:
    edge = edge_for(raw, make_edge)
    raw.route("/unstored", answer)
    response = edge.get("/unstored", follow_redirects=False)
    assert x_cache(response) == "Miss" and response.headers["Age"] == "40"
