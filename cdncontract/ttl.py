"""TTL bounds of cache policies and error caching, and the targeted cache-control field's name rule."""

from __future__ import annotations

from typing import Any

from .errors import ContractError
from .headers import HEADER_NAME, HOP_BY_HOP

MAX_TTL = 3153600000  # 100 years, CloudFront's ceiling
DEFAULT_ERROR_CACHING_MIN_TTL = 10


def ttl_errors(min_ttl: int | None, default_ttl: int | None, max_ttl: int | None) -> dict[str, str]:
    """Problems of a policy's three TTLs by field name; empty when they are fine. None is not checked."""
    errors: dict[str, str] = {}
    for name, value in (("min_ttl", min_ttl), ("default_ttl", default_ttl), ("max_ttl", max_ttl)):
        if value is not None and not 0 <= value <= MAX_TTL:
            errors[name] = f"{name} must be between 0 and {MAX_TTL} seconds"
    if errors or min_ttl is None or default_ttl is None or max_ttl is None:
        return errors
    if min_ttl > default_ttl:
        errors["min_ttl"] = "min_ttl must not exceed default_ttl"
    if default_ttl > max_ttl:
        errors["default_ttl"] = "default_ttl must not exceed max_ttl"
    return errors


def check_error_caching_min_ttl(error_code: int, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        raise ContractError(f"error_caching_min_ttl for {error_code} must be a whole number of seconds "
                            f"from 0 to {MAX_TTL}")


# ---- Targeted cache control (RFC 9213) ----

CDN_CACHE_CONTROL = "cdn-cache-control"
MAX_CACHE_CONTROL_FIELD = 64
# Fields that already mean something else to a cache: none of them can be a policy's own
# targeted field.
_NOT_TARGETABLE = HOP_BY_HOP | frozenset({
    "cache-control", CDN_CACHE_CONTROL, "age", "date", "expires", "pragma", "vary", "etag", "last-modified",
    "content-length", "content-type", "content-encoding", "content-range", "set-cookie", "surrogate-key",
})


def check_cache_control_field(value: Any) -> None:
    """A cache policy's own targeted field name (e.g. `Edge-Cache-Control`); "" for none.

    An RFC 9110 token of at most MAX_CACHE_CONTROL_FIELD characters, any case (compared
    lowercase), that is not a field a cache already reads for something else.
    """
    if not isinstance(value, str):
        raise ContractError("cache_control_field must be a string")
    if not value:
        return
    if len(value) > MAX_CACHE_CONTROL_FIELD or not HEADER_NAME.fullmatch(value):
        raise ContractError(f"cache_control_field {value!r} must be a header field name (letters, digits and "
                            f"!#$%&'*+.^_`|~-), at most {MAX_CACHE_CONTROL_FIELD} characters")
    if value.lower() in _NOT_TARGETABLE:
        raise ContractError(f"cache_control_field cannot be {value!r}: the edge already reads that field "
                            "for something else (CDN-Cache-Control is always honoured)")
