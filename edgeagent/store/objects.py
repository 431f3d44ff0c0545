"""The object types of the store: what a stored response is (`ObjectMeta`) and its handle (`CachedObject`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

# Rough per-object bookkeeping cost in the memory tier, on top of body and headers.
MEM_OVERHEAD = 400


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the server knows about a response when it starts storing it.

    `headers` are the response headers to replay on a hit (hop-by-hop already removed; no
    Age, X-Cache or Content-Length: the server adds those per response). `encoding` is the
    stored body's Content-Encoding ("" for identity). `vary` is the normalised Vary name list
    (policy.vary_names) and `vary_key` the request's secondary key for it (policy.vary_key).
    `origin_age` is the corrected initial age the response arrived with (RFC 9111 4.2.3:
    the origin's Age or its apparent age from Date, plus the fetch's delay); the current age
    is that plus the time since `stored_at`. Disk files written before it meant the origin's
    raw Age, a lower bound of the same quantity, so they load unchanged. `targeted` holds
    the targeted cache-control fields the edge obeyed (lowercase name, value): never sent to
    viewers, kept so that a 304 without them is judged by them (policy.targeted_names).
    """

    distribution_id: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    stored_at: float
    ttl: int
    stale_while_revalidate: int = 0
    stale_if_error: int = 0
    must_revalidate: bool = False
    origin_age: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    encoding: str = ""
    tags: frozenset[str] = frozenset()
    vary: tuple[str, ...] = ()
    vary_key: str = ""
    targeted: tuple[tuple[str, str], ...] = ()


class CachedObject:
    """A stored response.

    `body` is the whole body when the object is in the memory tier (read it once per
    response: the store hands out new instances rather than mutating this one). `file_path`
    is the body file of a disk object; the file disappears when the object is evicted, so
    open it with `open_body()` and treat FileNotFoundError as a miss (an open file stays
    readable after eviction). `head` is a slot for the server's pre-serialised response
    head; it belongs to this instance and is None in every new one (after a store or a
    refresh). `age_line`, `age_from` and `age_until` are the hit path's memo of the
    Age it last computed (its `Age` line, up to the request id's value): valid while the
    time is in [age_from, age_until), empty in every new instance. `hot` is set by a memory hit and cleared when the disk tier's eviction
    passes the object's disk copy (store/tiers.py, `Store._disk_replace`).
    """

    __slots__ = ("key", "primary_key", "meta", "size", "crc", "body", "file_path",
                 "meta_path", "head", "verified", "corrupt", "cost",
                 "age_line", "age_from", "age_until", "hot")

    def __init__(self, key: str, primary_key: str, meta: ObjectMeta, size: int, crc: int,
                 body: bytes | None, file_path: str | None, meta_path: str | None,
                 verified: bool = True) -> None:
        self.key = key
        self.primary_key = primary_key
        self.meta = meta
        self.size = size
        self.crc = crc
        self.body = body
        self.file_path = file_path
        self.meta_path = meta_path
        self.head: bytes | None = None
        self.age_line = b""
        self.age_from = 0.0
        self.age_until = 0.0
        self.verified = verified
        self.corrupt = False
        self.hot = False
        self.cost = size + MEM_OVERHEAD + len(key) + sum(
            len(n) + len(v) for n, v in meta.headers)

    def __repr__(self) -> str:
        tier = "memory" if self.body is not None else "disk"
        return f"<CachedObject {self.meta.path!r} {self.meta.status} {self.size}B {tier}>"

    def open_body(self) -> BinaryIO:
        """A binary file positioned at the start of the body (disk objects only)."""
        if self.file_path is None:
            raise FileNotFoundError("object has no body file")
        return open(self.file_path, "rb")

    def read(self, first: int = 0, last: int | None = None) -> bytes:
        """Bytes first..last inclusive; a blocking file read for disk objects, meant for
        small slices (stream large ranges from `open_body()`)."""
        end = self.size if last is None else last + 1
        if self.body is not None:
            return self.body[first:end]
        with self.open_body() as f:
            f.seek(first)
            return f.read(end - first)
