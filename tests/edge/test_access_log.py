"""The edge's access log: one JSON line per request, rotated by size, tailed over the admin API."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import DIST_ID, DOMAIN, Answer, Edge, EdgeFactory, Origin, document, distribution

CACHEABLE = {"Cache-Control": "max-age=600", "Content-Type": "text/plain"}


def log_path(edge: Edge) -> Path:
    return edge.cache_dir / "logs" / "access.log"


def metric(edge: Edge, name: str) -> int | None:
    text = httpx.get(edge.admin_url + "/metrics", timeout=5).text
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def wait_lines(edge: Edge, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The log's lines once at least `count` are written (bounded in time)."""
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if log_path(edge).exists():
            lines = [json.loads(line) for line in log_path(edge).read_text().splitlines()]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} access log lines, found {len(lines)}")


def wait_metric(edge: Edge, name: str, value: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = metric(edge, name)
        if seen == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} is {seen}, expected {value}")


def test_a_miss_then_a_hit_write_two_lines_with_cloudfront_field_names(edge: Edge, origin: Origin) -> None:
    origin.route("/page.txt", Answer(headers=CACHEABLE, body=b"twelve bytes"))
    viewer = {"User-Agent": "tester/1.0", "Referer": "http://referrer.test/from", "Cookie": "session=secret"}
    miss = edge.get("/page.txt?v=1", headers=viewer)
    hit = edge.get("/page.txt?v=1", headers=viewer)
    assert miss.headers["x-cache"].startswith("Miss") and hit.headers["x-cache"].startswith("Hit")

    first, second = wait_lines(edge, 2)
    for line, response in ((first, miss), (second, hit)):
        assert line["distribution-id"] == DIST_ID
        assert line["x-edge-location"] == "tst"
        assert line["c-ip"] == "127.0.0.1"
        assert line["cs-method"] == "GET"
        assert line["cs(Host)"] == DOMAIN
        assert line["cs-uri-stem"] == "/page.txt"
        assert line["cs-uri-query"] == "v=1"
        assert line["sc-status"] == 200
        assert line["sc-bytes"] == len(b"twelve bytes")
        assert line["cs(Referer)"] == "http://referrer.test/from"
        assert line["cs(User-Agent)"] == "tester/1.0"
        assert line["x-edge-request-id"] == response.headers["x-request-id"]
        assert line["cs-protocol"] == "http"
        assert line["cs-protocol-version"] == "HTTP/1.1"
        assert line["sc-content-type"] == "text/plain"
        assert 0 <= line["time-taken"] < 5
        assert abs(line["timestamp"] - time.time()) < 60  # Unix seconds, as CloudFront's real-time logs
        assert "cs(Cookie)" not in line  # off by default: personal data
    assert (first["x-edge-result-type"], second["x-edge-result-type"]) == ("Miss", "Hit")
    assert 0 <= first["origin-fbl"] <= first["origin-lbl"] < 5
    assert "origin-fbl" not in second
    assert first["timestamp"] <= second["timestamp"]
    assert metric(edge, "edge_access_log_lines_total") == 2
    assert metric(edge, "edge_access_log_dropped_total") == 0


def test_errors_ranges_and_unknown_hosts_are_logged_with_their_result_types(edge: Edge, origin: Origin) -> None:
    origin.route("/gone", Answer(status=404, body=b"nope"))
    origin.route("/big.bin", Answer(headers={"Cache-Control": "max-age=600"}, size=1000))
    assert edge.get("/gone").status_code == 404
    edge.get("/big.bin")
    ranged = edge.get("/big.bin", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    stranger = edge.get("/x", headers={"Host": "unknown.example"})
    assert stranger.status_code == 404

    gone, filled, part, unknown = wait_lines(edge, 4)
    assert (gone["sc-status"], gone["x-edge-result-type"], gone["x-edge-response-result-type"]) == (404, "Error", "Miss")
    assert (filled["sc-bytes"], filled["x-edge-result-type"]) == (1000, "Miss")
    assert (part["sc-status"], part["sc-bytes"], part["x-edge-result-type"]) == (206, 10, "Hit")
    assert (part["sc-range-start"], part["sc-range-end"]) == (10, 19)
    assert unknown["distribution-id"] is None and unknown["cs(Host)"] == "unknown.example"
    assert (unknown["sc-status"], unknown["x-edge-result-type"]) == (404, "Error")


def http10_get(edge: Edge, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):  # HTTP/1.0 without keep-alive: the edge closes
            received += chunk
    return received


def test_fast_path_lines_follow_the_object_method_and_protocol_each_hit_was_served(
    edge: Edge, origin: Origin
) -> None:
    """The fast path encodes what a route and its object fix once per pair: a new object on
    the same route, a HEAD and an HTTP/1.0 hit must still log their own values."""
    origin.route(
        "/swap",
        Answer(headers=CACHEABLE, body=b"first"),
        Answer(headers={"Cache-Control": "max-age=600", "Content-Type": "application/json"}, body=b'{"second": 2}'),
    )
    edge.get("/swap")
    assert edge.get("/swap").headers["x-cache"].startswith("Hit")
    assert edge.invalidate(1, paths=["/swap"]).json()["removed"] == 1
    edge.get("/swap")
    assert edge.get("/swap").headers["x-cache"].startswith("Hit")
    assert edge.request("HEAD", "/swap").headers["x-cache"].startswith("Hit")
    assert http10_get(edge, "/swap").startswith(b"HTTP/1.1 200")  # the edge speaks its own version
    assert edge.get("/swap").headers["x-cache"].startswith("Hit")

    lines = wait_lines(edge, 7)
    seen = [(line["x-edge-result-type"], line["cs-method"], line["sc-bytes"], line["sc-content-type"],
             line["cs-protocol-version"]) for line in lines]  # fmt: skip
    assert seen == [
        ("Miss", "GET", 5, "text/plain", "HTTP/1.1"),
        ("Hit", "GET", 5, "text/plain", "HTTP/1.1"),
        ("Miss", "GET", 13, "application/json", "HTTP/1.1"),
        ("Hit", "GET", 13, "application/json", "HTTP/1.1"),
        ("Hit", "HEAD", 0, "application/json", "HTTP/1.1"),
        ("Hit", "GET", 13, "application/json", "HTTP/1.0"),
        ("Hit", "GET", 13, "application/json", "HTTP/1.1"),
    ]
    assert len({line["x-edge-request-id"] for line in lines}) == 7
    assert all(line["distribution-id"] == DIST_ID and line["cs-uri-stem"] == "/swap" for line in lines)


def test_lines_stay_valid_json_whatever_the_viewer_sends(edge: Edge, origin: Origin) -> None:
    origin.route("/q", Answer(headers=CACHEABLE))
    odd = 'say "hi" \\ back'
    for _ in range(2):  # a miss, then a fast-path hit: both paths encode the same way
        assert edge.get("/q?x=%22y%22", headers={"User-Agent": odd, "Referer": "caf\u00e9".encode()}).status_code == 200
    assert edge.get("/q", headers={"Host": 'un"known\\.example'}).status_code == 404
    miss, hit, unknown = wait_lines(edge, 3)
    for line in (miss, hit):
        assert (line["cs(User-Agent)"], line["cs-uri-query"]) == (odd, "x=%22y%22")
        assert line["cs(Referer)"].encode("latin-1") == "caf\u00e9".encode()  # header bytes, as sent
    assert unknown["cs(Host)"] == 'un"known\\.example' and unknown["distribution-id"] is None


def test_cookies_are_logged_and_tailed_only_with_the_cookie_flag(origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/c", Answer(headers=CACHEABLE))
    edge = make_edge(document(distribution(origin.port)), extra=["--access-log-cookies"])
    edge.get("/c", headers={"Cookie": "a=1"})
    edge.get("/c", headers={"Cookie": "a=2"})
    assert [line["cs(Cookie)"] for line in wait_lines(edge, 2)] == ["a=1", "a=2"]
    tail = edge.admin("GET", f"/logs/tail?distribution={DIST_ID}&limit=10")
    assert [json.loads(line)["cs(Cookie)"] for line in tail.text.splitlines()] == ["a=1", "a=2"]


def test_rotation_keeps_at_most_the_configured_number_of_files_and_bytes(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    origin.route("/r", Answer(headers=CACHEABLE))
    edge = make_edge(document(distribution(origin.port)),
                     extra=["--access-log-max-size", "2K", "--access-log-files", "3"])  # fmt: skip
    last = None
    for _ in range(60):  # about 20 KiB of lines: several rotations
        last = edge.get("/r").headers["x-request-id"]
    wait_metric(edge, "edge_access_log_lines_total", 60)
    files = sorted(p.name for p in log_path(edge).parent.iterdir())
    assert files == ["access.log", "access.log.1", "access.log.2"]
    kept = []
    for name in files:
        data = (log_path(edge).parent / name).read_bytes()
        assert 0 < len(data) <= 2048 and data.endswith(b"\n")
        kept.append([json.loads(line) for line in data.splitlines()])
    assert kept[0][-1]["x-edge-request-id"] == last  # the newest line is in the current file
    ids = [line["x-edge-request-id"] for lines in reversed(kept) for line in lines]
    assert len(ids) == len(set(ids)) < 60  # the oldest files are gone, nothing is repeated


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_the_access_log_off_writes_nothing(how: str, origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/o", Answer(headers=CACHEABLE))
    if how == "flag":
        edge = make_edge(document(distribution(origin.port)), extra=["--access-log", "off"])
    else:
        edge = make_edge(document(distribution(origin.port)), env={"EDGE_ACCESS_LOG": "off"})
    for _ in range(3):
        assert edge.get("/o").status_code == 200
    time.sleep(0.5)  # longer than a flush interval
    assert not (edge.cache_dir / "logs").exists()
    assert metric(edge, "edge_access_log_lines_total") is None
    assert edge.admin("GET", f"/logs/tail?distribution={DIST_ID}").status_code == 404


def test_a_full_buffer_drops_lines_and_counts_them(origin: Origin, make_edge: EdgeFactory) -> None:
    origin.route("/p", Answer(headers=CACHEABLE))
    edge = make_edge(document(distribution(origin.port)), extra=["--access-log-buffer", "4"])
    assert edge.get("/p").status_code == 200
    burst = 40
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        # One write of pipelined hits: answered within one read callback, faster than a flush.
        sock.sendall(f"GET /p HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode() * burst)
        received = b""
        deadline = time.monotonic() + 10
        while received.count(b"HTTP/1.1 200 OK") < burst and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.count(b"HTTP/1.1 200 OK") == burst
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        written = metric(edge, "edge_access_log_lines_total") or 0
        dropped = metric(edge, "edge_access_log_dropped_total") or 0
        if written + dropped == burst + 1:
            break
        time.sleep(0.05)
    assert written + dropped == burst + 1
    assert dropped >= burst - 4 - 4  # at most a couple of flushes ran during the burst
    assert len(wait_lines(edge, written)) == written


def test_the_tail_endpoint_is_signed_bounded_and_per_distribution(edge: Edge, origin: Origin) -> None:
    origin.route("/t", Answer(headers=CACHEABLE))
    ids = [edge.get("/t").headers["x-request-id"] for _ in range(5)]
    edge.get("/t", headers={"Host": "unknown.example"})
    wait_lines(edge, 6)

    assert httpx.get(f"{edge.admin_url}/logs/tail?distribution={DIST_ID}", timeout=5).status_code == 401
    assert edge.admin("GET", f"/logs/tail?distribution={DIST_ID}", token="wrong-token").status_code == 401
    tail = edge.admin("GET", f"/logs/tail?distribution={DIST_ID}&limit=3")
    assert tail.status_code == 200 and tail.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["x-edge-request-id"] for line in tail.text.splitlines()] == ids[-3:]
    everything = edge.admin("GET", f"/logs/tail?distribution={DIST_ID}")
    assert [json.loads(line)["x-edge-request-id"] for line in everything.text.splitlines()] == ids
    assert edge.admin("GET", "/logs/tail?distribution=EOTHER00000000").text == ""
    for query in ("", f"?distribution={DIST_ID}&limit=0", f"?distribution={DIST_ID}&limit=1001",
                  f"?distribution={DIST_ID}&limit=ten"):  # fmt: skip
        refused = edge.admin("GET", "/logs/tail" + query)
        assert refused.status_code == 400 and refused.json()["error"]
