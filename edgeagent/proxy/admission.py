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

Access checks (WAF rules, signed URLs and cookies, geo restriction, TLS-only behaviors)
belong in `_access_checks`, after the distribution and behavior are known and before the
method verdict. A check that reads only the arguments of `admit_route` is memoised with the
verdict for free. A check that needs more of the request (cookies, the client's address,
the time) takes it as an argument of `admit` and runs after `admit_route`, and the fast path
must either key its memo on that input or run the check again for every request.

Signed URLs and cookies are the second kind (signedurls.py): their verdict depends on the
query, the cookies, the clock and the client's address. `admit_route` gives a behavior that
trusts key groups a verdict with `signed=True`, which the fast path never serves from its
memo as it is: for every request it calls `check_signed` (the same function `admit` calls
for the slow path), and serves the hit only when that admits it. The signing parameters are
taken out of `Admission.query` here, so the cache key and the origin request never see them.

`viewer_scheme()` is the one place the viewer's scheme is decided: the listener's scheme
(`HttpConnection.scheme`), or `X-Forwarded-Proto: https` when the operator trusts it.
"""

from __future__ import annotations

from cdncontract.paths import PathError, normalise_path, split_target

from .. import signedurls
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
                 "memoisable", "signed", "key_id", "reason")  # fmt: skip

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
        signed: bool = False,
        key_id: str | None = None,
        reason: str = "",
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
        # ADMIT before the signature check of a behavior that trusts key groups: only
        # `check_signed` may let such a request in (see the module docstring).
        self.signed = signed
        # The key that signed an admitted request (access log, stats); the refused one's, if any.
        self.key_id = key_id
        # Why a signed request was refused: for the edge log, never for the viewer.
        self.reason = reason


def viewer_scheme(listener_scheme: str, headers: dict[str, str], trust_forwarded_proto: bool) -> str:
    """The scheme the viewer used: the listener's, unless a trusted front says https."""
    if trust_forwarded_proto and headers.get("x-forwarded-proto", "").lower() == "https":
        return "https"
    return listener_scheme


def admit(
    config: EdgeConfig | None,
    scheme: str,
    method: str,
    host: str | None,
    target: str,
    cookie: str | None = None,
    client_ip: str = "",
    now: float = 0.0,
) -> Admission:
    """Decide, before the cache is asked, who serves this request and whether it may be served."""
    verdict = admit_route(config, scheme, method, host, target)
    if verdict.signed:
        return check_signed(verdict, host, target, cookie, client_ip, now)
    return verdict


def check_signed(route: Admission, host: str | None, target: str, cookie: str | None, client_ip: str,
                 now: float) -> Admission:
    """The signature verdict for one request on a behavior that trusts key groups.

    `route` is `admit_route`'s verdict (ADMIT, `signed`); the answer is never memoisable.
    A refusal is a 403 whose text says nothing of why; `reason` says it, and `Proxy.handle`,
    which answers every refusal (the fast path hands refused requests to it), logs it once.
    """
    behavior = route.behavior
    assert behavior is not None and behavior.signing is not None and route.dist is not None
    raw_path, query = split_target(target)
    params, rest = signedurls.split_query(query)
    if not params:
        params = signedurls.cookie_parameters(cookie)
    url = f"{route.scheme}://{host or route.dist.domain_name}{raw_path}" + (f"?{rest}" if rest else "")
    verdict = signedurls.check(behavior.signing, url, params, client_ip, now)
    if verdict.ok:
        return Admission(ADMIT, route.dist, behavior, route.path, route.scheme, route.query, cached=route.cached,
                         memoisable=False, key_id=verdict.key_id)
    return Admission(
        FORBIDDEN, route.dist, behavior, route.path, route.scheme,
        status=403, text="403 Forbidden: access denied.", memoisable=False,
        key_id=verdict.key_id or None, reason=verdict.reason,
    )  # fmt: skip


def admit_route(config: EdgeConfig | None, scheme: str, method: str, host: str | None, target: str) -> Admission:
    """Everything of `admit` that the request line alone decides (what the fast path memoises)."""
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
    signed = behavior.signing is not None
    if signed:
        # The signing parameters are the edge's: never in the cache key, never sent to the origin.
        query = signedurls.split_query(query)[1]
    return Admission(ADMIT, dist, behavior, path, scheme, query, cached=method in behavior.cached_methods,
                     signed=signed)


def _access_checks(
    dist: Distribution, behavior: Behavior, scheme: str, method: str, path: str, target: str
) -> Admission | None:
    """The access checks of the distribution and behavior; None lets the request in.

    None that read only the request line exist yet. WAF rules, geo restriction and TLS-only
    behaviors go here; signed URLs read more of the request and run in `check_signed`
    (see the module docstring).
    """
    return None
