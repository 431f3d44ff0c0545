"""The normal form of paths (cdncontract.paths.normalise_path): the one rule behind behavior
matching, the cache key, invalidation matching (edge and control plane) and origin URLs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdncontract.errors import ContractError
from cdncontract.invalidations import parse_invalidation
from cdncontract.paths import PathError, check_invalidation, check_origin_path, normalise_invalidation_path, \
    normalise_path

EXAMPLES = settings(max_examples=300, deadline=None)

SEGMENT_CHARS = "abcXYZ019-._~!$&'()*+,;=:@% \"<>^`{|}[]é"
SEGMENTS = st.one_of(st.sampled_from(["", ".", "..", "%2e", ".%2E", "%2e%2e", "a", "index.html", "%41"]),
                     st.text(SEGMENT_CHARS, max_size=6))
PATHS = st.lists(SEGMENTS, max_size=8).map(lambda segments: "/" + "/".join(segments))
UNRESERVED = "abcXYZ019-._~"


def _try(path: bytes) -> str | None:
    try:
        return normalise_path(path)
    except PathError:
        return None


@pytest.mark.parametrize(("raw", "normal"), [
    ("/", "/"), ("/x", "/x"), ("/a/../x", "/x"), ("/%78", "/x"), ("/./x", "/x"), ("/a/b/..", "/a/"),
    ("/a/./b/.", "/a/b/"), ("/a//b///c", "/a/b/c"), ("//", "/"), ("/%7e%2D%5f", "/~-_"), ("/a%2a*", "/a%2A*"),
    ("/caf%c3%a9", "/caf%C3%A9"), ("/a b", "/a%20b"), ("/.well-known/x", "/.well-known/x"), ("/a/..", "/"),
    ("/%2e%2E/..x/../y", None), ("/..", None), ("/a/../..", None), ("/a%2fb", None), ("/a%5Cb", None),
    ("/a\\b", None), ("/%00", None), ("/a%0d%0a", None), ("/%7F", None), ("/%zz", None), ("/%4", None),
    ("/%", None), ("/%C0%AE", None), ("/%ff", None), ("/%ED%A0%80", None), ("x", None), ("", None),
])  # fmt: skip
def test_it_normalises_each_spelling_or_refuses_it(raw: str, normal: str | None) -> None:
    assert _try(raw.encode("utf-8")) == normal


@EXAMPLES
@given(PATHS)
def test_the_normal_form_is_its_own_normal_form_and_has_no_dot_segment_or_empty_segment(path: str) -> None:
    normal = _try(path.encode("utf-8"))
    if normal is None:
        return
    assert normalise_path(normal.encode("latin-1")) == normal
    assert normal.startswith("/") and "//" not in normal
    assert all(segment not in (".", "..") for segment in normal.split("/"))
    assert all(0x21 <= ord(c) <= 0x7E and c != "\\" for c in normal), normal


@EXAMPLES
@given(PATHS, st.data())
def test_percent_encoding_an_unreserved_character_is_the_same_path(path: str, data: st.DataObject) -> None:
    # Not a character that is part of an escape already (the hex digits after a '%').
    positions = [i for i, c in enumerate(path) if c in UNRESERVED and "%" not in path[max(0, i - 2) : i]]
    if not positions:
        return
    i = data.draw(st.sampled_from(positions))
    encoded = path[:i] + "%%%02x" % ord(path[i]) + path[i + 1 :]
    assert _try(encoded.encode("utf-8")) == _try(path.encode("utf-8"))


@EXAMPLES
@given(PATHS, st.text("abc", min_size=1, max_size=3))
def test_a_segment_and_its_dot_dot_is_the_same_path(path: str, segment: str) -> None:
    detour = f"/{segment}/..{path}"
    assert _try(detour.encode("utf-8")) == _try(path.encode("utf-8"))


def test_invalidation_paths_are_normalised_by_the_request_rule() -> None:
    message = {"id": 1, "distribution_id": "E2QWRUHAPOMQZL", "paths": ["/a/../x", "/%78?v=1", "/images/%2a", "/x#f"],
               "tags": []}
    assert parse_invalidation(message).paths == ["/x", "/x", "/images/%2A", "/x"]
    assert normalise_invalidation_path("/images/*") == "/images/*"  # a wildcard stays one


@pytest.mark.parametrize("path", ["/../x", "/a%2Fb", "/%zz", "/a\\b", "/%00"])
def test_an_invalidation_path_without_a_normal_form_is_a_field_error(path: str) -> None:
    with pytest.raises(ContractError) as refused:
        check_invalidation([path], [])
    assert refused.value.where == "paths"


@pytest.mark.parametrize("value", ["/a/..", "/./a", "/a/../b", "/a\\b"])
def test_an_origin_path_may_not_hold_dot_segments(value: str) -> None:
    with pytest.raises(ContractError):
        check_origin_path(value)
