"""Limits of the protocol between the two halves, defined once and imported by both.

The module is Django-free because the edge never imports Django; the control plane's API
imports it (as `distributions/compiler.py` imports `edgeagent.config`), so what the edge
sends and what the control plane accepts cannot drift apart.
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

# Edges count traffic in intervals of this length aligned to Unix time; the control plane
# accepts no other length, so one window can never be re-sent as several shorter ones.
STATS_INTERVAL_SECONDS = 10
STATS_INTERVALS = frozenset({STATS_INTERVAL_SECONDS})
# One counter of one interval report: 2**48 bytes in 10 s is 28 TB/s, beyond any edge, and an
# hour row sums at most 360 reports of one edge, so it stays far within MAX_DB_INTEGER.
MAX_STATS_COUNTER = 2**48 - 1

# How far two clocks of the fleet may disagree: signed admin requests and stats reports.
CLOCK_SKEW_SECONDS = 300


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
