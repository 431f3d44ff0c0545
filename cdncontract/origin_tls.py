"""TLS to custom origins: the SSL protocols setting and the PEM an operator enters (docs/edge-config.md).

`SSL_PROTOCOLS` are CloudFront's `OriginSslProtocols` values that a current TLS stack still
speaks (SSLv3, TLSv1 and TLSv1.1 are gone from OpenSSL's default security level). A CA
bundle is one or more PEM certificates; a client certificate is a PEM chain (leaf first)
whose leaf matches the PEM private key given with it. The checks parse with `cryptography`
and never repeat the key in a message.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import ContractError

SSL_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
DEFAULT_SSL_PROTOCOLS = SSL_PROTOCOLS
MAX_PEM = 64 * 1024


def check_ssl_protocols(value: object) -> tuple[str, ...]:
    """A non-empty list of distinct protocols from SSL_PROTOCOLS, returned in that order."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ContractError(f"must be a non-empty list of {', '.join(SSL_PROTOCOLS)}")
    for j, item in enumerate(value):
        if item not in SSL_PROTOCOLS:
            raise ContractError(f"must be one of {', '.join(SSL_PROTOCOLS)} (got {item!r})", f"[{j}]")
    if len(set(value)) != len(value):
        raise ContractError("must not repeat a protocol")
    return tuple(p for p in SSL_PROTOCOLS if p in value)


def _certificates(pem: object, what: str) -> list[x509.Certificate]:
    if not isinstance(pem, str):
        raise ContractError(f"{what} must be a string")
    if len(pem) > MAX_PEM:
        raise ContractError(f"{what} is larger than {MAX_PEM // 1024} KiB")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ContractError(f"{what} must be PEM certificates (-----BEGIN CERTIFICATE-----)") from None
    return certs


def check_ca_bundle(pem: object) -> None:
    """"" (the system store) or one or more PEM CA certificates."""
    if pem == "":
        return
    _certificates(pem, "the CA bundle")


def check_client_certificate(certificate: object, key: object) -> None:
    """Both empty, or a PEM chain and an unencrypted PEM private key that belongs to its first certificate."""
    if certificate == "" and key == "":
        return
    if certificate == "" or key == "":
        raise ContractError("a client certificate and its private key go together")
    leaf = _certificates(certificate, "the client certificate")[0]
    if not isinstance(key, str) or len(key) > MAX_PEM:
        raise ContractError("the client key must be a PEM private key")
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError):
        raise ContractError("the client key must be an unencrypted PEM private key") from None
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private.public_key().public_bytes(*fmt) != leaf.public_key().public_bytes(*fmt):
        raise ContractError("the client key does not belong to the client certificate")


def protocol_bounds(protocols: Sequence[str]) -> tuple[str, str]:
    """The lowest and highest protocol of a checked list, as ssl.TLSVersion member names."""
    names = [p.replace("TLSv1.", "TLSv1_") for p in SSL_PROTOCOLS if p in protocols]
    return names[0], names[-1]
