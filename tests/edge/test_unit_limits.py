"""The protocol's JSON depth limit, as both halves apply it (cdncontract/limits.py)."""

from __future__ import annotations

import pytest

from cdncontract.limits import MAX_JSON_DEPTH, JSONTooDeepError, load_json


def nested(depth: int) -> str:
    """`depth` containers around 1, lists and objects in turn."""
    opening = ["[" if level % 2 == 0 else '{"a":' for level in range(depth)]
    closing = ["]" if level % 2 == 0 else "}" for level in reversed(range(depth))]
    return "".join(opening) + "1" + "".join(closing)


@pytest.mark.parametrize("depth", [0, 1, 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_it_reads_documents_up_to_the_limit(depth: int) -> None:
    value = load_json(nested(depth))
    for level in range(depth):
        value = value[0] if level % 2 == 0 else value["a"]
    assert value == 1


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 2, 5_000, 1_000_000])
def test_it_refuses_anything_deeper_as_a_value_error_naming_the_limit(depth: int) -> None:
    with pytest.raises(JSONTooDeepError, match=f"nested deeper than {MAX_JSON_DEPTH} levels") as refused:
        load_json(nested(depth).encode())
    assert isinstance(refused.value, ValueError)


def test_a_wide_document_is_not_mistaken_for_a_deep_one() -> None:
    assert len(load_json("[" + ",".join(["[[1],{}]"] * 10_000) + "]")) == 10_000
