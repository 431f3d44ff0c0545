"""The invalidation message the control plane sends (pushed to POST /invalidations and listed
in the heartbeat answer): `{"id", "distribution_id", "paths", "tags"}`.

The control plane keeps paths as the operator entered them (after checking they have a
normal form); the edge matches them in the normal form of request paths (paths.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .errors import ContractError
from .names import check_distribution_id
from .paths import check_invalidation, normalise_invalidation_path


class Invalidation(NamedTuple):
    id: int
    distribution_id: str
    paths: list[str]
    tags: list[str]


def parse_invalidation(raw: Any) -> Invalidation:
    """The message checked whole; ContractError's `where` names the field at fault."""
    if not isinstance(raw, dict):
        raise ContractError("an invalidation must be a JSON object")
    inv_id = raw.get("id")
    if not isinstance(inv_id, int) or isinstance(inv_id, bool) or inv_id < 1:
        raise ContractError("must be a positive integer", "id")
    distribution_id = raw.get("distribution_id")
    try:
        check_distribution_id(distribution_id)
    except ContractError as exc:
        raise ContractError(exc.problem, "distribution_id") from None
    paths, tags = raw.get("paths"), raw.get("tags")
    for field, values in (("paths", paths), ("tags", tags)):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ContractError("must be a list of strings", field)
    check_invalidation(paths, tags)
    assert isinstance(distribution_id, str) and isinstance(paths, list) and isinstance(tags, list)
    # Matched against normalised request paths, so normalised by the same rule.
    return Invalidation(inv_id, distribution_id, [normalise_invalidation_path(p) for p in paths], list(tags))
