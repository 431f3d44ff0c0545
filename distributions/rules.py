"""The validation rules of the models (and so the admin) and the API.

The rules the edge applies too are the contract's (cdncontract/), wrapped here as Django
validators; what is left here concerns the control plane alone (the input's shape, policy
name lists, URLs of edges and endpoints, the structure of a distribution). Each function
raises django.core.exceptions.ValidationError with a message a person understands;
callers attach it to the field it concerns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from cdncontract import headers, http, names, paths, signed_urls, ttl
from cdncontract.errors import ContractError

T = TypeVar("T")


def _django(check: Callable[..., T]) -> Callable[..., T]:
    """One of the contract's checks (cdncontract/) as a Django validator: its refusal a ValidationError."""

    @wraps(check)
    def validate(*args: Any, **kwargs: Any) -> T:
        try:
            return check(*args, **kwargs)
        except ContractError as exc:
            raise ValidationError(exc.problem) from None

    return validate


validate_hostname = _django(names.hostname)
validate_origin_host = _django(names.origin_host)
validate_edge_name = _django(names.check_edge_name)
validate_cache_control_field = _django(ttl.check_cache_control_field)
validate_origin_path = _django(paths.check_origin_path)
validate_path_pattern = _django(paths.check_path_pattern)
validate_default_root_object = _django(paths.check_default_root_object)
validate_failover_codes = _django(http.check_failover_codes)
validate_origin_id = _django(names.check_origin_id)
validate_public_key = _django(signed_urls.check_public_key)


def validate_name_list(behavior: str, names: Sequence[Any], *, kind: str, lower: bool = False) -> list[str]:
    """Names for an allowlist/denylist block; refused where the behavior takes none."""
    if not isinstance(names, (list, tuple)):
        raise ValidationError(f"{kind} names must be a list of strings")
    cleaned: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{kind} names must be non-empty strings")
        name = name.strip()
        if kind == "headers" and not headers.HEADER_NAME.fullmatch(name):
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
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "value"}:
            raise ValidationError("each custom header must be an object with exactly 'name' and 'value'")
    _django(headers.check_custom_headers)([(item["name"], item["value"]) for item in value])


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
        _django(http.check_error_code)(code)
        if code in seen:
            raise ValidationError(f"error_code {code} is listed twice")
        seen.add(code)
        page = item.get("response_page_path", "")
        _django(paths.check_response_page_path)(code, page)
        _django(http.check_response_code)(code, item.get("response_code"), page)
        _django(ttl.check_error_caching_min_ttl)(code, item.get("error_caching_min_ttl",
                                                                ttl.DEFAULT_ERROR_CACHING_MIN_TTL))


def normalise_custom_error_responses(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "error_code": item["error_code"],
                "response_page_path": item.get("response_page_path", ""),
                "response_code": item.get("response_code"),
                "error_caching_min_ttl": item.get("error_caching_min_ttl", ttl.DEFAULT_ERROR_CACHING_MIN_TTL),
            }
            for item in value
        ),
        key=lambda item: item["error_code"],
    )


def validate_invalidation(paths_: Any, tags: Any) -> None:
    """Paths and tags of an invalidation; the error is keyed by the field at fault."""
    try:
        paths.check_invalidation(paths_, tags)
    except ContractError as exc:
        raise ValidationError({exc.where: exc.problem}) from None


def validate_method_lists(allowed: str, cached: str) -> None:
    """A behavior's method lists by name; the error is keyed by the field at fault."""
    allowed_methods, cached_methods = http.METHOD_LISTS.get(allowed), http.METHOD_LISTS.get(cached)
    if allowed_methods is None or cached_methods is None:
        return  # not a choice: the field's own validation says so
    try:
        http.check_method_lists(allowed_methods, cached_methods)
    except ContractError as exc:
        raise ValidationError({exc.where: exc.problem}) from None


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
        if len(parts.hostname) > names.MAX_HOSTNAME or not all(
                names.HOSTNAME_LABEL.fullmatch(x) for x in parts.hostname.rstrip(".").split(".")):
            raise ValidationError(f"{value!r} does not name a valid host") from None
