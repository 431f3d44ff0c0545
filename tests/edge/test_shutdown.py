"""Graceful shutdown: stop accepting, finish in-flight requests, exit cleanly."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.edge.conftest import DOMAIN, Answer, Edge, Origin


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_it_finishes_in_flight_requests_on_shutdown(origin: Origin, edge: Edge, sig: int) -> None:
    origin.route("/slow", Answer(body=b"finished", delay=1.0))
    result: dict[str, object] = {}

    def fetch() -> None:
        with httpx.Client(timeout=10, headers={"Host": DOMAIN}) as client:
            response = client.get(edge.url + "/slow")
            result["status"], result["body"] = response.status_code, response.content

    worker = threading.Thread(target=fetch)
    worker.start()
    deadline = time.monotonic() + 5
    while origin.hits("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    port = edge.port
    assert edge.stop(sig) == 0
    worker.join(10)
    assert result == {"status": 200, "body": b"finished"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/slow", headers={"Host": DOMAIN})
