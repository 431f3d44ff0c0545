"""Secrets at rest: re-encryption under the current first key of CDN_SECRET_KEYS."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from .. import crypto
from ..models import ConfigVersion, Origin


@transaction.atomic
def secrets_reencrypt() -> tuple[int, int]:
    """Re-encrypt every stored secret with the first key; returns (origins, config versions) rewritten.

    The origins' columns are read (decrypted with any key) and written back (encrypted with
    the first); the stored config versions keep their meaning and their number: only the
    sealed credentials in them change, so this publishes nothing and is safe to run twice.
    """
    origins = 0
    columns = ("secret_access_key", "session_token", "client_key", "secret_header_value")
    stored = Q()
    for column in columns:
        stored |= ~Q(**{column: ""})
    for origin in Origin.objects.select_for_update().filter(stored).only("pk", *columns):
        Origin.objects.filter(pk=origin.pk).update(**{column: getattr(origin, column) for column in columns})
        origins += 1
    versions = 0
    for version in ConfigVersion.objects.select_for_update().only("pk", "document"):
        rotated = crypto.reencrypt_document(version.document)
        if rotated != version.document:
            ConfigVersion.objects.filter(pk=version.pk).update(document=rotated)  # immutable meaning, new key
            versions += 1
    return origins, versions
