"""The edge config document, validated whole and compiled once.

`parse_document` is the edge's guard against a bad push: it refuses any malformed document
with a `ConfigError` naming the field path, and otherwise returns an immutable `EdgeConfig`
in which everything the request path needs (glob matchers, host maps, resolved targets,
normalised name sets) is already computed, so serving a request never compiles, sorts or
lowercases anything static.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography.fernet import Fernet

from cdncontract import cache_key, headers, http, names, origin_tls, paths, sealing, ttl
from cdncontract import s3 as s3_rules
from cdncontract import signed_urls
from cdncontract.errors import ContractError
from cdncontract.schema import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS

from .signedurls import Signing, TrustedKey, trusted_key


class ConfigError(ValueError):
    """A document the edge refuses; the message starts with the offending field path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


# ---- Compiled objects ----


@dataclass(frozen=True, slots=True)
class NameSelector:
    """A `{"behavior", "names"}` selection with its names as a set for O(1) tests."""

    behavior: str
    names: tuple[str, ...]
    name_set: frozenset[str]

    def selects(self, name: str) -> bool:
        """Whether `name` (already lowercased for headers) is selected."""
        b = self.behavior
        if b == "none":
            return False
        if b == "all":
            return True
        if b == "allowlist":
            return name in self.name_set
        return name not in self.name_set


@dataclass(frozen=True, slots=True)
class S3Credentials:
    """What the origin requests are signed with; never in a repr, a log line or an error."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)  # "" for long-term keys


@dataclass(frozen=True, slots=True)
class S3Settings:
    """An S3 origin's bucket and its origin access control (CloudFront's OAC).

    `signing_behavior` is `always`, `never` or `no-override` (sign unless the viewer sent
    its own Authorization); `credentials` is None exactly when it is `never`.
    """

    bucket: str
    region: str
    endpoint_url: str
    addressing_style: str = "path"
    signing_behavior: str = "never"
    signing_protocol: str = "sigv4"
    credentials: S3Credentials | None = None


@dataclass(frozen=True, slots=True)
class OriginTLS:
    """What the TLS connection to an origin is made with; equal settings share one SSLContext.

    `ca_bundle` "" is the system store; `client_certificate` "" sends no client certificate.
    """

    ssl_protocols: tuple[str, ...] = origin_tls.DEFAULT_SSL_PROTOCOLS
    ca_bundle: str = field(default="", repr=False)
    client_certificate: str = field(default="", repr=False)
    client_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Origin:
    id: str
    kind: str
    domain_name: str
    origin_path: str
    http_port: int
    https_port: int
    protocol_policy: str
    connect_timeout: int
    read_timeout: int
    connection_attempts: int
    # The secret origin header, when there is one, is the last: never in a repr.
    custom_headers: tuple[tuple[str, str], ...] = field(repr=False)
    s3: S3Settings | None
    tls: OriginTLS = OriginTLS()
    # Precomputed so the miss path only concatenates.
    http_base: str = ""
    https_base: str = ""
    custom_header_names: frozenset[str] = frozenset()

    def scheme(self, viewer_scheme: str) -> str:
        """The protocol of the origin request, from `protocol_policy` (S3: its endpoint's)."""
        if self.s3 is not None:
            return self.s3.endpoint_url.split(":", 1)[0]
        if self.protocol_policy == "http-only":
            return "http"
        if self.protocol_policy == "https-only":
            return "https"
        return "https" if viewer_scheme == "https" else "http"

    def base_url(self, viewer_scheme: str) -> str:
        """Everything of the origin URL before the viewer path (origin_path included)."""
        return self.https_base if self.scheme(viewer_scheme) == "https" else self.http_base


@dataclass(frozen=True, slots=True)
class OriginGroup:
    id: str
    primary: str
    secondary: str
    failover_status_codes: frozenset[int]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    id: str
    name: str
    min_ttl: int
    default_ttl: int
    max_ttl: int
    query_strings: NameSelector
    headers: NameSelector
    cookies: NameSelector
    enable_gzip: bool
    enable_brotli: bool
    # The policy's own targeted cache-control field (lowercase), read before
    # CDN-Cache-Control and Cache-Control; "" for none (docs/caching.md).
    cache_control_field: str = ""
    # RFC 9111 4.2.2 heuristic freshness from Last-Modified instead of default_ttl.
    heuristic_freshness: bool = False

    # Derived once here because the hit path reads them on every request.
    caching_disabled: bool = field(init=False)
    query_in_key: bool = field(init=False)
    headers_in_key: bool = field(init=False)
    cookies_in_key: bool = field(init=False)
    encoding_in_key: bool = field(init=False)
    # Which Accept-Encoding memo applies: brotli * 2 + gzip.
    encoding_index: int = field(init=False)

    def __post_init__(self) -> None:
        # CloudFront's CachingDisabled shape: nothing may be stored under this policy.
        object.__setattr__(self, "caching_disabled", self.max_ttl == 0)
        object.__setattr__(self, "query_in_key", self.query_strings.behavior != "none")
        object.__setattr__(self, "headers_in_key", self.headers.behavior != "none")
        object.__setattr__(self, "cookies_in_key", self.cookies.behavior != "none")
        object.__setattr__(self, "encoding_in_key", self.enable_gzip or self.enable_brotli)
        object.__setattr__(self, "encoding_index",
                           int(self.enable_brotli) * 2 + int(self.enable_gzip))


@dataclass(frozen=True, slots=True)
class OriginRequestPolicy:
    id: str
    name: str
    query_strings: NameSelector
    headers: NameSelector
    cookies: NameSelector


@dataclass(frozen=True, slots=True)
class Behavior:
    """A cache behavior with its target resolved and its glob compiled.

    `origins` is the failover order (one origin, or a group's primary then secondary);
    `failover_status_codes` is empty for a plain origin.
    """

    index: int
    path_pattern: str
    target: str
    viewer_protocol_policy: str
    allowed_methods: frozenset[str]
    cached_methods: frozenset[str]
    compress: bool
    cache_policy: CachePolicy
    origin_request_policy: OriginRequestPolicy | None
    origins: tuple[Origin, ...]
    failover_status_codes: frozenset[int]
    matches: Callable[[str], bool] = field(compare=False, repr=False)
    allow_header: str = ""
    # Signed URLs and cookies (signedurls.py): None serves anyone; otherwise every request
    # needs a signature by a key of the behavior's trusted key groups.
    signing: Signing | None = None
    # Viewer header names an allowlist-style forwarding sends to the origin: the cache
    # key's plus the origin request policy's allowlist, sorted once here.
    origin_header_names: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = set(self.cache_policy.headers.names)
        orp = self.origin_request_policy
        if orp is not None and orp.headers.behavior == "allowlist":
            names.update(orp.headers.names)
        object.__setattr__(self, "origin_header_names", tuple(sorted(names)))


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    error_code: int
    response_page_path: str
    response_code: int | None
    error_caching_min_ttl: int


@dataclass(frozen=True, slots=True, eq=False)
class Distribution:
    id: str
    domain_name: str
    aliases: tuple[str, ...]
    default_root_object: str
    origins: dict[str, Origin]
    origin_groups: dict[str, OriginGroup]
    behaviors: tuple[Behavior, ...]
    error_responses: dict[int, ErrorResponse]
    # "/" + default_root_object, or "" when there is none.
    root_path: str = ""
    # Cache key prefix per cacheable method (policy.cache_key), built once.
    key_prefixes: dict[str, str] = field(default_factory=dict, repr=False)
    _behavior_memo: dict[str, Behavior] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.key_prefixes.update({method: cache_key.prefix(self.id, method) for method in cache_key.METHOD_CLASSES})

    def match_behavior(self, path: str) -> Behavior:
        """First behavior whose pattern matches `path` (no query string); the last is `*`.

        Memoised per path (bounded), so a hot path costs one dict lookup.
        """
        memo = self._behavior_memo
        found = memo.get(path)
        if found is not None:
            return found
        found = self.behaviors[-1]
        for b in self.behaviors:
            if b.matches(path):
                found = b
                break
        if len(memo) >= 4096:
            memo.clear()
        memo[path] = found
        return found

    def targets(self, behavior: Behavior) -> tuple[Origin, ...]:
        """Origins to try in order, with `behavior.failover_status_codes` between them."""
        return behavior.origins


@dataclass(frozen=True, slots=True, eq=False)
class EdgeConfig:
    schema_version: int
    version: int
    document: dict[str, Any]
    distributions: dict[str, Distribution]
    exact_hosts: dict[str, Distribution]
    # Wildcard aliases keyed by what follows "*." (e.g. "example.com").
    wildcard_hosts: dict[str, Distribution]
    # Refuse origins in the operator's network (cdncontract.addresses), set by the control plane.
    refuse_internal_origins: bool = False
    _host_memo: dict[str, Distribution | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def find_distribution(self, host: str) -> Distribution | None:
        """Distribution serving a Host header value (port, case and trailing dot ignored).

        Results are memoised per raw value (bounded) so a hit costs one dict lookup.
        """
        memo = self._host_memo
        try:
            return memo[host]
        except KeyError:
            pass
        found = self._resolve_host(host)
        if len(memo) >= 4096:
            memo.clear()
        memo[host] = found
        return found

    def _resolve_host(self, host: str) -> Distribution | None:
        name = normalise_host(host)
        if not name:
            return None
        found = self.exact_hosts.get(name)
        if found is not None:
            return found
        if self.wildcard_hosts:
            dot = name.find(".")
            while dot != -1:
                found = self.wildcard_hosts.get(name[dot + 1 :])
                if found is not None:
                    return found
                dot = name.find(".", dot + 1)
        return None


def normalise_host(host: str) -> str:
    """Host header value to a lookup name: lowercase, no port, no trailing dot."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[: end + 1] if end != -1 else ""
    colon = h.rfind(":")
    if colon != -1:
        if h.count(":") > 1:
            return h
        h = h[:colon]
    if h.endswith("."):
        h = h[:-1]
    return h


# ---- Glob compilation ----


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A matcher for a CloudFront path pattern (`*` any run incl. `/`, `?` one char).

    Patterns without `?` and with at most a trailing `*` (the common shapes) become a
    string comparison or `startswith`, cheaper than a regex on the request path.
    """
    if pattern == "*":
        return _match_all
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    if "?" not in pattern:
        star = pattern.find("*")
        if star == -1:
            return pattern.__eq__
        if star == len(pattern) - 1:
            return _prefix_matcher(pattern[:-1])
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    rx = re.compile("".join(parts), re.DOTALL)

    def match(path: str) -> bool:
        return rx.fullmatch(path) is not None

    return match


def _match_all(path: str) -> bool:
    return True


def _prefix_matcher(prefix: str) -> Callable[[str], bool]:
    def match(path: str) -> bool:
        return path.startswith(prefix)

    return match


# ---- Validation helpers ----


def _obj(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    return value


def _key(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise ConfigError(f"{path}.{key}" if path else key, "is required")
    return obj[key]


def _str(obj: dict[str, Any], key: str, path: str, *, nonempty: bool = False) -> str:
    p = f"{path}.{key}" if path else key
    v = _key(obj, key, path)
    if not isinstance(v, str):
        raise ConfigError(p, "must be a string")
    if nonempty and not v:
        raise ConfigError(p, "must not be empty")
    return v


def _int(obj: dict[str, Any], key: str, path: str, lo: int, hi: int) -> int:
    p = f"{path}.{key}" if path else key
    v = _key(obj, key, path)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ConfigError(p, "must be an integer")
    if not lo <= v <= hi:
        raise ConfigError(p, f"must be between {lo} and {hi}")
    return v


def _bool(obj: dict[str, Any], key: str, path: str) -> bool:
    v = _key(obj, key, path)
    if not isinstance(v, bool):
        raise ConfigError(f"{path}.{key}", "must be a boolean")
    return v


def _list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    v = _key(obj, key, path)
    if not isinstance(v, list):
        raise ConfigError(f"{path}.{key}" if path else key, "must be a list")
    return v


def _enum(obj: dict[str, Any], key: str, path: str, choices: tuple[str, ...]) -> str:
    v = _str(obj, key, path)
    if v not in choices:
        raise ConfigError(f"{path}.{key}", f"must be one of {', '.join(choices)} (got {v!r})")
    return v


def _contract(path: str, check: Callable[..., Any], *args: Any) -> Any:
    """Run one of the contract's checks (cdncontract/), a refusal as a ConfigError at `path`."""
    try:
        return check(*args)
    except ContractError as exc:
        where = exc.where if not exc.where or exc.where.startswith("[") else "." + exc.where
        raise ConfigError(path + where, exc.problem) from None


def _host_name(value: str, path: str, *, wildcard: bool) -> str:
    if _contract(path, lambda: names.hostname(value, allow_wildcard=wildcard)) != value:
        raise ConfigError(path, f"must be lowercase, without a trailing dot: {value!r}")
    return value


# ---- Parsing ----


def _unsupported_schema(schema: int) -> str:
    """Says which side to upgrade: a newer schema needs a newer edge, an older one a new publish."""
    first, last = SUPPORTED_SCHEMA_VERSIONS[0], SUPPORTED_SCHEMA_VERSIONS[-1]
    reads = f"{first}" if first == last else f"{first} to {last}"
    if schema > last:
        return f"unsupported schema version {schema}: this edge reads schema {reads}; upgrade the edge"
    return (f"unsupported schema version {schema}: this edge reads schema {reads}; publish a new config version "
            "from an upgraded control plane")


def parse_document(doc: object, *, edge_key: bytes | None = None) -> EdgeConfig:
    """Validate the whole edge config document and compile it.

    Unknown keys are tolerated (the schema version governs format changes); missing keys,
    wrong types, unknown enum values and broken references are not. `edge_key` is this
    edge's signing key, SHA-256(token) (`cdncontract.signing.signing_key`): S3 credentials
    arrive sealed for it (`cdncontract.sealing`), and a document that has some cannot be
    read without it.
    """
    opener = sealing.edge_fernet(edge_key) if edge_key is not None else None
    top = _obj(doc, "document")
    schema = _int(top, "schema_version", "", 0, 2**31)
    if schema not in SUPPORTED_SCHEMA_VERSIONS:
        raise ConfigError("schema_version", _unsupported_schema(schema))
    version = _int(top, "version", "", 1, 2**63 - 1)
    refuse_internal = _bool(top, "refuse_internal_origins", "") if "refuse_internal_origins" in top else False
    dists_raw = _list(top, "distributions", "")
    distributions: dict[str, Distribution] = {}
    exact: dict[str, Distribution] = {}
    wild: dict[str, Distribution] = {}
    for i, raw in enumerate(dists_raw):
        path = f"distributions[{i}]"
        dist = _parse_distribution(raw, path, opener)
        if dist.id in distributions:
            raise ConfigError(f"{path}.id", f"duplicate distribution id {dist.id}")
        distributions[dist.id] = dist
        names = [(f"{path}.domain_name", dist.domain_name)] + [
            (f"{path}.aliases[{j}]", a) for j, a in enumerate(dist.aliases)
        ]
        for npath, name in names:
            if name.startswith("*."):
                bucket, key = wild, name[2:]
            else:
                bucket, key = exact, name
            if key in bucket:
                raise ConfigError(npath, f"host name {name} is already used by {bucket[key].id}")
            bucket[key] = dist
    return EdgeConfig(
        schema_version=schema,
        version=version,
        document=top,
        distributions=distributions,
        exact_hosts=exact,
        wildcard_hosts=wild,
        refuse_internal_origins=refuse_internal,
    )


def _parse_distribution(raw: object, path: str, opener: Fernet | None) -> Distribution:
    d = _obj(raw, path)
    did = _str(d, "id", path)
    _contract(f"{path}.id", names.check_distribution_id, did)
    domain = _host_name(_str(d, "domain_name", path, nonempty=True), f"{path}.domain_name",
                        wildcard=False)
    aliases: list[str] = []
    for j, a in enumerate(_list(d, "aliases", path)):
        if not isinstance(a, str) or not a:
            raise ConfigError(f"{path}.aliases[{j}]", "must be a non-empty string")
        aliases.append(_host_name(a, f"{path}.aliases[{j}]", wildcard=True))
    if len(set(aliases)) != len(aliases):
        raise ConfigError(f"{path}.aliases", "must be unique")
    root = _str(d, "default_root_object", path)
    _contract(f"{path}.default_root_object", paths.check_default_root_object, root)

    origins: dict[str, Origin] = {}
    origins_raw = _list(d, "origins", path)
    if not origins_raw:
        raise ConfigError(f"{path}.origins", "must contain at least one origin")
    for j, o in enumerate(origins_raw):
        origin = _parse_origin(o, f"{path}.origins[{j}]", opener)
        if origin.id in origins:
            raise ConfigError(f"{path}.origins[{j}].id", f"duplicate origin id {origin.id}")
        origins[origin.id] = origin

    groups: dict[str, OriginGroup] = {}
    for j, g in enumerate(_list(d, "origin_groups", path)):
        gpath = f"{path}.origin_groups[{j}]"
        group = _parse_group(g, gpath, origins)
        if group.id in groups or group.id in origins:
            raise ConfigError(f"{gpath}.id", f"duplicate origin or group id {group.id}")
        groups[group.id] = group

    public_keys = _parse_public_keys(d, path)

    behaviors_raw = _list(d, "cache_behaviors", path)
    if not behaviors_raw:
        raise ConfigError(f"{path}.cache_behaviors", "must contain the default behavior '*'")
    behaviors = []
    last = len(behaviors_raw) - 1
    for j, b in enumerate(behaviors_raw):
        bpath = f"{path}.cache_behaviors[{j}]"
        behavior = _parse_behavior(b, bpath, j, origins, groups, public_keys)
        if j == last and behavior.path_pattern != "*":
            raise ConfigError(f"{bpath}.path_pattern", "the last behavior must have pattern '*'")
        if j != last and behavior.path_pattern == "*":
            raise ConfigError(f"{bpath}.path_pattern",
                              "only the last (default) behavior may have pattern '*'")
        behaviors.append(behavior)

    errors: dict[int, ErrorResponse] = {}
    for j, e in enumerate(_list(d, "custom_error_responses", path)):
        epath = f"{path}.custom_error_responses[{j}]"
        er = _parse_error_response(e, epath)
        if er.error_code in errors:
            raise ConfigError(f"{epath}.error_code", f"duplicate error code {er.error_code}")
        errors[er.error_code] = er

    return Distribution(
        id=did,
        domain_name=domain,
        aliases=tuple(aliases),
        default_root_object=root,
        origins=origins,
        origin_groups=groups,
        behaviors=tuple(behaviors),
        error_responses=errors,
        root_path="/" + root if root else "",
    )


def _parse_origin(raw: object, path: str, opener: Fernet | None) -> Origin:
    o = _obj(raw, path)
    oid = _str(o, "id", path)
    _contract(f"{path}.id", names.check_origin_id, oid)
    kind = _enum(o, "kind", path, ("custom", "s3"))
    domain = _str(o, "domain_name", path, nonempty=True)
    if _contract(f"{path}.domain_name", names.origin_host, domain) != domain:
        raise ConfigError(f"{path}.domain_name", f"must be lowercase, without brackets or a trailing dot: {domain!r}")
    origin_path = _str(o, "origin_path", path)
    _contract(f"{path}.origin_path", paths.check_origin_path, origin_path)
    http_port = _int(o, "http_port", path, 1, 65535)
    https_port = _int(o, "https_port", path, 1, 65535)
    policy = _enum(o, "protocol_policy", path, ("http-only", "https-only", "match-viewer"))
    connect_timeout = _int(o, "connect_timeout", path, 1, 10)
    read_timeout = _int(o, "read_timeout", path, 1, 60)
    attempts = _int(o, "connection_attempts", path, 1, 3)
    custom: list[tuple[str, str]] = []
    for j, h in enumerate(_list(o, "custom_headers", path)):
        hpath = f"{path}.custom_headers[{j}]"
        hobj = _obj(h, hpath)
        custom.append((_str(hobj, "name", hpath, nonempty=True), _str(hobj, "value", hpath)))
    _contract(f"{path}.custom_headers", headers.check_custom_headers, custom)
    tls, secret_header = _parse_origin_tls(o, path, opener)
    if secret_header is not None:
        if secret_header[0].lower() in {n.lower() for n, _ in custom}:
            raise ConfigError(f"{path}.secret_header_name", "is also a custom header")
        custom.append(secret_header)
        _contract(f"{path}.secret_header_name", headers.check_custom_headers, custom)
    s3_raw = _key(o, "s3", path)
    s3: S3Settings | None = None
    if kind == "custom":
        if s3_raw is not None:
            raise ConfigError(f"{path}.s3", "must be null for a custom origin")
        host = f"[{domain}]" if ":" in domain and not domain.startswith("[") else domain
        http_base = f"http://{host}" + ("" if http_port == 80 else f":{http_port}") + origin_path
        https_base = (f"https://{host}" + ("" if https_port == 443 else f":{https_port}")
                      + origin_path)
    else:
        spath = f"{path}.s3"
        so = _obj(s3_raw, spath)
        bucket = _str(so, "bucket", spath, nonempty=True)
        if "/" in bucket or any(c.isspace() for c in bucket):
            raise ConfigError(f"{spath}.bucket", "is not a valid bucket name")
        region = _str(so, "region", spath)
        endpoint = _str(so, "endpoint_url", spath, nonempty=True)
        if not (endpoint.startswith("http://") or endpoint.startswith("https://")) \
                or endpoint.endswith("/"):
            raise ConfigError(f"{spath}.endpoint_url",
                              "must be an http(s) URL without a trailing slash")
        s3 = _parse_access_control(so, spath, bucket, region, endpoint, opener)
        http_base = https_base = s3_rules.bucket_base_url(endpoint, bucket, s3.addressing_style) + origin_path
    return Origin(
        id=oid,
        kind=kind,
        domain_name=domain,
        origin_path=origin_path,
        http_port=http_port,
        https_port=https_port,
        protocol_policy=policy,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        connection_attempts=attempts,
        custom_headers=tuple(custom),
        s3=s3,
        tls=tls,
        http_base=http_base,
        https_base=https_base,
        custom_header_names=frozenset(n.lower() for n, _ in custom),
    )


def _parse_origin_tls(o: dict[str, Any], path: str,
                      opener: Fernet | None) -> tuple[OriginTLS, tuple[str, str] | None]:
    """TLS settings and the secret header (docs/edge-config.md); all optional, for older documents."""
    protocols = origin_tls.DEFAULT_SSL_PROTOCOLS
    if "ssl_protocols" in o:
        protocols = _contract(f"{path}.ssl_protocols", origin_tls.check_ssl_protocols, o["ssl_protocols"])
    ca_bundle = _str(o, "ca_bundle", path) if "ca_bundle" in o else ""
    _contract(f"{path}.ca_bundle", origin_tls.check_ca_bundle, ca_bundle)
    certificate = _str(o, "client_certificate", path) if "client_certificate" in o else ""
    header_name = _str(o, "secret_header_name", path) if "secret_header_name" in o else ""
    plain = dict.fromkeys(sealing.ORIGIN_SECRET_FIELDS, "")
    sealed = o.get("secrets")
    if sealed is not None:
        spath = f"{path}.secrets"
        if opener is None:
            raise ConfigError(spath, "are sealed for an edge token, and this edge was started without one "
                                     "(--token or EDGE_TOKEN)")
        plain = _contract(spath, sealing.unseal, sealed, opener, sealing.ORIGIN_SECRET_FIELDS)
    _contract(f"{path}.client_certificate", origin_tls.check_client_certificate, certificate, plain["client_key"])
    if bool(header_name) != bool(plain["secret_header_value"]):
        raise ConfigError(f"{path}.secret_header_name", "and the sealed secret_header_value go together")
    tls = OriginTLS(ssl_protocols=protocols, ca_bundle=ca_bundle, client_certificate=certificate,
                    client_key=plain["client_key"])
    return tls, ((header_name, plain["secret_header_value"]) if header_name else None)


def _parse_access_control(so: dict[str, Any], spath: str, bucket: str, region: str, endpoint: str,
                          opener: Fernet | None) -> S3Settings:
    """Addressing, signing and the credentials sealed for this edge (docs/edge-config.md).

    A document from a control plane older than these keys has none of them: path-style,
    unsigned, as it was then.
    """
    style = _enum(so, "addressing_style", spath, s3_rules.ADDRESSING_STYLES) if "addressing_style" in so else "path"
    _contract(spath, s3_rules.check_addressing, style, endpoint, bucket)
    signing = (_enum(so, "signing_behavior", spath, s3_rules.SIGNING_BEHAVIORS)
               if "signing_behavior" in so else "never")
    protocol = (_enum(so, "signing_protocol", spath, s3_rules.SIGNING_PROTOCOLS)
                if "signing_protocol" in so else "sigv4")
    sealed = so.get("credentials")
    credentials: S3Credentials | None = None
    if sealed is not None:
        cpath = f"{spath}.credentials"
        if opener is None:
            raise ConfigError(cpath, "are sealed for an edge token, and this edge was started without one "
                                     "(--token or EDGE_TOKEN)")
        plain = _contract(cpath, sealing.unseal, sealed, opener)
        _contract(cpath, s3_rules.check_credentials, *(plain[name] for name in sealing.CREDENTIAL_FIELDS))
        credentials = S3Credentials(**plain)
    _contract(spath, s3_rules.check_signing, signing, protocol, credentials is not None)
    if signing == "never" and credentials is not None:
        raise ConfigError(f"{spath}.credentials", "must be null when signing_behavior is never")
    return S3Settings(bucket=bucket, region=region, endpoint_url=endpoint, addressing_style=style,
                      signing_behavior=signing, signing_protocol=protocol, credentials=credentials)


def _parse_group(raw: object, path: str, origins: dict[str, Origin]) -> OriginGroup:
    g = _obj(raw, path)
    gid = _str(g, "id", path)
    _contract(f"{path}.id", names.check_origin_id, gid, "group_id")
    primary = _str(g, "primary", path)
    secondary = _str(g, "secondary", path)
    for key, value in (("primary", primary), ("secondary", secondary)):
        if value not in origins:
            raise ConfigError(f"{path}.{key}", f"unknown origin {value!r}")
    if primary == secondary:
        raise ConfigError(f"{path}.secondary", "must differ from primary")
    codes = _list(g, "failover_status_codes", path)
    _contract(f"{path}.failover_status_codes", http.check_failover_codes, codes)
    return OriginGroup(id=gid, primary=primary, secondary=secondary,
                       failover_status_codes=frozenset(codes))


def _parse_selector(raw: object, path: str, behaviors: tuple[str, ...], *,
                    lowercase: bool) -> NameSelector:
    s = _obj(raw, path)
    behavior = _enum(s, "behavior", path, behaviors)
    names: list[str] = []
    for j, n in enumerate(_list(s, "names", path)):
        if not isinstance(n, str) or not n:
            raise ConfigError(f"{path}.names[{j}]", "must be a non-empty string")
        if lowercase and n != n.lower():
            raise ConfigError(f"{path}.names[{j}]", "must be lowercase")
        names.append(n)
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}.names", "must be unique")
    if names and behavior in ("none", "all"):
        raise ConfigError(f"{path}.names", f"must be empty when behavior is {behavior}")
    names.sort()
    return NameSelector(behavior=behavior, names=tuple(names), name_set=frozenset(names))


_KEY_BEHAVIORS = ("none", "all", "allowlist", "denylist")


def _parse_cache_policy(raw: object, path: str) -> CachePolicy:
    p = _obj(raw, path)
    pid = _str(p, "id", path)
    name = _str(p, "name", path)
    min_ttl = _int(p, "min_ttl", path, 0, ttl.MAX_TTL)
    default_ttl = _int(p, "default_ttl", path, 0, ttl.MAX_TTL)
    max_ttl = _int(p, "max_ttl", path, 0, ttl.MAX_TTL)
    problems = ttl.ttl_errors(min_ttl, default_ttl, max_ttl)
    if problems:
        key, problem = next(iter(problems.items()))
        raise ConfigError(f"{path}.{key}", problem)
    field_name = _str(p, "cache_control_field", path) if "cache_control_field" in p else ""
    _contract(f"{path}.cache_control_field", ttl.check_cache_control_field, field_name)
    return CachePolicy(
        id=pid,
        name=name,
        min_ttl=min_ttl,
        default_ttl=default_ttl,
        max_ttl=max_ttl,
        query_strings=_parse_selector(_key(p, "query_strings", path), f"{path}.query_strings",
                                      _KEY_BEHAVIORS, lowercase=False),
        headers=_parse_selector(_key(p, "headers", path), f"{path}.headers",
                                ("none", "allowlist"), lowercase=True),
        cookies=_parse_selector(_key(p, "cookies", path), f"{path}.cookies",
                                _KEY_BEHAVIORS, lowercase=False),
        enable_gzip=_bool(p, "enable_gzip", path),
        enable_brotli=_bool(p, "enable_brotli", path),
        cache_control_field=field_name.lower(),
        heuristic_freshness=_bool(p, "heuristic_freshness", path) if "heuristic_freshness" in p else False,
    )


def _parse_origin_request_policy(raw: object, path: str) -> OriginRequestPolicy:
    p = _obj(raw, path)
    return OriginRequestPolicy(
        id=_str(p, "id", path),
        name=_str(p, "name", path),
        query_strings=_parse_selector(_key(p, "query_strings", path), f"{path}.query_strings",
                                      _KEY_BEHAVIORS, lowercase=False),
        headers=_parse_selector(_key(p, "headers", path), f"{path}.headers",
                                _KEY_BEHAVIORS, lowercase=True),
        cookies=_parse_selector(_key(p, "cookies", path), f"{path}.cookies",
                                _KEY_BEHAVIORS, lowercase=False),
    )


def _method_list(b: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    raw = _list(b, key, path)
    if not all(isinstance(m, str) for m in raw):
        raise ConfigError(f"{path}.{key}", "must be a list of strings")
    return tuple(raw)


def _parse_public_keys(d: dict[str, Any], path: str) -> dict[str, TrustedKey]:
    """The distribution's public keys (optional: documents before signed URLs have none)."""
    keys: dict[str, TrustedKey] = {}
    for j, raw in enumerate(_list(d, "public_keys", path) if "public_keys" in d else []):
        kpath = f"{path}.public_keys[{j}]"
        k = _obj(raw, kpath)
        kid = _str(k, "id", kpath)
        _contract(f"{kpath}.id", signed_urls.check_public_key_id, kid)
        if kid in keys:
            raise ConfigError(f"{kpath}.id", f"duplicate public key id {kid}")
        pem = _str(k, "encoded_key", kpath)
        keys[kid] = _contract(f"{kpath}.encoded_key", trusted_key, kid, pem)
    return keys


def _parse_signing(b: dict[str, Any], path: str, public_keys: dict[str, TrustedKey]) -> Signing | None:
    """The behavior's trusted key groups; none (or an empty list) serves anyone."""
    raw_groups = _list(b, "trusted_key_groups", path) if "trusted_key_groups" in b else []
    if not raw_groups:
        return None
    _contract(f"{path}.trusted_key_groups", signed_urls.check_trusted_key_groups, len(raw_groups))
    trusted: dict[str, TrustedKey] = {}
    seen: set[str] = set()
    for j, raw in enumerate(raw_groups):
        gpath = f"{path}.trusted_key_groups[{j}]"
        g = _obj(raw, gpath)
        gid = _str(g, "id", gpath)
        _contract(f"{gpath}.id", signed_urls.check_key_group_id, gid)
        if gid in seen:
            raise ConfigError(f"{gpath}.id", f"duplicate key group {gid}")
        seen.add(gid)
        ids = _list(g, "public_key_ids", gpath)
        _contract(f"{gpath}.public_key_ids", signed_urls.check_group_keys, len(ids))
        for i, kid in enumerate(ids):
            if not isinstance(kid, str) or kid not in public_keys:
                raise ConfigError(f"{gpath}.public_key_ids[{i}]", f"unknown public key {kid!r}")
            trusted[kid] = public_keys[kid]
    return Signing(trusted=trusted, known=frozenset(public_keys))


def _parse_behavior(raw: object, path: str, index: int, origins: dict[str, Origin],
                    groups: dict[str, OriginGroup], public_keys: dict[str, TrustedKey] | None = None) -> Behavior:
    b = _obj(raw, path)
    pattern = _str(b, "path_pattern", path, nonempty=True)
    _contract(f"{path}.path_pattern", paths.check_path_pattern, pattern)
    target = _str(b, "target", path)
    if target in origins:
        targets: tuple[Origin, ...] = (origins[target],)
        failover: frozenset[int] = frozenset()
    elif target in groups:
        g = groups[target]
        targets = (origins[g.primary], origins[g.secondary])
        failover = g.failover_status_codes
    else:
        raise ConfigError(f"{path}.target", f"unknown origin or origin group {target!r}")
    vpp = _enum(b, "viewer_protocol_policy", path, ("allow-all", "redirect-to-https",
                                                    "https-only"))
    allowed = _method_list(b, "allowed_methods", path)
    cached = _method_list(b, "cached_methods", path)
    _contract(path, http.check_method_lists, allowed, cached)
    compress = _bool(b, "compress", path)
    cache_policy = _parse_cache_policy(_key(b, "cache_policy", path), f"{path}.cache_policy")
    orp_raw = _key(b, "origin_request_policy", path)
    orp = None if orp_raw is None else _parse_origin_request_policy(
        orp_raw, f"{path}.origin_request_policy")
    return Behavior(
        index=index,
        path_pattern=pattern,
        target=target,
        viewer_protocol_policy=vpp,
        allowed_methods=frozenset(allowed),
        cached_methods=frozenset(cached),
        compress=compress,
        cache_policy=cache_policy,
        origin_request_policy=orp,
        origins=targets,
        failover_status_codes=failover,
        matches=compile_glob(pattern),
        allow_header=", ".join(allowed),
        signing=_parse_signing(b, path, public_keys or {}),
    )


def _parse_error_response(raw: object, path: str) -> ErrorResponse:
    e = _obj(raw, path)
    code = _int(e, "error_code", path, 0, 999)
    _contract(f"{path}.error_code", http.check_error_code, code)
    page = _str(e, "response_page_path", path)
    _contract(f"{path}.response_page_path", paths.check_response_page_path, code, page)
    rc = _key(e, "response_code", path)
    if rc is not None:
        rc = _int(e, "response_code", path, 0, 999)
    _contract(f"{path}.response_code", http.check_response_code, code, rc, page)
    min_ttl = _int(e, "error_caching_min_ttl", path, 0, ttl.MAX_TTL)
    return ErrorResponse(error_code=code, response_page_path=page, response_code=rc,
                         error_caching_min_ttl=min_ttl)
