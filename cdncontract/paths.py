"""Paths in the document and in invalidations: path patterns, origin paths, the default
root object, error page paths, invalidation paths and tags."""

from __future__ import annotations

from typing import Any

from .errors import ContractError

MAX_PATH_PATTERN = 255
MAX_PATH = 4096
MAX_TAG = 1024
MAX_INVALIDATION_ITEMS = 3000  # paths and tags together in one invalidation


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def check_path_pattern(value: str) -> None:
    """A CloudFront path pattern: `*` any run of characters, `?` one; no spaces."""
    if not value:
        raise ContractError("path_pattern must not be empty")
    if len(value) > MAX_PATH_PATTERN:
        raise ContractError(f"path_pattern must be at most {MAX_PATH_PATTERN} characters")
    if " " in value or _has_control(value):
        raise ContractError("path_pattern may not contain spaces or control characters")


def check_origin_path(value: str) -> None:
    """Empty, or a prefix like `/production`: a leading '/', no trailing one."""
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ContractError("origin_path must start with '/' and must not end with '/' (e.g. '/production')")
    if any(c in value for c in " ?#*") or _has_control(value):
        raise ContractError("origin_path may not contain spaces, '?', '#', '*' or control characters")


def check_default_root_object(value: str) -> None:
    if value and (value.startswith("/") or any(c in value for c in "?# \r\n\0")):
        raise ContractError(
            "default_root_object is an object name like 'index.html': no leading '/', '?', '#' or spaces")


def check_response_page_path(error_code: int, value: object) -> None:
    if not isinstance(value, str) or (value and not value.startswith("/")) or len(value) > MAX_PATH \
            or _has_control(value):
        raise ContractError(f"response_page_path for {error_code} must be empty or a path starting with '/'")


def check_invalidation(paths: Any, tags: Any) -> None:
    """An invalidation's paths and tags; `where` is "paths" or "tags"."""
    if not isinstance(paths, list) or not isinstance(tags, list):
        raise ContractError("paths and tags must be lists of strings", "paths")
    if not paths and not tags:
        raise ContractError("an invalidation needs at least one path or tag", "paths")
    if len(paths) + len(tags) > MAX_INVALIDATION_ITEMS:
        raise ContractError(f"at most {MAX_INVALIDATION_ITEMS} paths and tags in one invalidation", "paths")
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ContractError(f"path {path!r} must start with '/'", "paths")
        if len(path) > MAX_PATH or " " in path or _has_control(path):
            raise ContractError(f"path {path!r} is too long or contains spaces or control characters", "paths")
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or " " in tag or _has_control(tag):
            raise ContractError(f"tag {tag!r} must be a non-empty string without spaces "
                                "(Surrogate-Key tags are space-separated)", "tags")
