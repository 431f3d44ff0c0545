"""Signed URLs and signed cookies (CloudFront's private content): the names and limits both halves use.

The control plane stores public keys and key groups and lets a cache behavior trust key
groups; the edge checks every request on such a behavior. What both must agree on is here:
the public key id syntax, which keys are acceptable (`check_public_key`: PEM, RSA of at
least 2048 bits or EC P-256, as CloudFront accepts), how many keys a group and how many
groups a behavior may hold, and CloudFront's wire format (the query parameters, the cookie
names, the URL-safe base64 alphabet), so that URLs and cookies made by CloudFront's own
tools (botocore's `CloudFrontSigner`, `aws cloudfront sign`) work unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import ContractError

# `K` + 13 uppercase letters or digits, like CloudFront's (`K2JCJMDEHXQW5F`).
PUBLIC_KEY_ID = re.compile(r"^K[A-Z0-9]{13}$")
# Key groups are named by a UUID, like CloudFront's.
KEY_GROUP_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# CloudFront's quotas: public keys in one key group, key groups trusted by one cache behavior.
MAX_KEYS_PER_GROUP = 5
MAX_GROUPS_PER_BEHAVIOR = 4
MAX_PUBLIC_KEY_PEM = 8 * 1024
MIN_RSA_BITS = 2048

KIND_RSA = "rsa"
KIND_ECDSA = "ecdsa"

# The query parameters of a signed URL; none of them reaches the origin or the cache key.
EXPIRES, POLICY, SIGNATURE, KEY_PAIR_ID, HASH_ALGORITHM = "Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"
QUERY_PARAMETERS = frozenset({EXPIRES, POLICY, SIGNATURE, KEY_PAIR_ID, HASH_ALGORITHM})
# The same as signed cookies.
COOKIE_PREFIX = "CloudFront-"
COOKIE_NAMES = frozenset(COOKIE_PREFIX + name for name in QUERY_PARAMETERS)
# `Hash-Algorithm`: RSA signs SHA-1 unless it says SHA256; ECDSA keys always sign SHA-256.
HASH_ALGORITHMS = ("SHA1", "SHA256")

# CloudFront's URL-safe base64: `+` -> `-`, `=` -> `_`, `/` -> `~`.
_TO_STANDARD = str.maketrans("-_~", "+=/")
_TO_URL_SAFE = str.maketrans("+=/", "-_~")


def b64decode(value: str) -> bytes:
    """CloudFront's URL-safe base64 to bytes; ValueError for anything else.

    A value a client percent-encoded (`%7E` for `~`) is decoded first; the standard alphabet
    is taken too (it can only come from a client that re-encoded CloudFront's).
    """
    if "%" in value:
        value = unquote(value)
    try:
        return base64.b64decode(value.translate(_TO_STANDARD).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not CloudFront's URL-safe base64") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").translate(_TO_URL_SAFE)


def check_public_key_id(value: object) -> None:
    if not isinstance(value, str) or not PUBLIC_KEY_ID.fullmatch(value):
        raise ContractError("a public key id is K followed by 13 uppercase letters or digits")


def check_key_group_id(value: object) -> None:
    if not isinstance(value, str) or not KEY_GROUP_ID.fullmatch(value):
        raise ContractError("a key group id is a lowercase UUID")


def load_public_key(pem: object) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The key of a PEM public key CloudFront would accept, or ContractError saying why not."""
    if not isinstance(pem, str) or not pem.strip():
        raise ContractError("must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    if len(pem) > MAX_PUBLIC_KEY_PEM:
        raise ContractError(f"is larger than {MAX_PUBLIC_KEY_PEM // 1024} KiB")
    if "PRIVATE KEY" in pem:
        raise ContractError("is a private key: upload only the public key (openssl pkey -pubout)")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        raise ContractError("must be a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ContractError(f"is an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ContractError(f"is an EC key on {key.curve.name}; only P-256 (prime256v1) is accepted")
        return key
    raise ContractError("must be an RSA (2048 bits or more) or EC P-256 public key")


def check_public_key(pem: object) -> str:
    """The key's kind, KIND_RSA or KIND_ECDSA, or ContractError."""
    return KIND_RSA if isinstance(load_public_key(pem), rsa.RSAPublicKey) else KIND_ECDSA


def check_trusted_key_groups(count: int) -> None:
    if count > MAX_GROUPS_PER_BEHAVIOR:
        raise ContractError(f"a cache behavior trusts at most {MAX_GROUPS_PER_BEHAVIOR} key groups")


def check_group_keys(count: int) -> None:
    if count < 1:
        raise ContractError("a key group holds at least one public key")
    if count > MAX_KEYS_PER_GROUP:
        raise ContractError(f"a key group holds at most {MAX_KEYS_PER_GROUP} public keys")
