"""The edge admin API answers malformed bodies with 400, never a server error."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from cdncontract.signing import sign, signing_key
from cdncontract.limits import MAX_JSON_DEPTH
from tests.edge.conftest import TOKEN, Answer, Edge, Origin

DEEP = b"[" * 100_000 + b"]" * 100_000


def signed(edge: Edge, method: str, path: str, body: bytes) -> httpx.Response:
    """A correctly signed request with a raw body (the fixture's helper can only send what json.dumps makes)."""
    ts, nonce = int(time.time()), secrets.token_hex(16)
    headers = {"X-Edge-Timestamp": str(ts), "X-Edge-Nonce": nonce, "Content-Type": "application/json",
               "X-Edge-Signature": sign(signing_key(TOKEN), ts, nonce, method, path, body)}
    return httpx.request(method, edge.admin_url + path, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path"), [("PUT", "/config"), ("POST", "/invalidations")])
def test_it_refuses_json_nested_too_deep_with_400_and_keeps_serving(origin: Origin, edge: Edge, method: str,
                                                                     path: str) -> None:
    response = signed(edge, method, path, DEEP)
    assert response.status_code == 400
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["error"]
    origin.route("/still", Answer(body=b"serving"))
    assert edge.get("/still").content == b"serving"
    assert httpx.get(edge.admin_url + "/health").json()["version"] == 1
