"""Paths in the document and in invalidations: path patterns, origin paths, the default
root object, error page paths, invalidation paths and tags."""

from __future__ import annotations

import re
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
    if _has_dot_segment(value):
        raise ContractError("origin_path may not contain '.' or '..' segments or backslashes")


def check_default_root_object(value: str) -> None:
    if value and (value.startswith("/") or any(c in value for c in "?# \r\n\0")):
        raise ContractError(
            "default_root_object is an object name like 'index.html': no leading '/', '?', '#' or spaces")


def _has_dot_segment(value: str) -> bool:
    return "\\" in value or any(segment in (".", "..") for segment in value.split("/"))


def check_response_page_path(error_code: int, value: object) -> None:
    if not isinstance(value, str) or (value and not value.startswith("/")) or len(value) > MAX_PATH \
            or _has_control(value):
        raise ContractError(f"response_page_path for {error_code} must be empty or a path starting with '/'")
    if _has_dot_segment(value):
        raise ContractError(f"response_page_path for {error_code} may not contain '.' or '..' segments "
                            "or backslashes")


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
        try:
            normalise_invalidation_path(path)
        except PathError as exc:
            raise ContractError(f"path {path!r}: {exc.problem}", "paths") from None
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or " " in tag or _has_control(tag):
            raise ContractError(f"tag {tag!r} must be a non-empty string without spaces "
                                "(Surrogate-Key tags are space-separated)", "tags")


# ---- Request paths: one normal form (docs/caching.md, "Which distribution and behavior") ----

_HEX = "0123456789ABCDEFabcdef"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What a path segment may carry unencoded besides the unreserved characters (RFC 3986 3.3:
# sub-delims, ':' and '@'). Any other byte is percent-encoded in the normal form.
_RAW_OK = _UNRESERVED | frozenset(b"!$&'()*+,;=:@")
# A path the edge already serves as it is: segments of plain characters, none starting with
# a '.', no empty segment. Checked first so that the common path costs one regex match.
_PLAIN = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,;=:@][A-Za-z0-9\-._~!$&'()*+,;=:@]*)*/?")
_ENCODED = tuple("%%%02X" % b for b in range(256))


class PathError(ContractError):
    """A request or invalidation path that has no normal form: the edge answers 400."""


def split_target(target: str) -> tuple[str, str]:
    """A request target's path and query; a fragment (never sent by a conforming client) is dropped."""
    target = target.partition("#")[0]
    path, _, query = target.partition("?")
    return path, query


def normalise_path(raw: bytes) -> str:
    """The one normal form of a path, used for behavior matching, the cache key, invalidation
    matching and the origin request alike, so no spelling of a path can reach another one.

    RFC 3986 6.2.2: percent-encoded unreserved characters are decoded, every other escape is
    written in upper case, and bytes a path may not carry raw are encoded; 5.2.4: dot
    segments are removed; runs of '/' become one. Refused (PathError): a path that does not
    start with '/', climbs above the root, has an invalid escape, encodes a separator
    (`%2F`, `%5C`) or carries a backslash, a NUL or another control byte (raw or encoded),
    or whose bytes are not UTF-8 (overlong forms included).
    """
    if raw[:1] != b"/":
        raise PathError("the path must start with '/'", "path")
    text = raw.decode("latin-1")
    if _PLAIN.fullmatch(text) is not None:
        return text
    out: list[str] = []
    decoded = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x25:  # '%'
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise PathError("the path has an invalid percent-encoding", "path")
            byte = int(pair, 16)
            i += 3
            if byte == 0x2F or byte == 0x5C:
                raise PathError("the path encodes a '/' or '\\' (%2F, %5C)", "path")
            if byte in _UNRESERVED:
                out.append(chr(byte))
            else:
                out.append(_ENCODED[byte])
        else:
            i += 1
            if byte == 0x2F:
                out.append("/")
            elif byte in _RAW_OK:
                out.append(chr(byte))
            elif byte == 0x5C:
                raise PathError("the path contains a backslash", "path")
            else:
                out.append(_ENCODED[byte])
        if byte < 0x20 or byte == 0x7F:
            raise PathError("the path contains a control character", "path")
        decoded.append(byte)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise PathError("the path is not UTF-8 once decoded", "path") from None
    segments: list[str] = []
    pieces = "".join(out).split("/")
    last = len(pieces) - 1
    trailing = False
    for index, piece in enumerate(pieces):
        if index == 0:
            continue
        trailing = index == last and piece in ("", ".", "..")
        if piece == "" or piece == ".":
            continue
        if piece == "..":
            if not segments:
                raise PathError("the path climbs above the root ('..')", "path")
            segments.pop()
            continue
        segments.append(piece)
    if not segments:
        return "/"
    return "/" + "/".join(segments) + ("/" if trailing else "")


def normalise_invalidation_path(path: str) -> str:
    """An invalidation path in the normal form of the request paths it must match (its
    query string dropped: every query variant of the path goes). `*` stays a wildcard."""
    path = split_target(path)[0]
    if not path.startswith("/"):
        path = "/" + path
    return normalise_path(path.encode("utf-8"))
