"""Response heads: the one head builder of the edge, and the header helpers around it.

Every response head the edge writes comes from `Heads.head` plus `Heads.tail`: a stored
object's head (built once per stored object and kept on it, `CachedObject.head`; the hit
fast path appends its own per-request tail), a streamed or slow-path response, and the
edge's own short plain-text answers (errors, redirects).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus

from .. import policy
from ..store import CachedObject

# Never replayed from a stored or origin response: the edge computes them per response.
NOT_STORED = frozenset({"age", "content-length", "x-cache", "x-edge-location", "x-request-id", "connection"})
_REASONS = {s.value: s.phrase for s in HTTPStatus}
RESULTS = ("Hit", "Miss", "RefreshHit", "Error")
# The Cache-Status parameters (RFC 9211) of a response whose phase did not set its own
# (`Ctx.cache_status`), by X-Cache result. "Error" is the edge's own answer (a refusal).
CACHE_STATUS = {"Hit": "hit", "Miss": "fwd=uri-miss", "RefreshHit": "fwd=stale; fwd-status=304",
                "Error": "detail=refused"}
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


class _DateCache:
    """The Date header value, formatted at most once per second."""

    def __init__(self) -> None:
        self.second = 0
        self.value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = formatdate(second, usegmt=True)
        return self.value


DATE = _DateCache()


def cache_status_name(name: str) -> str:
    """The edge's name as a Cache-Status cache identifier: an sf-token, else an sf-string."""
    if _SF_TOKEN.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Heads:
    """Builds response heads for one edge (its name and PoP go into Via, X-Cache,
    Cache-Status, X-Edge-Location)."""

    def __init__(self, name: str, pop: str) -> None:
        self.via = f"1.1 {name} (edgeagent)"
        self.cache_name = cache_status_name(name)
        self._location_line = f"X-Edge-Location: {pop}\r\n".encode("latin-1")
        self._x_cache = {r: f"X-Cache: {r} from {name}\r\n".encode("latin-1") for r in RESULTS}

    def head(
        self, status: int, headers: Sequence[tuple[str, str]], framing: str, result: str, cache_status: str = ""
    ) -> bytes:
        """Status line, `headers` without the fields the edge owns (an upstream Via and
        Cache-Status are extended), `framing` (Content-Length or Transfer-Encoding, or ""),
        then Via, Cache-Status, X-Cache and X-Edge-Location. `cache_status` is this edge's
        Cache-Status parameters (RFC 9211), by default those of `result` (CACHE_STATUS).
        The per-response `tail` follows it."""
        lines = [f"HTTP/1.1 {status} {reason(status)}\r\n"]
        via = upstream = ""
        for name, value in headers:
            lname = name.lower()
            if lname == "via":
                via = value
            elif lname == "cache-status":
                upstream = f"{upstream}, {value}" if upstream else value
            elif lname not in NOT_STORED:
                lines.append(f"{name}: {value}\r\n")
        lines.append(framing)
        lines.append(f"Via: {via + ', ' if via else ''}{self.via}\r\n")
        lines.append(f"Cache-Status: {upstream + ', ' if upstream else ''}{self.cache_name}; "
                     f"{cache_status or CACHE_STATUS[result]}\r\n")
        return "".join(lines).encode("latin-1") + self._x_cache[result] + self._location_line

    def interim(self, status: int, text: str, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        """An origin's 1xx as it goes on to the viewer (RFC 9110 15.2): its fields without the
        hop-by-hop ones, and this edge in Via (7.6.3)."""
        fields = policy.strip_hop_by_hop([(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers])
        lines = [f"HTTP/1.1 {status} {text or reason(status)}\r\n"]
        via = ""
        for name, value in fields:
            if name.lower() == "via":
                via = value
            else:
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"Via: {via + ', ' if via else ''}{self.via}\r\n\r\n")
        return "".join(lines).encode("latin-1")

    def object_head(self, obj: CachedObject) -> bytes:
        """The head of a stored object served whole as a Hit, kept on the object."""
        return self.head(obj.meta.status, obj.meta.headers, f"Content-Length: {obj.size}\r\n", "Hit")

    @staticmethod
    def tail(age: int | None, request_id: str, close: bool) -> bytes:
        """Age (None: the edge's own answers carry none), X-Request-Id, Connection, end of head."""
        age_field = b"" if age is None else b"Age: %d\r\n" % age
        end = b"Connection: close\r\n\r\n" if close else b"\r\n"
        return b"%sX-Request-Id: %s\r\n%s" % (age_field, request_id.encode("latin-1"), end)


# ---- header helpers ----


def lower_map(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def content_length(lower: dict[str, str]) -> int | None:
    value = lower.get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


_304_KEEP = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"})


def for_304(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 9110 15.4.5: a 304 carries the validators and caching fields only."""
    return [(n, v) for n, v in headers if n.lower() in _304_KEEP]
