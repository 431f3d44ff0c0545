"""What a service refuses, in words an API client or an admin user can act on."""

from __future__ import annotations

from typing import Any


class Conflict(Exception):
    """A request that clashes with existing state (HTTP 409); `detail` names what it clashes with."""

    def __init__(self, detail: str, **conflict: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.conflict = conflict

