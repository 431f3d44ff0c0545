"""How an origin's secrets travel to one edge: sealed for that edge (docs/edge-config.md).

Two kinds of block are sealed: an S3 origin's `credentials` (CREDENTIAL_FIELDS) and a custom
origin's `secrets` (ORIGIN_SECRET_FIELDS: the TLS client key and the secret header's value).

The control plane seals them with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`)
under a key derived with HKDF-SHA256 from the edge's signing key, SHA-256(token), which the
control plane stores as the token's hash and the edge computes from its token. A captured
push or pull answer, or a copy of an edge's persisted config, is useless without that token,
and each edge can open only what was sealed for it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ContractError

_INFO = b"selfhosted-cdn: s3 credentials sealed for one edge, v1"
CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "session_token")
ORIGIN_SECRET_FIELDS = ("client_key", "secret_header_value")


def edge_fernet(signing_key: bytes) -> Fernet:
    """The sealing key of the edge whose admin requests are signed with `signing_key`."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(signing_key)
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(credentials: dict[str, str], fernet: Fernet,
         fields: tuple[str, ...] = CREDENTIAL_FIELDS) -> dict[str, str]:
    """The document's `credentials` (or `secrets`) object: `{"sealed": <Fernet token>}`."""
    plain = json.dumps({name: credentials[name] for name in fields}, separators=(",", ":"))
    return {"sealed": fernet.encrypt(plain.encode()).decode()}


def unseal(sealed: object, fernet: Fernet, fields: tuple[str, ...] = CREDENTIAL_FIELDS) -> dict[str, str]:
    """The credentials of a `{"sealed": ...}` object; ContractError (never showing them) otherwise."""
    if not isinstance(sealed, dict) or set(sealed) != {"sealed"} or not isinstance(sealed["sealed"], str):
        raise ContractError('must be null or {"sealed": <token>}')
    try:
        plain = json.loads(fernet.decrypt(sealed["sealed"].encode()))
    except InvalidToken:
        raise ContractError("cannot be opened with this edge's token (sealed for another edge?)") from None
    except ValueError:
        raise ContractError("does not hold credentials") from None
    if not isinstance(plain, dict) or set(plain) != set(fields) or not all(isinstance(v, str) for v in plain.values()):
        raise ContractError("does not hold credentials")
    return {name: plain[name] for name in fields}


def reseal(sealed: Any, opener: Any, fernet: Fernet) -> dict[str, str]:
    """`sealed` opened with `opener` (anything with Fernet's `decrypt`) and sealed again for `fernet`."""
    return {"sealed": fernet.encrypt(opener.decrypt(sealed["sealed"].encode())).decode()}
