"""Restarts: the disk cache and the last good config survive; corrupt files are never served."""

from __future__ import annotations

from pathlib import Path

from tests.edge.conftest import Answer, Edge, EdgeFactory, Origin, distribution, document


def body_files(edge: Edge) -> list[Path]:
    return sorted(edge.cache_dir.rglob("*.body"))


def test_it_serves_the_disk_cache_after_a_restart(origin: Origin, edge: Edge) -> None:
    origin.route("/kept", Answer(body=b"survives restarts"))
    edge.get("/kept")
    assert edge.stop() == 0
    edge.start()
    response = edge.get("/kept")
    assert response.content == b"survives restarts"
    assert response.headers["X-Cache"] == "Hit from edge-t"
    assert origin.hits("/kept") == 1


def test_it_ignores_a_corrupt_cache_file_after_a_restart(origin: Origin, edge: Edge) -> None:
    origin.route("/flip", Answer(body=b"A" * 5000))
    origin.route("/cut", Answer(body=b"B" * 5000))
    edge.get("/flip")
    edge.get("/cut")
    edge.stop()
    files = body_files(edge)
    assert len(files) == 2
    for path in files:
        data = path.read_bytes()
        if data[:1] == b"A":
            path.write_bytes(b"Z" * len(data))
        else:
            path.write_bytes(data[:100])
    edge.start()
    assert edge.get("/flip").content == b"A" * 5000
    assert edge.get("/cut").content == b"B" * 5000
    assert origin.hits("/flip") == 2 and origin.hits("/cut") == 2


def test_it_serves_the_last_pushed_config_after_a_restart(origin: Origin, edge: Edge) -> None:
    assert edge.push(document(distribution(origin.port, aliases=["pushed.example.test"]), version=9)).status_code == 200
    edge.restart()
    origin.route("/v", Answer(body=b"v9"))
    assert edge.get("/v", headers={"Host": "pushed.example.test"}).content == b"v9"


def test_it_starts_without_a_config_file_from_the_persisted_config(
    origin: Origin, make_edge: EdgeFactory, edge: Edge
) -> None:
    edge.stop()
    edge.config_path.unlink()
    edge.start()
    origin.route("/p", Answer(body=b"persisted"))
    assert edge.get("/p").content == b"persisted"
