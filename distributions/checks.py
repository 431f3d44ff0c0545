"""System checks: a control plane that stores secrets refuses to run without the keys to read them."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import DatabaseError


@checks.register(checks.Tags.database)
def secret_keys_present(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Run by `migrate` and `check --database default`: stored secrets and no CDN_SECRET_KEYS."""
    from . import crypto
    from .models import Origin

    if crypto.configured() or not databases:
        return []
    try:
        stored = Origin.objects.exclude(secret_access_key="").exists()
    except DatabaseError:  # before the first migration: nothing is stored yet
        return []
    if not stored:
        return []
    return [checks.Error(
        "S3 credentials are stored, encrypted, and CDN_SECRET_KEYS is not set",
        hint="set CDN_SECRET_KEYS (or CDN_SECRET_KEYS_FILE) to the keys they were encrypted with "
             "(docs/operations.md, 'Secrets at rest')",
        id="distributions.E001",
    )]
