"""Header names and values, and the headers an operator may not set on origin requests.

`RESERVED_ORIGIN_HEADERS` is one list for both halves: the control plane refuses these as
custom origin headers and the edge refuses a document that sets them. It follows
CloudFront's list of custom headers it cannot add to origin requests (hop-by-hop and
framing headers, Host, Cache-Control, the conditional and range headers, Via, X-Amz-*,
X-Edge-*, X-Real-IP) and adds what this edge owns itself: Authorization and the X-Amz-*
signing headers (S3 request signing), Accept-Encoding (compression), the X-Forwarded-*
headers and X-Request-Id, X-Cache and X-Edge-Location.

What reaches the origin from the viewer is a rule of both halves too (docs/caching.md,
"What reaches the origin"): `NEVER_FORWARDED` headers never do, whatever the policies say;
`KEY_ONLY` headers do only when the cache policy puts them in the cache key (or the request
is not answered through the cache), because a response that depends on them must never be
stored under a key that ignores them. An origin request policy's allowlist may name neither
(`check_origin_request_header`: CloudFront answers 400 to a policy naming Authorization);
`all` and `denylist` policies skip them silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import ContractError

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
MAX_HEADER_VALUE = 1783  # CloudFront's limit on a custom header's value
MAX_CUSTOM_HEADERS = 10

# Hop-by-hop headers (RFC 9110 7.6.1, plus the legacy names proxies still send): never
# forwarded by the edge, in either direction.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
RESERVED_ORIGIN_HEADERS = HOP_BY_HOP | frozenset({
    "host", "content-length", "cache-control", "accept-encoding", "authorization", "range",
    "if-match", "if-none-match", "if-modified-since", "if-range", "if-unmodified-since", "expect",
    "max-forwards", "via", "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-request-id",
    "x-cache", "x-edge-location",
})
RESERVED_ORIGIN_PREFIXES = ("x-edge-", "x-amz-")

# Viewer headers that never reach the origin: hop-by-hop ones, those the edge sets itself
# on origin requests (Host, framing, Via, X-Forwarded-For/-Proto, the normalised
# Accept-Encoding, conditionals and Range, whose origin values are the cache's own), the
# ones CloudFront removes (Expect, X-Real-IP, X-Edge-*, X-HTTP-Method-Override) and the
# other method-override spellings: a cached GET must never turn into a DELETE at the
# origin. Cookie has its own policy block.
NEVER_FORWARDED = HOP_BY_HOP | frozenset({
    "host", "content-length", "expect", "via", "x-forwarded-for", "x-forwarded-proto", "x-real-ip",
    "accept-encoding", "cookie", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
    "if-range", "range", "request-range", "x-http-method-override", "x-http-method", "x-method-override",
})
NEVER_FORWARDED_PREFIXES = ("x-edge-",)

# Viewer headers forwarded only when they are in the cache key: Authorization (CloudFront's
# rule for cached methods), and the host, scheme and URL overrides that origin frameworks
# honour and reflect into links and redirects (the unkeyed inputs of web cache poisoning).
KEY_ONLY = frozenset({
    "authorization", "forwarded", "x-forwarded-host", "x-forwarded-server", "x-forwarded-port",
    "x-forwarded-scheme", "x-forwarded-prefix", "x-forwarded-ssl", "x-host", "x-original-host",
    "x-original-url", "x-rewrite-url",
})

# Request headers whose origin value the edge derives from the viewer's connection, not
# from the viewer's own field: a response that varies on one cannot be matched by the
# request's headers, so it is never stored.
CONNECTION_DERIVED = frozenset({"x-forwarded-for", "x-forwarded-proto"})


def never_forwarded(name: str) -> bool:
    """Whether a (lowercase) viewer header never reaches the origin."""
    return name in NEVER_FORWARDED or name.startswith(NEVER_FORWARDED_PREFIXES)


def check_origin_request_header(name: str) -> None:
    """A (lowercase) header an origin request policy's allowlist may name; a denylist may
    name anything (these are never forwarded through it anyway)."""
    if name in KEY_ONLY:
        raise ContractError(f"{name!r} cannot be forwarded by an origin request policy: it reaches the origin "
                            "only when the cache policy puts it in the cache key")
    if never_forwarded(name):
        raise ContractError(f"{name!r} is never forwarded to the origin (hop-by-hop, or set by the edge itself)")


def is_reserved(name: str) -> bool:
    """Whether `name` (any case) is a header the edge owns on origin requests."""
    low = name.lower()
    return low in RESERVED_ORIGIN_HEADERS or low.startswith(RESERVED_ORIGIN_PREFIXES)


def check_header_name(name: object) -> None:
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        raise ContractError(f"{name!r} is not a valid header name")


def check_custom_headers(headers: Sequence[tuple[object, object]]) -> None:
    """An origin's custom headers as (name, value) pairs; `where` names the pair at fault."""
    seen: set[str] = set()
    for index, (name, value) in enumerate(headers):
        try:
            check_header_name(name)
        except ContractError as exc:
            raise ContractError(exc.problem, f"[{index}].name") from None
        assert isinstance(name, str)
        if not isinstance(value, str) or any(c in value for c in "\r\n\0") or len(value) > MAX_HEADER_VALUE:
            raise ContractError(f"the value of header {name!r} must be a string of at most {MAX_HEADER_VALUE} "
                                "characters without line breaks", f"[{index}].value")
        if is_reserved(name):
            raise ContractError(f"{name!r} is a hop-by-hop or reserved header and cannot be set on an origin",
                                f"[{index}].name")
        if name.lower() in seen:
            raise ContractError(f"header {name!r} is listed twice", f"[{index}].name")
        seen.add(name.lower())
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise ContractError(f"at most {MAX_CUSTOM_HEADERS} custom headers per origin")
