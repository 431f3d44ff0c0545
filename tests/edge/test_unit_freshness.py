"""The parsers behind freshness: HTTP-date (cdncontract.http), Age, delta-seconds, targeted
fields, and what policy.decide makes of them (initial age, heuristics, targeted fields)."""

from __future__ import annotations

import string
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdncontract.errors import ContractError
from cdncontract.http import parse_http_date
from cdncontract.ttl import MAX_TTL, check_cache_control_field
from edgeagent.config import CachePolicy, NameSelector
from edgeagent.policy import age_value, decide, delta_seconds, initial_age, parse_targeted, targeted_directives

NOW = 1_700_000_000.0
NONE = NameSelector("none", (), frozenset())


def cp(min_ttl: int = 0, default_ttl: int = 86400, max_ttl: int = 31536000, **extra: object) -> CachePolicy:
    return CachePolicy(id="p", name="p", min_ttl=min_ttl, default_ttl=default_ttl, max_ttl=max_ttl,
                       query_strings=NONE, headers=NONE, cookies=NONE, enable_gzip=False, enable_brotli=False,
                       **extra)  # type: ignore[arg-type]


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


# ---- HTTP-date ----


@given(st.integers(min_value=0, max_value=253402300799))
def test_every_imf_fixdate_parses_back_to_its_time(t: int) -> None:
    assert parse_http_date(formatdate(t, usegmt=True)) == float(t)


@given(st.text(alphabet=string.printable + "é٣", max_size=40))
def test_no_text_crashes_the_date_parser(value: str) -> None:
    parsed = parse_http_date(value)
    assert parsed is None or isinstance(parsed, float)


@pytest.mark.parametrize("value", [
    "Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 2050 02:01:18 +0000", "Thu, 18 Aug 50 02:01:18 GMT",
    "Thu 18 Aug 2050 02:01:18 GMT", "Thu, 18  Aug 2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
    "Thu, 18 Aug 2050 02.01.18 GMT", "Thu, 18 Aug 2050 2:01:18 GMT", "Thu, 31 Feb 2050 02:01:18 GMT",
    "Thu, 18 Aug 2050 24:01:18 GMT", " Thu, 18 Aug 2050 02:01:18 GMT", "Thu, ١٨ Aug 2050 02:01:18 GMT",
    "Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT", "0", "",
])  # fmt: skip
def test_what_is_not_an_http_date(value: str) -> None:
    assert parse_http_date(value) is None


def test_an_rfc850_year_is_at_most_fifty_years_ahead() -> None:
    assert parse_http_date("Thursday, 18-Aug-50 02:01:18 GMT", now=NOW) == 2544400878.0
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now=NOW) == 784111777.0


# ---- Age and delta-seconds ----


@pytest.mark.parametrize(("value", "expected"), [
    (None, 0), ("0", 0), ("7200", 7200), ("7200, 0", 7200), ("0, 7200", 0), (" 10 ", 10),
    ("old, 0", None), ("-7200", None), ("7200.0", None), ("abc", None), ("", None), ("٣", None), ("+5", None),
])  # fmt: skip
def test_age_counts_by_its_first_member_and_anything_else_is_invalid(value: str | None, expected: int | None) -> None:
    assert age_value(value) == expected


@given(st.text(max_size=30))
def test_delta_seconds_is_an_int_in_range_or_none(value: str) -> None:
    got = delta_seconds(value)
    assert got is None or 0 <= got <= MAX_TTL
    assert (got is not None) == (value != "" and value.isascii() and value.isdigit())


def test_the_largest_delta_seconds_are_very_long() -> None:
    assert delta_seconds("2147483648") == 2147483648
    assert delta_seconds("9" * 5000) == MAX_TTL


def test_the_initial_age_is_the_larger_of_the_apparent_and_the_corrected_age() -> None:
    assert initial_age({"age": "100"}, NOW - 3, NOW) == 103
    assert initial_age({"age": "100", "date": http_date(NOW - 500)}, NOW, NOW) == 500
    assert initial_age({"date": http_date(NOW + 500)}, NOW, NOW) == 0
    assert initial_age({"age": "nope"}, NOW, NOW) is None


# ---- What decide makes of them ----


def test_an_age_above_the_lifetime_is_stored_only_with_a_validator() -> None:
    assert not decide(200, {"cache-control": "max-age=3600", "age": "7200"}, cp(), "GET", NOW).cacheable
    got = decide(200, {"cache-control": "max-age=3600", "age": "7200", "etag": '"a"'}, cp(), "GET", NOW)
    assert got.cacheable and (got.ttl, got.initial_age) == (3600, 7200)


def test_an_invalid_age_is_stale_on_arrival_within_the_policy_bounds() -> None:
    assert decide(200, {"cache-control": "max-age=3600", "age": "x", "etag": '"a"'}, cp(), "GET", NOW).ttl == 0
    assert decide(200, {"cache-control": "max-age=3600", "age": "x"}, cp(min_ttl=5, default_ttl=5), "GET",
                  NOW).ttl == 5


def test_expires_is_measured_against_date_not_the_edge_clock() -> None:
    headers = {"date": http_date(NOW + 3600), "expires": http_date(NOW + 3601)}
    assert decide(200, headers, cp(), "GET", NOW).ttl == 1


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**6))
def test_heuristics_are_a_tenth_of_the_age_of_last_modified_capped_by_the_default_ttl(since: int,
                                                                                      default: int) -> None:
    headers = {"date": http_date(NOW), "last-modified": http_date(NOW - since)}
    got = decide(200, headers, cp(default_ttl=default, heuristic_freshness=True), "GET", NOW)
    assert got.ttl == min(since // 10, default)


@pytest.mark.parametrize(("status", "expected"), [(200, 100), (404, 100), (501, 100), (500, 10), (503, 10)])
def test_heuristics_apply_to_heuristically_cacheable_statuses_only(status: int, expected: int) -> None:
    headers = {"date": http_date(NOW), "last-modified": http_date(NOW - 1000)}
    assert decide(status, headers, cp(heuristic_freshness=True), "GET", NOW).ttl == expected


def test_without_the_policy_option_the_default_ttl_applies() -> None:
    headers = {"date": http_date(NOW), "last-modified": http_date(NOW - 1000)}
    assert decide(200, headers, cp(default_ttl=600), "GET", NOW).ttl == 600


def test_targeted_fields_parse_as_structured_dictionaries() -> None:
    assert parse_targeted('max-age=60, no-store, private="x"') == {"max-age": "60", "no-store": "", "private": "x"}
    assert parse_targeted('max-age="1') is None
    assert parse_targeted("max-age=1.5")["max-age"] == "?"  # type: ignore[index]


def test_the_policys_own_field_comes_before_cdn_cache_control_and_a_broken_one_is_skipped() -> None:
    policy = cp(cache_control_field="edge-cache-control")
    headers = {"edge-cache-control": "max-age=5", "cdn-cache-control": "max-age=6"}
    assert targeted_directives(headers, policy) == {"max-age": "5"}
    assert targeted_directives(dict(headers, **{"edge-cache-control": "max-age=("}), policy) == {"max-age": "6"}
    assert targeted_directives(headers, cp()) == {"max-age": "6"}
    assert targeted_directives({"cache-control": "max-age=7"}, policy) is None


def test_a_targeted_field_overrides_cache_control_within_the_policy_bounds() -> None:
    headers = {"cache-control": "no-store", "cdn-cache-control": "max-age=3600, stale-if-error=60"}
    got = decide(200, headers, cp(max_ttl=100, default_ttl=100), "GET", NOW)
    assert got.cacheable and got.ttl == 100 and got.stale_if_error == 60


@pytest.mark.parametrize("name", ["Edge-Cache-Control", "surrogate-control", "x", ""])
def test_a_policy_may_name_its_own_field(name: str) -> None:
    check_cache_control_field(name)


@pytest.mark.parametrize("name", ["cache-control", "CDN-Cache-Control", "Age", "connection", "a b", "a:b", "é", 5])
def test_a_policy_may_not_name_a_field_a_cache_already_reads(name: object) -> None:
    with pytest.raises(ContractError):
        check_cache_control_field(name)


@given(st.text(max_size=60))
def test_no_text_crashes_the_targeted_field_parser(value: str) -> None:
    parsed = parse_targeted(value)
    assert parsed is None or all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
