"""Syntax rules of the contract match whole values: `$` alone would let a trailing newline through."""

from __future__ import annotations

import pytest

from cdncontract import headers, names
from cdncontract.errors import ContractError


@pytest.mark.parametrize("check", [
    lambda: names.check_origin_id("web\n"),
    lambda: names.check_edge_name("edge-fra\n"),
    lambda: names.check_distribution_id("E0000000000001\n"),
    lambda: names.hostname("www.exa\nmple.test"),  # (surrounding whitespace is normalised away)
    lambda: headers.check_header_name("X-Custom\n"),
])  # fmt: skip
def test_a_trailing_newline_is_refused(check: object) -> None:
    with pytest.raises(ContractError):
        check()  # type: ignore[operator]


def test_the_same_values_without_it_are_accepted() -> None:
    names.check_origin_id("web")
    names.check_edge_name("edge-fra")
    names.check_distribution_id("E0000000000001")
    assert names.hostname("www.example.test") == "www.example.test"
    headers.check_header_name("X-Custom")
