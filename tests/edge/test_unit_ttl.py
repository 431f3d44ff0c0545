"""policy.decide: which responses are stored and for how long (CloudFront over RFC 9111),
plus age and freshness arithmetic and the freshness verdict."""

from __future__ import annotations

from dataclasses import replace
from email.utils import formatdate

import pytest

from edgeagent.config import CachePolicy, ErrorResponse, NameSelector
from edgeagent.policy import CANNOT_REUSE, FRESH, REVALIDATE, SERVE_STALE, Decision, age, decide, freshness, \
    is_fresh, parse_cache_control, parse_http_date, stale_if_error, surrogate_keys, within_stale_if_error, \
    within_stale_while_revalidate
from edgeagent.store import ObjectMeta

NOW = 1_700_000_000.0
NONE = NameSelector("none", (), frozenset())


def cp(min_ttl: int = 0, default_ttl: int = 86400, max_ttl: int = 31536000,
       cookies: NameSelector = NONE) -> CachePolicy:
    return CachePolicy(id="p", name="p", min_ttl=min_ttl, default_ttl=default_ttl,
                       max_ttl=max_ttl, query_strings=NONE, headers=NONE, cookies=cookies,
                       enable_gzip=False, enable_brotli=False)


def d(status: int = 200, policy: CachePolicy | None = None, method: str = "GET",
      error: ErrorResponse | None = None, **headers: str) -> Decision:
    return decide(status, {k.replace("_", "-"): v for k, v in headers.items()},
                  policy or cp(), method, NOW, error)


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


# ---- TTL sources ----


def test_the_default_ttl_applies_when_the_origin_says_nothing() -> None:
    got = d(policy=cp(default_ttl=300))
    assert got.cacheable and got.ttl == 300


def test_max_age_sets_the_ttl() -> None:
    assert d(cache_control="max-age=120").ttl == 120


def test_s_maxage_wins_over_max_age() -> None:
    assert d(cache_control="max-age=120, s-maxage=30").ttl == 30


def test_expires_sets_the_ttl_relative_to_date() -> None:
    got = d(expires=http_date(NOW + 600), date=http_date(NOW - 100))
    assert got.ttl == 700


def test_expires_without_date_is_relative_to_now() -> None:
    assert d(expires=http_date(NOW + 600)).ttl == 600


def test_max_age_wins_over_expires() -> None:
    assert d(cache_control="max-age=5", expires=http_date(NOW + 600)).ttl == 5


def test_an_invalid_expires_means_already_expired() -> None:
    got = d(expires="0", etag='"v1"')
    assert got.cacheable and got.ttl == 0


def test_an_expired_response_without_validators_is_not_stored() -> None:
    got = d(expires=http_date(NOW - 10))
    assert not got.cacheable


def test_max_age_zero_with_a_validator_is_stored_to_be_revalidated() -> None:
    got = d(cache_control="max-age=0", last_modified=http_date(NOW - 1000))
    assert got.cacheable and got.ttl == 0


def test_an_invalid_max_age_counts_as_absent() -> None:
    assert d(policy=cp(default_ttl=42), cache_control="max-age=soon").ttl == 42


# ---- Clamping to the policy ----


def test_origin_ttls_are_clamped_to_the_policy_minimum() -> None:
    assert d(policy=cp(min_ttl=60, default_ttl=60), cache_control="max-age=5").ttl == 60


def test_origin_ttls_are_clamped_to_the_policy_maximum() -> None:
    assert d(policy=cp(max_ttl=100, default_ttl=50), cache_control="max-age=5000").ttl == 100


def test_expires_is_clamped_too() -> None:
    assert d(policy=cp(max_ttl=100, default_ttl=50), expires=http_date(NOW + 5000)).ttl == 100


# ---- no-store, no-cache, private ----


@pytest.mark.parametrize("directive", ["no-store", "private", 'private="set-cookie"', "no-store, max-age=60"])
def test_no_store_and_private_are_honoured_when_min_ttl_is_zero(directive: str) -> None:
    got = d(cache_control=directive)
    assert not got.cacheable and got.reason == "no-store"


@pytest.mark.parametrize("directive", ["no-cache", "no-cache, max-age=60", 'no-cache="set-cookie"'])
def test_no_cache_is_stored_to_be_revalidated_on_every_use_when_min_ttl_is_zero(directive: str) -> None:
    got = d(cache_control=directive + ", stale-if-error=60", etag='"v1"')
    assert got.cacheable and got.ttl == 0 and got.must_revalidate and got.stale_if_error == 0


def test_no_cache_without_a_validator_is_not_worth_storing() -> None:
    got = d(cache_control="no-cache")
    assert not got.cacheable and got.reason == "ttl-0"


@pytest.mark.parametrize("directive", ["no-store", "no-cache", "private"])
def test_no_store_no_cache_and_private_are_cached_for_min_ttl_like_cloudfront(
        directive: str) -> None:
    got = d(policy=cp(min_ttl=30, default_ttl=60), cache_control=directive)
    assert got.cacheable and got.ttl == 30


def test_cache_control_directives_are_case_insensitive() -> None:
    assert not d(cache_control="No-Store").cacheable
    assert d(cache_control="MAX-AGE=7").ttl == 7


# ---- Other refusals ----


def test_caching_disabled_policies_store_nothing() -> None:
    got = d(policy=cp(0, 0, 0), cache_control="max-age=600")
    assert not got.cacheable and got.reason == "disabled"


def test_set_cookie_responses_are_never_stored_even_with_cookies_in_the_key() -> None:
    assert d(set_cookie="s=1").reason == "set-cookie"
    all_cookies = NameSelector("all", (), frozenset())
    got = d(policy=cp(cookies=all_cookies, min_ttl=60), set_cookie="s=1")
    assert not got.cacheable and got.reason == "set-cookie"


def test_vary_star_is_not_stored() -> None:
    got = d(vary="Accept, *")
    assert not got.cacheable and got.reason == "vary-star"
    assert d(vary="Accept-Encoding").cacheable


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_only_safe_methods_are_stored(method: str) -> None:
    assert not d(method=method, cache_control="max-age=60").cacheable


def test_options_and_head_responses_may_be_stored() -> None:
    assert d(method="OPTIONS").cacheable
    assert d(method="HEAD").cacheable


# ---- Statuses ----


@pytest.mark.parametrize("status", [200, 203, 300, 301, 410])
def test_cloudfront_cacheable_statuses_use_the_policy_ttls(status: int) -> None:
    got = d(status, cache_control="max-age=77")
    assert got.cacheable and got.ttl == 77


@pytest.mark.parametrize("status", [201, 204, 206, 302, 303, 307, 308, 400, 401, 403, 405,
                                    416, 429])
def test_other_statuses_are_not_stored_without_a_custom_error_response(status: int) -> None:
    assert not d(status, cache_control="max-age=77").cacheable


@pytest.mark.parametrize("status", [404, 414, 500, 501, 502, 503, 504])
def test_errors_are_cached_for_ten_seconds_by_default(status: int) -> None:
    got = d(status)
    assert got.cacheable and got.ttl == 10


def test_an_error_with_an_explicit_max_age_uses_it_clamped() -> None:
    assert d(404, cache_control="max-age=120").ttl == 120
    assert d(404, policy=cp(max_ttl=60, default_ttl=60), cache_control="max-age=120").ttl == 60


def test_an_error_marked_no_store_is_not_cached_when_min_ttl_is_zero() -> None:
    assert not d(503, cache_control="no-store").cacheable
    assert d(503, policy=cp(min_ttl=5, default_ttl=5), cache_control="no-store").ttl == 10


def test_a_custom_error_response_sets_the_error_caching_ttl() -> None:
    er = ErrorResponse(error_code=403, response_page_path="", response_code=None,
                       error_caching_min_ttl=300)
    got = d(403, error=er, cache_control="no-store")
    assert got.cacheable and got.ttl == 300


def test_a_custom_error_response_with_ttl_zero_disables_error_caching() -> None:
    er = ErrorResponse(error_code=404, response_page_path="", response_code=None,
                       error_caching_min_ttl=0)
    assert not d(404, error=er).cacheable


def test_errors_are_not_cached_under_a_caching_disabled_policy_by_default() -> None:
    assert not d(500, policy=cp(0, 0, 0)).cacheable


# ---- RFC 5861 and revalidation flags ----


def test_stale_directives_are_read() -> None:
    got = d(cache_control="max-age=10, stale-while-revalidate=30, stale-if-error=600")
    assert (got.ttl, got.stale_while_revalidate, got.stale_if_error) == (10, 30, 600)
    assert not got.must_revalidate


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate"])
def test_must_revalidate_forbids_serving_stale(directive: str) -> None:
    got = d(cache_control=f"max-age=10, {directive}, stale-while-revalidate=30, "
                          "stale-if-error=60")
    assert got.must_revalidate
    assert got.stale_while_revalidate == 0 and got.stale_if_error == 0


def test_s_maxage_implies_proxy_revalidate_and_withdraws_the_stale_directives() -> None:
    got = d(cache_control="s-maxage=10, stale-while-revalidate=30, stale-if-error=60")
    assert (got.ttl, got.stale_while_revalidate, got.stale_if_error) == (10, 0, 0)
    assert got.must_revalidate


def test_immutable_neither_extends_freshness_nor_forbids_revalidation() -> None:
    got = d(cache_control="max-age=10, immutable", etag='"a"')
    assert got.ttl == 10 and not got.must_revalidate


def test_stale_if_error_alone_makes_an_expired_response_worth_keeping() -> None:
    got = d(cache_control="max-age=0, stale-if-error=60")
    assert got.cacheable and got.ttl == 0 and got.stale_if_error == 60


# ---- Parsing helpers ----


def test_cache_control_parsing_handles_quotes_and_spacing() -> None:
    cc = parse_cache_control(' max-age = 5 , no-cache="set-cookie, x", Private ')
    assert cc == {"max-age": "5", "no-cache": "set-cookie, x", "private": ""}
    assert parse_cache_control(None) == {}


def test_the_first_occurrence_of_a_directive_wins() -> None:
    assert parse_cache_control("max-age=5, max-age=10")["max-age"] == "5"


@pytest.mark.parametrize("value", ["Sun, 06 Nov 1994 08:49:37 GMT",
                                   "Sunday, 06-Nov-94 08:49:37 GMT",
                                   "Sun Nov  6 08:49:37 1994"])
def test_all_three_http_date_formats_parse(value: str) -> None:
    assert parse_http_date(value) == 784111777.0


def test_an_invalid_http_date_is_none() -> None:
    assert parse_http_date("yesterday") is None
    assert parse_http_date("") is None


def test_surrogate_keys_are_space_separated() -> None:
    assert surrogate_keys(" a  b\tc ") == frozenset({"a", "b", "c"})
    assert surrogate_keys(None) == frozenset()


# ---- Age and freshness ----


def test_age_adds_the_origin_age_to_time_in_cache() -> None:
    assert age(NOW - 30.7, NOW, 5) == 35
    assert age(NOW + 3, NOW, 0) == 0


def test_freshness_windows() -> None:
    assert is_fresh(60, 59) and not is_fresh(60, 60)
    assert within_stale_while_revalidate(60, 30, 89)
    assert not within_stale_while_revalidate(60, 30, 90)
    assert within_stale_if_error(60, 600, 659)
    assert not within_stale_if_error(60, 0, 60)


# ---- policy.freshness and policy.stale_if_error: the one verdict on reusing a stored object ----


def stored(age_now: int, ttl: int = 10, swr: int = 0, sie: int = 0, etag: str | None = None,
           last_modified: str | None = None, origin_age: int = 0) -> ObjectMeta:
    """A stored object whose current age at NOW is `age_now`."""
    return ObjectMeta(distribution_id="E", path="/p", status=200, headers=(), ttl=ttl,
                      stored_at=NOW - (age_now - origin_age), origin_age=origin_age,
                      stale_while_revalidate=swr, stale_if_error=sie, etag=etag,
                      last_modified=last_modified)


@pytest.mark.parametrize(("meta", "verdict"), [
    (stored(9), FRESH),
    (stored(9, origin_age=5), FRESH),
    (stored(10), CANNOT_REUSE),
    (stored(10, etag='"a"'), REVALIDATE),
    (stored(10, last_modified="Tue, 01 Dec 2026 10:00:00 GMT"), REVALIDATE),
    (stored(14, swr=5, etag='"a"'), SERVE_STALE),
    (stored(15, swr=5, etag='"a"'), REVALIDATE),
    (stored(0, ttl=0, etag='"a"'), REVALIDATE),
])  # fmt: skip
def test_the_freshness_verdict_and_the_age_it_was_taken_at(meta: ObjectMeta, verdict: int) -> None:
    assert freshness(meta, NOW) == (verdict, age(meta.stored_at, NOW, meta.origin_age))


def test_an_object_that_must_be_revalidated_never_stands_in_for_an_origin_failure() -> None:
    meta = replace(stored(1000, sie=5000), must_revalidate=True)
    assert not stale_if_error(meta, NOW, None)
    assert not stale_if_error(meta, NOW, 503)


def test_a_stale_object_stands_in_for_an_unreachable_origin_always_and_for_a_5xx_within_its_window() -> None:
    assert stale_if_error(stored(1000), NOW, None)
    assert stale_if_error(stored(14, sie=5), NOW, 503)
    assert not stale_if_error(stored(15, sie=5), NOW, 503)
    assert not stale_if_error(stored(14, sie=5), NOW, 404)
