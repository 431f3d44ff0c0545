"""HTTPS to origins: verified TLS with trustme certificates, mutual TLS, the secret header, connection attempts.

Every origin here is a real aiohttp server on loopback speaking real TLS; the edge is a
real process. Connections are counted at the origin by the client's port, so keep-alive
reuse is seen where it happens.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiohttp import web

from cdncontract import sealing
from cdncontract.signing import signing_key
from tests.edge.conftest import TOKEN, Answer, EdgeFactory, Origin, behavior, custom_origin, distribution, document


class TLSOrigin:
    """An HTTPS origin on 127.0.0.1 with its own SSLContext; it counts connections and client certificates."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.port = 0
        self.connections: set[tuple[str, int]] = set()
        self.requests: list[dict[str, Any]] = []
        self.sni: list[str | None] = []
        context.sni_callback = lambda _obj, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> TLSOrigin:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("TLS origin did not start")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        self._loop.run_until_complete(site.start())
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.connections.add(request.transport.get_extra_info("peername")[:2])
        peer_cert = request.transport.get_extra_info("peercert")
        self.requests.append({"path": request.path, "headers": dict(request.headers), "peer_cert": peer_cert})
        return web.Response(body=f"tls origin {request.path}".encode(), headers={"Cache-Control": "no-store"})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(cert: trustme.LeafCert, *, client_ca: trustme.CA | None = None,
                    minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    if client_ca is not None:
        client_ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


@pytest.fixture
def tls_origins() -> Iterator[list[TLSOrigin]]:
    started: list[TLSOrigin] = []
    yield started
    for server in started:
        server.stop()


def serve(tls_origins: list[TLSOrigin], context: ssl.SSLContext) -> TLSOrigin:
    server = TLSOrigin(context).start()
    tls_origins.append(server)
    return server


def https_origin(port: int, ca: trustme.CA | None, **overrides: Any) -> dict[str, Any]:
    value = custom_origin(80, domain_name="localhost", https_port=port, protocol_policy="https-only")
    if ca is not None:
        value["ca_bundle"] = ca.cert_pem.bytes().decode()
    value.update(overrides)
    return value


def sealed(client_key: str = "", secret_header_value: str = "") -> dict[str, str]:
    return sealing.seal({"client_key": client_key, "secret_header_value": secret_header_value},
                        sealing.edge_fernet(signing_key(TOKEN)), sealing.ORIGIN_SECRET_FIELDS)


def log_text(edge: Any) -> str:
    return "".join(edge.log)


def wait_for_log(edge: Any, needle: str) -> str:
    deadline = time.monotonic() + 5
    while needle not in log_text(edge) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log_text(edge)


# ---- Verified TLS ----


def test_a_good_origin_answers_over_verified_tls_and_its_connection_is_reused(
        ca: trustme.CA, tls_origins: list[TLSOrigin], make_edge: EdgeFactory) -> None:
    server = serve(tls_origins, _server_context(ca.issue_cert("localhost")))
    edge = make_edge(document(distribution(0, origins=[https_origin(server.port, ca)])))
    for i in range(5):
        response = edge.get(f"/good/{i}")
        assert response.status_code == 200, response.text
        assert response.content == f"tls origin /good/{i}".encode()
    assert len(server.requests) == 5
    assert len(server.connections) == 1  # keep-alive: five misses, one TLS connection
    assert server.sni == ["localhost"]  # one handshake, with the origin's domain name as SNI


@pytest.mark.parametrize("case, reason", [
    ("wrong-host", "Hostname mismatch"),
    ("expired", "certificate has expired"),
    ("unknown-ca", "unable to get local issuer certificate"),
    ("system-store", "unable to get local issuer certificate"),
])
def test_a_certificate_that_does_not_verify_is_a_502_naming_the_reason(
        case: str, reason: str, ca: trustme.CA, tls_origins: list[TLSOrigin], make_edge: EdgeFactory) -> None:
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    cert = {
        "wrong-host": lambda: ca.issue_cert("wrong.example"),
        "expired": lambda: ca.issue_cert("localhost", not_before=past, not_after=past + datetime.timedelta(days=1)),
        "unknown-ca": lambda: trustme.CA().issue_cert("localhost"),
        "system-store": lambda: ca.issue_cert("localhost"),
    }[case]()
    server = serve(tls_origins, _server_context(cert))
    origin = https_origin(server.port, None if case == "system-store" else ca, connection_attempts=3)
    edge = make_edge(document(distribution(0, origins=[origin])))
    response = edge.get("/refused")
    assert response.status_code == 502
    assert server.requests == []  # never a fallback to an unverified connection
    text = wait_for_log(edge, reason)
    assert "TLS certificate not accepted" in text and reason in text


def test_the_ssl_protocols_setting_bounds_the_tls_version(
        ca: trustme.CA, tls_origins: list[TLSOrigin], make_edge: EdgeFactory) -> None:
    only_13 = serve(tls_origins, _server_context(ca.issue_cert("localhost"), minimum=ssl.TLSVersion.TLSv1_3))
    only_12 = serve(tls_origins, _server_context(ca.issue_cert("localhost"), maximum=ssl.TLSVersion.TLSv1_2))
    origins = [https_origin(only_13.port, ca, id="a13", ssl_protocols=["TLSv1.2"]),
               https_origin(only_12.port, ca, id="b12", ssl_protocols=["TLSv1.2"])]
    edge = make_edge(document(distribution(0, origins=origins, cache_behaviors=[
        behavior("/13/*", target="a13"), behavior("*", target="b12")])))
    assert edge.get("/12/x").status_code == 200
    assert edge.get("/13/x").status_code == 502
    assert only_13.requests == []
    assert "TLS handshake failed" in wait_for_log(edge, "TLS handshake failed")


def test_match_viewer_uses_tls_when_the_viewer_did(
        ca: trustme.CA, origin: Origin, tls_origins: list[TLSOrigin], make_edge: EdgeFactory) -> None:
    server = serve(tls_origins, _server_context(ca.issue_cert("localhost")))
    match = https_origin(server.port, ca, http_port=origin.port, protocol_policy="match-viewer")
    edge = make_edge(document(distribution(0, origins=[match])), extra=["--trust-forwarded-proto"])
    origin.route("/mv", Answer(body=b"plain", headers={"Cache-Control": "no-store"}))
    assert edge.get("/mv").content == b"plain"
    assert edge.get("/mv", headers={"X-Forwarded-Proto": "https"}).content == b"tls origin /mv"
    assert len(server.requests) == 1 and origin.hits("/mv") == 1


# ---- Mutual TLS ----


def test_the_edge_presents_its_client_certificate_to_an_origin_that_requires_one(
        ca: trustme.CA, tls_origins: list[TLSOrigin], make_edge: EdgeFactory) -> None:
    server = serve(tls_origins, _server_context(ca.issue_cert("localhost"), client_ca=ca))
    client = ca.issue_cert("edge-client.example")
    chain = "".join(blob.bytes().decode() for blob in client.cert_chain_pems)
    key = client.private_key_pem.bytes().decode()
    with_cert = https_origin(server.port, ca, id="a-mtls", client_certificate=chain, secrets=sealed(client_key=key))
    without = https_origin(server.port, ca, id="b-plain")
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    edge = make_edge(document(distribution(0, origins=[with_cert, without], cache_behaviors=[
        behavior("/plain/*", target="b-plain"), behavior("*", target="a-mtls")])))
    response = edge.get("/m/1")
    assert response.status_code == 200, response.text
    assert response.content == b"tls origin /m/1"
    assert ("DNS", "edge-client.example") in server.requests[0]["peer_cert"]["subjectAltName"]
    assert edge.get("/plain/1").status_code == 502  # no client certificate: the origin refuses the edge
    assert len(server.requests) == 1
    # The key went through a 0600 file that is gone, and it is in no log and no file in clear.
    if os.path.isdir("/dev/shm"):
        assert {n for n in set(os.listdir("/dev/shm")) - shm_before if n.startswith("origin-client-")} == set()
    key_line = key.splitlines()[1]
    assert key_line not in log_text(edge)
    for path in edge.cache_dir.rglob("*"):
        if path.is_file():
            assert key_line.encode() not in path.read_bytes()
    assert stat.S_IMODE((edge.cache_dir / "edge-config.json").stat().st_mode) == 0o600


# ---- Secret origin header ----


def test_the_secret_header_reaches_the_origin_and_never_the_log(origin: Origin, make_edge: EdgeFactory) -> None:
    secret = "s3cr3t-only-the-cdn-knows"
    web_origin = custom_origin(origin.port, secret_header_name="X-Origin-Verify",
                               secrets=sealed(secret_header_value=secret))
    edge = make_edge(document(distribution(0, origins=[web_origin])))
    origin.route("/s", Answer(body=b"guarded"))
    response = edge.get("/s", headers={"X-Origin-Verify": "a-viewer-guess"})
    assert response.status_code == 200
    assert origin.seen("/s")[0].headers.getall("X-Origin-Verify") == [secret]
    assert secret not in log_text(edge)
    for path in edge.cache_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()


def test_a_secret_header_without_its_sealed_value_is_refused(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(origin.port)))
    bad = document(distribution(0, origins=[custom_origin(origin.port, secret_header_name="X-Origin-Verify")]),
                   version=2)
    response = edge.push(bad)
    assert response.status_code == 400
    assert "secret_header_name" in response.text
    origin.route("/still", Answer(body=b"old config"))
    assert edge.get("/still").content == b"old config"


# ---- Connection attempts and timeouts ----


def _refusing_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket whose accept queue is full and never drained: new SYNs go unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    for _ in range(8):  # Linux queues backlog + 1; bounded either way
        filler = socket.socket()
        filler.settimeout(0.5)
        try:
            filler.connect(("127.0.0.1", port))
        except (TimeoutError, OSError):
            filler.close()
            break
        fillers.append(filler)
    else:
        pytest.fail("the accept queue never filled")
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_a_refused_connection_is_tried_connection_attempts_times(make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(0, origins=[custom_origin(_refusing_port(), connection_attempts=3)])))
    assert edge.get("/r").status_code == 502
    text = wait_for_log(edge, "attempt 3 of 3")
    assert "attempt 3 of 3" in text and "attempt 4" not in text


def test_an_origin_that_never_answers_the_connection_is_a_504_after_every_attempt(
        silent_port: int, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(0, origins=[
        custom_origin(silent_port, connect_timeout=1, connection_attempts=2)])))
    assert edge.get("/t").status_code == 504
    text = wait_for_log(edge, "attempt 2 of 2")
    assert "connect timeout after 1s (attempt 2 of 2)" in text


def test_a_slow_answer_is_not_retried(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = make_edge(document(distribution(0, origins=[
        custom_origin(origin.port, read_timeout=1, connection_attempts=3)])))
    origin.route("/slow", Answer(delay=3))
    assert edge.get("/slow").status_code == 504
    assert origin.hits("/slow") == 1
