"""The signature of the control plane's requests to an edge's admin API (docs/edge-config.md).

`X-Edge-Signature` is hex HMAC-SHA256, keyed with SHA-256(token) (which is what the control
plane stores as the token's hash), over the timestamp, the nonce, the method, the raw path
and the body. The edge accepts a timestamp within CLOCK_SKEW_SECONDS of its clock and keeps
every accepted nonce for that long, so a captured request cannot be replayed while a
retry of the same body in the same second (a new nonce) still goes through.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from .limits import CLOCK_SKEW_SECONDS

TIMESTAMP_HEADER = "X-Edge-Timestamp"
NONCE_HEADER = "X-Edge-Nonce"
SIGNATURE_HEADER = "X-Edge-Signature"
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def signing_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def sign(key: bytes, timestamp: int, nonce: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_headers(key: bytes, method: str, path: str, body: bytes, *,
                   clock: Callable[[], float] = time.time) -> dict[str, str]:
    """The three headers that authenticate one request."""
    timestamp = int(clock())
    nonce = secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(key, timestamp, nonce, method, path, body),
    }


class Verifier:
    """Checks signatures, clock skew and replays."""

    def __init__(self, token: str | None, clock: Callable[[], float] = time.time) -> None:
        self.key = signing_key(token) if token else None
        self.clock = clock
        self.seen: dict[str, float] = {}

    def check(self, timestamp: str | None, nonce: str | None, signature: str | None, method: str, path: str,
              body: bytes) -> str | None:
        """None when the request is authentic, else the reason it is not."""
        assert self.key is not None
        if not timestamp or not signature or not nonce:
            return f"missing {TIMESTAMP_HEADER}, {NONCE_HEADER} or {SIGNATURE_HEADER}"
        if not NONCE.fullmatch(nonce):
            return f"{NONCE_HEADER} must be 16-128 letters, digits, '-' or '_'"
        try:
            ts = int(timestamp)
        except ValueError:
            return f"{TIMESTAMP_HEADER} must be an integer"
        now = self.clock()
        if abs(now - ts) > CLOCK_SKEW_SECONDS:
            return f"{TIMESTAMP_HEADER} too far from the edge clock"
        expected = sign(self.key, ts, nonce, method, path, body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            return "bad signature"
        self._forget(now)
        if nonce in self.seen:
            return "replayed request"
        self.seen[nonce] = ts
        return None

    def _forget(self, now: float) -> None:
        if len(self.seen) > 256:
            self.seen = {nonce: ts for nonce, ts in self.seen.items() if abs(now - ts) <= CLOCK_SKEW_SECONDS}
