"""The textual format of a cache key (docs/caching.md, "Cache key").

A key is the distribution id, the method class and the path, then (only when the cache
policy selects them) the query string, headers, cookies and normalised Accept-Encoding,
each part behind SEPARATOR and a one-letter tag. A request target can never contain NUL,
so parts cannot run into each other, and the distribution id is everything before the
first SEPARATOR, which is how an invalidation finds a distribution's keys.
"""

from __future__ import annotations

SEPARATOR = "\x00"
# GET and HEAD share objects (a HEAD is answered from the GET's entry); OPTIONS has its own.
METHOD_CLASSES = {"GET": "G", "HEAD": "G", "OPTIONS": "O"}
# What starts each optional part, in this order.
QUERY = SEPARATOR + "q"
HEADERS = SEPARATOR + "h"
COOKIES = SEPARATOR + "c"
ENCODING = SEPARATOR + "e"
HEADER_ABSENT = "\x01"  # after a selected header's name when the request has none
HEADER_JOIN = "\x02"  # between the selected headers


def prefix(distribution_id: str, method: str) -> str:
    """Everything of the key before the path."""
    return f"{distribution_id}{SEPARATOR}{METHOD_CLASSES.get(method, method)}{SEPARATOR}"


def distribution_prefix(distribution_id: str) -> str:
    """What every key of the distribution starts with, and no other distribution's key."""
    return distribution_id + SEPARATOR


def distribution_of(key: str) -> str:
    """The distribution id a key belongs to."""
    return key.split(SEPARATOR, 1)[0]
