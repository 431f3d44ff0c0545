"""The demo origin, run as its own process on loopback and spoken to over real sockets."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo.origin import LARGE_SIZE, RangeNotSatisfiable, parse_range

ROOT = Path(__file__).resolve().parents[2]


def start_origin(listen: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.origin", "--listen", listen],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        pytest.fail(f"origin did not start: {line!r}")
    return proc, line.rsplit("listening on ", 1)[1].strip()


def stop(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    return proc.wait(timeout=10)


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    proc, url = start_origin("127.0.0.1:0")
    yield url
    stop(proc)


@pytest.fixture
def client(origin: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin, timeout=10) as client:
        yield client


# ---- Range parsing, without sockets ----


def test_a_closed_range_is_half_open_internally() -> None:
    assert parse_range("bytes=0-99", 1000) == (0, 100)


def test_an_open_ended_range_runs_to_the_end() -> None:
    assert parse_range("bytes=900-", 1000) == (900, 1000)


def test_a_suffix_range_takes_the_last_bytes() -> None:
    assert parse_range("bytes=-10", 1000) == (990, 1000)
    assert parse_range("bytes=-5000", 1000) == (0, 1000)


def test_a_range_past_the_end_is_clamped() -> None:
    assert parse_range("bytes=990-5000", 1000) == (990, 1000)


def test_a_range_starting_past_the_end_is_not_satisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 1000)


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=abc", "bytes=-", "bytes=1"])
def test_ranges_it_does_not_support_are_ignored(value: str) -> None:
    assert parse_range(value, 1000) is None


# ---- Over HTTP ----


def test_it_prints_the_bound_port_when_asked_for_port_zero(origin: str) -> None:
    host, _, port = origin.removeprefix("http://").rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_it_answers_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_serves_index_html_with_a_one_minute_max_age(client: httpx.Client) -> None:
    response = client.get("/index.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert b"Demo origin" in response.content


def test_it_serves_images_for_a_year_tagged_with_a_surrogate_key(client: httpx.Client) -> None:
    for path, content_type in (("/img/logo.svg", "image/svg+xml"), ("/img/photo.jpg", "image/jpeg")):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert "max-age=31536000" in response.headers["cache-control"]
        assert response.headers["surrogate-key"] == "images"


def test_the_generated_photo_looks_like_a_jpeg(client: httpx.Client) -> None:
    body = client.get("/img/photo.jpg").content
    assert body[:3] == b"\xff\xd8\xff"
    assert body[-2:] == b"\xff\xd9"


def test_benchmark_objects_have_fixed_sizes_and_an_hour_of_freshness(client: httpx.Client) -> None:
    one_k = client.get("/bench/1k")
    hundred_k = client.get("/bench/100k")
    assert len(one_k.content) == 1024
    assert len(hundred_k.content) == 100 * 1024
    assert one_k.headers["cache-control"] == hundred_k.headers["cache-control"] == "max-age=3600"
    assert client.get("/bench/1k").content == one_k.content


def test_the_uncacheable_benchmark_object_says_no_store(client: httpx.Client) -> None:
    response = client.get("/bench/nocache/1k")
    assert len(response.content) == 1024
    assert response.headers["cache-control"] == "no-store"


def test_it_answers_304_when_if_none_match_matches(client: httpx.Client) -> None:
    etag = client.get("/img/logo.svg").headers["etag"]
    response = client.get("/img/logo.svg", headers={"If-None-Match": f'W/"other", W/{etag}'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


def test_it_sends_the_object_when_if_none_match_differs(client: httpx.Client) -> None:
    response = client.get("/img/logo.svg", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.content.startswith(b"<svg")


def test_it_answers_304_when_if_modified_since_is_not_older(client: httpx.Client) -> None:
    last_modified = client.get("/bench/1k").headers["last-modified"]
    response = client.get("/bench/1k", headers={"If-Modified-Since": last_modified})
    assert response.status_code == 304


def test_it_sends_the_object_when_if_modified_since_is_older(client: httpx.Client) -> None:
    response = client.get("/bench/1k", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert response.status_code == 200
    assert len(response.content) == 1024


def test_if_none_match_wins_over_if_modified_since(client: httpx.Client) -> None:
    last_modified = client.get("/bench/1k").headers["last-modified"]
    response = client.get("/bench/1k", headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified})
    assert response.status_code == 200


def test_it_answers_a_single_range_with_206(client: httpx.Client) -> None:
    whole = client.get("/img/photo.jpg").content
    response = client.get("/img/photo.jpg", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert response.content == whole[100:200]


def test_it_answers_an_unsatisfiable_range_with_416(client: httpx.Client) -> None:
    response = client.get("/bench/1k", headers={"Range": "bytes=5000-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1024"


def test_it_sends_the_whole_object_for_several_ranges(client: httpx.Client) -> None:
    response = client.get("/bench/1k", headers={"Range": "bytes=0-1,5-6"})
    assert response.status_code == 200
    assert len(response.content) == 1024


def test_it_ignores_a_range_whose_if_range_no_longer_matches(client: httpx.Client) -> None:
    etag = client.get("/bench/1k").headers["etag"]
    stale = client.get("/bench/1k", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    fresh = client.get("/bench/1k", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert stale.status_code == 200
    assert fresh.status_code == 206
    assert len(fresh.content) == 10


def test_it_streams_the_large_file_whole_and_consistently_with_ranges(client: httpx.Client) -> None:
    digest = hashlib.sha256()
    length = 0
    tail = b""
    with client.stream("GET", "/large.bin") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(LARGE_SIZE)
        for chunk in response.iter_bytes():
            digest.update(chunk)
            length += len(chunk)
            tail = (tail + chunk)[-4096:]
    assert length == LARGE_SIZE
    again = hashlib.sha256(client.get("/large.bin").content).hexdigest()
    assert again == digest.hexdigest()
    ranged = client.get("/large.bin", headers={"Range": "bytes=-4096"})
    assert ranged.status_code == 206
    assert ranged.content == tail


def test_a_large_range_across_block_boundaries_matches_the_whole_file(client: httpx.Client) -> None:
    whole = client.get("/large.bin").content
    start, end = 1024 * 1024 - 1000, 3 * 1024 * 1024 + 7
    response = client.get("/large.bin", headers={"Range": f"bytes={start}-{end - 1}"})
    assert response.status_code == 206
    assert response.content == whole[start:end]


def test_it_answers_head_with_the_length_and_no_body(client: httpx.Client) -> None:
    for path, size in (("/bench/100k", 100 * 1024), ("/large.bin", LARGE_SIZE)):
        response = client.head(path)
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        assert response.content == b""


def test_api_time_is_json_that_is_never_stored(client: httpx.Client) -> None:
    response = client.get("/api/time")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["epoch"] > 0


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_api_echo_reports_method_headers_query_and_body(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/api/echo?a=1", content=b"hello", headers={"X-Test": "yes"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    echoed = response.json()
    assert echoed["method"] == method
    assert echoed["query_string"] == "a=1"
    assert ["X-Test", "yes"] in echoed["headers"]
    assert echoed["body"] == "hello"
    assert echoed["body_length"] == 5
    assert echoed["remote"] == "127.0.0.1"


def test_api_echo_digests_a_big_upload_and_keeps_only_its_start(client: httpx.Client) -> None:
    block = bytes(range(256)) * 4096
    body_chunks = [block] * 8

    def upload() -> Iterator[bytes]:
        yield from body_chunks

    echoed = client.put("/api/echo", content=upload()).json()
    assert echoed["body_length"] == len(block) * 8
    assert echoed["body_sha256"] == hashlib.sha256(block * 8).hexdigest()
    assert echoed["body_truncated"] is True


def test_it_counts_requests_per_path(client: httpx.Client) -> None:
    before = client.get("/_stats").json()["requests"].get("/img/logo.svg", 0)
    client.get("/img/logo.svg")
    client.get("/img/logo.svg")
    after = client.get("/_stats").json()["requests"]["/img/logo.svg"]
    assert after == before + 2


def test_unknown_paths_are_404(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404


def test_it_listens_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    proc, url = start_origin("[::1]:0")
    try:
        assert url.startswith("http://[::1]:")
        assert httpx.get(url + "/health", timeout=10).status_code == 200
    finally:
        assert stop(proc) == 0


def test_it_exits_cleanly_on_sigterm() -> None:
    proc, url = start_origin("127.0.0.1:0")
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    assert stop(proc) == 0
