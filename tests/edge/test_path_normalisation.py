"""One normal form per path (cdncontract.paths.normalise_path), before behaviors, the cache
key, invalidations and the origin URL: no spelling of a path escapes an origin path prefix,
an S3 bucket or a path-based rule, and every spelling is one cache entry.

Requests are sent as raw bytes on a socket: an HTTP client would normalise them first.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.edge.conftest import DOMAIN, Answer, Edge, EdgeFactory, Origin, behavior, custom_origin, distribution, \
    document

# A second distribution on the same origin, to show one cannot reach another's prefix.
BOB_ID = "E1BOBBOBBOBBOB"
BOB_DOMAIN = "bob.cdn.localhost"


def raw(edge: Edge, *targets: bytes, host: bytes = DOMAIN.encode(), extra: bytes = b"") -> list[bytes]:
    """Send one GET per target on one connection, pipelined (the last one asks to close),
    and return each response head and body (bodies are short and Content-Length framed)."""
    payload = b""
    for i, target in enumerate(targets):
        close = b"Connection: close\r\n" if i == len(targets) - 1 else b""
        payload += b"GET %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n" % (target, host, extra, close)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    responses = []
    for _ in targets:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        responses.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
    assert data == b"", data
    return responses


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def x_cache(response: bytes) -> str:
    for line in response.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"x-cache:"):
            return line.split(b":", 1)[1].split()[0].decode()
    raise AssertionError(response)


def prefixed(port: int, **dist: Any) -> dict[str, Any]:
    """A distribution on origin path `/prefix`, with `/admin/*` served over https only."""
    return distribution(
        port,
        origins=[custom_origin(port, origin_path="/prefix")],
        cache_behaviors=[behavior("/admin/*", viewer_protocol_policy="https-only"), behavior("*")],
        **dist,
    )


@pytest.fixture
def prefix_edge(origin: Origin, make_edge: EdgeFactory) -> Edge:
    return make_edge(document(prefixed(origin.port)))


# ---- Path-based rules and the origin path prefix ----


@pytest.mark.parametrize("target", [
    b"/x/../admin/secret", b"/x/%2e%2e/admin/secret", b"/x/%2E%2E/admin/secret", b"/./admin/secret",
    b"//admin/secret", b"/%61dmin/secret", b"/admin/./secret", b"/x/.%2e/admin/secret",
])  # fmt: skip
def test_no_spelling_of_an_https_only_path_is_served_over_plain_http(
        origin: Origin, prefix_edge: Edge, target: bytes) -> None:
    origin.route("/prefix/admin/secret", Answer(body=b"top secret"))
    response, = raw(prefix_edge, target)
    assert status(response) == 403, response
    assert b"top secret" not in response
    assert origin.hits("/prefix/admin/secret") == 0


@pytest.mark.parametrize("target", [
    b"/x/..%2fadmin/secret", b"/x/..%2Fadmin/secret", b"/x/..%5cadmin/secret", b"/x\\..\\admin/secret",
    b"/%2e%2e/admin/secret", b"/..", b"/../prefix/admin/secret",
])  # fmt: skip
def test_an_encoded_separator_a_backslash_or_a_climb_above_the_root_is_a_400(
        origin: Origin, prefix_edge: Edge, target: bytes) -> None:
    origin.route("/prefix/admin/secret", Answer(body=b"top secret"))
    response, = raw(prefix_edge, target)
    assert status(response) == 400, response
    assert origin.requests == []


def test_a_viewer_cannot_climb_out_of_its_distributions_origin_path(origin: Origin, make_edge: EdgeFactory) -> None:
    alice = distribution(origin.port, origins=[custom_origin(origin.port, origin_path="/prefix")])
    bob = distribution(origin.port, id=BOB_ID, domain_name=BOB_DOMAIN,
                       origins=[custom_origin(origin.port, origin_path="/bob")])
    edge = make_edge(document(alice, bob))
    origin.route("/prefix/alice-private", Answer(body=b"alice's"))
    origin.route("/bob/public", Answer(body=b"bob's"))
    for target in (b"/../prefix/alice-private", b"/%2e%2e/prefix/alice-private", b"/a/../../prefix/alice-private",
                   b"/.%2E/prefix/alice-private"):
        response, = raw(edge, target, host=BOB_DOMAIN.encode())
        assert status(response) == 400, (target, response)
    assert origin.hits("/prefix/alice-private") == 0
    # Bob's own paths still work, dot segments resolved inside his prefix.
    response, = raw(edge, b"/x/../public", host=BOB_DOMAIN.encode())
    assert body(response) == b"bob's"
    assert [s.raw_path for s in origin.seen("/bob/public")] == ["/bob/public"]


def test_the_origin_receives_the_normal_form_byte_for_byte(origin: Origin, prefix_edge: Edge) -> None:
    origin.route("/prefix/café", Answer(body=b"coffee"))
    origin.route("/prefix/a b", Answer(body=b"space"))
    responses = raw(prefix_edge, b"/caf%c3%a9", b"/%63af%C3%a9", b"/x/../caf%C3%A9", b"/a%20b?q=%7e#frag")
    assert [body(r) for r in responses] == [b"coffee"] * 3 + [b"space"]
    # Three spellings of one path: one entry, one origin fetch, on the normal form.
    assert [s.raw_path for s in origin.requests] == ["/prefix/caf%C3%A9", "/prefix/a%20b"]
    assert [x_cache(r) for r in responses] == ["Miss", "Hit", "Hit", "Miss"]
    # Raw bytes outside ASCII are not a URL: the parser refuses them.
    refused, = raw(prefix_edge, b"/caf\xc3\xa9")
    assert status(refused) == 400


@pytest.mark.parametrize("target", [b"/%zz", b"/a%4", b"/a%", b"/%00x", b"/a%0d%0aX-Injected:%201", b"/%7f",
                                    b"/%C0%AE%C0%AE/secret", b"/%ff"])
def test_an_invalid_escape_or_an_encoded_control_byte_is_a_400_and_the_edge_keeps_serving(
        origin: Origin, prefix_edge: Edge, target: bytes) -> None:
    origin.route("/prefix/ok", Answer(body=b"fine"))
    refused, after = raw(prefix_edge, target, b"/ok")
    assert status(refused) == 400, refused
    assert body(after) == b"fine"
    assert [s.raw_path for s in origin.requests] == ["/prefix/ok"]


# ---- An S3 origin: the bucket is a prefix too ----


def test_a_viewer_cannot_leave_the_s3_bucket(origin: Origin, make_edge: EdgeFactory) -> None:
    bucket = custom_origin(origin.port, kind="s3", s3={
        "bucket": "assets", "region": "eu-west-1", "endpoint_url": f"http://127.0.0.1:{origin.port}",
        "addressing_style": "path", "signing_behavior": "never"})
    edge = make_edge(document(distribution(origin.port, origins=[bucket])))
    origin.route("/otherbucket/secret.txt", Answer(body=b"someone else's"))
    origin.route("/assets/logo.svg", Answer(body=b"<svg/>"))
    for target in (b"/%2e%2e/otherbucket/secret.txt", b"/../otherbucket/secret.txt", b"/x/../../otherbucket/secret.txt",
                   b"/..%2fotherbucket/secret.txt"):
        response, = raw(edge, target)
        assert status(response) == 400, (target, response)
    assert origin.hits("/otherbucket/secret.txt") == 0
    response, = raw(edge, b"/a/%2E%2E/logo.svg")
    assert body(response) == b"<svg/>"
    assert [s.raw_path for s in origin.requests] == ["/assets/logo.svg"]


# ---- One cache entry per path, and one invalidation removes it ----

SPELLINGS = (b"/x", b"/a/../x", b"/%78", b"/./x", b"/x#frag")


@pytest.mark.parametrize("invalidated", ["/x", "/%78", "/a/../x", "/./x", "/x#frag", "/*"])
def test_every_spelling_of_a_path_is_one_entry_that_one_invalidation_removes(
        origin: Origin, prefix_edge: Edge, invalidated: str) -> None:
    origin.route("/prefix/x", Answer(body=b"one", headers={"Cache-Control": "max-age=3600"}))
    # Plain requests take the hit fast path, the last one (Connection: close) the slow path.
    first = raw(prefix_edge, *SPELLINGS)
    assert [x_cache(r) for r in first] == ["Miss", "Hit", "Hit", "Hit", "Hit"]
    assert origin.hits("/prefix/x") == 1
    assert prefix_edge.invalidate(1, paths=[invalidated]).status_code == 200
    again = raw(prefix_edge, *reversed(SPELLINGS))
    assert [x_cache(r) for r in again] == ["Miss", "Hit", "Hit", "Hit", "Hit"]
    assert origin.hits("/prefix/x") == 2


def test_an_invalidation_path_without_a_normal_form_is_refused_by_the_edge(prefix_edge: Edge) -> None:
    for path in ("/../x", "/a%2fb", "/%zz"):
        refused = prefix_edge.invalidate(1, paths=[path])
        assert refused.status_code == 400, path
        assert "paths" in refused.text


# ---- Absolute-form request targets ----


def test_an_absolute_form_target_is_routed_by_its_own_host(origin: Origin, make_edge: EdgeFactory) -> None:
    """RFC 9112 3.2.2: the target's authority wins over the Host header."""
    alice = distribution(origin.port, origins=[custom_origin(origin.port, origin_path="/prefix")])
    bob = distribution(origin.port, id=BOB_ID, domain_name=BOB_DOMAIN,
                       origins=[custom_origin(origin.port, origin_path="/bob")])
    edge = make_edge(document(alice, bob))
    origin.route("/bob/page", Answer(body=b"bob's page"))
    origin.route("/prefix/page", Answer(body=b"alice's page"))
    target = b"http://%s/page" % BOB_DOMAIN.encode()
    responses = raw(edge, target, target, host=DOMAIN.encode())
    assert [body(r) for r in responses] == [b"bob's page"] * 2
    assert origin.hits("/prefix/page") == 0
    with_port = b"http://%s:%d/x/../page" % (DOMAIN.upper().encode(), edge.port)
    response, = raw(edge, with_port, host=BOB_DOMAIN.encode())
    assert body(response) == b"alice's page"
    unknown, = raw(edge, b"http://nobody.example/page", host=DOMAIN.encode())
    assert status(unknown) == 404
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nConnection: close\r\n\r\n" % target)  # HTTP/1.1 without Host
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
