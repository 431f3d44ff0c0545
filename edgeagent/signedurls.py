"""Signed URLs and signed cookies: CloudFront's private content, checked in the admission step.

A cache behavior that trusts key groups (`Behavior.signing`) serves only requests carrying
a valid signature, either in the query (`Expires` or `Policy`, `Signature`, `Key-Pair-Id`,
optionally `Hash-Algorithm`) or in cookies (the same names prefixed `CloudFront-`); the
query wins when it carries any of them. The formats are CloudFront's, so URLs and cookies
made by botocore's `CloudFrontSigner` or `aws cloudfront sign` work unchanged:

- canned policy: the edge rebuilds the policy CloudFront's tools sign,
  `{"Statement":[{"Resource":"<url>","Condition":{"DateLessThan":{"AWS:EpochTime":<Expires>}}}]}`,
  with the request's own URL as the resource, and verifies the signature over it;
- custom policy: `Policy` is that JSON in CloudFront's URL-safe base64; the signature is
  over its bytes as sent; one statement with a `Resource` (wildcards `*` and `?`; absent
  means any), `DateLessThan` (required), `DateGreaterThan` and `IpAddress` (CIDR) optional.

The resource is the URL the viewer asked for: `<scheme>://<Host header><path>` and its
query without the signing parameters (in the viewer's order and encoding, as signed).
Signatures are RSA PKCS#1 v1.5 over SHA-1 (or SHA-256 with `Hash-Algorithm=SHA256`) and
ECDSA P-256 over SHA-256, verified by `cryptography`; nothing here computes a signature.

Everything here is a pure function of the request and `now`. A verified (key, message,
signature) triple is remembered (bounded), so a hit on a URL seen before costs a parse, a
dict lookup and the time and address conditions rather than a public-key operation
(docs/performance.md, "Signed URLs").
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cdncontract import signed_urls as rules

_PKCS1 = padding.PKCS1v15()
_SHA1 = hashes.SHA1()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_MEMO_LIMIT = 4096
_MAX_POLICY = 4096  # bytes of a decoded custom policy; CloudFront's own URLs are far shorter


@dataclass(frozen=True, slots=True, eq=False)
class TrustedKey:
    """A public key a distribution knows, parsed once per distinct PEM (`trusted_key`)."""

    id: str
    kind: str
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = field(repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class Signing:
    """What a behavior that trusts key groups checks: the keys of its groups, and every key
    the distribution knows (a known key outside the groups is refused with its own reason)."""

    trusted: dict[str, TrustedKey]
    known: frozenset[str]


_KEYS: dict[tuple[str, str], TrustedKey] = {}


def trusted_key(key_id: str, pem: str) -> TrustedKey:
    """The parsed key, shared by every config that carries the same id and PEM (a config
    swap does not parse the fleet's keys again, and the verification memo stays warm)."""
    found = _KEYS.get((key_id, pem))
    if found is None:
        key = rules.load_public_key(pem)  # ContractError for anything the control plane would refuse
        kind = rules.KIND_RSA if isinstance(key, rsa.RSAPublicKey) else rules.KIND_ECDSA
        found = TrustedKey(key_id, kind, key)
        if len(_KEYS) >= _MEMO_LIMIT:
            _KEYS.clear()
        _KEYS[(key_id, pem)] = found
    return found


class Verdict:
    """The outcome of `check`: `key_id` when it passed, otherwise `reason` (for the edge log)."""

    __slots__ = ("ok", "key_id", "reason")

    def __init__(self, ok: bool, key_id: str = "", reason: str = "") -> None:
        self.ok = ok
        self.key_id = key_id
        self.reason = reason


def _refuse(reason: str, key_id: str = "") -> Verdict:
    return Verdict(False, key_id, reason)


# ---- The request's signing parameters ----


def split_query(query: str) -> tuple[dict[str, str], str]:
    """The signing parameters of a query (raw values) and the query without them, order kept."""
    if not query or ("Signature=" not in query and "Key-Pair-Id=" not in query and "Expires=" not in query
                     and "Policy=" not in query and "Hash-Algorithm=" not in query):
        return {}, query
    found: dict[str, str] = {}
    rest = []
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        if name in rules.QUERY_PARAMETERS:
            found.setdefault(name, value)
        elif piece:
            rest.append(piece)
    return found, "&".join(rest)


def cookie_parameters(cookie_header: str | None) -> dict[str, str]:
    """The `CloudFront-*` signing cookies, by their query parameter's name."""
    if not cookie_header or rules.COOKIE_PREFIX not in cookie_header:
        return {}
    found: dict[str, str] = {}
    for piece in cookie_header.split(";"):
        name, _, value = piece.strip().partition("=")
        if name in rules.COOKIE_NAMES:
            found.setdefault(name[len(rules.COOKIE_PREFIX):], value.strip('"'))
    return found


def without_signing_cookies(cookie_header: str) -> str:
    """The Cookie header without the signing cookies (cache key and origin request)."""
    if rules.COOKIE_PREFIX not in cookie_header:
        return cookie_header
    return "; ".join(
        piece for piece in (p.strip() for p in cookie_header.split(";"))
        if piece and piece.partition("=")[0] not in rules.COOKIE_NAMES
    )


# ---- Policies ----

_RESOURCE_MEMO: dict[str, Callable[[str], bool]] = {}
_POLICY_MEMO: dict[bytes, tuple[str | None, float, float | None, Any] | str] = {}


def resource_matcher(resource: str) -> Callable[[str], bool]:
    """CloudFront's resource match: `*` any run of characters (none included), `?` one."""
    found = _RESOURCE_MEMO.get(resource)
    if found is None:
        if "*" not in resource and "?" not in resource:
            found = resource.__eq__
        else:
            rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource),
                            re.DOTALL)
            found = _fullmatch(rx)
        if len(_RESOURCE_MEMO) >= _MEMO_LIMIT:
            _RESOURCE_MEMO.clear()
        _RESOURCE_MEMO[resource] = found
    return found


def _fullmatch(rx: re.Pattern[str]) -> Callable[[str], bool]:
    def match(url: str) -> bool:
        return rx.fullmatch(url) is not None

    return match


def _epoch(condition: dict[str, Any], name: str) -> float | None:
    block = condition.get(name)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"{name} must be an object")
    value = block.get("AWS:EpochTime")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} needs AWS:EpochTime, a number")
    return float(value)


def parse_policy(raw: bytes) -> tuple[str | None, float, float | None, Any]:
    """A custom policy: (resource or None for any, DateLessThan, DateGreaterThan, network or None).

    ValueError names what is wrong. Memoised by the policy's bytes (bounded): a hot signed
    URL is parsed once.
    """
    found = _POLICY_MEMO.get(raw)
    if found is not None:
        if isinstance(found, str):
            raise ValueError(found)
        return found
    try:
        parsed = _parse_policy(raw)
    except ValueError as exc:
        _remember_policy(raw, str(exc))
        raise
    _remember_policy(raw, parsed)
    return parsed


def _remember_policy(raw: bytes, value: tuple[str | None, float, float | None, Any] | str) -> None:
    if len(_POLICY_MEMO) >= _MEMO_LIMIT:
        _POLICY_MEMO.clear()
    _POLICY_MEMO[raw] = value


def _parse_policy(raw: bytes) -> tuple[str | None, float, float | None, Any]:
    if len(raw) > _MAX_POLICY:
        raise ValueError("policy too long")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("policy is not JSON") from None
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if not isinstance(statements, list) or len(statements) != 1 or not isinstance(statements[0], dict):
        raise ValueError("policy must hold exactly one statement")
    statement = statements[0]
    resource = statement.get("Resource")
    if resource is not None and not isinstance(resource, str):
        raise ValueError("policy Resource must be a string")
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        raise ValueError("policy has no Condition")
    less = _epoch(condition, "DateLessThan")
    if less is None:
        raise ValueError("policy has no DateLessThan")
    greater = _epoch(condition, "DateGreaterThan")
    network = None
    ip_block = condition.get("IpAddress")
    if ip_block is not None:
        source = ip_block.get("AWS:SourceIp") if isinstance(ip_block, dict) else None
        if not isinstance(source, str):
            raise ValueError("policy IpAddress needs AWS:SourceIp")
        try:
            network = ipaddress.ip_network(source.strip(), strict=False)
        except ValueError:
            raise ValueError("policy AWS:SourceIp is not a CIDR block") from None
    return resource, less, greater, network


def canned_policy(resource: str, expires: str) -> bytes:
    """The policy CloudFront's tools sign for a canned signed URL (botocore's `build_policy`)."""
    return b'{"Statement":[{"Resource":%s,"Condition":{"DateLessThan":{"AWS:EpochTime":%s}}}]}' % (
        json.dumps(resource).encode(), expires.encode("ascii"))


# ---- Signatures ----

_VERIFIED: dict[tuple[TrustedKey, bytes, bytes, bool], bool] = {}  # valid triples only


def verify_signature(key: TrustedKey, message: bytes, signature: bytes, sha256: bool) -> bool:
    """Whether `signature` is `key`'s over `message`; a valid triple is remembered (bounded)."""
    memo_key = (key, message, signature, sha256)
    if memo_key in _VERIFIED:
        return True
    try:
        if key.kind == rules.KIND_ECDSA:
            assert isinstance(key.key, ec.EllipticCurvePublicKey)
            key.key.verify(signature, message, _ECDSA_SHA256)
        else:
            assert isinstance(key.key, rsa.RSAPublicKey)
            key.key.verify(signature, message, _PKCS1, _SHA256 if sha256 else _SHA1)
    except (InvalidSignature, ValueError):
        return False  # never remembered: forged signatures must not push out the good ones
    if len(_VERIFIED) >= _MEMO_LIMIT:
        _VERIFIED.clear()
    _VERIFIED[memo_key] = True
    return True


# ---- The check ----

# What a request's signing parameters prove once verified, by everything they were checked
# against: (signing, url, key id, signature, policy or expires, hash algorithm) -> a ticket,
# (None, key id, DateLessThan, DateGreaterThan, network). `_ticket` also answers refusals that
# no clock or address can change, (reason, key id, ...), which are not remembered. A hit on a
# URL seen before costs one lookup here, and the time and address conditions.
_Ticket = tuple[str | None, str, float, float | None, Any]
_TICKETS: dict[tuple[Signing, str, str, str, str | None, str | None, str | None], _Ticket] = {}
_ADDRESSES: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None] = {}


def check(signing: Signing, url: str, params: dict[str, str], client_ip: str, now: float) -> Verdict:
    """The verdict on a request for `url` (the resource: scheme, Host, path and query without
    the signing parameters) carrying the signing `params` (from `split_query` or
    `cookie_parameters`), from `client_ip` at `now` (Unix seconds)."""
    key_id = params.get(rules.KEY_PAIR_ID)
    signature_text = params.get(rules.SIGNATURE)
    if not key_id or signature_text is None:
        return _refuse("no signature" if not params else "incomplete signature (Key-Pair-Id and Signature needed)")
    policy_text = params.get(rules.POLICY)
    memo_key = (signing, url, key_id, signature_text, policy_text,
                params.get(rules.EXPIRES) if policy_text is None else None, params.get(rules.HASH_ALGORITHM))
    ticket = _TICKETS.get(memo_key)
    if ticket is None:
        ticket = _ticket(signing, url, params, key_id, signature_text, policy_text)
        if ticket[0] is None:
            # Only what passed is remembered, so requests with made-up parameters, however
            # many, cannot push out the tickets of real viewers.
            if len(_TICKETS) >= _MEMO_LIMIT:
                _TICKETS.clear()
            _TICKETS[memo_key] = ticket
    reason, key_id, less, greater, network = ticket
    if reason is not None:
        return _refuse(reason, key_id)
    if now >= less:
        return _refuse("expired", key_id)
    if greater is not None and now <= greater:
        return _refuse("not yet valid", key_id)
    if network is not None:
        address = _ADDRESSES[client_ip] if client_ip in _ADDRESSES else _address(client_ip)
        if address is None or address.version != network.version or address not in network:
            return _refuse("client IP not in the policy's IpAddress", key_id)
    return Verdict(True, key_id)


def _address(client_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(client_ip)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if len(_ADDRESSES) >= _MEMO_LIMIT:
        _ADDRESSES.clear()
    _ADDRESSES[client_ip] = address
    return address


def _ticket(signing: Signing, url: str, params: dict[str, str], key_id: str, signature_text: str,
            policy_text: str | None) -> _Ticket:
    """Everything of the check that neither the clock nor the client's address changes."""
    key = signing.trusted.get(key_id)
    if key is None:
        if key_id in signing.known:
            return "key not in this behavior's trusted key groups", key_id, 0.0, None, None
        return f"unknown key id {key_id[:32]!r}", "", 0.0, None, None
    algorithm = params.get(rules.HASH_ALGORITHM)
    if algorithm is not None and algorithm not in rules.HASH_ALGORITHMS:
        return "unsupported Hash-Algorithm", key_id, 0.0, None, None
    if key.kind == rules.KIND_ECDSA and algorithm == "SHA1":
        return "ECDSA keys sign SHA-256", key_id, 0.0, None, None
    try:
        signature = rules.b64decode(signature_text)
    except ValueError:
        return "malformed signature", key_id, 0.0, None, None
    if policy_text is not None:
        try:
            message = rules.b64decode(policy_text)
            resource, less, greater, network = parse_policy(message)
        except ValueError as exc:
            return f"malformed policy: {exc}", key_id, 0.0, None, None
    else:
        expires = params.get(rules.EXPIRES)
        if expires is None:
            return "neither Expires nor Policy", key_id, 0.0, None, None
        if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            return "malformed Expires", key_id, 0.0, None, None
        resource, less, greater, network = url, float(expires), None, None
        message = canned_policy(url, expires)
    if not verify_signature(key, message, signature, algorithm == "SHA256"):
        return "signature does not match", key_id, 0.0, None, None
    if resource is not None and not resource_matcher(resource)(url):
        return "resource does not match the URL", key_id, 0.0, None, None
    return None, key_id, less, greater, network
