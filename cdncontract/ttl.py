"""TTL bounds of cache policies and error caching."""

from __future__ import annotations

from typing import Any

from .errors import ContractError

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
