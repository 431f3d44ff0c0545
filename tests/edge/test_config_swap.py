"""A config swap under load: in-flight and new requests all succeed."""

from __future__ import annotations

import threading
import time

import httpx

from tests.edge.conftest import DOMAIN, Answer, Edge, Origin, clone, distribution, document


def test_it_swaps_configs_under_load_without_a_failed_request(origin: Origin, edge: Edge) -> None:
    origin.route("/load", Answer(body=b"steady", headers={"Cache-Control": "max-age=60"}))
    origin.route("/slow", Answer(body=b"slow", delay=0.2, headers={"Cache-Control": "no-store"}))
    statuses: list[int] = []
    stop = threading.Event()

    def load(path: str) -> None:
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=10, headers={"Host": DOMAIN}) as client:
            for _ in range(2000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                statuses.append(client.get(edge.url + path).status_code)

    workers = [threading.Thread(target=load, args=(p,)) for p in ("/load", "/load", "/slow")]
    for worker in workers:
        worker.start()
    base = document(distribution(origin.port))
    for version in range(2, 12):
        assert edge.push(clone(base, version)).status_code == 200
        time.sleep(0.1)
    stop.set()
    for worker in workers:
        worker.join(30)
    assert len(statuses) > 20
    assert set(statuses) == {200}
