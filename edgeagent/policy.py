"""Pure caching decisions: cache key, origin request, TTL, freshness, conditionals, ranges.

Nothing here does I/O or reads the clock (`now` is always a parameter), so every rule is
testable without sockets. Functions called on every request keep per-call work to a few
dict lookups: parsed header values that repeat across requests (Accept-Encoding,
Cache-Control, HTTP dates, content types) are memoised in small bounded dicts.

Header mappings passed in here have lowercase names; a field that appeared several times is
joined with ", " (Cookie with "; "), as RFC 9110 allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import http_sf

from cdncontract import cache_key as key_format
from cdncontract import http as http_rules
from cdncontract import ttl as ttl_rules
from cdncontract.headers import CONNECTION_DERIVED, HOP_BY_HOP, KEY_ONLY, never_forwarded
from edgeagent.config import Behavior, CachePolicy, Distribution, ErrorResponse, NameSelector, Origin, compile_glob
from edgeagent.signedurls import without_signing_cookies

_MEMO_LIMIT = 1024


def _remember(memo: dict[Any, Any], key: object, value: object) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


# ---- Cache key ----

def parse_query(query: str) -> list[tuple[str, str]]:
    """Query string to (name, raw piece) pairs; pieces stay percent-encoded as received."""
    out = []
    for piece in query.split("&"):
        if piece:
            eq = piece.find("=")
            out.append((piece if eq == -1 else piece[:eq], piece))
    return out


def parse_cookies(cookie_header: str) -> list[tuple[str, str]]:
    """Cookie header to (name, "name=value") pairs in the viewer's order."""
    out = []
    for piece in cookie_header.split(";"):
        piece = piece.strip()
        if piece:
            eq = piece.find("=")
            out.append((piece if eq == -1 else piece[:eq], piece))
    return out


def _by_name(pair: tuple[str, str]) -> str:
    return pair[0]


def key_query(policy: CachePolicy, query: str) -> str:
    """Query part of the cache key: selected parameters sorted by name (stable, so
    duplicates keep their order)."""
    sel = policy.query_strings
    if sel.behavior == "none" or not query:
        return ""
    pairs = [p for p in parse_query(query) if sel.selects(p[0])]
    pairs.sort(key=_by_name)
    return "&".join(p[1] for p in pairs)


def key_cookies(policy: CachePolicy, cookie_header: str | None) -> str:
    sel = policy.cookies
    if sel.behavior == "none" or not cookie_header:
        return ""
    pairs = [p for p in parse_cookies(cookie_header) if sel.selects(p[0])]
    pairs.sort(key=_by_name)
    return "; ".join(p[1] for p in pairs)


def cache_key(dist: Distribution, behavior: Behavior, method: str, path: str, query: str,
              headers: Mapping[str, str]) -> str:
    """The primary cache key, in the format of cdncontract/cache_key.py.

    Distribution, method class, path, then (only when the policy selects them) the query
    string, headers, cookies and normalised Accept-Encoding.
    """
    policy = behavior.cache_policy
    prefix = dist.key_prefixes.get(method)
    key = (prefix if prefix is not None else key_format.prefix(dist.id, method)) + path
    if policy.query_in_key and query:
        selected = key_query(policy, query)
        if selected:
            key += key_format.QUERY + selected
    if policy.headers_in_key:
        parts = []
        for name in policy.headers.names:
            value = headers.get(name)
            parts.append(name + key_format.HEADER_ABSENT if value is None else f"{name}:{value}")
        key += key_format.HEADERS + key_format.HEADER_JOIN.join(parts)
    if policy.cookies_in_key:
        cookie = headers.get("cookie")
        if cookie and behavior.signing is not None:
            cookie = without_signing_cookies(cookie)  # the signing cookies are the edge's alone
        if cookie:
            selected = key_cookies(policy, cookie)
            if selected:
                key += key_format.COOKIES + selected
    if policy.encoding_in_key:
        accept = headers.get("accept-encoding")
        if accept:
            enc = _AE_MEMOS[policy.encoding_index].get(accept)
            if enc is None:
                enc = key_encoding(accept, policy)
            if enc:
                key += key_format.ENCODING + enc
    return key


# ---- Accept-Encoding and compression ----

# One memo per (brotli allowed, gzip allowed) combination, indexed br * 2 + gzip.
_AE_MEMOS: tuple[dict[str, str], ...] = ({}, {}, {}, {})


def _accepted_codings(accept_encoding: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in accept_encoding.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            k, _, v = param.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        out[name.strip().lower()] = q
    return out


def key_encoding(accept_encoding: str | None, policy: CachePolicy) -> str:
    """Normalised Accept-Encoding for the cache key and the origin: "br", "gzip" or "".

    Like CloudFront, only the encodings the cache policy enables survive; brotli is
    preferred when the viewer accepts both.
    """
    if not accept_encoding or not (policy.enable_gzip or policy.enable_brotli):
        return ""
    return select_encoding(accept_encoding, policy.enable_brotli, policy.enable_gzip)


def select_encoding(accept_encoding: str, allow_br: bool, allow_gzip: bool) -> str:
    """The preferred of br / gzip the viewer accepts (q > 0), or "" for identity."""
    memo = _AE_MEMOS[allow_br * 2 + allow_gzip]
    found = memo.get(accept_encoding)
    if found is not None:
        return found
    codings = _accepted_codings(accept_encoding)
    star = codings.get("*", 0.0)
    result = ""
    if allow_br and codings.get("br", star) > 0:
        result = "br"
    elif allow_gzip and codings.get("gzip", codings.get("x-gzip", star)) > 0:
        result = "gzip"
    _remember(memo, accept_encoding, result)
    return result


def negotiate_encoding(accept_encoding: str | None, behavior: Behavior) -> str | None:
    """Encoding the edge may compress a response to for this viewer, or None."""
    if not behavior.compress:
        return None
    return key_encoding(accept_encoding, behavior.cache_policy) or None


COMPRESS_MIN = 1000
COMPRESS_MAX = 10_000_000

# CloudFront's list of compressed types, plus the +json / +xml structured suffixes.
_COMPRESSIBLE = frozenset(
    {
        "application/dash+xml", "application/eot", "application/font", "application/font-sfnt",
        "application/javascript", "application/json", "application/opentype",
        "application/otf", "application/pkcs7-mime", "application/protobuf",
        "application/rss+xml", "application/truetype", "application/ttf",
        "application/vnd.apple.mpegurl", "application/vnd.mapbox-vector-tile",
        "application/vnd.ms-fontobject", "application/wasm", "application/xhtml+xml",
        "application/xml", "application/x-font-opentype", "application/x-font-truetype",
        "application/x-font-ttf", "application/x-httpd-cgi", "application/x-javascript",
        "application/x-mpegurl", "application/x-opentype", "application/x-otf",
        "application/x-perl", "application/x-ttf", "application/ecmascript",
        "font/eot", "font/opentype", "font/otf", "font/ttf", "image/svg+xml",
        "image/vnd.microsoft.icon", "image/x-icon", "multipart/bag", "multipart/mixed",
    }
)
_CT_MEMO: dict[str, bool] = {}


def is_compressible_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    found = _CT_MEMO.get(content_type)
    if found is not None:
        return found
    media = content_type.partition(";")[0].strip().lower()
    result = (
        media.startswith("text/")
        or media in _COMPRESSIBLE
        or media.endswith("+json")
        or media.endswith("+xml")
    )
    _remember(_CT_MEMO, content_type, result)
    return result


def is_compressible(content_type: str | None, size: int | None) -> bool:
    """Whether the edge compresses a response of this type and size.

    `size` None (no Content-Length: the origin streams) counts as in range, the type alone
    decides; the server may still give up when the stream passes COMPRESS_MAX.
    """
    if size is not None and not COMPRESS_MIN <= size <= COMPRESS_MAX:
        return False
    return is_compressible_type(content_type)


# ---- What reaches the origin ----

# Describe a request body; forwarded whenever the method carries one.
_BODY_HEADERS = ("content-type", "content-encoding", "content-language", "content-md5",
                 "content-disposition")
_BODY_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def through_cache(behavior: Behavior, method: str) -> bool:
    """Whether the answer to an origin request of `method` may be stored and reused."""
    return method in behavior.cached_methods and not behavior.cache_policy.caching_disabled


def _forwardable(name: str, key: NameSelector, cached: bool) -> bool:
    """cdncontract/headers.py's rule: never-forwarded headers never reach the origin, and
    key-only ones only when in the cache key, or when nothing of the answer is stored."""
    if never_forwarded(name):
        return False
    return not (cached and name in KEY_ONLY and not key.selects(name))


def connection_listed(headers: Mapping[str, str]) -> frozenset[str]:
    """Header names a viewer's Connection field marks as hop-by-hop."""
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(n.strip().lower() for n in value.split(",") if n.strip())


def origin_query(behavior: Behavior, query: str) -> str:
    """Query string sent to the origin: the cache key's parameters plus the origin request
    policy's, in the viewer's order."""
    cp = behavior.cache_policy.query_strings
    orp = behavior.origin_request_policy
    op = orp.query_strings if orp is not None else None
    if not query or (cp.behavior == "none" and (op is None or op.behavior == "none")):
        return ""
    if cp.behavior == "all" or (op is not None and op.behavior == "all"):
        return query
    return "&".join(
        piece for name, piece in parse_query(query)
        if cp.selects(name) or (op is not None and op.selects(name))
    )


def origin_cookies(behavior: Behavior, cookie_header: str | None) -> str:
    if cookie_header and behavior.signing is not None:
        cookie_header = without_signing_cookies(cookie_header)  # the signing cookies never reach the origin
    if not cookie_header:
        return ""
    cp = behavior.cache_policy.cookies
    orp = behavior.origin_request_policy
    op = orp.cookies if orp is not None else None
    if cp.behavior == "none" and (op is None or op.behavior == "none"):
        return ""
    return "; ".join(
        piece for name, piece in parse_cookies(cookie_header)
        if cp.selects(name) or (op is not None and op.selects(name))
    )


def origin_headers(behavior: Behavior, method: str, headers: Mapping[str, str],
                   origin: Origin | None = None) -> list[tuple[str, str]]:
    """Viewer headers forwarded to the origin (lowercase names).

    The cache key's headers, what the origin request policy adds, the selected cookies,
    the normalised Accept-Encoding when the policy has one, and the body description for
    methods with a body; never hop-by-hop headers (including those Connection lists) nor
    the ones the edge sets itself, and key-only headers (Authorization, X-Forwarded-Host,
    ...) only under the conditions of cdncontract/headers.py. Authorization of a method
    the behavior does not cache always goes (CloudFront's rule). The origin's custom
    headers replace viewer headers of the same name.
    """
    cp = behavior.cache_policy
    key = cp.headers
    cached = through_cache(behavior, method)
    orp = behavior.origin_request_policy
    op = orp.headers if orp is not None else None
    listed = connection_listed(headers)
    custom = origin.custom_header_names if origin is not None else frozenset()
    out: list[tuple[str, str]] = []
    if op is not None and op.behavior in ("all", "denylist"):
        for name, value in headers.items():
            if name in listed or name in custom or not _forwardable(name, key, cached):
                continue
            if op.selects(name) or key.selects(name):
                out.append((name, value))
    else:
        for name in behavior.origin_header_names:
            if name in listed or name in custom or not _forwardable(name, key, cached):
                continue
            selected = headers.get(name)
            if selected is not None:
                out.append((name, selected))
    present = {n for n, _ in out}
    if method not in behavior.cached_methods and "authorization" not in present and "authorization" not in custom:
        authorization = headers.get("authorization")
        if authorization is not None:
            out.append(("authorization", authorization))
    if method in _BODY_METHODS:
        for name in _BODY_HEADERS:
            body_value = headers.get(name)
            if body_value is not None and name not in present and name not in custom:
                out.append((name, body_value))
    cookie = origin_cookies(behavior, headers.get("cookie"))
    if cookie and "cookie" not in custom:
        out.append(("cookie", cookie))
    enc = key_encoding(headers.get("accept-encoding"), cp)
    if enc and "accept-encoding" not in custom:
        out.append(("accept-encoding", enc))
    if origin is not None:
        out.extend((n.lower(), v) for n, v in origin.custom_headers)
    return out


def forwarded_authorization(behavior: Behavior, headers: Mapping[str, str]) -> bool:
    """Whether a fill's origin request (a cached method) carried the viewer's Authorization,
    which it does only from the cache key; RFC 9111 3.5 then restricts storing the answer
    (`decide(authorized=True)`)."""
    return "authorization" in headers and behavior.cache_policy.headers.selects("authorization")


def strip_hop_by_hop(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Response headers without hop-by-hop fields (and those Connection names)."""
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(n.strip().lower() for n in value.split(","))
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in listed]


# ---- Cache-Control and the storage decision ----

_CC_MEMO: dict[str, dict[str, str]] = {}


def parse_cache_control(value: str | None) -> dict[str, str]:
    """Directives (lowercase) to their argument ("" when none); quoted strings unquoted.

    The result is shared between callers (memoised): treat it as read-only.
    """
    if not value:
        return {}
    found = _CC_MEMO.get(value)
    if found is not None:
        return found
    out: dict[str, str] = {}
    for item in _split_directives(value):
        name, _, arg = item.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
            arg = arg[1:-1]
        out.setdefault(name, arg)
    _remember(_CC_MEMO, value, out)
    return out


def _split_directives(value: str) -> list[str]:
    if '"' not in value:
        return value.split(",")
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def delta_seconds(digits: str) -> int | None:
    """1*DIGIT as an int, None when it is not one. Values past what a TTL can be are
    "very long" (MAX_TTL, RFC 9111 1.2.2), never an error: 2147483648 and beyond included."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > 10:
        return ttl_rules.MAX_TTL
    return min(int(digits), ttl_rules.MAX_TTL)


def _seconds(arg: str | None) -> int | None:
    """A delta-seconds argument; invalid values count as absent, negative as 0."""
    if arg is None:
        return None
    arg = arg.strip()
    if arg.startswith("-") and delta_seconds(arg[1:]) is not None:
        return 0
    return delta_seconds(arg)


_DATE_MEMO: dict[str, float | None] = {}


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (cdncontract.http's grammar) as a Unix time, or None."""
    if not value:
        return None
    if value in _DATE_MEMO:
        return _DATE_MEMO[value]
    result = http_rules.parse_http_date(value)
    _remember(_DATE_MEMO, value, result)
    return result


# ---- Age (RFC 9111 4.2.3 and 5.1) ----


def age_value(value: str | None) -> int | None:
    """The origin's Age: 0 when absent, None when invalid (the response is then stale).

    Several values (a list, or several lines joined with ", ") count by their first member
    (RFC 9111 5.1); a first member that is not a non-negative integer makes the field
    invalid. **Over RFC**: 5.1 says to ignore an invalid Age; the edge takes the response
    as stale instead, the choice that can never serve an old answer as fresh.
    """
    if value is None:
        return 0
    return delta_seconds(value.split(",", 1)[0].strip(" \t"))


def initial_age(headers: Mapping[str, str], requested_at: float, received_at: float) -> int | None:
    """The corrected initial age of a response (RFC 9111 4.2.3) in whole seconds, or None
    when its Age is invalid.

    The larger of the apparent age (`received_at` minus the origin's Date, never negative)
    and the origin's Age plus the response delay (`received_at` minus `requested_at`).
    """
    upstream = age_value(headers.get("age"))
    if upstream is None:
        return None
    delay = received_at - requested_at if received_at > requested_at else 0.0
    corrected = upstream + delay
    date = parse_http_date(headers.get("date"))
    if date is not None and received_at - date > corrected:
        corrected = received_at - date
    return int(corrected)


# ---- Targeted cache control (RFC 9213) ----

_TARGETED_MEMO: dict[str, dict[str, str] | None] = {}


def parse_targeted(value: str) -> dict[str, str] | None:
    """A targeted field (a Structured Fields Dictionary, RFC 8941) as directives to their
    argument, the shape of parse_cache_control; None when it does not parse (the field is
    then ignored, RFC 9213 2.1). Read-only, memoised."""
    if value in _TARGETED_MEMO:
        return _TARGETED_MEMO[value]
    out: dict[str, str] | None = {}
    try:
        parsed: Any = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        out = None
    else:
        assert out is not None
        for name, member in parsed.items():
            item = member[0]
            if item is True:
                out[name] = ""
            elif isinstance(item, (int, str)) and not isinstance(item, bool):
                out[name] = str(item)
            else:
                # A directive whose value has no meaning (false, a list, a decimal):
                # present, without a usable argument.
                out[name] = "?"
    _remember(_TARGETED_MEMO, value, out)
    return out


def targeted_names(policy: CachePolicy) -> tuple[str, ...]:
    """The targeted fields the edge obeys, most specific first: the policy's own, then
    CDN-Cache-Control."""
    if policy.cache_control_field:
        return (policy.cache_control_field, ttl_rules.CDN_CACHE_CONTROL)
    return _CDN_ONLY


_CDN_ONLY = (ttl_rules.CDN_CACHE_CONTROL,)


def targeted_directives(headers: Mapping[str, str], policy: CachePolicy) -> dict[str, str] | None:
    """The directives of the first targeted field present and valid, or None (then
    Cache-Control and Expires decide)."""
    for name in targeted_names(policy):
        value = headers.get(name)
        if value is not None:
            found = parse_targeted(value)
            if found is not None:
                return found
    return None


# ---- The storage decision ----

# Cached with the policy's TTLs, like CloudFront.
CACHEABLE_STATUSES = frozenset({200, 203, 300, 301, 410})
# Errors CloudFront caches for the error caching minimum TTL even without a custom error
# response; other codes are cached only when the distribution configures one for them.
DEFAULT_CACHED_ERRORS = frozenset({404, 414, 500, 501, 502, 503, 504})
# Heuristically cacheable statuses (RFC 9110 15.1): the only ones heuristic freshness
# applies to.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_DIVISOR = 10  # 10 % of the time since Last-Modified
DEFAULT_ERROR_TTL = 10
CACHEABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether and how long to keep a response; `reason` names the rule (for metrics).

    `ttl` is the freshness lifetime, `initial_age` the corrected initial age the response
    arrived with: it is fresh while its age is below `ttl`. `must_revalidate`: never served
    stale (no stale-* window, no stand-in for an unreachable origin).
    """

    cacheable: bool
    ttl: int = 0
    stale_while_revalidate: int = 0
    stale_if_error: int = 0
    must_revalidate: bool = False
    reason: str = ""
    initial_age: int = 0


def _explicit_ttl(cc: Mapping[str, str], headers: Mapping[str, str], targeted: bool, now: float) -> int | None:
    """The origin's explicit freshness lifetime: s-maxage, else max-age, else Expires minus
    Date (without a targeted field); None when it gives none. An invalid Expires is 0.

    Expires is measured against the origin's own clock (its Date); a response without a
    valid Date is dated when it arrived (RFC 9110 6.6.1).
    """
    ttl = _seconds(cc.get("s-maxage"))
    if ttl is None:
        ttl = _seconds(cc.get("max-age"))
    if ttl is None and not targeted and "expires" in headers:
        expires = parse_http_date(headers.get("expires"))
        if expires is None:
            return 0
        date = parse_http_date(headers.get("date"))
        ttl = max(0, int(expires - (date if date is not None else now)))
    return ttl


def _heuristic_ttl(status: int, headers: Mapping[str, str], policy: CachePolicy, now: float) -> int | None:
    """10 % of the time since Last-Modified, at most default_ttl (RFC 9111 4.2.2), when the
    policy asks for heuristics and the status allows them."""
    if not policy.heuristic_freshness or status not in HEURISTIC_STATUSES:
        return None
    modified = parse_http_date(headers.get("last-modified"))
    if modified is None:
        return None
    date = parse_http_date(headers.get("date"))
    since = (date if date is not None else now) - modified
    return min(int(since) // HEURISTIC_DIVISOR, policy.default_ttl) if since > 0 else 0


def decide(status: int, headers: Mapping[str, str], policy: CachePolicy, method: str,
           now: float, error_response: ErrorResponse | None = None,
           requested_at: float | None = None, authorized: bool = False) -> Decision:
    """Whether a response may be stored, and its TTL, by CloudFront's rules over RFC 9111.

    `headers` are the origin response's (lowercase names), received at `now` for a request
    sent at `requested_at` (default `now`). `error_response` is the distribution's custom
    error response for `status`, if any. `authorized`: the origin request carried the
    viewer's Authorization (forwarded_authorization). A targeted field (the policy's own,
    then CDN-Cache-Control) replaces Cache-Control and Expires. See docs/caching.md for each
    place where CloudFront's documented behaviour wins over the RFC, and for the
    viewer-specific answers that are never stored whatever a policy says.
    """
    arrived = initial_age(headers, now if requested_at is None else requested_at, now)
    stale_on_arrival = arrived is None
    current = arrived or 0
    if method not in CACHEABLE_METHODS:
        return Decision(False, reason="method", initial_age=current)
    targeted = targeted_directives(headers, policy)
    cc = parse_cache_control(headers.get("cache-control")) if targeted is None else targeted
    refused = private_to_viewer(headers, cc, authorized)
    if refused:
        return Decision(False, reason=refused, initial_age=current)
    forbidden = "no-store" in cc or "private" in cc
    no_cache = "no-cache" in cc

    if status not in CACHEABLE_STATUSES:
        if error_response is not None:
            ttl = error_response.error_caching_min_ttl
            return Decision(ttl > 0, ttl=ttl, reason="error" if ttl > 0 else "error-ttl-0", initial_age=current)
        if status not in DEFAULT_CACHED_ERRORS:
            return Decision(False, reason="status", initial_age=current)
        if policy.max_ttl == 0:
            return Decision(False, reason="disabled", initial_age=current)
        if (forbidden or no_cache) and policy.min_ttl == 0:
            return Decision(False, reason="no-store", initial_age=current)
        explicit = None if forbidden or no_cache else _explicit_ttl(cc, headers, targeted is not None, now)
        if explicit is None:
            explicit = _heuristic_ttl(status, headers, policy, now)
        if stale_on_arrival:
            explicit = 0
        ttl = DEFAULT_ERROR_TTL if explicit is None else _clamp(explicit, policy)
        return Decision(ttl > current, ttl=ttl, reason="error" if ttl > current else "error-ttl-0",
                        initial_age=current)

    if policy.max_ttl == 0:
        return Decision(False, reason="disabled", initial_age=current)
    if forbidden:
        if policy.min_ttl == 0:
            return Decision(False, reason="no-store", initial_age=current)
        ttl = policy.min_ttl
    elif no_cache:
        # Stored, and revalidated on every use (RFC 9111 5.2.2.4); CloudFront keeps it
        # for min_ttl when that is above 0.
        ttl = policy.min_ttl
    else:
        explicit = _explicit_ttl(cc, headers, targeted is not None, now)
        if explicit is None:
            explicit = _heuristic_ttl(status, headers, policy, now)
        if stale_on_arrival:
            explicit = 0
        ttl = policy.default_ttl if explicit is None else _clamp(explicit, policy)
    # must-revalidate, proxy-revalidate, s-maxage (which implies proxy-revalidate) and
    # no-cache forbid serving the response stale (RFC 9111 4.2.4): no stale-* window.
    must_revalidate = ("must-revalidate" in cc or "proxy-revalidate" in cc or "s-maxage" in cc
                       or (no_cache and ttl == 0))
    swr = sie = 0
    if not must_revalidate:
        swr = _seconds(cc.get("stale-while-revalidate")) or 0
        sie = _seconds(cc.get("stale-if-error")) or 0
    has_validator = "etag" in headers or "last-modified" in headers
    if ttl <= current and not (has_validator or swr or sie):
        return Decision(False, reason="ttl-0" if ttl == 0 else "stale", initial_age=current)
    return Decision(True, ttl=ttl, stale_while_revalidate=swr, stale_if_error=sie,
                    must_revalidate=must_revalidate, reason="ok", initial_age=current)


# The reasons of `private_to_viewer`: an answer meant for its own viewer only.
PRIVATE_REASONS = frozenset({"vary-star", "vary-connection", "set-cookie", "authorization"})


def private_to_viewer(headers: Mapping[str, str], cc: Mapping[str, str], authorized: bool) -> str:
    """Why an answer is meant for its own viewer only and is never stored ("" if it is not).

    Checked before the policy's TTLs, so no minimum TTL overrides it: `Vary: *`; a `Vary`
    on a header whose origin value the edge derives from the viewer's connection
    (X-Forwarded-For, X-Forwarded-Proto), which no later request can be matched on;
    `Set-Cookie` (CloudFront would store and replay it when cookies are forwarded); and an
    answer to an origin request that carried the viewer's Authorization, unless it says
    `public`, `s-maxage` or `must-revalidate` (RFC 9111 3.5).
    """
    vary = headers.get("vary")
    if vary:
        names = vary_names(vary)
        if names is None:
            return "vary-star"
        if not CONNECTION_DERIVED.isdisjoint(names):
            return "vary-connection"
    if "set-cookie" in headers:
        return "set-cookie"
    if authorized and not ("public" in cc or "s-maxage" in cc or "must-revalidate" in cc):
        return "authorization"
    return ""


def _clamp(ttl: int, policy: CachePolicy) -> int:
    return min(max(ttl, policy.min_ttl), policy.max_ttl)


def surrogate_keys(value: str | None) -> frozenset[str]:
    """Tags from a `Surrogate-Key` response header (space-separated)."""
    if not value:
        return frozenset()
    return frozenset(value.split())


# ---- Vary ----


def vary_names(vary: str | None) -> tuple[str, ...] | None:
    """Normalised (lowercase, sorted, unique) names of a Vary header; None for `Vary: *`."""
    if not vary:
        return ()
    names = {n.strip().lower() for n in vary.split(",") if n.strip()}
    if "*" in names:
        return None
    return tuple(sorted(names))


def vary_key(names: Sequence[str], headers: Mapping[str, str]) -> str:
    """Secondary key of a request for a response that varies on `names`.

    Equivalent spellings share a key, as far as that is safe for any origin: whitespace
    is collapsed in every value; Accept-Encoding is reduced to the coding it selects (br /
    gzip / identity: the origin never sees the viewer's own list, see origin_headers);
    Accept-Language and Accept-Charset are lists of case-insensitive tokens, so their
    tokens are lowercased, `q` written canonically (`q=1` dropped, `0.50` as `0.5`) and
    the items ordered by q, items of equal q keeping the viewer's order (which some
    servers read as a preference). An absent header and an empty one stay different.
    """
    parts = []
    for name in names:
        value = headers.get(name)
        if value is None:
            parts.append("\x01")
        elif name == "accept-encoding":
            parts.append(_normalised_ae(value))
        elif name in _WEIGHTED_LISTS:
            found = _WEIGHTED_MEMO.get(value)
            if found is None:
                found = _normalised_weighted_list(value)
                _remember(_WEIGHTED_MEMO, value, found)
            parts.append(found)
        else:
            parts.append(" ".join(value.split()))
    return "\x02".join(parts)


def _normalised_ae(value: str) -> str:
    return select_encoding(value, True, True) or "identity"


# Request fields that are comma-separated lists of case-insensitive tokens with an
# optional q weight (RFC 9110 12.5.2, 12.5.4, 12.4.2).
_WEIGHTED_LISTS = frozenset({"accept-language", "accept-charset"})
_WEIGHTED_MEMO: dict[str, str] = {}


def _normalised_weighted_list(value: str) -> str:
    """A canonical spelling of a weighted token list, or the value whitespace-collapsed
    when it is not one (a parameter other than q, a bad weight): only provably equivalent
    lists are merged."""
    items: list[tuple[float, int, str]] = []
    for index, item in enumerate(value.split(",")):
        token, _, params = item.partition(";")
        token = token.strip().lower()
        if not token:
            if params.strip():
                return " ".join(value.split())
            continue
        weight = 1.0
        if params:
            name, eq, arg = params.partition("=")
            arg = arg.strip()
            if name.strip().lower() != "q" or not eq or not _is_qvalue(arg):
                return " ".join(value.split())
            weight = float(arg)
        items.append((-weight, index, token if weight == 1.0 else f"{token};q={weight:g}"))
    items.sort()
    return ",".join(item for _, _, item in items)


def _is_qvalue(arg: str) -> bool:
    """RFC 9110 12.4.2: `0` or `1`, with at most three decimals (only zeros after a `1`)."""
    whole, _, decimals = arg.partition(".")
    if len(decimals) > 3 or (decimals and not decimals.isdigit()):
        return False
    return whole == "0" or (whole == "1" and decimals.strip("0") == "")


# ---- Age and freshness ----


def age(stored_at: float, now: float, origin_age: int = 0) -> int:
    """Current age in whole seconds (RFC 9111 4.2.3): the corrected initial age the object
    arrived with (`origin_age`, Decision.initial_age) plus the time resident here."""
    resident = now - stored_at
    return origin_age + (int(resident) if resident > 0 else 0)


def is_fresh(ttl: int, current_age: int) -> bool:
    return current_age < ttl


def within_stale_while_revalidate(ttl: int, swr: int, current_age: int) -> bool:
    return current_age < ttl + swr


def within_stale_if_error(ttl: int, sie: int, current_age: int) -> bool:
    return current_age < ttl + sie


class Stored(Protocol):
    """What a freshness verdict reads of a stored object (store.ObjectMeta)."""

    @property
    def stored_at(self) -> float: ...
    @property
    def ttl(self) -> int: ...
    @property
    def origin_age(self) -> int: ...
    @property
    def stale_while_revalidate(self) -> int: ...
    @property
    def stale_if_error(self) -> int: ...
    @property
    def must_revalidate(self) -> bool: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def last_modified(self) -> str | None: ...


# Freshness verdicts of a stored object, for the request at hand.
FRESH = 0  # within its TTL: serve it
SERVE_STALE = 1  # stale within stale-while-revalidate: may serve it while one refresh runs
REVALIDATE = 2  # stale, with a validator: must revalidate (a 304 makes it a RefreshHit)
CANNOT_REUSE = 3  # stale, no validator: only a full fetch replaces it

STALE_ON_ERROR_STATUSES = frozenset({500, 502, 503, 504})


def freshness(meta: Stored, now: float) -> tuple[int, int]:
    """The verdict on reusing a stored object now, and its current Age.

    The one freshness rule of the edge: the hit fast path memoises the Age it computed
    here for the rest of that second (the verdict cannot change within it), the slow path
    and the custom error pages call it per use. A stale object (REVALIDATE, CANNOT_REUSE)
    still stands in for an origin failure as `stale_if_error` decides.
    """
    current = age(meta.stored_at, now, meta.origin_age)
    ttl = meta.ttl
    if current < ttl:
        return FRESH, current
    if meta.stale_while_revalidate and current < ttl + meta.stale_while_revalidate:
        return SERVE_STALE, current
    if meta.etag or meta.last_modified:
        return REVALIDATE, current
    return CANNOT_REUSE, current


def stale_if_error(meta: Stored, now: float, status: int | None) -> bool:
    """Whether a stale object answers instead of an origin failure.

    `status` None: the origin could not be reached or timed out, and any stale object is
    served. An origin 5xx is replaced within the object's stale-if-error window only. Never
    an object that must be revalidated (must-revalidate, proxy-revalidate, s-maxage,
    no-cache): the viewer gets the error instead (RFC 9111 4.2.4).
    """
    if meta.must_revalidate:
        return False
    if status is None:
        return True
    return status in STALE_ON_ERROR_STATUSES and within_stale_if_error(
        meta.ttl, meta.stale_if_error, age(meta.stored_at, now, meta.origin_age)
    )


# ---- Viewer conditional requests ----


def _etag_list(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return (a[2:] if a.startswith("W/") else a) == (b[2:] if b.startswith("W/") else b)


def not_modified(request_headers: Mapping[str, str], etag: str | None,
                 last_modified: str | None) -> bool:
    """Whether a GET/HEAD viewer's conditionals let the edge answer 304 (RFC 9110 13.2.2).

    If-None-Match (weak comparison) takes precedence; If-Modified-Since is only looked at
    without it.
    """
    inm = request_headers.get("if-none-match")
    if inm is not None:
        if etag is None:
            return False
        tags = _etag_list(inm)
        return "*" in tags or any(_weak_equal(t, etag) for t in tags)
    ims = request_headers.get("if-modified-since")
    if ims is None or last_modified is None:
        return False
    since = parse_http_date(ims)
    modified = parse_http_date(last_modified)
    return since is not None and modified is not None and modified <= since


def if_range_matches(if_range: str | None, etag: str | None,
                     last_modified: str | None) -> bool:
    """Whether a Range may be honoured under If-Range (strong comparison only)."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"') or if_range.startswith("W/"):
        return (etag is not None and not etag.startswith("W/")
                and not if_range.startswith("W/") and if_range == etag)
    if last_modified is None:
        return False
    a, b = parse_http_date(if_range), parse_http_date(last_modified)
    return a is not None and a == b


# ---- Ranges ----

RANGE_NONE = "none"
RANGE_SINGLE = "single"
RANGE_MULTI = "multi"
RANGE_UNSATISFIABLE = "unsatisfiable"
MAX_RANGES = 16


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """A parsed Range header against a representation of `size` bytes.

    `ranges` hold inclusive (first, last) byte positions, in the viewer's order (coalesced
    and sorted when they overlap). RANGE_NONE means "ignore the header, send 200".
    """

    kind: str
    ranges: tuple[tuple[int, int], ...] = ()
    size: int = 0

    def content_range(self, index: int = 0) -> str:
        first, last = self.ranges[index]
        return f"bytes {first}-{last}/{self.size}"

    def length(self, index: int = 0) -> int:
        first, last = self.ranges[index]
        return last - first + 1

    def unsatisfied_range(self) -> str:
        """Content-Range value of a 416."""
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> RangeSpec:
    """Range header to a RangeSpec (RFC 9110 14.2).

    Syntax errors, other units, an empty representation and more than MAX_RANGES ranges
    yield RANGE_NONE (serve the whole object, as the RFC allows); a valid header whose
    ranges all start past the end yields RANGE_UNSATISFIABLE (416).
    """
    if not header or size <= 0:
        return RangeSpec(RANGE_NONE, size=size)
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return RangeSpec(RANGE_NONE, size=size)
    items = [s.strip() for s in spec.split(",")]
    if len(items) > MAX_RANGES:
        return RangeSpec(RANGE_NONE, size=size)
    ranges: list[tuple[int, int]] = []
    for item in items:
        if not item:
            continue
        first_s, dash, last_s = item.partition("-")
        first_s, last_s = first_s.strip(), last_s.strip()
        if not dash or not (first_s.isdigit() or first_s == "") or \
                not (last_s.isdigit() or last_s == ""):
            return RangeSpec(RANGE_NONE, size=size)
        if first_s == "":
            if last_s == "":
                return RangeSpec(RANGE_NONE, size=size)
            suffix = int(last_s)
            if suffix == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
            continue
        first = int(first_s)
        if last_s != "" and int(last_s) < first:
            return RangeSpec(RANGE_NONE, size=size)
        if first >= size:
            continue
        ranges.append((first, size - 1 if last_s == "" else min(int(last_s), size - 1)))
    if not ranges:
        return RangeSpec(RANGE_UNSATISFIABLE, size=size)
    if len(ranges) == 1:
        return RangeSpec(RANGE_SINGLE, (ranges[0],), size)
    ordered = sorted(ranges)
    if any(ordered[i + 1][0] <= ordered[i][1] + 1 for i in range(len(ordered) - 1)):
        merged = [ordered[0]]
        for first, last in ordered[1:]:
            if first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        ranges = merged
    if len(ranges) == 1:
        return RangeSpec(RANGE_SINGLE, (ranges[0],), size)
    return RangeSpec(RANGE_MULTI, tuple(ranges), size)


@dataclass(frozen=True, slots=True)
class MultipartPlan:
    """A multipart/byteranges body: for each part its head bytes and the inclusive byte
    range to copy after it, then `tail`. `length` is the exact Content-Length."""

    content_type: str
    parts: tuple[tuple[bytes, int, int], ...]
    tail: bytes
    length: int


def multipart_plan(spec: RangeSpec, content_type: str | None, boundary: str) -> MultipartPlan:
    parts = []
    length = 0
    ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
    for first, last in spec.ranges:
        head = (f"\r\n--{boundary}\r\n{ctype}"
                f"Content-Range: bytes {first}-{last}/{spec.size}\r\n\r\n").encode("latin-1")
        parts.append((head, first, last))
        length += len(head) + last - first + 1
    tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
    return MultipartPlan(
        content_type=f"multipart/byteranges; boundary={boundary}",
        parts=tuple(parts),
        tail=tail,
        length=length + len(tail),
    )


# ---- Invalidation ----

_INVALIDATION_MEMO: dict[str, Callable[[str], bool]] = {}


def compile_invalidation(pattern: str) -> Callable[[str], bool]:
    """A matcher for an invalidation path: exact, or `*` anywhere matching any run of
    characters (so `/*` is everything). Case-sensitive; the leading `/` is optional.

    A query string in the pattern is dropped: objects are matched by path, so every query
    variant of that path goes (more than asked, never less).
    """
    pattern = pattern.split("?", 1)[0]
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    if "*" not in pattern:
        return pattern.__eq__
    return compile_glob(pattern)


def path_matches(pattern: str, path: str) -> bool:
    matcher = _INVALIDATION_MEMO.get(pattern)
    if matcher is None:
        matcher = compile_invalidation(pattern)
        _remember(_INVALIDATION_MEMO, pattern, matcher)
    return matcher(path)
