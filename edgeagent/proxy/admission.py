"""Admission: the one decision taken about a request before the cache is asked.

`admit()` is a pure function of the running config and of what the request line and the
viewer connection say (scheme, method, Host, target). It decides which distribution and
behavior take the request and whether it is let in: unknown host (404), a path without
a normal form (400: every later rule reads the normalised path, never the raw one), the
viewer protocol policy (301 to https, or 403 for https-only), the behavior's allowed
methods (403 with `Allow`), then whether the method is cached.

Both paths use it, so a rule written here cannot miss cached hits:
- the hit fast path (`hit.py`) calls it once per entry of its routing memo, keyed by
  everything `admit` reads (`Route.memo_key`), and serves a hit only when the memoised
  verdict is ADMIT;
- the slow path (`Proxy.handle`) calls it for every request it takes and answers a
  refusal from the verdict (`Admission.status`, `text`, `location`, `allow`).

Access checks to come (WAF rules, signed URLs and cookies, geo restriction, TLS-only
behaviors) belong in `_access_checks`, after the distribution and behavior are known and
before the method verdict. A check that reads only the arguments of `admit` is memoised
with the verdict for free. A check that needs more of the request (cookies, the client's
address) must take it as a new argument of `admit`, and that input must join the memo key
in `hit.py` (or the check must return a verdict with `memoisable=False`, which the fast path
never serves from the memo): then no hit can skip it.

`viewer_scheme()` is the one place the viewer's scheme is decided: the listener's scheme
(`HttpConnection.scheme`), or `X-Forwarded-Proto: https` when the operator trusts it.
"""

from __future__ import annotations

from cdncontract.paths import PathError, normalise_path, split_target

from ..config import Behavior, Distribution, EdgeConfig

# Verdict kinds.
ADMIT = 0  # serve it: from the cache when `cached`, else passed to the origin
NOT_FOUND = 1  # no config, or no distribution for this Host: 404
REDIRECT = 2  # plain http under redirect-to-https: 301 to `location`
FORBIDDEN = 3  # refused with 403 (viewer protocol policy, method, access checks)
BAD_REQUEST = 4  # a path without a normal form (cdncontract.paths.normalise_path): 400


class Admission:
    """The verdict of `admit` for one request (shared by every request of a memo entry)."""

    __slots__ = ("kind", "dist", "behavior", "path", "scheme", "query", "cached", "status", "text", "location", "allow",
                 "memoisable")  # fmt: skip

    def __init__(
        self,
        kind: int,
        dist: Distribution | None = None,
        behavior: Behavior | None = None,
        path: str = "",
        scheme: str = "http",
        query: str = "",
        cached: bool = False,
        status: int = 0,
        text: str = "",
        location: str | None = None,
        allow: str | None = None,
        memoisable: bool = True,
    ) -> None:
        self.kind = kind
        self.dist = dist
        self.behavior = behavior
        # The request path in its normal form (cdncontract.paths.normalise_path), after the
        # default root object is applied: what behaviors match, the cache keys on, invalidations
        # match and the origin is asked for. For BAD_REQUEST, the path as received.
        self.path = path
        self.scheme = scheme
        # The query as received, without a fragment.
        self.query = query
        self.cached = cached
        # For a refusal: the status and text the edge answers with, and its extra fields.
        self.status = status
        self.text = text
        self.location = location
        self.allow = allow
        self.memoisable = memoisable


def viewer_scheme(listener_scheme: str, headers: dict[str, str], trust_forwarded_proto: bool) -> str:
    """The scheme the viewer used: the listener's, unless a trusted front says https."""
    if trust_forwarded_proto and headers.get("x-forwarded-proto", "").lower() == "https":
        return "https"
    return listener_scheme


def admit(config: EdgeConfig | None, scheme: str, method: str, host: str | None, target: str) -> Admission:
    """Decide, before the cache is asked, who serves this request and whether it may be served."""
    if config is None:
        text = "404 Not Found: this edge has no configuration yet."
        return Admission(NOT_FOUND, scheme=scheme, status=404, text=text)
    dist = config.find_distribution(host or "")
    if dist is None:
        return Admission(NOT_FOUND, scheme=scheme, status=404, text="404 Not Found: no distribution serves this host.")
    raw_path, query = split_target(target)
    try:
        path = normalise_path(raw_path.encode("latin-1"))
    except PathError as exc:
        return Admission(
            BAD_REQUEST, dist, dist.behaviors[-1], raw_path, scheme, status=400, text=f"400 Bad Request: {exc.problem}."
        )
    if path == "/" and dist.root_path:
        path = dist.root_path
    behavior = dist.match_behavior(path)
    if scheme == "http" and behavior.viewer_protocol_policy != "allow-all":
        if behavior.viewer_protocol_policy == "https-only":
            return Admission(
                FORBIDDEN, dist, behavior, path, scheme,
                status=403, text="403 Forbidden: this resource is only served over HTTPS.",
            )  # fmt: skip
        name = host or dist.domain_name
        location = f"https://{name.split(':')[0] if not name.startswith('[') else name}{target}"
        return Admission(
            REDIRECT, dist, behavior, path, scheme, status=301, text="301 Moved Permanently.", location=location
        )
    refused = _access_checks(dist, behavior, scheme, method, path, target)
    if refused is not None:
        return refused
    if method not in behavior.allowed_methods:
        return Admission(
            FORBIDDEN, dist, behavior, path, scheme,
            status=403, text=f"403 Forbidden: method {method} is not allowed here.", allow=behavior.allow_header,
        )  # fmt: skip
    return Admission(ADMIT, dist, behavior, path, scheme, query, cached=method in behavior.cached_methods)


def _access_checks(
    dist: Distribution, behavior: Behavior, scheme: str, method: str, path: str, target: str
) -> Admission | None:
    """The access checks of the distribution and behavior; None lets the request in.

    None exist yet. WAF rules, signed URLs, geo restriction and TLS-only behaviors go here
    (see the module docstring for what a check that reads more of the request must do).
    """
    return None
