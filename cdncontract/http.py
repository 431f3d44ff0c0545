"""Status codes and method lists of the document, and the HTTP-date grammar.

Error codes and failover codes are CloudFront's. A custom error response may answer with
any final status, 200-599: CloudFront offers only final statuses there, and a 1xx status
cannot carry the error page.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

from .errors import ContractError

FAILOVER_CODES = (400, 403, 404, 416, 500, 502, 503, 504)
ERROR_CODES = (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504)
RESPONSE_CODES = range(200, 600)

# The method lists a behavior may allow and cache, by the name the API uses.
METHOD_LISTS: dict[str, tuple[str, ...]] = {
    "GET_HEAD": ("GET", "HEAD"),
    "GET_HEAD_OPTIONS": ("GET", "HEAD", "OPTIONS"),
    "ALL": ("GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"),
}
ALLOWED_METHOD_LISTS = ("GET_HEAD", "GET_HEAD_OPTIONS", "ALL")
CACHED_METHOD_LISTS = ("GET_HEAD", "GET_HEAD_OPTIONS")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_failover_codes(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise ContractError(f"failover_status_codes must be a non-empty list drawn from {list(FAILOVER_CODES)}")
    for index, code in enumerate(value):
        if not _is_int(code) or code not in FAILOVER_CODES:
            raise ContractError(f"{code!r} is not a failover status code; allowed: {list(FAILOVER_CODES)}",
                                f"[{index}]")
    if len(set(value)) != len(value):
        raise ContractError("failover_status_codes lists a code twice")


def check_error_code(code: Any) -> None:
    if not _is_int(code) or code not in ERROR_CODES:
        raise ContractError(f"error_code {code!r} is not one of {list(ERROR_CODES)}")


def check_response_code(error_code: int, response_code: Any, page: str) -> None:
    """The status a custom error page is answered with; None keeps the error's own."""
    if response_code is None:
        return
    if not _is_int(response_code) or response_code not in RESPONSE_CODES:
        raise ContractError(f"response_code for {error_code} must be an HTTP status between "
                            f"{RESPONSE_CODES[0]} and {RESPONSE_CODES[-1]}")
    if not page:
        raise ContractError(f"response_code for {error_code} needs a response_page_path")


def check_method_lists(allowed: tuple[str, ...], cached: tuple[str, ...]) -> None:
    """Allowed and cached methods as listed; `where` names the field at fault."""
    if allowed not in (METHOD_LISTS[name] for name in ALLOWED_METHOD_LISTS):
        raise ContractError("allowed_methods must be one of "
                            + " or ".join(str(list(METHOD_LISTS[n])) for n in ALLOWED_METHOD_LISTS),
                            "allowed_methods")
    if cached not in (METHOD_LISTS[name] for name in CACHED_METHOD_LISTS):
        raise ContractError("cached_methods must be one of "
                            + " or ".join(str(list(METHOD_LISTS[n])) for n in CACHED_METHOD_LISTS),
                            "cached_methods")
    if not set(cached) <= set(allowed):
        raise ContractError("OPTIONS can only be cached when allowed_methods includes OPTIONS", "cached_methods")


# ---- HTTP-date (RFC 9110 5.6.7) ----
#
# The one date grammar of both halves. IMF-fixdate, and the two obsolete forms a recipient
# must still accept (rfc850-date, asctime-date). Anything else is not a date: a time zone
# other than GMT, a two-digit year outside rfc850-date, a missing comma, dashes outside
# rfc850-date, periods in the time, one-digit hours, runs of spaces, several values. Names
# are compared without regard to case, as the cache-tests suite's "optimal" caches do.

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
_IMF_FIXDATE = re.compile(rf"{_DAY}, (?P<day>\d\d) {_MONTH} (?P<year>\d{{4}}) {_TIME} GMT", re.IGNORECASE | re.ASCII)
_RFC850_DATE = re.compile(rf"{_LONG_DAY}, (?P<day>\d\d)-{_MONTH}-(?P<year>\d\d) {_TIME} GMT", re.IGNORECASE | re.ASCII)
_ASCTIME_DATE = re.compile(rf"{_DAY} {_MONTH} (?P<day>[ \d]\d) {_TIME} (?P<year>\d{{4}})", re.IGNORECASE | re.ASCII)
_MONTHS = {name: index for index, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}


def parse_http_date(value: str, now: float | None = None) -> float | None:
    """An HTTP-date as a Unix time, or None when `value` is not one.

    An rfc850-date's two-digit year is the most recent year with those digits that is not
    more than 50 years after `now` (RFC 9110 5.6.7; `now` defaults to the clock).
    """
    match = _IMF_FIXDATE.fullmatch(value) or _ASCTIME_DATE.fullmatch(value)
    two_digit = False
    if match is None:
        match = _RFC850_DATE.fullmatch(value)
        two_digit = True
        if match is None:
            return None
    year = int(match["year"])
    if two_digit:
        this_year = time.gmtime(time.time() if now is None else now).tm_year
        year += this_year - this_year % 100
        if year > this_year + 50:
            year -= 100
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"])
    if hour > 23 or minute > 59 or second > 60:
        return None
    try:
        moment = datetime.datetime(year, _MONTHS[match["month"].lower()], int(match["day"].strip()),
                                   hour, minute, min(second, 59), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return moment.timestamp()
