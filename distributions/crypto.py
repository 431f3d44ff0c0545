"""Secrets at rest and on their way to the edges.

At rest (the database's columns and the stored config versions) a secret is a Fernet token
under `settings.CDN_SECRET_KEYS` through `MultiFernet`: the first key encrypts, every key
decrypts, so a key is rotated by putting a new one first, running
`manage.py reencrypt_secrets`, then dropping the old one. On its way to an edge, a
document's S3 credentials and origin secrets are sealed again for that edge alone (`cdncontract.sealing`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from cdncontract import sealing
from cdncontract.errors import ContractError


class SecretsUnavailable(ImproperlyConfigured):
    """No key to encrypt with, or no key that opens a stored secret: the operator's to fix."""


def configured() -> bool:
    return bool(settings.CDN_SECRET_KEYS)


@functools.lru_cache(maxsize=4)
def _multi(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    if not configured():
        raise SecretsUnavailable("CDN_SECRET_KEYS is not set: secrets cannot be stored or read without it "
                                 "(docs/operations.md, 'Secrets at rest')")
    return _multi(tuple(settings.CDN_SECRET_KEYS))


def _unreadable() -> SecretsUnavailable:
    return SecretsUnavailable("a stored secret cannot be decrypted with any key of CDN_SECRET_KEYS (was a key "
                              "dropped before `manage.py reencrypt_secrets` ran?)")


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise _unreadable() from None


def rotate(token: str) -> str:
    """The same secret under the current first key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise _unreadable() from None


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; the model attribute is the plain text.

    `""` (no secret) is stored as is. The ciphertext differs on every save, so the column is
    never used in a lookup.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return decrypt(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


# ---- Credentials in config documents ----

def _credentials(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, tuple[str, ...]]]:
    """Every sealed block of the document that is set: (its parent, its key, its fields).

    An S3 origin's `s3.credentials` and any origin's `secrets` (client key, secret header value).
    """
    for distribution in document.get("distributions", []):
        for origin in distribution.get("origins", []):
            s3 = origin.get("s3")
            if isinstance(s3, dict) and s3.get("credentials") is not None:
                yield s3, "credentials", sealing.CREDENTIAL_FIELDS
            if origin.get("secrets") is not None:
                yield origin, "secrets", sealing.ORIGIN_SECRET_FIELDS


def seal_document(document: dict[str, Any]) -> dict[str, Any]:
    """A compiled document (secrets in clear, in memory only) as it is stored."""
    sealed = copy.deepcopy(document)
    for block, key, fields in _credentials(sealed):
        block[key] = sealing.seal(block[key], fernet(), fields)
    return sealed


def open_document(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document with its secrets in clear, to compare with a compiled one."""
    opened = copy.deepcopy(document)
    for block, key, fields in _credentials(opened):
        try:
            block[key] = sealing.unseal(block[key], fernet(), fields)
        except ContractError:
            raise _unreadable() from None
    return opened


def reencrypt_document(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document with its secrets under the current first key."""
    rotated = copy.deepcopy(document)
    for block, key, _fields in _credentials(rotated):
        block[key] = {"sealed": rotate(block[key]["sealed"])}
    return rotated


def document_for_edge(document: dict[str, Any], key_hex: str) -> dict[str, Any]:
    """A stored document as one edge receives it: its secrets sealed for that edge.

    `key_hex` is the edge's token hash (its signing key). Everything else is the stored
    document, byte for byte; a document without secrets is returned as it is.
    """
    if next(_credentials(document), None) is None:
        return document
    for_edge = copy.deepcopy(document)
    edge = sealing.edge_fernet(bytes.fromhex(key_hex))
    for block, key, _fields in _credentials(for_edge):
        try:
            block[key] = sealing.reseal(block[key], fernet(), edge)
        except InvalidToken:
            raise _unreadable() from None
    return for_edge
