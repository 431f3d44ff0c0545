"""Domain errors of the edge: why a config document is refused, whoever offered it.

`Agent.apply_config` raises them; the admin API (a push) and the control-plane link (a
fetch) both catch them, and neither owns them.
"""

from __future__ import annotations


class StaleConfigError(Exception):
    """A config document is older than the running one (the admin API answers 409)."""


class InvalidDocumentError(Exception):
    """A config document fails validation (the admin API answers 400); the message names the field path."""
