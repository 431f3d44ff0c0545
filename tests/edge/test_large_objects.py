"""Large objects are streamed to the viewer while being stored, never buffered whole."""

from __future__ import annotations

from tests.edge.conftest import Answer, Edge, Origin, pattern_bytes

GIB = 1024 * 1024 * 1024


def test_it_streams_a_1_gib_object_under_150_mb_rss_and_caches_it_on_disk(origin: Origin, edge: Edge) -> None:
    origin.route("/huge.bin", Answer(size=GIB, headers={"Content-Type": "application/octet-stream"}))
    received = 0
    tail = b""
    with edge.client.stream("GET", edge.url + "/huge.bin") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
            tail = (tail + chunk)[-16:]
    assert received == GIB
    assert tail == pattern_bytes(16, GIB - 16)
    assert edge.rss_high_water_kb() < 150 * 1024
    ranged = edge.get("/huge.bin", headers={"Range": f"bytes={GIB - 100}-{GIB - 1}"})
    assert ranged.status_code == 206 and ranged.content == pattern_bytes(100, GIB - 100)
    assert ranged.headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/huge.bin") == 1
