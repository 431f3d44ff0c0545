"""Limits of the protocol between the two halves that no single field owns.

JSON depth (every JSON body either side reads), integers the control plane can store,
the clock skew the fleet tolerates, and how many access log lines an edge keeps for the
control plane to read.
"""

from __future__ import annotations

import json
from typing import Any

# The deepest document of the protocol (an edge config: document, distributions, a
# distribution, its behaviors, a behavior, its cache key, a list of names) is under ten
# levels; anything far deeper is an attack on the parsers' recursion, refused as bad input.
MAX_JSON_DEPTH = 64

# What a PostgreSQL bigint (Django's BigIntegerField and PositiveBigIntegerField) holds.
MAX_DB_INTEGER = 2**63 - 1

# How far two clocks of the fleet may disagree: signed admin requests and stats reports.
CLOCK_SKEW_SECONDS = 300

# Access log lines an edge keeps per distribution for GET /logs/tail: the most one read returns.
MAX_TAIL_RECORDS = 1000


class JSONTooDeepError(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH; a ValueError like every other malformed body."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _too_deep(value: Any) -> bool:
    """Walk the parsed value one level at a time: linear, and no recursion to exhaust."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 1
    while level:
        if depth > MAX_JSON_DEPTH:
            return True
        children: list[Any] = []
        for node in level:
            children.extend(node.values() if isinstance(node, dict) else node)
        level = [child for child in children if isinstance(child, (dict, list))]
        depth += 1
    return False


def load_json(data: str | bytes, **kwargs: Any) -> Any:
    """`json.loads` that refuses nesting past MAX_JSON_DEPTH with JSONTooDeepError.

    The C decoder raises RecursionError far past the limit (a 500 wherever it escapes);
    anything that parses is then checked against the limit itself, so the answer does not
    depend on how deep the caller's own stack already is.
    """
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:
        raise JSONTooDeepError() from None
    if _too_deep(value):
        raise JSONTooDeepError()
    return value
