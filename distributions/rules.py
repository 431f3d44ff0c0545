"""The validation rules, in one place, shared by the models (and so the admin) and the API.

Each function raises django.core.exceptions.ValidationError with a message a person
understands; callers attach it to the field it concerns.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError

HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
ORIGIN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Names a custom origin header may not use: hop-by-hop headers and the ones the edge owns.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Cache-Control",
        "Accept-Encoding", "Authorization", "Range", "If-Match", "If-None-Match", "If-Modified-Since",
        "If-Range", "If-Unmodified-Since", "Expect", "Max-Forwards", "Via", "X-Forwarded-For",
        "X-Forwarded-Proto", "X-Real-IP", "X-Request-Id", "X-Cache", "X-Edge-Location",
        "X-Amz-Date", "X-Amz-Content-Sha256", "X-Amz-Security-Token",
    )
)
FAILOVER_CODES = (400, 403, 404, 416, 500, 502, 503, 504)
ERROR_CODES = (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504)
MAX_TTL = 3153600000  # 100 years, CloudFront's ceiling


def validate_hostname(value: str, *, allow_wildcard: bool = False, what: str = "domain name") -> str:
    """Return the lowercase host name, or raise. IP literals are accepted only where no wildcard is."""
    name = value.strip().lower().rstrip(".")
    if not name:
        raise ValidationError(f"{what} must not be empty")
    if len(name) > 253:
        raise ValidationError(f"{what} {value!r} is longer than 253 characters")
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            raise ValidationError(f"{what} {value!r} may not be a wildcard")
        labels = labels[1:]
        if len(labels) < 2:
            raise ValidationError(f"wildcard {value!r} must name a domain with at least two labels after '*.'")
    if "*" in name.lstrip("*"):
        raise ValidationError(f"{what} {value!r}: '*' is only allowed as the whole first label ('*.example.com')")
    for label in labels:
        if not HOSTNAME_LABEL.match(label):
            raise ValidationError(
                f"{what} {value!r} is not a valid host name (labels of letters, digits and hyphens, 1-63 characters)"
            )
    return name


def validate_origin_host(value: str) -> str:
    """Origins may be host names or IP literals (IPv6 in brackets or bare)."""
    raw = value.strip()
    try:
        ipaddress.ip_address(raw.strip("[]"))
        return raw.strip("[]").lower()
    except ValueError:
        return validate_hostname(raw, what="origin domain name")


def validate_ttls(min_ttl: int, default_ttl: int, max_ttl: int) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, value in (("min_ttl", min_ttl), ("default_ttl", default_ttl), ("max_ttl", max_ttl)):
        if value is None:
            continue
        if value < 0 or value > MAX_TTL:
            errors[name] = f"{name} must be between 0 and {MAX_TTL} seconds"
    if errors or None in (min_ttl, default_ttl, max_ttl):
        return errors
    if min_ttl > default_ttl:
        errors["min_ttl"] = "min_ttl must not exceed default_ttl"
    if default_ttl > max_ttl:
        errors["default_ttl"] = "default_ttl must not exceed max_ttl"
    return errors


def validate_name_list(behavior: str, names: Sequence[Any], *, kind: str, lower: bool = False) -> list[str]:
    """Names for an allowlist/denylist block; refused where the behavior takes none."""
    if not isinstance(names, (list, tuple)):
        raise ValidationError(f"{kind} names must be a list of strings")
    cleaned: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{kind} names must be non-empty strings")
        name = name.strip()
        if kind == "headers" and not HEADER_NAME.match(name):
            raise ValidationError(f"{name!r} is not a valid header name")
        if kind != "headers" and any(c in name for c in " ;=&#"):
            raise ValidationError(f"{kind} name {name!r} contains a character that cannot appear in it")
        cleaned.append(name.lower() if lower else name)
    if behavior in ("allowlist", "denylist"):
        if not cleaned:
            raise ValidationError(f"{kind} behavior {behavior!r} needs at least one name")
    elif cleaned:
        raise ValidationError(f"{kind} behavior {behavior!r} takes no names")
    if len(cleaned) > 10 and kind in ("headers",) and behavior == "allowlist":
        raise ValidationError(f"at most 10 {kind} may be listed")
    return sorted(set(cleaned))


def validate_custom_headers(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("custom_headers must be a list of {name, value} objects")
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "value"}:
            raise ValidationError("each custom header must be an object with exactly 'name' and 'value'")
        name, val = item["name"], item["value"]
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise ValidationError(f"{name!r} is not a valid header name")
        if not isinstance(val, str) or any(c in val for c in "\r\n\0") or len(val) > 1783:
            raise ValidationError(f"the value of header {name!r} must be a string of at most 1783 characters without line breaks")
        low = name.lower()
        if low in RESERVED_HEADERS or low.startswith("x-edge-") or low.startswith("x-amz-"):
            raise ValidationError(f"{name!r} is a hop-by-hop or reserved header and cannot be set on an origin")
        if low in seen:
            raise ValidationError(f"header {name!r} is listed twice")
        seen.add(low)
    if len(value) > 10:
        raise ValidationError("at most 10 custom headers per origin")


def validate_origin_path(value: str) -> None:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValidationError("origin_path must start with '/' and must not end with '/' (e.g. '/production')")
    if any(c in value for c in " ?#\r\n\0*"):
        raise ValidationError("origin_path may not contain spaces, '?', '#', '*' or control characters")


def validate_path_pattern(value: str) -> None:
    if not value:
        raise ValidationError("path_pattern must not be empty")
    if len(value) > 255:
        raise ValidationError("path_pattern must be at most 255 characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValidationError("path_pattern may not contain spaces or control characters")


def validate_failover_codes(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError(f"failover_status_codes must be a non-empty list drawn from {list(FAILOVER_CODES)}")
    for code in value:
        if code not in FAILOVER_CODES or isinstance(code, bool):
            raise ValidationError(f"{code!r} is not a failover status code; allowed: {list(FAILOVER_CODES)}")
    if len(set(value)) != len(value):
        raise ValidationError("failover_status_codes lists a code twice")


def validate_custom_error_responses(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("custom_error_responses must be a list")
    seen: set[int] = set()
    for item in value:
        if not isinstance(item, dict):
            raise ValidationError("each custom error response must be an object")
        unknown = set(item) - {"error_code", "response_page_path", "response_code", "error_caching_min_ttl"}
        if unknown:
            raise ValidationError(f"unknown custom error response field(s): {', '.join(sorted(unknown))}")
        code = item.get("error_code")
        if code not in ERROR_CODES or isinstance(code, bool):
            raise ValidationError(f"error_code {code!r} is not one of {list(ERROR_CODES)}")
        if code in seen:
            raise ValidationError(f"error_code {code} is listed twice")
        seen.add(code)
        page = item.get("response_page_path", "")
        if not isinstance(page, str) or (page and not page.startswith("/")) or len(page) > 4096:
            raise ValidationError(f"response_page_path for {code} must be empty or a path starting with '/'")
        response_code = item.get("response_code")
        if response_code is not None and (isinstance(response_code, bool) or not isinstance(response_code, int) or not 200 <= response_code <= 599):
            raise ValidationError(f"response_code for {code} must be an HTTP status between 200 and 599")
        if response_code is not None and not page:
            raise ValidationError(f"response_code for {code} needs a response_page_path")
        ttl = item.get("error_caching_min_ttl", 10)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            raise ValidationError(f"error_caching_min_ttl for {code} must be a whole number of seconds >= 0")


def normalise_custom_error_responses(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "error_code": item["error_code"],
                "response_page_path": item.get("response_page_path", ""),
                "response_code": item.get("response_code"),
                "error_caching_min_ttl": item.get("error_caching_min_ttl", 10),
            }
            for item in value
        ),
        key=lambda item: item["error_code"],
    )


def validate_invalidation_paths(paths: Any, tags: Any) -> None:
    if not isinstance(paths, list) or not isinstance(tags, list):
        raise ValidationError("paths and tags must be lists of strings")
    if not paths and not tags:
        raise ValidationError("an invalidation needs at least one path or tag")
    if len(paths) + len(tags) > 3000:
        raise ValidationError("at most 3000 paths and tags in one invalidation")
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValidationError(f"path {path!r} must start with '/'")
        if len(path) > 4096 or any(ord(c) < 32 or ord(c) == 127 or c == " " for c in path):
            raise ValidationError(f"path {path!r} is too long or contains spaces or control characters")


def validate_tags(tags: Iterable[Any]) -> None:
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > 1024 or any(ord(c) <= 32 or ord(c) == 127 for c in tag):
            raise ValidationError(f"tag {tag!r} must be a non-empty string without spaces (Surrogate-Key tags are space-separated)")


def check_distribution_structure(
    origins: Sequence[dict[str, Any]],
    groups: Sequence[dict[str, Any]],
    behaviors: Sequence[dict[str, Any]],
) -> dict[str, dict[int, dict[str, str]] | str]:
    """Rules that span the pieces of one distribution, on plain data so both the API and the admin use them.

    `origins` carry `origin_id`; `groups` carry `group_id`, `primary_origin_id`, `secondary_origin_id`;
    `behaviors` carry `path_pattern` and `target_origin_id`, in order. Returns errors keyed by list name,
    then index, then field (or a message for the list as a whole).
    """
    errors: dict[str, dict[int, dict[str, str]] | str] = {}

    def add(section: str, index: int, field: str, message: str) -> None:
        bucket = errors.setdefault(section, {})
        if isinstance(bucket, dict):
            bucket.setdefault(index, {})[field] = message

    if not origins:
        errors["origins"] = "a distribution needs at least one origin"
    origin_ids: set[str] = set()
    for i, origin in enumerate(origins):
        oid = origin.get("origin_id")
        if oid in origin_ids:
            add("origins", i, "origin_id", f"origin_id {oid!r} is used twice in this distribution")
        origin_ids.add(oid)  # type: ignore[arg-type]
    group_ids: set[str] = set()
    for i, group in enumerate(groups):
        gid = group.get("group_id")
        if gid in origin_ids:
            add("origin_groups", i, "group_id", f"group_id {gid!r} is already an origin id in this distribution")
        elif gid in group_ids:
            add("origin_groups", i, "group_id", f"group_id {gid!r} is used twice in this distribution")
        group_ids.add(gid)  # type: ignore[arg-type]
        primary, secondary = group.get("primary_origin_id"), group.get("secondary_origin_id")
        for field, value in (("primary_origin_id", primary), ("secondary_origin_id", secondary)):
            if value not in origin_ids:
                add("origin_groups", i, field, f"{value!r} is not an origin of this distribution")
        if primary is not None and primary == secondary:
            add("origin_groups", i, "secondary_origin_id", "the secondary origin must differ from the primary")
    if not behaviors:
        errors["cache_behaviors"] = "a default cache behavior with path_pattern '*' is required"
        return errors
    patterns: set[str] = set()
    for i, behavior in enumerate(behaviors):
        pattern = behavior.get("path_pattern")
        normalised = pattern if pattern == "*" or not isinstance(pattern, str) else "/" + pattern.lstrip("/")
        if normalised in patterns:
            add("cache_behaviors", i, "path_pattern", f"path_pattern {pattern!r} is used twice in this distribution")
        patterns.add(normalised)  # type: ignore[arg-type]
        if pattern == "*" and i != len(behaviors) - 1:
            add("cache_behaviors", i, "path_pattern", "the default behavior ('*') must be the last one")
        target = behavior.get("target_origin_id")
        if target not in origin_ids and target not in group_ids:
            add("cache_behaviors", i, "target_origin_id", f"{target!r} is not an origin or origin group of this distribution")
    if "*" not in patterns and "cache_behaviors" not in errors:
        errors["cache_behaviors"] = "a default cache behavior with path_pattern '*' is required (as the last behavior)"
    return errors


S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
EDGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def validate_edge_name(value: str) -> None:
    if not EDGE_NAME.match(value):
        raise ValidationError("edge name must be lowercase letters, digits and '-', starting with a letter or digit")


def validate_http_url(value: str) -> None:
    """An http(s) base URL; single-label hosts (`http://edge-fra:9081`, `http://minio:9000`) are fine."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{value!r} must be an http:// or https:// URL with a host, e.g. http://10.0.0.5:9081")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"{value!r} must not carry a query, a fragment or credentials")
    if port == 0:
        raise ValidationError(f"{value!r}: port must be between 1 and 65535")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        label = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
        if len(parts.hostname) > 253 or not all(label.match(x) for x in parts.hostname.rstrip(".").split(".")):
            raise ValidationError(f"{value!r} does not name a valid host") from None
