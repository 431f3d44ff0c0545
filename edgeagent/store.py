"""The object store: a memory tier and a disk tier, both LRU and bounded by bytes.

Objects up to `memory_object_max` bytes are served from memory, where a hit is one dict
lookup; they are also persisted to disk, so the cache survives a restart. Larger objects
are streamed straight to a disk file and served from it.

On disk each object is two files under `<disk_dir>/objects/<2 hex>/`: `<sha256>.meta` (JSON,
including the body's length and CRC-32) and `<sha256>.<nonce>.body`. A body is written under
its own fresh name, which nothing references until it is complete; then the meta file is
written under `<disk_dir>/tmp/` and renamed into place. A crash therefore leaves the old
object, the new one, or an unreferenced body that the next start deletes. On open the
store re-indexes the directory, dropping anything unreadable, truncated or orphaned; a body
is checked against its CRC before it is first served (a small one when it is promoted to
memory, a large one by a background verification thread).

Threading. Everything runs on the caller's (event loop) thread except two helpers:
- the disk writer thread persists small objects behind the loop's back (a file write here
  costs a few hundred microseconds, far more than a miss may spend on the loop). It hands
  finished files back through a queue the loop drains on its next store call; a commit,
  invalidation or removal that happened meanwhile wins (see `_drain`). `close()` waits for
  it, so a graceful shutdown persists everything.
- the verification thread (after a restart) only reads files and sets flags on objects.
What stays on the loop is bounded: a `Writer.write` of a large object is one `os.write` of
the chunk it is given, its commit one small meta write and rename, and a promotion reads at
most `memory_object_max` bytes. The server may therefore call every store method from the
event loop; chunks of up to about 1 MiB keep each write short.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import threading
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from edgeagent.policy import compile_invalidation, vary_key

_META_VERSION = 1
# Rough per-object bookkeeping cost in the memory tier, on top of body and headers.
_MEM_OVERHEAD = 400
_VARY_SEP = "\x03"
_REMOVAL_LOG = 256
# Backlog of the disk writer thread; beyond it small objects stay memory-only.
_MAX_PENDING_JOBS = 2000
_MAX_PENDING_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the server knows about a response when it starts storing it.

    `headers` are the response headers to replay on a hit (hop-by-hop already removed; no
    Age, X-Cache or Content-Length: the server adds those per response). `encoding` is the
    stored body's Content-Encoding ("" for identity). `vary` is the normalised Vary name list
    (policy.vary_names) and `vary_key` the request's secondary key for it (policy.vary_key).
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


class CachedObject:
    """A stored response.

    `body` is the whole body when the object is in the memory tier (read it once per
    response: the store hands out new instances rather than mutating this one). `file_path`
    is the body file of a disk object; the file disappears when the object is evicted, so
    open it with `open_body()` and treat FileNotFoundError as a miss (an open file stays
    readable after eviction). `head` is a slot for the server's pre-serialised response
    head; it belongs to this instance and is None in every new one (after a store or a
    refresh). `age`, `age_line`, `age_from` and `age_until` are the hit path's memo of the
    Age it last computed: valid while the time is in [age_from, age_until), empty in every
    new instance.
    """

    __slots__ = ("key", "primary_key", "meta", "size", "crc", "body", "file_path",
                 "meta_path", "head", "verified", "corrupt", "cost",
                 "age", "age_line", "age_from", "age_until")

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
        self.age = 0
        self.age_line = b""
        self.age_from = 0.0
        self.age_until = 0.0
        self.verified = verified
        self.corrupt = False
        self.cost = size + _MEM_OVERHEAD + len(key) + sum(
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


class Writer:
    """Streams one response into the store.

    Small bodies accumulate in memory; once past `memory_object_max` they spill to a body
    file (unreferenced until commit) and every further `write` is one `os.write`. `write`
    returns False once the writer has given up (over a size limit, disk error): the server
    keeps streaming to the viewer and stops writing. Nothing is visible to lookups before
    `commit()`. Always end with `commit()` or `abort()`.
    """

    __slots__ = ("_store", "key", "primary_key", "meta", "size", "_chunks", "_fd",
                 "_path", "_crc", "_done", "_failed", "_seq")

    def __init__(self, store: Store, key: str, primary_key: str, meta: ObjectMeta,
                 keep_in_memory: bool, to_disk: bool) -> None:
        self._store = store
        self._seq = store._seq
        self.key = key
        self.primary_key = primary_key
        self.meta = meta
        self.size = 0
        self._chunks: list[bytes] | None = [] if keep_in_memory else None
        self._fd = -1
        self._path: str | None = None
        self._crc = 0
        self._done = False
        self._failed = not (keep_in_memory or to_disk)
        if to_disk and not keep_in_memory and not self._open_body_file():
            self._failed = True

    @property
    def failed(self) -> bool:
        return self._failed

    def _open_body_file(self) -> bool:
        try:
            self._path = self._store._new_body_path(self.key)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            return True
        except OSError:
            self._path = None
            self._fd = -1
            return False

    def write(self, chunk: bytes | bytearray | memoryview) -> bool:
        if self._failed or self._done:
            return False
        n = len(chunk)
        if not n:
            return True
        self.size += n
        store = self._store
        if self.size > store.max_object_size:
            self._fail()
            return False
        chunks = self._chunks
        if chunks is not None:
            if self.size <= store.memory_object_max:
                chunks.append(bytes(chunk))
                return True
            # Too big for memory after all: spill what we have to a body file.
            self._chunks = None
            if store.disk_dir is None or not self._open_body_file():
                self._fail()
                return False
            if chunks and not self._write_fd(b"".join(chunks)):
                return False
        return self._write_fd(chunk)

    def _write_fd(self, chunk: bytes | bytearray | memoryview) -> bool:
        try:
            view = memoryview(chunk)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self._fail()
            return False
        self._crc = zlib.crc32(chunk, self._crc)
        return True

    def commit(self) -> CachedObject | None:
        """Publish the object (replacing any previous one under the same key).

        Returns None when nothing was stored: the writer gave up, or an invalidation or
        removal matching this object arrived while it was being fetched.
        """
        if self._done:
            return None
        store = self._store
        if not self._failed and store._removed_since(self._seq, self.primary_key, self.meta):
            self._fail()
        self._done = True
        if self._failed:
            return None
        if self._chunks is not None:
            body = b"".join(self._chunks)
            self._chunks = None
            return store._commit_small(CachedObject(
                self.key, self.primary_key, self.meta, self.size, zlib.crc32(body), body,
                None, None))
        fd, self._fd = self._fd, -1
        path, self._path = self._path, None
        assert path is not None
        try:
            os.close(fd)
        except OSError:
            _unlink(path)
            return None
        return store._commit_large(self.key, self.primary_key, self.meta, self.size,
                                   self._crc, path)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._fail()

    def _fail(self) -> None:
        self._failed = True
        self._chunks = None
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        if self._path is not None:
            _unlink(self._path)
            self._path = None


@dataclass(frozen=True, slots=True)
class _Removal:
    seq: int
    distribution_id: str
    matchers: tuple[Callable[[str], bool], ...]
    tags: frozenset[str]
    primary_key: str | None


@dataclass(slots=True)
class _Job:
    """A disk write for the writer thread: a whole small object, or (body None) a new
    meta file for a body already on disk (`body_name`)."""

    token: int
    seq: int
    obj: CachedObject
    body: bytes | None
    body_name: str = ""
    body_path: str = ""
    meta_path: str = ""
    written: bool = False


@dataclass(slots=True)
class _DistIndex:
    keys: dict[str, None] = field(default_factory=dict)


class Store:
    """Both cache tiers and their indexes.

    `disk_dir` None or `disk_bytes` 0 disables the disk tier (then objects larger than
    `memory_object_max` are not cached). `max_object_size` caps one object (default: the
    disk tier's size, or `memory_object_max` without one). With `verify_in_background`
    False, large objects found on disk at start stay unserved until the owner calls
    `verify_pending()` (tests use this to be deterministic).
    """

    def __init__(self, memory_bytes: int, disk_dir: Path | str | None, disk_bytes: int,
                 memory_object_max: int, max_object_size: int | None = None,
                 verify_in_background: bool = True) -> None:
        self.memory_bytes = memory_bytes
        self.memory_object_max = min(memory_object_max, memory_bytes)
        self.disk_bytes = disk_bytes if disk_dir is not None else 0
        self.disk_dir = Path(disk_dir) if disk_dir is not None and disk_bytes > 0 else None
        limit = self.disk_bytes if self.disk_dir is not None else self.memory_object_max
        self.max_object_size = min(max_object_size, limit) if max_object_size else limit
        self._mem: OrderedDict[str, CachedObject] = OrderedDict()
        self._disk: OrderedDict[str, CachedObject] = OrderedDict()
        self._mem_used = 0
        self._disk_used = 0
        # Vary layout per primary key, and how many of its variants are stored.
        self._vary: dict[str, tuple[str, ...]] = {}
        self._variants: dict[str, int] = {}
        self._by_dist: dict[str, _DistIndex] = {}
        self._made_dirs: set[str] = set()
        # Recent removals, so a fetch that started before one cannot store what it removed.
        self._seq = 0
        self._removals: deque[_Removal] = deque(maxlen=_REMOVAL_LOG)
        # Write-behind: `_tokens` maps a key to its newest queued disk job; a job whose
        # token is no longer there was superseded. `_disk_lock` orders the writer thread's
        # file publication against the loop's large commits and removals.
        self._disk_lock = threading.Lock()
        self._tokens: dict[str, int] = {}
        self._next_token = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._done_jobs: deque[_Job] = deque()
        self._pending_bytes = 0
        self._writer_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._verifier: threading.Thread | None = None
        if self.disk_dir is not None:
            self._open_disk()
            if verify_in_background and any(not o.verified for o in self._disk.values()):
                self._verifier = threading.Thread(target=self._verify, args=(self._stop,),
                                                  name="edge-store-verify", daemon=True)
                self._verifier.start()

    # ---- Reading ----

    def lookup(self, key: str, headers: Mapping[str, str] | None = None) -> CachedObject | None:
        """The object for a primary cache key (and, when it has Vary, the request headers).

        Memory hits are a dict lookup and an LRU touch. A disk hit on an object small enough
        for memory reads its file once (bounded by `memory_object_max`) to promote it.
        Large disk objects whose checksum has not been verified since start are not served.
        """
        names = self._vary.get(key)
        if names is not None:
            key = key + _VARY_SEP + vary_key(names, headers or {})
        mem = self._mem
        obj = mem.get(key)
        if obj is not None:
            mem.move_to_end(key)
            return obj
        if self._done_jobs:
            self._drain()
        obj = self._disk.get(key)
        if obj is None:
            return None
        if obj.corrupt:
            self._drop(key)
            return None
        if obj.size <= self.memory_object_max:
            return self._promote(obj)
        if not obj.verified:
            return None
        self._disk.move_to_end(key)
        return obj

    def _promote(self, obj: CachedObject) -> CachedObject | None:
        try:
            assert obj.file_path is not None
            with open(obj.file_path, "rb") as f:
                body = f.read(obj.size + 1)
        except OSError:
            self._drop(obj.key)
            return None
        if len(body) != obj.size or zlib.crc32(body) != obj.crc:
            self._drop(obj.key)
            return None
        obj.verified = True
        self._disk.move_to_end(obj.key)
        promoted = CachedObject(obj.key, obj.primary_key, obj.meta, obj.size, obj.crc, body,
                                obj.file_path, obj.meta_path)
        self._mem_insert(promoted)
        return promoted

    # ---- Writing ----

    def full_key(self, key: str, meta: ObjectMeta) -> str:
        """The key an object is stored under: the primary key plus its Vary secondary key."""
        return key + _VARY_SEP + meta.vary_key if meta.vary else key

    def begin(self, key: str, meta: ObjectMeta, size_hint: int | None = None) -> Writer:
        """A writer for the response to primary key `key` (size_hint: Content-Length)."""
        full = self.full_key(key, meta)
        if size_hint is not None and size_hint > self.max_object_size:
            return Writer(self, full, key, meta, False, False)
        keep = self.memory_bytes > 0 and (size_hint is None
                                          or size_hint <= self.memory_object_max)
        return Writer(self, full, key, meta, keep, self.disk_dir is not None)

    def put(self, key: str, meta: ObjectMeta, body: bytes) -> CachedObject | None:
        """Store a whole body at once (small objects, error pages, tests)."""
        writer = self.begin(key, meta, len(body))
        writer.write(body)
        return writer.commit()

    def refresh(self, obj: CachedObject, meta: ObjectMeta) -> CachedObject:
        """Replace an object's metadata after a 304 from the origin (a RefreshHit).

        The body is kept; on disk only the meta file is rewritten (by the writer thread).
        If the object left the store meanwhile (evicted, invalidated, replaced), nothing is
        stored again and the returned object is detached. The new object's `head` is None.
        """
        if self._done_jobs:
            self._drain()
        meta = replace(meta, vary=obj.meta.vary, vary_key=obj.meta.vary_key)
        key = obj.key
        in_mem = self._mem.get(key)
        on_disk = self._disk.get(key)
        current = in_mem or on_disk
        body = obj.body if obj.body is not None else (in_mem.body if in_mem else None)
        if current is None or current.crc != obj.crc or current.size != obj.size:
            return CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                obj.file_path, None, obj.verified)
        if on_disk is not None and on_disk.file_path and on_disk.meta_path:
            fresh = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, None,
                                 on_disk.file_path, on_disk.meta_path, on_disk.verified)
            self._disk_replace(fresh)
            self._enqueue(_Job(0, self._seq, fresh, None,
                               body_name=os.path.basename(on_disk.file_path),
                               meta_path=on_disk.meta_path))
        elif in_mem is not None and self.disk_dir is not None:
            # Its first disk write may still be queued; queue the fresh metadata after it.
            assert body is not None
            self._enqueue(_Job(0, self._seq, CachedObject(
                key, obj.primary_key, meta, obj.size, obj.crc, body, None, None), body))
        if body is None:
            fresh_disk = self._disk.get(key)
            return fresh_disk if fresh_disk is not None else current
        fresh_mem = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                 None, None)
        self._mem_insert(fresh_mem)
        return fresh_mem

    def _commit_small(self, obj: CachedObject) -> CachedObject:
        if self._done_jobs:
            self._drain()
        self._prepare_layout(obj)
        self._mem_insert(obj)
        on_disk = self._disk.get(obj.key)
        if on_disk is not None and on_disk.crc != obj.crc:
            self._disk_remove(obj.key)
        if self.disk_dir is not None:
            self._enqueue(_Job(0, self._seq, obj, obj.body))
        return obj

    def _commit_large(self, key: str, primary_key: str, meta: ObjectMeta, size: int,
                      crc: int, body_path: str) -> CachedObject | None:
        if self._done_jobs:
            self._drain()
        obj = CachedObject(key, primary_key, meta, size, crc, None, None, None)
        try:
            with self._disk_lock:
                self._tokens.pop(key, None)
                obj.meta_path = self._publish(obj, body_path)
                obj.file_path = body_path
        except OSError:
            _unlink(body_path)
            return None
        self._prepare_layout(obj)
        stale = self._mem.pop(key, None)
        if stale is not None:
            self._mem_used -= stale.cost
        self._disk_replace(obj)
        return obj

    def _prepare_layout(self, obj: CachedObject) -> None:
        """Forget other variants when a resource's Vary layout changes."""
        primary = obj.primary_key
        names = obj.meta.vary
        old_names = self._vary.get(primary)
        if names == (old_names or ()):
            return
        if old_names is None:
            self._drop(primary)
        else:
            self._remove(primary)
        if names:
            self._vary[primary] = names

    # ---- Removal ----

    def remove(self, key: str) -> int:
        """Remove a primary key with all its Vary variants; returns objects removed."""
        with self._disk_lock:
            self._log_removal(key.split("\x00", 1)[0], (), frozenset(), key)
            self._drain()
        return self._remove(key)

    def _remove(self, key: str) -> int:
        if key not in self._vary:
            return 1 if self._drop(key) else 0
        dist = self._by_dist.get(key.split("\x00", 1)[0])
        victims = [k for k in (dist.keys if dist else ()) if self._primary(k) == key]
        self._vary.pop(key, None)
        return sum(1 for k in victims if self._drop(k))

    def invalidate(self, distribution_id: str, paths: Iterable[str],
                   tags: Iterable[str] = ()) -> int:
        """Remove every object of a distribution whose path matches one of `paths` (exact,
        `*` wildcards, `/*`) or which carries one of `tags`: all variants (query strings,
        headers, cookies, encodings, Vary), both tiers, including disk writes still queued.
        Returns objects removed."""
        matchers = tuple(compile_invalidation(p) for p in paths)
        tag_set = frozenset(tags)
        with self._disk_lock:
            self._log_removal(distribution_id, matchers, tag_set, None)
            self._drain()
        index = self._by_dist.get(distribution_id)
        if index is None:
            return 0
        victims = []
        for key in index.keys:
            obj = self._mem.get(key) or self._disk.get(key)
            if obj is None:
                continue
            if any(m(obj.meta.path) for m in matchers) or (
                    tag_set and not tag_set.isdisjoint(obj.meta.tags)):
                victims.append(key)
        return sum(1 for k in victims if self._drop(k))

    def clear(self) -> int:
        """Remove everything (both tiers)."""
        self.flush()
        keys = list(dict.fromkeys([*self._mem, *self._disk]))
        return sum(1 for k in keys if self._drop(k))

    def _log_removal(self, distribution_id: str, matchers: tuple[Callable[[str], bool], ...],
                     tags: frozenset[str], primary_key: str | None) -> None:
        self._seq += 1
        self._removals.append(_Removal(self._seq, distribution_id, matchers, tags, primary_key))

    def _removed_since(self, seq: int, primary_key: str, meta: ObjectMeta) -> bool:
        if seq == self._seq:
            return False
        log = self._removals
        if not log or log[0].seq > seq + 1:
            return True
        for r in reversed(log):
            if r.seq <= seq:
                break
            if r.distribution_id != meta.distribution_id:
                continue
            if r.primary_key is not None:
                if r.primary_key == primary_key:
                    return True
            elif any(m(meta.path) for m in r.matchers) or not r.tags.isdisjoint(meta.tags):
                return True
        return False

    # ---- Introspection and lifecycle ----

    @property
    def memory_used(self) -> int:
        return self._mem_used

    @property
    def disk_used(self) -> int:
        return self._disk_used

    @property
    def memory_objects(self) -> int:
        return len(self._mem)

    @property
    def disk_objects(self) -> int:
        return len(self._disk)

    def stats(self) -> dict[str, int]:
        """Gauges for /metrics (names become `edge_<name>`)."""
        if self._done_jobs:
            self._drain()
        return {
            "cache_memory_bytes": self._mem_used,
            "cache_memory_objects": len(self._mem),
            "cache_disk_bytes": self._disk_used,
            "cache_disk_objects": len(self._disk),
            "cache_disk_write_backlog": self._jobs.qsize(),
        }

    def __len__(self) -> int:
        return len(set(self._mem) | set(self._disk))

    def flush(self) -> None:
        """Wait until every queued disk write is done and indexed (blocking)."""
        if self._writer_thread is not None:
            self._jobs.join()
        self._drain()

    def close(self) -> None:
        """Finish queued disk writes and stop the helper threads (blocking; at shutdown)."""
        self._stop.set()
        if self._writer_thread is not None:
            self._jobs.put(None)
            self._writer_thread.join()
            self._writer_thread = None
        self._drain()
        if self._verifier is not None:
            self._verifier.join()
            self._verifier = None

    # ---- Internals: indexes ----

    def _primary(self, key: str) -> str:
        obj = self._mem.get(key) or self._disk.get(key)
        return obj.primary_key if obj is not None else key

    def _index(self, obj: CachedObject) -> None:
        dist = self._by_dist.get(obj.meta.distribution_id)
        if dist is None:
            dist = self._by_dist[obj.meta.distribution_id] = _DistIndex()
        if obj.key in dist.keys:
            return
        dist.keys[obj.key] = None
        if obj.meta.vary:
            primary = obj.primary_key
            self._variants[primary] = self._variants.get(primary, 0) + 1
            self._vary.setdefault(primary, obj.meta.vary)

    def _unindex(self, obj: CachedObject) -> None:
        """Forget a key that left both tiers (and its resource's Vary layout with its last
        variant, so `_vary` does not grow with every URL ever seen)."""
        key = obj.key
        if key in self._mem or key in self._disk:
            return
        dist = self._by_dist.get(obj.meta.distribution_id)
        if dist is None or key not in dist.keys:
            return
        del dist.keys[key]
        if not dist.keys:
            del self._by_dist[obj.meta.distribution_id]
        if obj.meta.vary:
            primary = obj.primary_key
            left = self._variants.get(primary, 1) - 1
            if left > 0:
                self._variants[primary] = left
            else:
                self._variants.pop(primary, None)
                self._vary.pop(primary, None)

    def _mem_insert(self, obj: CachedObject) -> None:
        old = self._mem.pop(obj.key, None)
        if old is not None:
            self._mem_used -= old.cost
        if obj.cost > self.memory_bytes:
            if old is not None:
                self._unindex(old)
            return
        self._mem[obj.key] = obj
        self._mem_used += obj.cost
        self._index(obj)
        while self._mem_used > self.memory_bytes:
            _, victim = self._mem.popitem(last=False)
            self._mem_used -= victim.cost
            self._unindex(victim)

    def _disk_replace(self, obj: CachedObject) -> None:
        old = self._disk.pop(obj.key, None)
        if old is not None:
            self._disk_used -= old.size
            if old.file_path is not None and old.file_path != obj.file_path:
                _unlink(old.file_path)
        self._disk[obj.key] = obj
        self._disk_used += obj.size
        self._index(obj)
        while self._disk_used > self.disk_bytes and self._disk:
            key, victim = self._disk.popitem(last=False)
            self._disk_used -= victim.size
            _unlink(victim.meta_path)
            _unlink(victim.file_path)
            self._unindex(victim)

    def _drop(self, key: str) -> bool:
        self._tokens.pop(key, None)
        obj = self._mem.pop(key, None)
        if obj is not None:
            self._mem_used -= obj.cost
        disk_obj = self._disk_remove(key)
        gone = obj or disk_obj
        if gone is None:
            return False
        self._unindex(gone)
        return True

    def _disk_remove(self, key: str) -> CachedObject | None:
        obj = self._disk.pop(key, None)
        if obj is not None:
            self._disk_used -= obj.size
            _unlink(obj.meta_path)
            _unlink(obj.file_path)
        return obj

    # ---- Internals: the disk writer thread ----

    def _enqueue(self, job: _Job) -> None:
        size = job.obj.size if job.body is not None else 0
        if self._jobs.qsize() >= _MAX_PENDING_JOBS or \
                self._pending_bytes + size > _MAX_PENDING_BYTES:
            self._tokens.pop(job.obj.key, None)
            return
        self._next_token += 1
        job.token = self._next_token
        self._tokens[job.obj.key] = job.token
        self._pending_bytes += size
        if self._writer_thread is None:
            self._writer_thread = threading.Thread(target=self._write_jobs,
                                                   name="edge-store-writer", daemon=True)
            self._writer_thread.start()
        self._jobs.put(job)

    def _write_jobs(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                with self._disk_lock:
                    obj = job.obj
                    if self._tokens.get(obj.key) == job.token and not self._removed_since(
                            job.seq, obj.primary_key, obj.meta):
                        try:
                            if job.body is not None:
                                job.body_path = self._new_body_path(obj.key)
                                with open(job.body_path, "xb") as f:
                                    f.write(job.body)
                                job.meta_path = self._publish(obj, job.body_path)
                            else:
                                self._write_meta(job.meta_path, obj, job.body_name)
                            job.written = True
                        except (OSError, ValueError, TypeError):
                            pass
                    self._done_jobs.append(job)
            finally:
                self._jobs.task_done()

    def _drain(self) -> None:
        """Index the writer thread's finished jobs (loop side).

        A job still current (its token unchanged, nothing removed it meanwhile) becomes the
        disk copy. A superseded or removed one has its body file deleted here; its meta
        file too, unless the key's meta file is still owned by an indexed object or will be
        rewritten by a newer queued job.
        """
        done = self._done_jobs
        while done:
            job = done.popleft()
            obj = job.obj
            if job.body is not None:
                self._pending_bytes -= obj.size
            current = self._tokens.get(obj.key) == job.token
            if current:
                del self._tokens[obj.key]
            meta_orphaned = obj.key not in self._disk and obj.key not in self._tokens
            if not job.written:
                # An earlier, superseded job may have left the key's meta file behind,
                # expecting this one to rewrite it.
                if meta_orphaned:
                    _unlink(self._meta_path(obj.key))
                continue
            if job.body is None:
                if meta_orphaned:
                    _unlink(job.meta_path)
                continue
            # A Vary layout registered since this job was queued makes it unreachable.
            layout = self._vary.get(obj.primary_key)
            outdated = layout is not None and layout != obj.meta.vary
            if not current or outdated or self._removed_since(job.seq, obj.primary_key,
                                                              obj.meta):
                _unlink(job.body_path)
                if meta_orphaned:
                    _unlink(job.meta_path)
                continue
            self._disk_replace(CachedObject(obj.key, obj.primary_key, obj.meta, obj.size,
                                            obj.crc, None, job.body_path, job.meta_path))

    # ---- Internals: files ----

    def _temp_path(self) -> str:
        assert self.disk_dir is not None
        return str(self.disk_dir / "tmp" / secrets.token_hex(8))

    def _object_dir(self, digest: str) -> str:
        assert self.disk_dir is not None
        d = str(self.disk_dir / "objects" / digest[:2])
        if d not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(d)
        return d

    def _meta_path(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self._object_dir(digest), digest + ".meta")

    def _new_body_path(self, key: str) -> str:
        """A fresh, unreferenced body file name for `key`."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self._object_dir(digest), f"{digest}.{secrets.token_hex(4)}.body")

    def _publish(self, obj: CachedObject, body_path: str) -> str:
        """Point the key's meta file at a complete body file; returns the meta path."""
        meta_path = body_path.rsplit(".", 2)[0] + ".meta"
        try:
            self._write_meta(meta_path, obj, os.path.basename(body_path))
        except OSError:
            _unlink(body_path)
            raise
        return meta_path

    def _write_meta(self, meta_path: str, obj: CachedObject, body_name: str) -> None:
        meta = obj.meta
        record = {
            "v": _META_VERSION,
            "key": obj.key,
            "primary": obj.primary_key,
            "body": body_name,
            "size": obj.size,
            "crc": obj.crc,
            "distribution_id": meta.distribution_id,
            "path": meta.path,
            "status": meta.status,
            "headers": [list(h) for h in meta.headers],
            "stored_at": meta.stored_at,
            "ttl": meta.ttl,
            "swr": meta.stale_while_revalidate,
            "sie": meta.stale_if_error,
            "must_revalidate": meta.must_revalidate,
            "origin_age": meta.origin_age,
            "etag": meta.etag,
            "last_modified": meta.last_modified,
            "content_type": meta.content_type,
            "encoding": meta.encoding,
            "tags": sorted(meta.tags),
            "vary": list(meta.vary),
            "vary_key": meta.vary_key,
        }
        data = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogatepass")
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, meta_path)
        except OSError:
            _unlink(tmp)
            raise

    def _open_disk(self) -> None:
        """Re-index the disk tier after a restart (see the module docstring)."""
        assert self.disk_dir is not None
        tmp_dir = self.disk_dir / "tmp"
        objects_dir = self.disk_dir / "objects"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        objects_dir.mkdir(parents=True, exist_ok=True)
        for leftover in tmp_dir.iterdir():
            _unlink(str(leftover))
        found: list[tuple[float, CachedObject]] = []
        for sub in objects_dir.iterdir():
            if not sub.is_dir():
                _unlink(str(sub))
                continue
            self._made_dirs.add(str(sub))
            names = set(os.listdir(sub))
            referenced: set[str] = set()
            for name in names:
                if not name.endswith(".meta"):
                    continue
                meta_path = os.path.join(sub, name)
                loaded = _load_meta(meta_path, str(sub))
                body_path = loaded.file_path if loaded is not None else None
                if loaded is None or body_path is None or \
                        os.path.basename(body_path) not in names:
                    _unlink(meta_path)
                    continue
                try:
                    size = os.stat(body_path).st_size
                    mtime = os.stat(meta_path).st_mtime
                except OSError:
                    _unlink(meta_path)
                    continue
                if size != loaded.size:
                    _unlink(meta_path)
                    continue
                referenced.add(os.path.basename(body_path))
                found.append((mtime, loaded))
            for name in names:
                if not name.endswith(".meta") and name not in referenced:
                    _unlink(os.path.join(sub, name))
        found.sort(key=lambda item: item[0])
        for _, obj in found:
            if obj.meta.vary:
                self._vary[obj.primary_key] = obj.meta.vary
            self._disk_replace(obj)

    def _disk_snapshot(self) -> list[CachedObject]:
        """The disk index's objects, copied from another thread than the loop's."""
        while True:
            try:
                return list(self._disk.values())
            except RuntimeError:
                # The loop changed the index while it was being copied; copy again.
                continue

    def verify_pending(self) -> int:
        """Check the CRC of every disk object not verified since start; blocking (the store
        runs this in its own thread after a re-index unless told not to). Corrupt objects
        are flagged and dropped by the next lookup. Returns how many were found corrupt."""
        return self._verify(None)

    def _verify(self, stop: threading.Event | None) -> int:
        bad = 0
        for obj in self._disk_snapshot():
            if stop is not None and stop.is_set():
                break
            if obj.verified or obj.corrupt or obj.file_path is None:
                continue
            crc = 0
            size = 0
            try:
                with open(obj.file_path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        crc = zlib.crc32(chunk, crc)
                        size += len(chunk)
                        if stop is not None and stop.is_set():
                            return bad
            except OSError:
                continue
            if crc == obj.crc and size == obj.size:
                obj.verified = True
            else:
                obj.corrupt = True
                bad += 1
        return bad


def _load_meta(meta_path: str, directory: str) -> CachedObject | None:
    try:
        with open(meta_path, "rb") as f:
            record: Any = json.loads(f.read().decode("utf-8", "surrogatepass"))
        if not isinstance(record, dict) or record.get("v") != _META_VERSION:
            return None
        body_name = record["body"]
        if not isinstance(body_name, str) or "/" in body_name or not body_name.endswith(
                ".body"):
            return None
        meta = ObjectMeta(
            distribution_id=str(record["distribution_id"]),
            path=str(record["path"]),
            status=int(record["status"]),
            headers=tuple((str(n), str(v)) for n, v in record["headers"]),
            stored_at=float(record["stored_at"]),
            ttl=int(record["ttl"]),
            stale_while_revalidate=int(record["swr"]),
            stale_if_error=int(record["sie"]),
            must_revalidate=bool(record["must_revalidate"]),
            origin_age=int(record["origin_age"]),
            etag=record["etag"],
            last_modified=record["last_modified"],
            content_type=record["content_type"],
            encoding=str(record["encoding"]),
            tags=frozenset(str(t) for t in record["tags"]),
            vary=tuple(str(n) for n in record["vary"]),
            vary_key=str(record["vary_key"]),
        )
        return CachedObject(str(record["key"]), str(record["primary"]), meta,
                            int(record["size"]), int(record["crc"]), None,
                            os.path.join(directory, body_name), meta_path, verified=False)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
